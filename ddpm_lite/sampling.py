"""Reverse samplers. Each is a step function plus one generator that yields every state.

A sampler takes `eps_model(xt, t) -> eps_theta`, a schedule and a torch.Generator; it
builds neither the model nor the schedule. Randomness enters only through `generator`.
"""
from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Sequence

import torch
from torch import Tensor

from . import _validate as v
from .diffusion import VARIANCES, p_log_variance, p_mean_from_eps, predict_x0_from_eps
from .schedules import NoiseSchedule, gather

EpsModel = Callable[[Tensor, Tensor], Tensor]


class StepOutput(NamedTuple):
    x_prev: Tensor
    x0_pred: Tensor


class SamplerState(NamedTuple):
    """A state of the reverse chain: `t` is the code index of `xt` (T-1 for the initial noise x_T, -1 for the sample x0)."""

    t: int
    xt: Tensor
    x0_pred: Tensor | None


def ddpm_step(
    schedule: NoiseSchedule, xt: Tensor, t: int | Tensor, eps: Tensor, noise: Tensor, variance: str = "beta_tilde"
) -> StepOutput:
    """Ancestral step (Ho et al. 2020, Algorithm 2): x_{t-1} = mu_theta(x_t, t) + sigma_t * z.

    sigma_t^2 is beta_tilde_t or beta_t; no noise is added at t = 0, where the sample is the mean.
    Book: eq. ancestral-step
    """
    v.check_tensor("xt", xt)
    v.check_like("eps", eps, "xt", xt)
    v.check_like("noise", noise, "xt", xt)
    v.choice("variance", variance, VARIANCES)
    t = v.timesteps(t, schedule.T, xt)
    mean = p_mean_from_eps(schedule, xt, t, eps)
    sigma = torch.exp(0.5 * p_log_variance(schedule, t, xt, variance))
    nonzero = (t > 0).to(xt.dtype).reshape(-1, *([1] * (xt.ndim - 1)))
    return StepOutput(mean + nonzero * sigma * noise, predict_x0_from_eps(schedule, xt, t, eps))


def ddim_step(
    schedule: NoiseSchedule,
    xt: Tensor,
    t: int | Tensor,
    t_prev: int | Tensor,
    eps: Tensor,
    eta: float = 0.0,
    noise: Tensor | None = None,
) -> StepOutput:
    """DDIM step (Song et al. 2021, eq. 12) from code index t to t_prev < t; t_prev = -1 means alpha_bar = 1.

    x0_pred = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t)
    sigma   = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
    x_prev  = sqrt(alpha_bar_prev) * x0_pred + sqrt(1 - alpha_bar_prev - sigma^2) * eps + sigma * noise
    eta = 0 is deterministic; eta = 1 with consecutive steps is the ancestral step with sigma^2 = beta_tilde.
    Book: eq. ddim-step
    """
    v.check_tensor("xt", xt)
    v.check_like("eps", eps, "xt", xt)
    if not 0.0 <= eta:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if eta > 0:
        if noise is None:
            raise ValueError("noise is required when eta > 0")
        v.check_like("noise", noise, "xt", xt)
    t = v.timesteps(t, schedule.T, xt)
    t_prev = v.timesteps(t_prev, schedule.T, xt, low=-1, name="t_prev")
    if not bool((t_prev < t).all()):
        raise ValueError("t_prev must be smaller than t")
    alpha_bar = gather(schedule.alpha_bars, t, xt)
    # Index -1 picks the appended 1: the "previous" state of t = 0 is the data itself.
    alpha_bars_ext = torch.cat([schedule.alpha_bars, torch.ones(1, dtype=schedule.alpha_bars.dtype, device=schedule.device)])
    alpha_bar_prev = gather(alpha_bars_ext, torch.where(t_prev < 0, schedule.T, t_prev), xt)
    x0_pred = (xt - torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(alpha_bar)
    sigma = eta * torch.sqrt((1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev))
    x_prev = torch.sqrt(alpha_bar_prev) * x0_pred + torch.sqrt((1 - alpha_bar_prev - sigma**2).clamp(min=0)) * eps
    if eta > 0:
        x_prev = x_prev + sigma * noise
    return StepOutput(x_prev, x0_pred)


def _initial_noise(shape: Sequence[int], generator: torch.Generator, device, dtype) -> Tensor:
    if len(shape) < 1 or any(int(n) < 1 for n in shape):
        raise ValueError(f"shape must be a non-empty sequence of positive ints (B, ...), got {tuple(shape)}")
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def ddpm_trajectory(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: torch.Generator,
    variance: str = "beta_tilde",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[SamplerState]:
    """Yield x_T ~ N(0, I), then every x_{t-1} of the ancestral sampler down to the sample (t = -1).

    Book: eq. ancestral-step
    """
    v.choice("variance", variance, VARIANCES)
    yield from ddpm_trajectory_from(eps_model, schedule, _initial_noise(shape, generator, device, dtype),
                                    schedule.T - 1, generator, variance)


def ddpm_trajectory_from(
    eps_model: EpsModel, schedule: NoiseSchedule, xt: Tensor, t_start: int, generator: torch.Generator,
    variance: str = "beta_tilde",
) -> Iterator[SamplerState]:
    """Yield xt (at code index t_start), then every state of the ancestral sampler down to the sample.

    Starting below T - 1 denoises a partly noised input, e.g. q_sample(x0, t_start) for interpolation.
    """
    v.check_tensor("xt", xt)
    v.choice("variance", variance, VARIANCES)
    if isinstance(t_start, bool) or not isinstance(t_start, int) or not 0 <= t_start < schedule.T:
        raise ValueError(f"t_start must be an int in [0, {schedule.T - 1}] (T={schedule.T}), got {t_start!r}")
    yield SamplerState(t_start, xt, None)
    for t in reversed(range(t_start + 1)):
        t_batch = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
        noise = torch.randn(xt.shape, generator=generator, device=xt.device, dtype=xt.dtype)
        xt, x0_pred = ddpm_step(schedule, xt, t_batch, eps_model(xt, t_batch), noise, variance)
        yield SamplerState(t - 1, xt, x0_pred)


def ddim_timesteps(T: int, num_steps: int) -> list[int]:
    """num_steps evenly spaced code indices from T-1 down to 0 (the "trailing" spacing)."""
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in [1, {T}] (T={T}), got {num_steps}")
    return sorted({round(T - 1 - i * T / num_steps) for i in range(num_steps)}, reverse=True)


def ddim_trajectory(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: torch.Generator,
    num_steps: int = 50,
    eta: float = 0.0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> Iterator[SamplerState]:
    """Yield x_T ~ N(0, I), then the DDIM state after each of num_steps steps, the last at t = -1.

    Book: eq. ddim-step
    """
    steps = ddim_timesteps(schedule.T, num_steps)
    xt = _initial_noise(shape, generator, device, dtype)
    yield SamplerState(steps[0], xt, None)
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        t_batch = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
        noise = torch.randn(xt.shape, generator=generator, device=xt.device, dtype=xt.dtype) if eta > 0 else None
        xt, x0_pred = ddim_step(schedule, xt, t_batch, t_prev, eps_model(xt, t_batch), eta, noise)
        yield SamplerState(t_prev, xt, x0_pred)


def final_sample(trajectory: Iterator[SamplerState]) -> Tensor:
    """Drain a trajectory and return its last state, the sample."""
    state = None
    for state in trajectory:
        pass
    if state is None:
        raise ValueError("trajectory yielded no state")
    return state.xt
