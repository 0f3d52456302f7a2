"""A trained U-Net from a training checkpoint, with the schedule it was trained on.

Loading imports no training code: the checkpoint's sidecar holds the U-Net's config and
the schedule's name and T, and its weights are the EMA's ("ema.") or the raw model's
("model.").
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import torch

from .checkpoint import load_module
from .schedules import NoiseSchedule, make_betas
from .unet import UNet, UNetConfig


class TrainedModel(NamedTuple):
    model: UNet  # eval mode
    schedule: (
        NoiseSchedule  # the one it was trained with, float32, on the model's device
    )
    info: dict  # the sidecar


def load_trained(
    path_stem: str | Path, use_ema: bool = True, device: str | torch.device = "cpu"
) -> TrainedModel:
    """A U-Net from a training checkpoint (EMA weights by default), with its schedule.

    The weights are checksum verified.
    """
    prefix = "ema." if use_ema else "model."
    model, info = load_module(
        path_stem, UNet, UNetConfig, "unet_config", device, prefix
    )
    recipe = info["train_config"]
    schedule = NoiseSchedule(make_betas(recipe["schedule"], recipe["T"]))
    return TrainedModel(model, schedule.to(device, torch.float32), info)


def load_model(
    path_stem: str | Path, use_ema: bool = True, device: str | torch.device = "cpu"
) -> UNet:
    """A U-Net in eval mode from a checkpoint (EMA weights by default).

    The weights are checksum verified.
    """
    return load_trained(path_stem, use_ema, device).model
