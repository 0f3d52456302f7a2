"""The shipped MNIST diffusion models, loaded in one call: `load_pretrained("mnist")`.

One class-conditional U-Net, trained with label dropout, serves both names:
- "mnist": the unconditional model, eps_theta(x_t, t), i.e. the network given the
  "no label" token;
- "mnist-cond": eps_theta(x_t, t, y), for classifier-free guidance.
The weights (EMA, float32) and a JSON sidecar (the command, steps, images seen, wall
time, hardware, torch version, the loss curve and the measured sample quality) are in
`weights/`; the SHA-256 recorded in the sidecar is checked on every load. MNIST lives in
[-1, 1], so sample these models with clip_denoised=True, as the command line and the
chapters do.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch

from .checkpoint import load_checkpoint
from .schedules import NoiseSchedule
from .trained import load_trained
from .unet import UNet

WEIGHTS = Path(__file__).with_name("weights")
PRETRAINED = {
    "mnist": "mnist_ddpm",
    "mnist-cond": "mnist_ddpm",
}  # name -> file stem in weights/


class Pretrained(NamedTuple):
    # in eval mode; model(x_t, t) is the unconditional eps_theta, model(x_t, t, y) the
    # conditional one
    model: UNet
    schedule: NoiseSchedule  # float32, on the model's device
    info: dict[str, Any]  # the sidecar: provenance, training curve, measured quality
    conditional: (
        bool  # True for "mnist-cond": pass labels (or use classifier_free_guidance)
    )


def pretrained_path(name: str) -> Path:
    if name not in PRETRAINED:
        raise ValueError(f"name must be one of {tuple(PRETRAINED)}, got {name!r}")
    return WEIGHTS / PRETRAINED[name]


def load_pretrained(
    name: str = "mnist", device: str | torch.device = "cpu"
) -> Pretrained:
    """A shipped model with its schedule, on `device`.

    Checksum-verified, in eval mode.
    """
    trained = load_trained(pretrained_path(name), device=device)
    return Pretrained(
        model=trained.model,
        schedule=trained.schedule,
        info=trained.info,
        conditional=name == "mnist-cond",
    )


def loss_history(name: str = "mnist") -> torch.Tensor:
    """L_simple at every training step of the shipped model, (steps,) float32."""
    tensors, _ = load_checkpoint(pretrained_path(name))
    return tensors["history.loss"]
