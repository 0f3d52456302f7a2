"""The convention every training loop in ddpm_lite follows, and the loop itself for the
two classifiers.

- The whole dataset lives on the device; batches, time steps and noise come from one
  seeded torch.Generator, so a seed fixes the run.
- Models are called (x_t, t) or (x_t, t, y); data is (N, 1, 28, 28) in [-1, 1] with
  labels (N,).
- Losses stay on the device until the loop ends: no host sync per step (a GPU runs
  ahead).
- Progress goes through tqdm (`progress=False` turns it off); nothing is printed.
- The result is a `FitResult` (model, losses, seconds).

`fit` is that loop for the two classifiers (`classifier`, `noisy_classifier`), which
also share the input check, the save/load pair and the sidecar here. `train.train` (the
U-Net, with EMA, checkpoints and exact resume) follows the same convention with its own
loop around `train.train_step`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable, NamedTuple

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .checkpoint import load_module, save_module
from .devices import describe_device


class FitResult(NamedTuple):
    model: nn.Module  # in eval mode
    losses: list[float]  # one per step
    seconds: float  # wall time of the loop


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_schedule: torch.optim.lr_scheduler.LRScheduler,
    batch_loss: Callable[[int], Tensor],
    steps: int,
    progress: bool = False,
) -> FitResult:
    """Run `steps` optimizer steps on batch_loss(step), a scalar."""
    pending, began = [], time.perf_counter()
    model.train()
    for step in tqdm(range(steps), disable=not progress, unit="step"):
        loss = batch_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr_schedule.step()
        # clone: keeping the detached loss itself kept CPU memory rising in a 480-step
        # test; a clone did not
        pending.append(loss.detach().clone())
    losses = torch.stack(pending).float().cpu().tolist()
    return FitResult(model.eval(), losses, time.perf_counter() - began)


def check_labelled_images(images: Tensor, labels: Tensor) -> None:
    """images (N, 1, 28, 28) and labels (N,), as both classifiers train on."""
    if images.ndim != 4 or images.shape[1:] != (1, 28, 28):
        raise ValueError(
            f"images must have shape (N, 1, 28, 28), got {tuple(images.shape)}"
        )
    if labels.shape != images.shape[:1]:
        raise ValueError(
            f"labels must have shape ({images.shape[0]},), got {tuple(labels.shape)}"
        )


def fit_record(
    result: FitResult, device: torch.device, data: dict, metrics: dict, command: str
) -> dict:
    """The sidecar of a fitted classifier: the data, metrics (with the mean of the last
    100 losses, or of all when there are fewer), wall time, hardware and command."""
    recent = result.losses[-100:]
    return {
        "data": data,
        "metrics": {**metrics, "final_loss_mean_last_100": sum(recent) / len(recent)},
        "wall_seconds": round(result.seconds, 1),
        "device": describe_device(device),
        "command": command,
        "torch": torch.__version__,
    }


def save_fitted(path_stem: str | Path, model: nn.Module, info: dict) -> Path:
    """A classifier's weights and its config, under its class's `config_key`."""
    return save_module(path_stem, model, type(model).config_key, info)


def load_fitted(
    model_cls: type, config_cls: type, path_stem: str | Path, device="cpu"
) -> nn.Module:
    """A classifier saved by save_fitted, SHA-256 checked, in eval mode."""
    return load_module(path_stem, model_cls, config_cls, model_cls.config_key, device)[
        0
    ]
