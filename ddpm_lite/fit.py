"""The convention every training loop in ddpm_lite follows, and the loop itself for the simple ones.

- The whole dataset lives on the device; batches, time steps and noise come from one seeded
  torch.Generator, so a seed fixes the run.
- Models are called (x_t, t) or (x_t, t, y); data is (N, 1, 28, 28) in [-1, 1] with labels (N,).
- Losses stay on the device until the loop ends: no host sync per step (a GPU runs ahead).
- Progress goes through tqdm (`progress=False` turns it off); nothing is printed.
- The result is a NamedTuple (model, losses, seconds, ...).

`fit` is that loop for the two classifiers. `train.train` (the U-Net, with EMA, checkpoints and
exact resume) follows the same convention with its own loop around `train.train_step`.
"""

from __future__ import annotations

import time
from typing import Callable

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    lr_schedule: torch.optim.lr_scheduler.LRScheduler,
    batch_loss: Callable[[int], Tensor],
    steps: int,
    progress: bool = False,
) -> tuple[list[float], float]:
    """Run `steps` optimizer steps on batch_loss(step), a scalar; return (loss per step, seconds)."""
    pending, began = [], time.perf_counter()
    model.train()
    for step in tqdm(range(steps), disable=not progress, unit="step"):
        loss = batch_loss(step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        lr_schedule.step()
        # clone: keeping the detached loss itself kept CPU memory rising in a 480-step test; a clone did not
        pending.append(loss.detach().clone())
    losses = torch.stack(pending).float().cpu().tolist()
    model.eval()
    return losses, time.perf_counter() - began
