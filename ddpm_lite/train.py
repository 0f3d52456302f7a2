"""Training: the L_simple objective on a batch, and the loop that the chapter and
`python -m ddpm_lite train` share.

The loop keeps the whole dataset on the device and draws batches and noise from one seeded
generator. A checkpoint stores everything the next step depends on (weights, EMA, optimizer,
both random states, the loss history), so a resumed run repeats an unbroken one exactly.
"""

from __future__ import annotations

import copy
import math
import platform
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import Tensor
from tqdm.auto import tqdm

from . import __version__
from .checkpoint import latest_checkpoint, load_checkpoint, load_module, save_checkpoint
from .diffusion import loss_simple
from .guidance import drop_labels
from .schedules import SCHEDULE_KINDS, NoiseSchedule, gather, make_betas
from .unet import UNet, UNetConfig

EpsModel = Callable[[Tensor, Tensor], Tensor]


def training_loss(
    eps_model: EpsModel, schedule: NoiseSchedule, x0: Tensor, generator: torch.Generator
) -> Tensor:
    """L_simple averaged over a batch, a scalar.

    t ~ Uniform{0, ..., T-1} independently per example, eps ~ N(0, I),
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, loss = mean (eps - eps_theta(x_t, t))^2.
    Book: eq. loss-simple
    """
    t = torch.randint(
        0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device
    )
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    # q_sample inline (eq. fwd-marginal): t is valid by construction, and q_sample's check of its
    # range would make the host wait for the device at every step.
    alpha_bar = gather(schedule.alpha_bars, t, x0)
    xt = torch.sqrt(alpha_bar) * x0 + torch.sqrt(1 - alpha_bar) * eps
    # Under autocast eps_theta comes back in bf16; the loss is taken in x0's dtype (float32).
    return loss_simple(eps, eps_model(xt, t).to(eps.dtype)).mean()


LR_SCHEDULES = ("constant", "cosine")
PRECISIONS = ("auto", "fp32", "bf16")


def ema_decay_at(step: int, ema_decay: float) -> float:
    """The EMA's decay at optimizer step `step` (0-based): min(ema_decay, (1 + step) / (10 + step)).

    Without the warm-up a run of n steps keeps ema_decay**n of the initial weights in its
    average (37 % after 1,000 steps at 0.999), whose zero output layer predicts eps = 0.
    """
    return min(ema_decay, (1 + step) / (10 + step))


def lr_factor(step: int, config: "TrainConfig") -> float:
    """The learning rate's multiplier at 0-based step: linear warmup, then constant or cosine to zero."""
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
    warmup_steps: int = (
        500  # linear warmup: Adam's first steps are large before its moments settle
    )
    ema_decay: float = 0.9995  # averages over ~2,000 steps; warmed up, see ema_decay_at
    lr_schedule: str = "constant"  # after warmup: "constant", or "cosine" decay to zero at the last step
    keep_checkpoints: int = 3  # the newest few are kept; older ones are deleted (the final one always stays)
    grad_clip: float = 1.0
    checkpoint_every: int = 2_000
    schedule: str = "linear"
    T: int = 1000
    seed: int = 0
    device: str = "auto"  # "auto" picks CUDA when present
    precision: str = "auto"  # "auto": bf16 autocast on CUDA, float32 on the CPU (bf16 measured slower there)
    channels_last: bool = True  # measured faster on both CUDA and the CPU
    compile: bool = False  # torch.compile the model (CUDA)
    p_uncond: float = 0.1  # class-conditional models only: the label dropout of classifier-free guidance

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "checkpoint_every", "T"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps must be >= 0, got {self.warmup_steps}")
        if not self.lr > 0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.schedule not in SCHEDULE_KINDS:
            raise ValueError(
                f"schedule must be one of {SCHEDULE_KINDS}, got {self.schedule!r}"
            )
        if not 0.0 <= self.p_uncond <= 1.0:
            raise ValueError(f"p_uncond must be in [0, 1], got {self.p_uncond}")
        if self.lr_schedule not in LR_SCHEDULES:
            raise ValueError(
                f"lr_schedule must be one of {LR_SCHEDULES}, got {self.lr_schedule!r}"
            )
        if self.precision not in PRECISIONS:
            raise ValueError(
                f"precision must be one of {PRECISIONS}, got {self.precision!r}"
            )
        if self.keep_checkpoints < 1:
            raise ValueError(
                f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}"
            )
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(
                f"device must be one of ('auto', 'cpu', 'cuda'), got {self.device!r}"
            )


class TrainResult(NamedTuple):
    model: UNet
    ema: UNet
    losses: list[float]  # one per step, from step 1, including steps before a resume
    checkpoint: Path
    seconds: float  # wall time of this call


def resolve_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for, but torch sees no CUDA device")
    return torch.device(
        "cuda"
        if name == "auto" and torch.cuda.is_available()
        else ("cpu" if name == "auto" else name)
    )


def describe_device(device: torch.device) -> str:
    """The device as a sidecar records it: the GPU's name, or the CPU and its thread count."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


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
) -> TrainResult:
    """Train eps_theta on images (N, C, H, W) in [-1, 1]; checkpoints go to out_dir.

    A class-conditional U-Net (unet_config.num_classes set) also needs labels (N,); each is
    replaced by the "no label" token with probability config.p_uncond, so the one network
    learns eps(x_t, t, y) and eps(x_t, t) for classifier-free guidance.
    With resume=True, continues from the newest complete checkpoint in out_dir. `command`
    (the command line that started the run) is recorded in every sidecar.
    """
    conditional = unet_config.num_classes is not None
    if conditional and (labels is None or labels.shape != images.shape[:1]):
        raise ValueError(
            f"a class-conditional U-Net needs labels of shape ({images.shape[0]},), got "
            f"{None if labels is None else tuple(labels.shape)}"
        )
    if not conditional and labels is not None:
        raise ValueError("labels were given, but unet_config.num_classes is None")
    out_dir = Path(out_dir)
    device = resolve_device(config.device)
    on_cuda = device.type == "cuda"
    memory_format = (
        torch.channels_last if config.channels_last else torch.contiguous_format
    )
    data = images.to(device).contiguous(
        memory_format=memory_format
    )  # the whole dataset stays on the device
    data_labels = labels.to(device) if conditional else None
    schedule = NoiseSchedule(make_betas(config.schedule, config.T)).to(
        device, torch.float32
    )

    torch.manual_seed(
        config.seed
    )  # initial weights; dropout also draws from this global generator
    model = UNet(unet_config).to(device, memory_format=memory_format)
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    if on_cuda:  # TF32 matmuls and tuned convolutions: the defaults trade speed for bits DDPM does not need
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
        torch.backends.cudnn.benchmark = True
    optimizer = make_optimizer(model, config)
    lr_schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: lr_factor(step, config)
    )
    generator = torch.Generator(device).manual_seed(config.seed)  # batches, t and eps
    losses: list[float] = []
    start, seconds_before = 0, 0.0

    stem = latest_checkpoint(out_dir) if resume else None
    if stem is not None:
        tensors, info = load_checkpoint(stem, device)
        model.load_state_dict(
            {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}
        )
        ema.load_state_dict(
            {k[4:]: v for k, v in tensors.items() if k.startswith("ema.")}
        )
        optimizer.load_state_dict(
            _unflatten_optimizer(tensors, info["optimizer_param_groups"])
        )
        _match_parameter_layout(optimizer)
        lr_schedule.load_state_dict(info["lr_schedule"])
        generator.set_state(tensors["rng.generator"].cpu())
        torch.set_rng_state(tensors["rng.torch"].cpu())
        if on_cuda and "rng.cuda" in tensors:
            torch.cuda.set_rng_state(tensors["rng.cuda"].cpu())
        losses = tensors["history.loss"].tolist()
        start = info["step"]
        seconds_before = info.get("wall_seconds_total", 0.0)

    step_fn = torch.compile(model) if config.compile else model
    bf16 = config.precision == "bf16" or (config.precision == "auto" and on_cuda)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16)
    began = time.perf_counter()
    code_version = (
        _code_version()
    )  # of the code this process runs, not of whatever is checked out later
    pending: list[
        Tensor
    ] = []  # losses stay on the device until a checkpoint: no per-step sync
    checkpoint = stem
    bar = tqdm(
        range(start, config.steps),
        initial=start,
        total=config.steps,
        disable=not progress,
        unit="step",
    )
    for step in bar:
        pending.append(
            train_step(
                model,
                ema,
                optimizer,
                lr_schedule,
                step_fn,
                schedule,
                data,
                data_labels,
                generator,
                config,
                step,
                autocast,
            )
        )
        done = step + 1
        if done % config.checkpoint_every == 0 or done == config.steps:
            losses.extend(torch.stack(pending).float().cpu().tolist())
            pending.clear()
            elapsed = time.perf_counter() - began
            bar.set_postfix(
                loss=f"{losses[-1]:.4f}",
                img_per_s=f"{(done - start) * config.batch_size / elapsed:.0f}",
            )
            run = {
                "data": {"images": data.shape[0], "note": data_note},
                "command": command,
                "code_version": code_version,
                "wall_seconds_this_run": round(elapsed, 2),
                "wall_seconds_total": round(seconds_before + elapsed, 2),
            }
            checkpoint = _save(
                out_dir,
                done,
                model,
                ema,
                optimizer,
                lr_schedule,
                generator,
                device,
                losses,
                unet_config,
                config,
                run,
            )
            prune_checkpoints(out_dir, config.keep_checkpoints, keep_step=config.steps)
    return TrainResult(model, ema, losses, checkpoint, time.perf_counter() - began)


def _match_parameter_layout(optimizer: torch.optim.Optimizer) -> None:
    """Give each loaded moment tensor its parameter's memory layout.

    Checkpoints store tensors contiguous; a channels-last parameter's moments must be channels-last
    again, because the fused AdamW kernel walks parameter, gradient and moments as flat memory.
    """
    for group in optimizer.param_groups:
        for p in group["params"]:
            state = optimizer.state[p]
            for key, value in state.items():
                if value.shape == p.shape:
                    state[key] = torch.empty_like(p).copy_(value)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.AdamW:
    """AdamW, fused: one kernel for all parameters, and its step count never read on the host (CUDA and CPU)."""
    return torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay, fused=True
    )


def train_step(
    model: UNet,
    ema: UNet,
    optimizer: torch.optim.Optimizer,
    lr_schedule,
    step_fn: Callable,
    schedule: NoiseSchedule,
    data: Tensor,
    data_labels: Tensor | None,
    generator: torch.Generator,
    config: TrainConfig,
    step: int,
    autocast,
) -> Tensor:
    """One optimizer step on a random batch, then the EMA update; returns the loss, still on the device.

    Nothing here reads a device value on the host, so on a GPU the host runs ahead of the kernels.
    """
    batch = torch.randint(
        0, data.shape[0], (config.batch_size,), generator=generator, device=data.device
    )
    eps_model = step_fn
    if data_labels is not None:
        y = drop_labels(
            data_labels[batch], config.p_uncond, model.config.num_classes, generator
        )
        eps_model = lambda xt, t: step_fn(xt, t, y)  # noqa: E731
    with autocast:
        loss = training_loss(eps_model, schedule, data[batch], generator)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
    optimizer.step()
    lr_schedule.step()
    with torch.no_grad():
        torch._foreach_lerp_(
            list(ema.parameters()),
            list(model.parameters()),
            1 - ema_decay_at(step, config.ema_decay),
        )
    return loss.detach().clone()  # clone: see train_noisy_classifier


def _save(
    out_dir,
    step,
    model,
    ema,
    optimizer,
    lr_schedule,
    generator,
    device,
    losses,
    unet_config,
    config,
    run: dict,
) -> Path:
    optimizer_tensors, param_groups = _flatten_optimizer(optimizer.state_dict())
    tensors = {
        **{f"model.{k}": v for k, v in model.state_dict().items()},
        **{f"ema.{k}": v for k, v in ema.state_dict().items()},
        **optimizer_tensors,
        "rng.generator": generator.get_state(),
        "rng.torch": torch.get_rng_state(),
        "history.loss": torch.tensor(losses, dtype=torch.float32),
    }
    if device.type == "cuda":
        tensors["rng.cuda"] = torch.cuda.get_rng_state()
    recent = losses[-min(len(losses), 100) :]
    info = {
        "step": step,
        "unet_config": asdict(unet_config),
        "train_config": asdict(config),
        **run,
        "images_seen": step * config.batch_size,
        "device": describe_device(device),
        "metrics": {"loss_mean_last_100": sum(recent) / len(recent)},
        "torch": torch.__version__,
        "optimizer_param_groups": param_groups,
        "lr_schedule": lr_schedule.state_dict(),
    }
    stem = Path(out_dir) / f"checkpoint-{step:07d}"
    save_checkpoint(stem, tensors, info)
    return stem


def prune_checkpoints(
    out_dir: str | Path, keep: int, keep_step: int | None = None
) -> list[Path]:
    """Delete all but the newest `keep` complete checkpoints (and never the one at keep_step); return the deleted stems."""
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


class TrainedModel(NamedTuple):
    model: UNet  # eval mode
    schedule: (
        NoiseSchedule  # the one it was trained with, float32, on the model's device
    )
    info: dict  # the sidecar


def load_trained(
    path_stem: str | Path, use_ema: bool = True, device: str | torch.device = "cpu"
) -> TrainedModel:
    """A U-Net from a training checkpoint (EMA weights by default), checksum verified, with its noise schedule."""
    model, info = load_module(
        path_stem,
        UNet,
        UNetConfig,
        "unet_config",
        device,
        prefix="ema." if use_ema else "model.",
    )
    schedule = NoiseSchedule(
        make_betas(info["train_config"]["schedule"], info["train_config"]["T"])
    )
    return TrainedModel(model, schedule.to(device, torch.float32), info)


def load_model(
    path_stem: str | Path, use_ema: bool = True, device: str | torch.device = "cpu"
) -> UNet:
    """A U-Net from a checkpoint (EMA weights by default), checksum verified, in eval mode."""
    return load_trained(path_stem, use_ema, device).model
