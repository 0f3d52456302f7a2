"""Reverse samplers. Each is a step function plus one generator that yields every state.

A sampler takes `eps_model(xt, t) -> eps_theta`, a schedule and a source of noise (a
torch.Generator, or any `ddpm_lite.noise` source); it builds neither the model nor the
schedule. Randomness enters only through that source: x_T first, then each step's z.
The step functions call the kernels of `diffusion`, the formulas the chapters show.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple, Sequence

import torch
from torch import Tensor

from . import _validate as v
from .diffusion import (
    VARIANCES,
    EpsModel,
    eps_from_x0,
    model_mean,
    p_log_variance,
    posterior_mean,
    x0_from_eps,
)
from .noise import NoiseSource, noise_source
from .schedules import NoiseSchedule, gather

Noise = torch.Generator | NoiseSource


class StepOutput(NamedTuple):
    x_prev: Tensor
    x0_pred: Tensor


class SamplerState(NamedTuple):
    """A state of the reverse chain: `t` is the code index of `xt`.

    T-1 for the initial noise x_T, -1 for the sample x0.
    """

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
    """Ancestral step (Ho et al. 2020, Alg. 2): x_{t-1} = mu_theta(x_t, t) + sigma_t z.

    mu_theta is model_mean; sigma_t^2 is beta_tilde_t or beta_t; no noise is added at
    t = 0, where the sample is the mean. With clip_denoised, x0_pred is clipped to
    [-1, 1] and mu_theta = mu_tilde(x_t, x0_pred) (eq. posterior-mean), the same mean
    whenever x0_pred lies in [-1, 1] already.
    Trusts its inputs (t a valid (B,) long tensor): no checks, no host-device sync.
    Book: eq. ancestral-step
    """
    x0_pred = x0_from_eps(xt, eps, gather(schedule.alpha_bars, t, xt))
    if clip_denoised:
        x0_pred = x0_pred.clamp(-1, 1)
        mean = posterior_mean(schedule, x0_pred, xt, t)
    else:
        mean = model_mean(schedule, xt, t, eps)
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
    """`ddpm_update`, checked: t an int or a (B,) tensor in [0, T-1]."""
    v.check_tensor("xt", xt)
    v.check_like("eps", eps, "xt", xt)
    v.check_like("noise", noise, "xt", xt)
    v.choice("variance", variance, VARIANCES)
    t = v.timesteps(t, schedule.T, xt)
    return ddpm_update(schedule, xt, t, eps, noise, variance, clip_denoised)


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
    """DDIM step (Song et al. 2021, eq. 12) from code index t to a step s whose
    alpha_bar is alpha_bar_prev.

    x0_pred  = x0_from_eps(x_t, eps, alpha_bar_t)
    sigma_ts = eta * sqrt((1 - alpha_bar_prev) / (1 - alpha_bar_t))
                   * sqrt(1 - alpha_bar_t / alpha_bar_prev)
    x_prev   = sqrt(alpha_bar_prev) * x0_pred
               + sqrt(1 - alpha_bar_prev - sigma_ts^2) * eps + sigma_ts * noise
    (sigma_ts is the book's sigma_{t->s}, the step's own noise, not the ancestral
    sigma_t.)
    With clip_denoised, x0_pred is clipped to [-1, 1] and eps is recomputed from it, so
    x_t, x0_pred and eps stay on one line (eq. fwd-marginal). alpha_bar_prev: a scalar
    tensor, or (B, 1, ..., 1). Trusts its inputs: no checks, no host-device sync.
    eta must be in [0, 1] (the checked callers refuse more): above 1, sigma_ts^2 would
    exceed 1 - alpha_bar_prev and the clamp below, there only for round-off, would
    silently change the step into one outside DDIM's family.
    Book: eq. ddim-step
    """
    alpha_bar = gather(schedule.alpha_bars, t, xt)
    alpha_bar_prev = alpha_bar_prev.to(xt.dtype)
    x0_pred = x0_from_eps(xt, eps, alpha_bar)
    if clip_denoised:
        x0_pred = x0_pred.clamp(-1, 1)
        eps = eps_from_x0(xt, x0_pred, alpha_bar)
    sigma_ts = eta * torch.sqrt(
        (1 - alpha_bar_prev) / (1 - alpha_bar) * (1 - alpha_bar / alpha_bar_prev)
    )
    direction = torch.sqrt((1 - alpha_bar_prev - sigma_ts**2).clamp(min=0))
    x_prev = torch.sqrt(alpha_bar_prev) * x0_pred + direction * eps
    if eta > 0:
        x_prev = x_prev + sigma_ts * noise
    return StepOutput(x_prev, x0_pred)


def alpha_bar_at(schedule: NoiseSchedule, t_prev: int) -> Tensor:
    """alpha_bar at code index t_prev, a scalar tensor; 1 at t_prev = -1 (the data)."""
    if t_prev >= 0:
        return schedule.alpha_bars[t_prev]
    return torch.ones((), dtype=schedule.alpha_bars.dtype, device=schedule.device)


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
    """`ddim_update` from code index t to t_prev < t, checked.

    At t_prev = -1, alpha_bar = 1.
    """
    v.check_tensor("xt", xt)
    v.check_like("eps", eps, "xt", xt)
    v.in_unit_interval("eta", eta)  # eta > 1 would leave the family
    if eta > 0:
        if noise is None:
            raise ValueError("noise is required when eta > 0")
        v.check_like("noise", noise, "xt", xt)
    t = v.timesteps(t, schedule.T, xt)
    t_prev = v.timesteps(t_prev, schedule.T, xt, low=-1, name="t_prev")
    if not bool((t_prev < t).all()):
        raise ValueError("t_prev must be smaller than t")
    # Index T picks the appended 1: the "previous" state of t = 0 is the data itself.
    one = torch.ones(1, dtype=schedule.alpha_bars.dtype, device=schedule.device)
    alpha_bars_ext = torch.cat([schedule.alpha_bars, one])
    alpha_bar_prev = gather(
        alpha_bars_ext, torch.where(t_prev < 0, schedule.T, t_prev), xt
    )
    return ddim_update(schedule, xt, t, alpha_bar_prev, eps, eta, noise, clip_denoised)


def initial_noise(shape: Sequence[int], noise: NoiseSource) -> Tensor:
    """x_T ~ N(0, I) of `shape` (B, ...), the first draw of a run, checked."""
    if len(shape) < 1 or any(int(n) < 1 for n in shape):
        raise ValueError(
            "shape must be a non-empty sequence of positive ints (B, ...), "
            f"got {tuple(shape)}"
        )
    return noise.randn(tuple(shape))


def start_chain(
    schedule, shape, generator, device, dtype
) -> tuple[Tensor, NoiseSource]:
    """x_T and the run's noise source: generator-backed on device.

    device None means the schedule's.
    """
    device = schedule.device if device is None else device
    noise = noise_source(generator, device, dtype)
    return initial_noise(shape, noise), noise


def ddpm_trajectory(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: Noise,
    variance: str = "beta_tilde",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield x_T ~ N(0, I), then every x_{t-1} of the ancestral sampler to the sample.

    generator: a torch.Generator, or a noise source (`ddpm_lite.noise`). device None
    means the schedule's. clip_denoised clips x0_pred to [-1, 1] at every step, as Ho
    et al.'s sampler and diffusers' (clip_sample=True) do for images; it is off here
    because not all data live in [-1, 1] (the book's 2-D examples do not). The command
    line and the MNIST chapters turn it on.
    Book: eq. ancestral-step
    """
    v.choice("variance", variance, VARIANCES)
    xT, noise = start_chain(schedule, shape, generator, device, dtype)
    yield from ddpm_trajectory_from(
        eps_model, schedule, xT, schedule.T - 1, noise, variance, clip_denoised
    )


def ddpm_trajectory_from(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    xt: Tensor,
    t_start: int,
    generator: Noise,
    variance: str = "beta_tilde",
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield xt (at code index t_start), then every ancestral state down to the sample.

    Starting below T - 1 denoises a partly noised input, e.g. q_sample(x0, t_start).
    """
    v.check_tensor("xt", xt)
    v.choice("variance", variance, VARIANCES)
    v.step_index("t_start", t_start, schedule.T)
    noise = noise_source(generator, xt.device, xt.dtype)
    yield SamplerState(t_start, xt, None)
    for t in reversed(range(t_start + 1)):
        t_batch = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
        z = noise.randn(xt.shape)
        eps = eps_model(xt, t_batch)
        xt, x0_pred = ddpm_update(
            schedule, xt, t_batch, eps, z, variance, clip_denoised
        )
        yield SamplerState(t - 1, xt, x0_pred)


def ddim_timesteps(T: int, num_steps: int) -> list[int]:
    """num_steps evenly spaced code indices, T-1 down to 0 (the "trailing" spacing)."""
    v.num_steps(num_steps, T, f"T={T}")
    steps = {round(T - 1 - i * T / num_steps) for i in range(num_steps)}
    return sorted(steps, reverse=True)


def ddim_trajectory(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: Noise,
    num_steps: int = 50,
    eta: float = 0.0,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield x_T ~ N(0, I), then the DDIM state after each of num_steps steps, the last
    at t = -1.

    generator: a torch.Generator or a noise source; device None means the schedule's;
    clip_denoised as in ddpm_trajectory.
    Book: eq. ddim-step
    """
    v.in_unit_interval("eta", eta)  # eta > 1 would leave the family
    ddim_timesteps(schedule.T, num_steps)  # checks num_steps before the noise is drawn
    xT, noise = start_chain(schedule, shape, generator, device, dtype)
    yield from ddim_trajectory_from(
        eps_model, schedule, xT, schedule.T - 1, noise, num_steps, eta, clip_denoised
    )


def ddim_trajectory_from(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    xt: Tensor,
    t_start: int,
    generator: Noise,
    num_steps: int = 50,
    eta: float = 0.0,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield xt (at code index t_start), then the DDIM state after each of num_steps
    steps down to the sample.

    The steps are spaced evenly over t_start, ..., 0 (ddim_timesteps(t_start + 1,
    num_steps)), so t_start = T - 1 is ddim_trajectory's run; a lower t_start denoises
    a partly noised input. A step draws noise only when eta > 0.
    """
    v.check_tensor("xt", xt)
    v.step_index("t_start", t_start, schedule.T)
    v.in_unit_interval("eta", eta)  # eta > 1 would leave the family
    v.num_steps(num_steps, t_start + 1, f"t_start={t_start}")
    # eta = 0 draws nothing, so a deterministic run may pass generator=None
    noise = noise_source(generator, xt.device, xt.dtype) if eta > 0 else None
    steps = ddim_timesteps(t_start + 1, num_steps)
    yield SamplerState(steps[0], xt, None)
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        t_batch = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
        z = noise.randn(xt.shape) if eta > 0 else None
        eps = eps_model(xt, t_batch)
        alpha_bar_prev = alpha_bar_at(schedule, t_prev)
        xt, x0_pred = ddim_update(
            schedule, xt, t_batch, alpha_bar_prev, eps, eta, z, clip_denoised
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
