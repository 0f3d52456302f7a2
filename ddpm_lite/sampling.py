"""Reverse samplers. Each is a step function plus one generator that yields every state.

A sampler takes `eps_model(xt, t) -> eps_theta`, a schedule and a torch.Generator; it
builds neither the model nor the schedule. Randomness enters only through `generator`.
"""

from __future__ import annotations

from typing import Callable, Iterator, NamedTuple, Sequence

import torch
from torch import Tensor

from . import _validate as v
from .diffusion import VARIANCES, p_log_variance
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


def ddpm_update(
    schedule: NoiseSchedule,
    xt: Tensor,
    t: Tensor,
    eps: Tensor,
    noise: Tensor,
    variance: str = "beta_tilde",
    clip_denoised: bool = False,
) -> StepOutput:
    """Ancestral step (Ho et al. 2020, Algorithm 2): x_{t-1} = mu_theta(x_t, t) + sigma_t * z.

    mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_theta) / sqrt(alpha_t); sigma_t^2 is beta_tilde_t
    or beta_t; no noise is added at t = 0, where the sample is the mean. With clip_denoised, x0_pred is
    clipped to [-1, 1] and mu_theta = mu_tilde(x_t, x0_pred) (eq. posterior-mean), which is the same
    mean whenever x0_pred lies in [-1, 1] already.
    Trusts its inputs (t a valid (B,) long tensor): no checks, so no host-device synchronisation.
    Book: eq. ancestral-step
    """
    alpha_bar = gather(schedule.alpha_bars, t, xt)
    x0_pred = (xt - torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(alpha_bar)
    if clip_denoised:
        x0_pred = x0_pred.clamp(-1, 1)
        mean = (
            gather(schedule.posterior_mean_coef1, t, xt) * x0_pred
            + gather(schedule.posterior_mean_coef2, t, xt) * xt
        )
    else:
        beta = gather(schedule.betas, t, xt)
        mean = (xt - beta / torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(1 - beta)
    sigma = torch.exp(0.5 * p_log_variance(schedule, xt, t, variance))
    nonzero = (t > 0).to(xt.dtype).reshape(-1, *([1] * (xt.ndim - 1)))
    return StepOutput(mean + nonzero * sigma * noise, x0_pred)


def ddpm_step(
    schedule: NoiseSchedule,
    xt: Tensor,
    t: int | Tensor,
    eps: Tensor,
    noise: Tensor,
    variance: str = "beta_tilde",
    clip_denoised: bool = False,
) -> StepOutput:
    """`ddpm_update` with its arguments checked: t may be an int or a (B,) tensor in {0, ..., T-1}."""
    v.check_tensor("xt", xt)
    v.check_like("eps", eps, "xt", xt)
    v.check_like("noise", noise, "xt", xt)
    v.choice("variance", variance, VARIANCES)
    return ddpm_update(
        schedule,
        xt,
        v.timesteps(t, schedule.T, xt),
        eps,
        noise,
        variance,
        clip_denoised,
    )


def ddim_update(
    schedule: NoiseSchedule,
    xt: Tensor,
    t: Tensor,
    alpha_bar_prev: Tensor,
    eps: Tensor,
    eta: float = 0.0,
    noise: Tensor | None = None,
    clip_denoised: bool = False,
) -> StepOutput:
    """DDIM step (Song et al. 2021, eq. 12) from code index t to a step whose alpha_bar is alpha_bar_prev.

    x0_pred = (x_t - sqrt(1 - alpha_bar_t) * eps) / sqrt(alpha_bar_t)
    sigma_ts = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t)) * sqrt(1 - alpha_bar_t / alpha_bar_prev)
    x_prev   = sqrt(alpha_bar_prev) * x0_pred + sqrt(1 - alpha_bar_prev - sigma_ts^2) * eps + sigma_ts * noise
    (sigma_ts is the book's sigma_{t->s}, the step's own noise: not sigma_t of the ancestral step.)
    With clip_denoised, x0_pred is clipped to [-1, 1] and eps is recomputed from it, so that x_t, x0_pred
    and eps stay on one line (eq. fwd-marginal). alpha_bar_prev: a scalar tensor, or (B, 1, ..., 1).
    Trusts its inputs: no checks, so no host-device synchronisation.
    Book: eq. ddim-step
    """
    alpha_bar = gather(schedule.alpha_bars, t, xt)
    alpha_bar_prev = alpha_bar_prev.to(xt.dtype)
    x0_pred = (xt - torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(alpha_bar)
    if clip_denoised:
        x0_pred = x0_pred.clamp(-1, 1)
        eps = (xt - torch.sqrt(alpha_bar) * x0_pred) / torch.sqrt(1 - alpha_bar)
    sigma_ts = eta * torch.sqrt(
        (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
    )
    x_prev = (
        torch.sqrt(alpha_bar_prev) * x0_pred
        + torch.sqrt((1 - alpha_bar_prev - sigma_ts**2).clamp(min=0)) * eps
    )
    if eta > 0:
        x_prev = x_prev + sigma_ts * noise
    return StepOutput(x_prev, x0_pred)


def alpha_bar_at(schedule: NoiseSchedule, t_prev: int) -> Tensor:
    """alpha_bar at code index t_prev as a scalar tensor, with alpha_bar = 1 at t_prev = -1 (the data)."""
    return (
        schedule.alpha_bars[t_prev]
        if t_prev >= 0
        else torch.ones((), dtype=schedule.alpha_bars.dtype, device=schedule.device)
    )


def ddim_step(
    schedule: NoiseSchedule,
    xt: Tensor,
    t: int | Tensor,
    t_prev: int | Tensor,
    eps: Tensor,
    eta: float = 0.0,
    noise: Tensor | None = None,
    clip_denoised: bool = False,
) -> StepOutput:
    """`ddim_update` from code index t to t_prev < t, arguments checked; t_prev = -1 means alpha_bar = 1."""
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
    # Index T picks the appended 1: the "previous" state of t = 0 is the data itself.
    alpha_bars_ext = torch.cat(
        [
            schedule.alpha_bars,
            torch.ones(1, dtype=schedule.alpha_bars.dtype, device=schedule.device),
        ]
    )
    alpha_bar_prev = gather(
        alpha_bars_ext, torch.where(t_prev < 0, schedule.T, t_prev), xt
    )
    return ddim_update(schedule, xt, t, alpha_bar_prev, eps, eta, noise, clip_denoised)


def _initial_noise(
    shape: Sequence[int], generator: torch.Generator, device, dtype
) -> Tensor:
    if len(shape) < 1 or any(int(n) < 1 for n in shape):
        raise ValueError(
            f"shape must be a non-empty sequence of positive ints (B, ...), got {tuple(shape)}"
        )
    return torch.randn(tuple(shape), generator=generator, device=device, dtype=dtype)


def ddpm_trajectory(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: torch.Generator,
    variance: str = "beta_tilde",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield x_T ~ N(0, I), then every x_{t-1} of the ancestral sampler down to the sample (t = -1).

    device None means the schedule's. clip_denoised clips x0_pred to [-1, 1] at every step, as Ho et al.'s
    sampler and diffusers' (clip_sample=True) do for images; it is off here because not all data live in
    [-1, 1] (the book's 2-D examples do not). The command line and the MNIST chapters turn it on.
    Book: eq. ancestral-step
    """
    v.choice("variance", variance, VARIANCES)
    xT = _initial_noise(
        shape, generator, schedule.device if device is None else device, dtype
    )
    yield from ddpm_trajectory_from(
        eps_model, schedule, xT, schedule.T - 1, generator, variance, clip_denoised
    )


def ddpm_trajectory_from(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    xt: Tensor,
    t_start: int,
    generator: torch.Generator,
    variance: str = "beta_tilde",
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield xt (at code index t_start), then every state of the ancestral sampler down to the sample.

    Starting below T - 1 denoises a partly noised input, e.g. q_sample(x0, t_start) for interpolation.
    """
    v.check_tensor("xt", xt)
    v.choice("variance", variance, VARIANCES)
    if (
        isinstance(t_start, bool)
        or not isinstance(t_start, int)
        or not 0 <= t_start < schedule.T
    ):
        raise ValueError(
            f"t_start must be an int in [0, {schedule.T - 1}] (T={schedule.T}), got {t_start!r}"
        )
    yield SamplerState(t_start, xt, None)
    for t in reversed(range(t_start + 1)):
        t_batch = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
        noise = torch.randn(
            xt.shape, generator=generator, device=xt.device, dtype=xt.dtype
        )
        xt, x0_pred = ddpm_update(
            schedule,
            xt,
            t_batch,
            eps_model(xt, t_batch),
            noise,
            variance,
            clip_denoised,
        )
        yield SamplerState(t - 1, xt, x0_pred)


def ddim_timesteps(T: int, num_steps: int) -> list[int]:
    """num_steps evenly spaced code indices from T-1 down to 0 (the "trailing" spacing)."""
    if not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be in [1, {T}] (T={T}), got {num_steps}")
    return sorted(
        {round(T - 1 - i * T / num_steps) for i in range(num_steps)}, reverse=True
    )


def ddim_trajectory(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: torch.Generator,
    num_steps: int = 50,
    eta: float = 0.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield x_T ~ N(0, I), then the DDIM state after each of num_steps steps, the last at t = -1.

    device None means the schedule's; clip_denoised as in ddpm_trajectory.
    Book: eq. ddim-step
    """
    if not 0.0 <= eta:
        raise ValueError(f"eta must be >= 0, got {eta}")
    ddim_timesteps(schedule.T, num_steps)  # checks num_steps before the noise is drawn
    xT = _initial_noise(
        shape, generator, schedule.device if device is None else device, dtype
    )
    yield from ddim_trajectory_from(
        eps_model,
        schedule,
        xT,
        schedule.T - 1,
        generator,
        num_steps,
        eta,
        clip_denoised,
    )


def ddim_trajectory_from(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    xt: Tensor,
    t_start: int,
    generator: torch.Generator,
    num_steps: int = 50,
    eta: float = 0.0,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield xt (at code index t_start), then the DDIM state after each of num_steps steps down to the sample.

    The steps are spaced evenly over t_start, ..., 0 (ddim_timesteps(t_start + 1, num_steps)), so
    t_start = T - 1 is ddim_trajectory's run; a lower t_start denoises a partly noised input.
    """
    v.check_tensor("xt", xt)
    if (
        isinstance(t_start, bool)
        or not isinstance(t_start, int)
        or not 0 <= t_start < schedule.T
    ):
        raise ValueError(
            f"t_start must be an int in [0, {schedule.T - 1}] (T={schedule.T}), got {t_start!r}"
        )
    if not 0.0 <= eta:
        raise ValueError(f"eta must be >= 0, got {eta}")
    if not 1 <= num_steps <= t_start + 1:
        raise ValueError(
            f"num_steps must be in [1, {t_start + 1}] for t_start={t_start}, got {num_steps}"
        )
    steps = ddim_timesteps(t_start + 1, num_steps)
    yield SamplerState(steps[0], xt, None)
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        t_batch = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
        noise = (
            torch.randn(xt.shape, generator=generator, device=xt.device, dtype=xt.dtype)
            if eta > 0
            else None
        )
        xt, x0_pred = ddim_update(
            schedule,
            xt,
            t_batch,
            alpha_bar_at(schedule, t_prev),
            eps_model(xt, t_batch),
            eta,
            noise,
            clip_denoised,
        )
        yield SamplerState(t_prev, xt, x0_pred)


def final_sample(trajectory: Iterator[SamplerState]) -> Tensor:
    """Drain a trajectory and return its last state, the sample."""
    state = None
    for state in trajectory:
        pass
    if state is None:
        raise ValueError("trajectory yielded no state")
    return state.xt
