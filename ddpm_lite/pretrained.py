"""The shipped MNIST generators, loaded in one call: `load_pretrained("mnist-flow")`.

Class-conditional U-Nets, each trained with label dropout, so that one file gives
unconditional samples (the network given the "no label" token) and conditional ones:
- "mnist-flow": flow matching's velocity nu_theta(x, r[, y]) on the straight path, the
  book's best model (the chapter on flow matching measures why); sample it with the
  straight-path Euler or Heun steps (`solvers.flow_trajectory`);
- "mnist-ddpm": the DDPM eps-model eps_theta(x_t, t[, y]) that the DDPM chapters teach
  with (DDIM, DPM-Solver++, Heun, the ancestral sampler);
- "mnist-meanflow" and "mnist-meanflow-distil": one-step generators, the average
  velocity u_theta(x, s, r[, y]) (`flow_map.AverageVelocityNet`), both started from
  mnist-flow, trained by MeanFlow's loss with the conditional velocity or with
  mnist-flow's as a teacher; sample with `flow_map.flow_map_sample` (1 call or a few).
The "-cond" names ("mnist-flow-cond", "mnist-ddpm-cond") load the same files and mark
them conditional: pass labels, or use classifier_free_guidance. "mnist" and
"mnist-cond", the older names of "mnist-ddpm" and "mnist-ddpm-cond", still load it.
The weights (EMA) and a JSON sidecar (the command, steps, images seen, wall time,
hardware, torch version, the loss curve and the measured sample quality) are in
`weights/`; the SHA-256 recorded in the sidecar is checked on every load. MNIST lives in
[-1, 1], so sample these models with clip_denoised=True, as the command line and the
chapters do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from . import _validate as v
from .checkpoint import load_checkpoint
from .objectives import VelocityModel
from .schedules import NoiseSchedule
from .trained import load_trained
from .unet import UNet

WEIGHTS = Path(__file__).with_name("weights")
PRETRAINED = {
    "mnist-flow": "mnist_flow",
    "mnist-flow-cond": "mnist_flow",
    "mnist-meanflow": "mnist_meanflow",
    "mnist-meanflow-distil": "mnist_meanflow_distil",
    "mnist-ddpm": "mnist_ddpm",
    "mnist-ddpm-cond": "mnist_ddpm",
}  # name -> file stem in weights/
OLD_NAMES = {"mnist": "mnist-ddpm", "mnist-cond": "mnist-ddpm-cond"}  # still loaded


class Pretrained(NamedTuple):
    # in eval mode; model(x_t, t) is the unconditional eps_theta (for mnist-flow
    # nu_theta(x, r)), model(x_t, t, y) the conditional one
    model: UNet | VelocityModel
    schedule: NoiseSchedule  # float32, on the model's device
    info: dict[str, Any]  # the sidecar: provenance, training curve, measured quality
    # True for the "-cond" names: pass labels (or use classifier_free_guidance)
    conditional: bool


def current_name(name: str) -> str:
    """name, with an old name ("mnist", "mnist-cond") replaced by its new one."""
    name = OLD_NAMES.get(name, name)
    return v.choice("name", name, tuple(PRETRAINED))


def pretrained_path(name: str) -> Path:
    return WEIGHTS / PRETRAINED[current_name(name)]


def load_pretrained(
    name: str = "mnist-flow", device: str | torch.device = "cpu"
) -> Pretrained:
    """A shipped model with its schedule, on `device`: the eps-model of "mnist-ddpm",
    the velocity model (`objectives.VelocityModel`) of "mnist-flow", the average
    velocity (`flow_map.AverageVelocityNet`) of the "mnist-meanflow" ones.

    Checksum-verified, in eval mode.
    """
    trained = load_trained(pretrained_path(name), device=device)
    return Pretrained(
        model=trained.model,
        schedule=trained.schedule,
        info=trained.info,
        conditional=current_name(name).endswith("-cond"),
    )


def loss_history(name: str = "mnist-flow") -> torch.Tensor:
    """L_simple at every training step of the shipped model, (steps,) float32."""
    tensors, _ = load_checkpoint(pretrained_path(name))
    return tensors["history.loss"]
