"""A trained U-Net as an ONNX file, for onnxruntime in Python or onnxruntime-web.

`export_onnx` traces eps_theta(x_t, t[, y]), a flow model's nu_theta(x_r, r[, y]) or a
meanflow model's average velocity u_theta(x_r, s, r[, y]), with torch.onnx's exporter
(dynamo), with a dynamic batch dimension. With half_weights=True the large weight
tensors (>= MIN_HALF_ELEMENTS elements: convolution and linear weights) are stored in
float16 and cast back to float32 where the graph starts, so the file is about half the
size while every operation still computes in float32; small tensors (biases, norms,
and the time embedding's constants) stay float32.

`reference_run` records one run of the package's DDIM sampler, of DPM-Solver++(2M), of
a flow model's Euler or Heun steps with classifier-free guidance, or of a meanflow
model's flow-map steps (its initial x_T, every step's noise, the sample), so that
another implementation of the sampler, such as the site's JavaScript one, can replay
the same noise and be checked against it.
"""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import torch
from torch import nn

from . import _validate as v
from .files import atomic_write

MIN_HALF_ELEMENTS = 256
OPSET = 18


# The names of the file's inputs and output: an eps-model's (x_t, t[, y]) -> eps with
# t a code index (int64), a flow model's (x_r, r[, y]) -> nu with r in [0, 1] (float32),
# a meanflow model's (x_r, s, r[, y]) -> u with s <= r in [0, 1] (float32)
IO_NAMES = {
    "eps": (["x_t", "t", "y"], "eps"),
    "flow": (["x_r", "r", "y"], "nu"),
    "meanflow": (["x_r", "s", "r", "y"], "u"),
}


def objective_of_model(model: nn.Module) -> str:
    """ "flow" for a velocity model (objectives.VelocityModel), "meanflow" for an
    average-velocity model (flow_map.AverageVelocityNet), else "eps"."""
    # x0- and v-networks reach here wrapped as eps-models (objectives.EpsFromPrediction)
    objective = getattr(model, "objective", None)
    return objective if objective in ("flow", "meanflow") else "eps"


def input_names(model: nn.Module) -> list[str]:
    """The file's input names: IO_NAMES' without y for an unconditional model."""
    names = IO_NAMES[objective_of_model(model)][0]
    return names if model.config.num_classes is not None else names[:-1]


def example_inputs(model: nn.Module, batch: int = 2) -> tuple[torch.Tensor, ...]:
    """(x_t, t[, y]), or (x_r, s, r[, y]) for a meanflow model, of the model's image
    size, on its device (the straight path's times as float32)."""
    c = model.config
    device = next(model.parameters()).device
    x = torch.zeros(batch, c.in_channels, c.image_size, c.image_size, device=device)
    objective = objective_of_model(model)
    dtype = torch.long if objective == "eps" else torch.float32
    times = 2 if objective == "meanflow" else 1
    t = [torch.zeros(batch, dtype=dtype, device=device) for _ in range(times)]
    if c.num_classes is not None:
        t.append(torch.full((batch,), c.num_classes, device=device))  # y: no label
    return (x, *t)


def export_onnx(
    model: nn.Module, path: str | Path, half_weights: bool = False, opset: int = OPSET
) -> Path:
    """Write model (eval mode) to path as ONNX.

    An eps-model (UNet): inputs x_t (float32), t (int64) [, y (int64)]; output eps.
    A flow model (objectives.VelocityModel): x_r, r (float32) [, y]; output nu.
    A meanflow model (flow_map.AverageVelocityNet): x_r, s, r (float32) [, y]; output u.
    """
    path = Path(path)
    model = model.eval()
    inputs = example_inputs(model)
    names, output = input_names(model), IO_NAMES[objective_of_model(model)][1]
    batch = torch.export.Dim("batch")
    with (
        torch.no_grad(),
        contextlib.redirect_stdout(io.StringIO()),
    ):  # the exporter reports its passes on stdout
        program = torch.onnx.export(
            model,
            inputs,
            dynamo=True,
            opset_version=opset,
            input_names=names,
            output_names=[output],
            dynamic_shapes=tuple({0: batch} for _ in inputs),
        )
    onnx_model = program.model_proto
    if half_weights:
        _store_weights_in_half(onnx_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        path, lambda tmp: Path(tmp).write_bytes(onnx_model.SerializeToString())
    )
    return path


def write_schedule(
    path: str | Path, alpha_bars: torch.Tensor, model: nn.Module, **extra
) -> Path:
    """A JSON file beside the model with what a sampler needs; plus any extra fields.

    It holds T, every alpha_bar_t (code index t, in the dtype the model is sampled
    with), the inputs and the "no label" token.
    """
    record = {
        **extra,
        "objective": objective_of_model(model),
        "T": len(alpha_bars),
        "alpha_bars": [float(a) for a in alpha_bars.double()],
        "inputs": input_names(model),
        "output": IO_NAMES[objective_of_model(model)][1],
        "null_label": model.config.num_classes,
        "image_size": model.config.image_size,
    }
    return write_json(path, record)


def onnx_eps_model(path: str | Path):
    """The exported model in onnxruntime (Python, CPU) as a torch function of the
    file's inputs, in order: (x_t, t[, y]) -> eps, (x_r, r[, y]) -> nu or
    (x_r, s, r[, y]) -> u.
    """
    import onnxruntime

    runtime = onnxruntime.InferenceSession(
        str(path), providers=["CPUExecutionProvider"]
    )
    names = [i.name for i in runtime.get_inputs()]

    def eps_model(*inputs: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(
            runtime.run(None, {n: x.numpy() for n, x in zip(names, inputs)})[0]
        )

    return eps_model


REFERENCE_SAMPLERS = ("ddim", "dpm-solver++", "euler", "heun", "flow-map")


def reference_run(
    cond_models: dict,
    null_label: int,
    image_shape: tuple[int, ...],
    schedule,
    labels: list[int],
    scale: float,
    num_steps: int,
    eta: float | None = None,
    *,
    seed: int,
    sampler: str = "ddim",
) -> dict:
    """One run of `sampling.ddim_trajectory` (sampler "ddim", with eta), of
    `solvers.dpm_solver_trajectory` (sampler "dpm-solver++": 2M on the log-SNR steps,
    deterministic, so no eta) or, for flow models, of `solvers.flow_trajectory`
    ("euler" or "heun" on the straight path's even grid) with clip_denoised=True and
    classifier-free guidance at `scale`, for each conditional model (x_t, t, y) ->
    eps (or nu) in cond_models: the inputs, the noise drawn (x_T, then for DDIM one
    draw per step when eta > 0), and each model's sample. For meanflow models
    (x_r, s, r, y) -> u, sampler "flow-map" runs `flow_map.flow_map_trajectory` from
    x_T = x_1 at scale 1 only (one call has no second prediction to mix), unclipped
    as that sampler is.

    The first model's run records the noise it draws; every other model replays it.
    """
    from .flow_map import flow_map_trajectory
    from .guidance import classifier_free_guidance
    from .noise import GeneratorNoise, RecordedNoise, RecordingNoise
    from .sampling import ddim_timesteps, ddim_trajectory, final_sample, initial_noise
    from .solvers import dpm_solver_trajectory, flow_trajectory, solver_timesteps

    v.choice("sampler", sampler, REFERENCE_SAMPLERS)
    if sampler == "ddim" and eta is None:
        raise ValueError("the DDIM run needs eta")
    if sampler != "ddim" and eta is not None:
        raise ValueError(f"{sampler} has no eta (no step noise), got eta={eta}")
    if sampler == "flow-map" and scale != 1:
        raise ValueError(f"flow-map samples its labels at w = 1 only, got {scale}")
    y = torch.tensor(labels, dtype=torch.long)
    shape = (len(labels), *image_shape)
    generated = GeneratorNoise(
        torch.Generator().manual_seed(seed), "cpu", torch.float32
    )
    recording = RecordingNoise(generated)
    samples = {}
    clip = dict(clip_denoised=sampler != "flow-map")
    for name, cond_model in cond_models.items():
        if sampler == "flow-map":  # u_theta(x_r, s, r) of the labels: w = 1
            eps_model = lambda x, s, r: cond_model(x, s, r, y)
        else:
            eps_model = classifier_free_guidance(cond_model, y, null_label, scale)
        noise = RecordedNoise(recording.draws) if samples else recording
        with torch.no_grad():
            if sampler == "ddim":
                run = ddim_trajectory(
                    eps_model, schedule, shape, noise, num_steps, eta, **clip
                )
            elif sampler == "dpm-solver++":
                run = dpm_solver_trajectory(
                    eps_model, schedule, shape, noise, num_steps, **clip
                )
            elif sampler == "flow-map":
                x1 = initial_noise(shape, noise)
                run = flow_map_trajectory(eps_model, x1, num_steps)
            else:
                run = flow_trajectory(
                    eps_model, shape, noise, num_steps, sampler, "cpu", **clip
                )
            samples[name] = final_sample(run)
    draws = recording.draws

    def flat(x: torch.Tensor) -> list[float]:
        # The shortest decimal that reads back as the same float32 (numpy's repr):
        # exact, and half the text.
        return [float(str(v)) for v in x.reshape(-1).numpy()]

    if sampler == "ddim":
        solver, timesteps = {}, ddim_timesteps(schedule.T, num_steps)
    elif sampler == "dpm-solver++":
        solver = {"order": 2, "spacing": "logsnr"}
        timesteps = solver_timesteps(schedule, num_steps, "logsnr")
    else:  # flow_trajectory's and flow_map_trajectory's even grid in r, from 1 to 0
        solver = {"spacing": "even r"}
        timesteps = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64)
        timesteps = timesteps.tolist()
    return {
        "sampler": sampler,
        **solver,
        "labels": labels,
        "scale": scale,
        "num_steps": num_steps,
        "eta": eta,
        "seed": seed,
        **clip,
        "shape": list(shape),
        "timesteps": timesteps,
        "x_T": flat(draws[0]),
        "noise": [flat(z) for z in draws[1:]],
        "samples": {name: flat(sample) for name, sample in samples.items()},
    }


def write_json(path: str | Path, record: dict) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record)))
    return path


def _store_weights_in_half(onnx_model) -> None:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    graph = onnx_model.graph
    initializers, casts = [], []
    for init in graph.initializer:
        if (
            init.data_type == TensorProto.FLOAT
            and np.prod(init.dims) >= MIN_HALF_ELEMENTS
        ):
            half = numpy_helper.from_array(
                numpy_helper.to_array(init).astype(np.float16), init.name + "__fp16"
            )
            initializers.append(half)
            casts.append(
                helper.make_node("Cast", [half.name], [init.name], to=TensorProto.FLOAT)
            )
        else:
            initializers.append(init)
    graph.ClearField("initializer")
    graph.initializer.extend(initializers)
    nodes = casts + list(graph.node)
    graph.ClearField("node")
    graph.node.extend(nodes)
