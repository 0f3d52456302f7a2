"""A trained U-Net from a training checkpoint, with the schedule it was trained on.

Loading imports no training code: the checkpoint's sidecar holds the U-Net's config,
the schedule's name and T and the objective, and its weights are the EMA's ("ema.") or
the raw model's ("model."). The model comes as the samplers use it: an eps-model (for
"x0" and "v" networks through the conversions of `objectives`), or for "flow" a
velocity model.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from . import _validate as v
from .checkpoint import load_module
from .objectives import OBJECTIVES, prediction_model
from .schedules import NoiseSchedule, make_betas
from .unet import UNet, UNetConfig


class TrainedModel(NamedTuple):
    # eval mode: the U-Net for "eps", EpsFromPrediction or VelocityModel around it
    model: torch.nn.Module
    schedule: (
        NoiseSchedule  # the one it was trained with, float32, on the model's device
    )
    info: dict  # the sidecar


def load_trained(
    path_stem: str | Path, use_ema: bool = True, device: str | torch.device = "cpu"
) -> TrainedModel:
    """A U-Net from a training checkpoint (EMA weights by default), with its schedule,
    as an eps-model (objectives "eps", "x0", "v") or a velocity model ("flow").

    The weights are checksum verified.
    """
    prefix = "ema." if use_ema else "model."
    model, info = load_module(
        path_stem, UNet, UNetConfig, "unet_config", device, prefix
    )
    recipe = info["train_config"]
    schedule = NoiseSchedule(make_betas(recipe["schedule"], recipe["T"]))
    schedule = schedule.to(device, torch.float32)
    model = prediction_model(model, objective_of(info), schedule).eval()
    return TrainedModel(model, schedule, info)


def objective_of(info: dict) -> str:
    """The objective a checkpoint's sidecar records; "eps" where it records none (the
    checkpoints written before objectives existed)."""
    objective = info["train_config"].get("objective", "eps")
    return v.choice("the checkpoint's train_config.objective", objective, OBJECTIVES)


def load_model(
    path_stem: str | Path, use_ema: bool = True, device: str | torch.device = "cpu"
) -> torch.nn.Module:
    """A trained model in eval mode from a checkpoint (EMA weights by default), as the
    samplers use it (see load_trained).

    The weights are checksum verified.
    """
    return load_trained(path_stem, use_ema, device).model
