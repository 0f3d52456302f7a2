"""The score view of diffusion: scores, Langevin dynamics, denoising score matching, and
the probability-flow ODE whose Euler steps are DDIM.

The score of a density is grad_x log p(x). For the DDPM forward process the optimal
noise predictor is a scaled score,
eps*(x_t, t) = -sqrt(1 - alpha_bar_t) grad log q(x_t), so every eps_theta is also a
score model, and score-based samplers run on it unchanged.
"""

from __future__ import annotations

import math
from typing import Callable, Sequence

import torch
from torch import Tensor

from . import _validate as v
from .schedules import NoiseSchedule, gather

ScoreFn = Callable[[Tensor], Tensor]


def score_from_eps(
    schedule: NoiseSchedule, t: int | Tensor, eps_theta: Tensor
) -> Tensor:
    """grad log q(x_t) = -eps_theta / sqrt(1 - alpha_bar_t).  t: (B,) long or an int,
    eps_theta: (B, ...).

    Book: eq. eps-is-score
    """
    v.check_tensor("eps_theta", eps_theta)
    t = v.timesteps(t, schedule.T, eps_theta)
    return -eps_theta / torch.sqrt(1 - gather(schedule.alpha_bars, t, eps_theta))


def langevin_step(
    x: Tensor, score: Tensor, step_size: float, generator: torch.Generator
) -> Tensor:
    """x + (step_size / 2) grad log p(x) + sqrt(step_size) z, z ~ N(0, I).

    Book: eq. langevin-step
    """
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    return x + 0.5 * step_size * score + math.sqrt(step_size) * z


def _check_positive(name: str, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{name} must be > 0, got {value}")


def langevin(
    score_fn: ScoreFn,
    x: Tensor,
    step_size: float,
    n_steps: int,
    generator: torch.Generator,
) -> Tensor:
    """n_steps of unadjusted Langevin dynamics from x: (n, ...).

    One fixed step size throughout.
    """
    v.check_tensor("x", x)
    _check_positive("step_size", step_size)
    if n_steps < 1:
        raise ValueError(f"n_steps must be >= 1, got {n_steps}")
    for _ in range(n_steps):
        x = langevin_step(x, score_fn(x), step_size, generator)
    return x


def annealed_langevin(
    score_fn: Callable[[Tensor, float], Tensor],
    sigmas: Sequence[float],
    x: Tensor,
    step_size: float,
    n_steps_per_level: int,
    generator: torch.Generator,
) -> Tensor:
    """Annealed Langevin (Song & Ermon): each level sigma_1 > ... > sigma_L in turn.

    score_fn(x, sigma) is the score of the data smoothed by N(0, sigma^2 I). Level i
    takes step size step_size * sigma_i^2 / sigma_L^2: steps shrink with the noise so
    that the signal-to-noise ratio of a step stays the same at every level.
    Book: eq. annealed-step
    """
    sigmas = [float(s) for s in sigmas]
    if (
        not sigmas
        or min(sigmas) <= 0
        or any(a <= b for a, b in zip(sigmas, sigmas[1:]))
    ):
        raise ValueError(
            f"sigmas must be positive and strictly decreasing, got {sigmas}"
        )
    _check_positive("step_size", step_size)
    if n_steps_per_level < 1:
        raise ValueError(f"n_steps_per_level must be >= 1, got {n_steps_per_level}")
    v.check_tensor("x", x)
    for sigma in sigmas:
        alpha = step_size * sigma**2 / sigmas[-1] ** 2
        for _ in range(n_steps_per_level):
            x = langevin_step(x, score_fn(x, sigma), alpha, generator)
    return x


def dsm_loss(
    score_fn: ScoreFn, x: Tensor, sigma: float, generator: torch.Generator
) -> Tensor:
    """Denoising score matching at one noise level, per example: (n,).

    x~ = x + sigma z; the target grad log q(x~ | x) = -(x~ - x) / sigma^2 = -z / sigma;
    loss = |score_fn(x~) - target|^2 summed over the non-batch dimensions.
    Book: eq. dsm
    """
    v.check_tensor("x", x)
    _check_positive("sigma", sigma)
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    residual = score_fn(x + sigma * z) + z / sigma
    return residual.square().flatten(1).sum(1)


def sigma_of_alpha_bar(alpha_bar: Tensor) -> Tensor:
    """sigma = sqrt((1 - alpha_bar) / alpha_bar): the noise-to-signal ratio of x_t.

    It is the ODE's clock.
    Book: eq. pf-ode-sigma
    """
    return ((1 - alpha_bar) / alpha_bar).sqrt()


def pf_ode_velocity(
    eps_fn: Callable[[Tensor, float], Tensor], sigma: float, x_bar: Tensor
) -> Tensor:
    """d x_bar / d sigma = eps*(x_t, sigma), with x_bar = x_t / sqrt(alpha_bar).

    x_bar = x_t sqrt(1 + sigma^2); eps_fn(x_t, sigma) is the noise predictor at the
    noise level sigma.
    Book: eq. pf-ode-sigma
    """
    return eps_fn(x_bar / math.sqrt(1 + sigma**2), sigma)
