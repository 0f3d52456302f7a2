"""Training: the L_simple objective on a batch, and the loop that the chapter and
`python -m ddpm_lite train` share.

The loop keeps the whole dataset on the device and draws batches and noise from one
seeded generator. A checkpoint stores everything the next step depends on (`TrainState`:
weights, EMA, optimizer, learning-rate schedule, both random states, the loss history),
so a resumed run repeats an unbroken one exactly. Loading a trained model is
`trained`'s job.
"""

from __future__ import annotations

import copy
import logging
import math
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import __version__
from . import _validate as v
from .checkpoint import (
    CheckpointError,
    complete_checkpoints,
    load_checkpoint,
    save_checkpoint,
)
from .devices import DEVICES, describe_device, resolve_device
from .diffusion import EpsModel, loss_simple
from .distributed import (
    SINGLE,
    World,
    check_same_data,
    join_world,
    leave_world,
    local_device,
    mean_across,
    my_slice,
    per_rank_batch,
)
from .flow_map import meanflow_loss, time_pairs, u_theta
from .guidance import drop_labels
from .objectives import (
    check_objective,
    network_time,
    path_coefficients,
    target,
)
from .schedules import SCHEDULE_KINDS, NoiseSchedule, make_betas
from .unet import UNet, UNetConfig

logger = logging.getLogger(__name__)


def draw_t_eps(
    schedule: NoiseSchedule,
    x0: Tensor,
    generator: torch.Generator,
    objective: str = "eps",
) -> tuple[Tensor, Tensor]:
    """t ~ Uniform{0, ..., T-1} independently per example (flow: t ~ Uniform[0, 1)),
    and eps ~ N(0, I) like x0."""
    n = x0.shape[0]
    if objective == "flow":
        t = torch.rand(n, generator=generator, device=x0.device, dtype=x0.dtype)
    else:
        t = torch.randint(0, schedule.T, (n,), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    return t, eps


def simple_loss_at(
    net: EpsModel,
    schedule: NoiseSchedule,
    x0: Tensor,
    t: Tensor,
    eps: Tensor,
    objective: str = "eps",
) -> Tensor:
    """The objective's squared error averaged over a batch at the given t and eps, a
    scalar: x_t = a_t x0 + b_t eps, loss = mean (target - net(x_t, t))^2. For "eps"
    this is L_simple: x_t = forward_marginal(x0, eps, alpha_bar_t), target eps.

    Book: eq. loss-simple, eq. target-family
    """
    a, b = path_coefficients(objective, schedule, t, x0)
    xt = a * x0 + b * eps
    # Under autocast the prediction comes back in bf16; the loss is taken in x0's dtype.
    prediction = net(xt, network_time(objective, t)).to(eps.dtype)
    return loss_simple(target(objective, x0, eps, a, b), prediction).mean()


def training_loss(
    net: EpsModel,
    schedule: NoiseSchedule,
    x0: Tensor,
    generator: torch.Generator,
    objective: str = "eps",
) -> Tensor:
    """The objective's loss averaged over a batch, a scalar, at t and eps drawn from
    generator (L_simple for "eps").

    Book: eq. loss-simple
    """
    t, eps = draw_t_eps(schedule, x0, generator, objective)
    return simple_loss_at(net, schedule, x0, t, eps, objective)


LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")


def ema_decay_at(step: int, ema_decay: float) -> float:
    """The EMA's decay at 0-based optimizer step `step`.

    decay = min(ema_decay, (1 + step) / (10 + step)). Without the warm-up a run of n
    steps keeps ema_decay**n of the initial weights in its average (37 % after 1,000
    steps at 0.999), whose zero output layer predicts eps = 0.
    """
    return min(ema_decay, (1 + step) / (10 + step))


def lr_factor(step: int, config: "TrainConfig") -> float:
    """The learning rate's multiplier at 0-based step.

    A linear warmup, then constant or a cosine decay to zero.
    """
    if step < config.warmup_steps:
        return (step + 1) / config.warmup_steps
    if config.lr_schedule == "constant":
        return 1.0
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 20_000
    batch_size: int = 128
    lr: float = 2e-4
    weight_decay: float = 0.0
    # linear warmup: Adam's first steps are large before its moments settle
    warmup_steps: int = 500
    ema_decay: float = 0.9995  # averages over ~2,000 steps; warmed up, see ema_decay_at
    # after warmup: "constant", or "cosine" decay to zero at the last step
    lr_schedule: str = "constant"
    # the newest few are kept; older ones are deleted (the final one always stays)
    keep_checkpoints: int = 3
    grad_clip: float = 1.0
    checkpoint_every: int = 2_000
    schedule: str = "linear"
    T: int = 1000
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when present
    # "auto": bf16 autocast on CUDA, float32 on the CPU (bf16 measured slower there)
    precision: str = "auto"
    channels_last: bool = True  # measured faster on both CUDA and the CPU
    compile: bool = False  # torch.compile the model (CUDA)
    # class-conditional models only: the label dropout of classifier-free guidance
    p_uncond: float = 0.1
    # what the network predicts: "eps", "x0", "v", "flow" or "meanflow"
    # (objectives.OBJECTIVES)
    objective: str = "eps"
    # meanflow only: the share of time pairs with s = r (flow_map.time_pairs), and the
    # power of the adaptive loss weight (flow_map.meanflow_loss; 0: plain squares)
    flow_fraction: float = 0.75
    weight_power: float = 0.0

    def __post_init__(self) -> None:
        for name in (
            "steps",
            "batch_size",
            "checkpoint_every",
            "T",
            "keep_checkpoints",
        ):
            v.at_least(name, getattr(self, name), 1)
        v.at_least("warmup_steps", self.warmup_steps, 0)
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        v.in_unit_interval("p_uncond", self.p_uncond)
        v.in_unit_interval("flow_fraction", self.flow_fraction)
        v.at_least("weight_power", self.weight_power, 0)
        v.choice("schedule", self.schedule, SCHEDULE_KINDS)
        v.choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        v.choice("precision", self.precision, PRECISIONS)
        v.choice("device", self.device, DEVICES)
        check_objective(self.objective)


class TrainResult(NamedTuple):
    model: UNet
    ema: UNet
    losses: list[float]  # one per step, from step 1, including steps before a resume
    checkpoint: Path
    seconds: float  # wall time of this call


class Batch(NamedTuple):
    """A training batch: images, labels (some dropped to the "no label" token; None for
    an unconditional model), and the t and eps each image is noised with."""

    x0: Tensor  # (B, C, H, W) in [-1, 1]
    y: Tensor | None  # (B,)
    t: Tensor  # (B,) long code indices; flow: times in [0, 1); meanflow: r
    eps: Tensor  # like x0
    s: Tensor | None = None  # meanflow: the earlier time, s <= r

    def share(self, world: World) -> Batch:
        """This rank's slice of a global batch."""
        return Batch(*(None if f is None else my_slice(f, world) for f in self))


@dataclass
class TrainState:
    """Everything the next training step depends on, and its checkpoint layout.

    A checkpoint's tensors are named by prefix: "model." and "ema." the two networks'
    weights (what `trained.load_trained` reads), "optimizer." the AdamW moments,
    "rng." the random states, "history." the loss per step.
    """

    model: UNet
    ema: UNet
    optimizer: torch.optim.Optimizer
    lr_schedule: torch.optim.lr_scheduler.LambdaLR
    generator: torch.Generator  # batches, labels dropped, t and eps
    losses: list[float] = field(default_factory=list)
    step: int = 0  # optimizer steps taken

    @classmethod
    def create(
        cls, unet_config: UNetConfig, config: TrainConfig, device: torch.device
    ) -> TrainState:
        torch.manual_seed(config.seed)  # initial weights; dropout draws from it too
        fmt = torch.channels_last if config.channels_last else torch.contiguous_format
        model = UNet(unet_config).to(device, memory_format=fmt)
        ema = copy.deepcopy(model).requires_grad_(False).eval()
        optimizer = make_optimizer(model, config)
        lr_schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: lr_factor(step, config)
        )
        generator = torch.Generator(device).manual_seed(config.seed)
        return cls(model, ema, optimizer, lr_schedule, generator)

    def state_dict(self) -> tuple[dict[str, Tensor], dict]:
        """(tensors, sidecar fields) of this state."""
        moments, param_groups = _flatten_optimizer(self.optimizer.state_dict())
        tensors = {
            **{f"model.{k}": x for k, x in self.model.state_dict().items()},
            **{f"ema.{k}": x for k, x in self.ema.state_dict().items()},
            **moments,
            "rng.generator": self.generator.get_state(),
            "rng.torch": torch.get_rng_state(),
            "history.loss": torch.tensor(self.losses, dtype=torch.float32),
        }
        if self.generator.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state()
        info = {
            "step": self.step,
            "optimizer_param_groups": param_groups,
            "lr_schedule": self.lr_schedule.state_dict(),
        }
        return tensors, info

    def load_state_dict(self, tensors: dict[str, Tensor], info: dict) -> None:
        """Restore a state that `state_dict` wrote (a checkpoint's tensors, sidecar)."""
        self.model.load_state_dict(_strip(tensors, "model."))
        self.ema.load_state_dict(_strip(tensors, "ema."))
        moments = _unflatten_optimizer(tensors, info["optimizer_param_groups"])
        self.optimizer.load_state_dict(moments)
        _match_parameter_layout(self.optimizer)
        self.lr_schedule.load_state_dict(info["lr_schedule"])
        self.generator.set_state(tensors["rng.generator"].cpu())
        torch.set_rng_state(tensors["rng.torch"].cpu())
        if self.generator.device.type == "cuda" and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"].cpu())
        self.losses = tensors["history.loss"].tolist()
        self.step = info["step"]


def _strip(tensors: dict[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix) :]: x for k, x in tensors.items() if k.startswith(prefix)}


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW, fused (CUDA and CPU): one kernel for all parameters.

    Its step count is never read on the host.
    """
    return torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )


def _match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each loaded moment tensor its parameter's memory layout.

    Checkpoints store tensors contiguous; a channels-last parameter's moments must be
    channels-last again, because the fused AdamW kernel walks parameter, gradient and
    moments as flat memory.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state[p]
            for key, value in state.items():
                if value.shape == p.shape:
                    state[key] = torch.empty_like(p).copy_(value)


def _code_version() -> str:
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            cwd=Path(__file__).parent,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return f"ddpm_lite {__version__}" + (f" (git {commit})" if commit else "")


def _flatten_optimizer(state: dict) -> tuple[dict[str, Tensor], list]:
    tensors = {
        f"optimizer.{i}.{k}": v for i, s in state["state"].items() for k, v in s.items()
    }
    return tensors, state["param_groups"]


def _unflatten_optimizer(tensors: dict[str, Tensor], param_groups: list) -> dict:
    state: dict = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": param_groups}


def draw_batch(
    data: Tensor,
    labels: Tensor | None,
    config: TrainConfig,
    generator: torch.Generator,
    schedule: NoiseSchedule,
    null_label: int | None,
) -> Batch:
    """A random global batch of config.batch_size images (with replacement), their
    labels (each dropped to null_label with probability config.p_uncond), t and eps."""
    index = torch.randint(
        0, data.shape[0], (config.batch_size,), generator=generator, device=data.device
    )
    x0 = data[index]
    y = None
    if labels is not None:
        y = drop_labels(labels[index], config.p_uncond, null_label, generator)
    if config.objective == "meanflow":
        s, r = time_pairs(x0.shape[0], generator, config.flow_fraction)
        eps = torch.randn(x0.shape, generator=generator, device=x0.device)
        return Batch(x0, y, r.to(x0.dtype), eps.to(x0.dtype), s.to(x0.dtype))
    return Batch(x0, y, *draw_t_eps(schedule, x0, generator, config.objective))


def train_step(
    state: TrainState,
    batch: Batch,
    schedule: NoiseSchedule,
    config: TrainConfig,
    forward: Callable | None = None,
    world: World = SINGLE,
    teacher: Callable | None = None,
) -> Tensor:
    """One optimizer step on batch, then the EMA update (rank 0's); returns the loss,
    still on the device.

    teacher (meanflow only): a velocity model nu(x, r, y) whose velocity replaces the
    conditional one in MeanFlow's target (`flow_map.meanflow_loss`): distillation.

    forward: the network as called (torch.compile'd, or DDP's wrapper, which averages
    the ranks' gradients); state.model by default. Nothing here reads a device value on
    the host, so on a GPU the host runs ahead.
    """
    forward = state.model if forward is None else forward
    net = forward if batch.y is None else lambda xt, t: forward(xt, t, batch.y)
    device_type = batch.x0.device.type
    bf16 = config.precision == "bf16" or (
        config.precision == "auto" and device_type == "cuda"
    )
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=bf16):
        if config.objective == "meanflow":

            def u_model(x: Tensor, s: Tensor, r: Tensor) -> Tensor:
                return u_theta(forward, x, s, r, batch.y)

            def nu_teacher(x: Tensor, r: Tensor) -> Tensor:
                return teacher(x, r, batch.y)

            loss = meanflow_loss(
                u_model, batch.x0, batch.eps, batch.s, batch.t,
                teacher=None if teacher is None else nu_teacher,
                weight_power=config.weight_power,
            )  # fmt: skip
        else:
            loss = simple_loss_at(
                net, schedule, batch.x0, batch.t, batch.eps, config.objective
            )
    state.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(state.model.parameters(), config.grad_clip)
    state.optimizer.step()
    state.lr_schedule.step()
    if world.main:
        weight = 1 - ema_decay_at(state.step, config.ema_decay)
        with torch.no_grad():
            ema, model = list(state.ema.parameters()), list(state.model.parameters())
            torch._foreach_lerp_(ema, model, weight)
    state.step += 1
    return loss.detach().clone()  # clone: see fit.fit


def save_state(
    out_dir: Path,
    state: TrainState,
    unet_config: UNetConfig,
    config: TrainConfig,
    run: dict,
) -> Path:
    """Write state as checkpoint-<step> in out_dir, with the run's record; its stem."""
    tensors, fields = state.state_dict()
    recent = state.losses[-min(len(state.losses), 100) :]
    info = {
        "step": state.step,
        "unet_config": asdict(unet_config),
        "train_config": asdict(config),
        **run,
        "images_seen": state.step * config.batch_size,
        "device": describe_device(state.generator.device),
        "metrics": {"loss_mean_last_100": sum(recent) / len(recent)},
        "torch": torch.__version__,
        **fields,
    }
    stem = Path(out_dir) / f"checkpoint-{state.step:07d}"
    save_checkpoint(stem, tensors, info)
    return stem


def _check_labels(
    unet_config: UNetConfig, images: Tensor, labels: Tensor | None
) -> None:
    if unet_config.num_classes is None:
        if labels is not None:
            raise ValueError("labels were given, but unet_config.num_classes is None")
    elif labels is None or labels.shape != images.shape[:1]:
        got = None if labels is None else tuple(labels.shape)
        raise ValueError(
            f"a class-conditional U-Net needs labels of shape ({images.shape[0]},), "
            f"got {got}"
        )


def _use_fast_cuda_kernels() -> None:
    # TF32 matmuls and tuned convolutions: the defaults trade speed for bits DDPM does
    # not need.
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True


def _network(state: TrainState, config: TrainConfig, world: World) -> Callable:
    """The network as called: DDP's wrapper across ranks, compiled if asked."""
    forward = state.model
    if world.size > 1:
        device = next(state.model.parameters()).device
        ids = [device.index] if device.type == "cuda" else None
        forward = torch.nn.parallel.DistributedDataParallel(forward, device_ids=ids)
    return torch.compile(forward) if config.compile else forward


def train(
    unet_config: UNetConfig,
    config: TrainConfig,
    images: Tensor,
    out_dir: str | Path,
    resume: bool = True,
    progress: bool = True,
    data_note: str = "",
    labels: Tensor | None = None,
    command: str = "",
    init: dict[str, Tensor] | None = None,
    init_note: str = "",
    teacher: torch.nn.Module | None = None,
    teacher_note: str = "",
) -> TrainResult:
    """Train eps_theta on images (N, C, H, W) in [-1, 1]; checkpoints go to out_dir.

    A class-conditional U-Net (unet_config.num_classes set) also needs labels (N,); each
    is replaced by the "no label" token with probability config.p_uncond, so the one
    network learns eps(x_t, t, y) and eps(x_t, t) for classifier-free guidance.
    With resume=True, continues from the newest complete checkpoint in out_dir.
    `command` (the command line that started the run) is recorded in every sidecar.
    Under torchrun each rank trains on its slice of every global batch (`distributed`).
    `init` (a U-Net's weights, described by `init_note`) starts a run that has no
    checkpoint to resume: a MeanFlow net from a flow-matching one (`warm_start`).
    `teacher` (a velocity model nu(x, r, y), described by `teacher_note`) turns a
    meanflow run into distillation (`train_step`); a resumed run needs it again.
    """
    _check_labels(unet_config, images, labels)
    if config.objective == "meanflow":
        _check_meanflow(unet_config, config)
    elif teacher is not None:
        raise ValueError(
            f"a teacher is for objective 'meanflow', not {config.objective!r}"
        )
    world = join_world(resolve_device(config.device))
    try:
        if config.objective == "meanflow" and world.size > 1:
            raise ValueError(
                "objective 'meanflow' runs in one process: its torch.func.jvp is not "
                "run through DistributedDataParallel here"
            )
        run = _Run(unet_config, config, Path(out_dir), world, data_note, command)
        run.record["init_from"] = init_note or None
        run.record["teacher"] = teacher_note or None
        return run.train(images, labels, resume, progress, init, teacher)
    finally:
        leave_world(world)


def _check_meanflow(unet_config: UNetConfig, config: TrainConfig) -> None:
    if not unet_config.time_gap:
        raise ValueError(
            "objective 'meanflow' needs a U-Net with a second time input "
            "(UNetConfig.time_gap=True)"
        )
    if config.compile:
        raise ValueError(
            "objective 'meanflow' does not run under torch.compile (compile=False): "
            "its forward-mode JVP is not compiled here"
        )
    if config.channels_last:
        raise ValueError(
            "objective 'meanflow' needs channels_last=False: GroupNorm's forward-mode "
            "derivative fails on channels-last tensors (torch 2.13)"
        )


def warm_start(state: TrainState, weights: dict[str, Tensor]) -> None:
    """Start the model and its EMA from another run's U-Net weights. Only the layers of
    a second time input may be missing (`gap_mlp`, zero at first): a velocity model's
    weights then start a MeanFlow net at u = nu."""
    for net in (state.model, state.ema):
        result = net.load_state_dict(weights, strict=False)
        missing = [k for k in result.missing_keys if not k.startswith("gap_mlp.")]
        if missing or result.unexpected_keys:
            raise ValueError(
                "the init weights do not fit this U-Net: missing "
                f"{missing}, unexpected {result.unexpected_keys}"
            )


class _Run:
    """One call of train(): the data and state on the device, and the loop."""

    def __init__(self, unet_config, config, out_dir, world, data_note, command):
        self.unet_config, self.config, self.out_dir, self.world = (
            unet_config, config, out_dir, world,
        )  # fmt: skip
        self.device = local_device(resolve_device(config.device), world)
        # the code this process runs, read once: not what is checked out at a later save
        self.record = {"command": command, "code_version": _code_version()}
        self.record.update(world_size=world.size, data_note=data_note)
        self.record["batch_per_rank"] = per_rank_batch(config.batch_size, world)

    def train(
        self, images, labels, resume, progress, init=None, teacher=None
    ) -> TrainResult:
        config, world = self.config, self.world
        if self.device.type == "cuda":
            _use_fast_cuda_kernels()
        fmt = torch.channels_last if config.channels_last else torch.contiguous_format
        data = images.to(self.device).contiguous(memory_format=fmt)  # all on the device
        check_same_data(data, world)
        data_labels = None if labels is None else labels.to(self.device)
        schedule = NoiseSchedule(make_betas(config.schedule, config.T))
        schedule = schedule.to(self.device, torch.float32)
        state = TrainState.create(self.unet_config, config, self.device)
        checkpoint, self.seconds_before = self.resume(state) if resume else (None, 0.0)
        if checkpoint is None and init is not None:
            warm_start(state, {k: x.to(self.device) for k, x in init.items()})
        forward = _network(state, config, world)
        if teacher is not None:
            teacher = teacher.to(self.device).eval().requires_grad_(False)
        began, start, pending = time.perf_counter(), state.step, []
        steps = range(start, config.steps)
        show = progress and world.main
        bar = tqdm(
            steps, initial=start, total=config.steps, disable=not show, unit="step"
        )
        null = self.unet_config.num_classes
        for _ in bar:
            batch = draw_batch(
                data, data_labels, config, state.generator, schedule, null
            )
            pending.append(
                train_step(
                    state, batch.share(world), schedule, config, forward, world, teacher
                )
            )
            if state.step % config.checkpoint_every == 0 or state.step == config.steps:
                # losses stay on the device until a checkpoint: no per-step host sync
                losses = mean_across(torch.stack(pending).float(), world)
                state.losses.extend(losses.cpu().tolist())
                pending.clear()
                elapsed = time.perf_counter() - began
                rate = (state.step - start) * config.batch_size / elapsed
                bar.set_postfix(loss=f"{state.losses[-1]:.4f}", img_per_s=f"{rate:.0f}")
                if world.main:
                    checkpoint = self.save(state, data.shape[0], elapsed)
        seconds = time.perf_counter() - began
        return TrainResult(state.model, state.ema, state.losses, checkpoint, seconds)

    def resume(self, state: TrainState) -> tuple[Path | None, float]:
        """Load out_dir's newest intact checkpoint into state: (its stem, its wall
        time). Newer damaged ones (a copy cut short, a checksum that fails) are skipped,
        with a logged warning: a long run must not lose its hours to one bad file."""
        damaged = []
        for stem in reversed(complete_checkpoints(self.out_dir)):
            try:
                tensors, info = load_checkpoint(stem, self.device)
            except ValueError as error:  # CheckpointError, or a sidecar cut short
                damaged.append(f"{stem.name} ({error})")
                continue
            if damaged and self.world.main:
                logger.warning(
                    "resuming from %s: skipped the damaged %s",
                    stem.name,
                    ", ".join(damaged),
                )
            state.load_state_dict(tensors, info)
            return stem, info.get("wall_seconds_total", 0.0)
        if damaged:
            raise CheckpointError(
                f"no intact checkpoint to resume from in {self.out_dir}: "
                f"{'; '.join(damaged)} (--no-resume starts afresh)"
            )
        return None, 0.0

    def save(self, state: TrainState, images: int, elapsed: float) -> Path:
        record = dict(self.record)
        record["data"] = {"images": images, "note": record.pop("data_note")}
        record["wall_seconds_this_run"] = round(elapsed, 2)
        record["wall_seconds_total"] = round(self.seconds_before + elapsed, 2)
        stem = save_state(self.out_dir, state, self.unet_config, self.config, record)
        prune_checkpoints(self.out_dir, self.config.keep_checkpoints, self.config.steps)
        return stem


def prune_checkpoints(
    out_dir: str | Path, keep: int, keep_step: int | None = None
) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints; return the deleted stems.

    The one at keep_step is never deleted.
    """
    stems = sorted(p.with_suffix("") for p in Path(out_dir).glob("checkpoint-*.json"))
    doomed = (
        [s for s in stems[:-keep] if s.name != f"checkpoint-{keep_step:07d}"]
        if len(stems) > keep
        else []
    )
    for stem in doomed:
        stem.with_suffix(
            ".json"
        ).unlink()  # the sidecar first: a stem without one is incomplete, never loaded
        stem.with_suffix(".safetensors").unlink(missing_ok=True)
    return doomed
