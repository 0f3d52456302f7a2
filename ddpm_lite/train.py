"""Training objective: L_simple on a batch, with t and eps drawn from a generator."""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .diffusion import loss_simple, q_sample
from .schedules import NoiseSchedule

EpsModel = Callable[[Tensor, Tensor], Tensor]


def training_loss(eps_model: EpsModel, schedule: NoiseSchedule, x0: Tensor, generator: torch.Generator) -> Tensor:
    """L_simple averaged over a batch, a scalar.

    t ~ Uniform{0, ..., T-1} independently per example, eps ~ N(0, I),
    x_t = sqrt(alpha_bar_t) x0 + sqrt(1 - alpha_bar_t) eps, loss = mean (eps - eps_theta(x_t, t))^2.
    Book: eq. loss-simple
    """
    t = torch.randint(0, schedule.T, (x0.shape[0],), generator=generator, device=x0.device)
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    xt = q_sample(schedule, x0, t, eps)
    return loss_simple(eps, eps_model(xt, t)).mean()
