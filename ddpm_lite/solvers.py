"""Fast solvers of the probability-flow ODE: DPM-Solver++ (multistep) and Heun's.

Both run on any eps_model (the guidance wrappers too) at the trained time steps, and
both are deterministic: randomness enters only through x_T.

DPM-Solver++ (Lu et al. 2022) writes the ODE in the log-SNR
lambda_t = log(alpha_t / std_t), with alpha_t = sqrt(alpha_bar_t) and
std_t = sqrt(1 - alpha_bar_t) the scales of x0 and of the noise in x_t. Its exact
solution from t to s < t is (variation of constants)
    x_s = (std_s / std_t) x_t + std_s * integral_{lambda_t}^{lambda_s} e^lambda x0 dl
so only x0's path needs approximating: held constant, it gives DDIM (order 1); a line
through the last two predictions gives 2M; a parabola through three, 3M.

Heun's method solves the same ODE in EDM's coordinates (Karras et al. 2022):
x_bar = x / sqrt(alpha_bar), sigma = sqrt((1 - alpha_bar) / alpha_bar),
d x_bar / d sigma = eps.
Book: eq. pf-ode-sigma

A flow-matching model's ODE, dx/dr = nu_theta(x, r) from r = 1 (noise) to r = 0
(data), is solved by the same Euler and Heun steps (`flow_trajectory`).
"""

from __future__ import annotations

import math
from typing import Iterator, Sequence

import torch
from torch import Tensor

from . import _validate as v
from .diffusion import EpsModel, eps_from_x0, x0_from_eps
from .noise import noise_source
from .objectives import (
    OBJECTIVES,
    VP_OBJECTIVES,
    target,
    vp_to_straight,
    x0_eps_from_prediction,
)
from .sampling import (
    Noise,
    SamplerState,
    ddim_timesteps,
    ddim_trajectory,
    ddpm_trajectory,
    initial_noise,
    start_chain,
)
from .schedules import NoiseSchedule, gather

SPACINGS = ("time", "logsnr", "karras", "straight")
ORDERS = (1, 2, 3)
KARRAS_RHO = 7.0  # Karras et al.'s rho: sigma^(1/rho) evenly spaced


def solver_timesteps(
    schedule: NoiseSchedule, num_steps: int, spacing: str, t_start: int | None = None
) -> list[int]:
    """num_steps distinct code indices from t_start (default T - 1) down, spaced by
    "time" (evenly in t: ddim_timesteps), "logsnr" (evenly in lambda, down to t = 0),
    "karras" (sigma^(1/7) evenly spaced, down to t = 0) or "straight" (evenly in the
    straight path's r_t = b_t / (a_t + b_t), as linspace(r_start, 0, num_steps + 1)
    without its 0, the data); each is the nearest index."""
    v.choice("spacing", spacing, SPACINGS)
    t_start = schedule.T - 1 if t_start is None else t_start
    v.step_index("t_start", t_start, schedule.T)
    v.num_steps(num_steps, t_start + 1, f"t_start={t_start}")
    if spacing == "time":
        return ddim_timesteps(t_start + 1, num_steps)
    alpha_bar = schedule.alpha_bars[: t_start + 1].double().cpu()
    if spacing == "logsnr":
        key = 0.5 * torch.log(alpha_bar / (1 - alpha_bar))
        targets = torch.linspace(
            float(key[t_start]), float(key[0]), num_steps, dtype=torch.float64
        )
    elif spacing == "straight":
        key = vp_to_straight(torch.zeros_like(alpha_bar), alpha_bar)[1]
        even = torch.linspace(float(key[t_start]), 0.0, num_steps + 1)
        targets = even.double()[:-1]
    else:
        key = torch.sqrt((1 - alpha_bar) / alpha_bar)
        lo, hi = (
            float(key[0]) ** (1 / KARRAS_RHO),
            float(key[t_start]) ** (1 / KARRAS_RHO),
        )
        targets = torch.linspace(hi, lo, num_steps, dtype=torch.float64) ** KARRAS_RHO
    nearest = (key[None, :] - targets[:, None].double()).abs().argmin(dim=1)
    steps = sorted(set(nearest.tolist()), reverse=True)
    if len(steps) < num_steps:
        raise ValueError(
            f"num_steps={num_steps} with spacing {spacing!r} rounds to only "
            f"{len(steps)} distinct time steps below t_start={t_start}; use fewer"
        )
    return steps


def _alpha_std_lambda(alpha_bar: float) -> tuple[float, float, float]:
    if alpha_bar >= 1.0:  # the data: std = 0, lambda = +inf
        return 1.0, 0.0, math.inf
    alpha, std = math.sqrt(alpha_bar), math.sqrt(1 - alpha_bar)
    return alpha, std, math.log(alpha / std)


def dpm_solver_update(
    xt: Tensor,
    alpha_bar_t: float,
    alpha_bar_s: float,
    x0_preds: Sequence[Tensor],
    lambdas: Sequence[float],
) -> Tensor:
    """One DPM-Solver++ step from t to s < t, of order len(x0_preds) (1, 2 or 3).

    x0_preds: the data predictions at t and at the previous steps, newest first;
    lambdas: the log-SNR where each was made (lambdas[0] = lambda_t). With h = lambda_s
    - lambda_t, r_k = (lambda_{k-1} - lambda_k) / h and D the step's estimate of x0:
        x_s = (std_s / std_t) x_t - alpha_s (e^-h - 1) D
    order 1: D = x0_t (DDIM); order 2 (2M, Lu et al. 2022's Algorithm 2):
    D = x0_t + (x0_t - x0_prev) / (2 r_1). Order 3 (3M) fits a parabola through three
    predictions: its first difference, extrapolated with the older one, gets the line's
    exact coefficient phi_2 (not 2M's phi_1 / 2) and a second difference gets phi_3, as
    in the authors' released code and diffusers' DPMSolverMultistepScheduler (the paper
    states 2S and 2M only). phi_3 is half the weight the parabola's exact integral gives
    the second difference, so 3M is exact on a line, not on a parabola (book: solvers).
    To the data (alpha_bar_s = 1) the step is x0_t itself, and only order 1 is defined
    there.
    """
    order = len(x0_preds)
    _, std_t, lambda_t = _alpha_std_lambda(alpha_bar_t)
    alpha_s, std_s, lambda_s = _alpha_std_lambda(alpha_bar_s)
    if std_s == 0.0:
        if order != 1:
            raise ValueError("the step to the data (alpha_bar_s = 1) has order 1 only")
        return x0_preds[0]
    h = lambda_s - lambda_t
    phi_1 = math.expm1(-h)  # e^-h - 1, accurate for small h
    m0 = x0_preds[0]
    if order == 1:
        return (std_s / std_t) * xt - alpha_s * phi_1 * m0
    r0 = (lambda_t - lambdas[1]) / h
    d1_0 = (m0 - x0_preds[1]) / r0
    if order == 2:
        return (std_s / std_t) * xt - alpha_s * phi_1 * (m0 + 0.5 * d1_0)
    r1 = (lambdas[1] - lambdas[2]) / h
    d1_1 = (x0_preds[1] - x0_preds[2]) / r1
    d1 = d1_0 + r0 / (r0 + r1) * (d1_0 - d1_1)
    d2 = (d1_0 - d1_1) / (r0 + r1)
    phi_2 = phi_1 / h + 1
    phi_3 = phi_2 / h - 0.5
    return (
        (std_s / std_t) * xt
        - alpha_s * phi_1 * m0
        + alpha_s * phi_2 * d1
        - alpha_s * phi_3 * d2
    )


def _predict(
    eps_model: EpsModel, schedule: NoiseSchedule, xt: Tensor, t: int, clip: bool
) -> tuple[Tensor, Tensor]:
    """(eps, x0_pred) at code index t; with clip, x0_pred in [-1, 1] and eps from it."""
    t_batch = torch.full((xt.shape[0],), t, dtype=torch.long, device=xt.device)
    eps = eps_model(xt, t_batch)
    alpha_bar = gather(schedule.alpha_bars, t_batch, xt)
    x0_pred = x0_from_eps(xt, eps, alpha_bar)
    if clip:
        x0_pred = x0_pred.clamp(-1, 1)
        eps = eps_from_x0(xt, x0_pred, alpha_bar)
    return eps, x0_pred


def _host_alpha_bars(schedule: NoiseSchedule) -> list[float]:
    # One read before the loop: the steps' coefficients are Python floats, so the loop
    # itself never waits for the device.
    return schedule.alpha_bars.double().cpu().tolist() + [1.0]  # index -1: the data


def dpm_solver_trajectory_from(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    xt: Tensor,
    t_start: int,
    num_steps: int = 10,
    order: int = 2,
    spacing: str = "logsnr",
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield xt (at code index t_start), then the state after each of num_steps
    DPM-Solver++ steps, the last at t = -1: num_steps network calls.

    Step k (from 0) has order min(order, k + 1): the history starts empty. The last
    step, to the data, is order 1. With clip_denoised each x0 prediction is clipped.
    """
    v.check_tensor("xt", xt)
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    steps = solver_timesteps(schedule, num_steps, spacing, t_start)
    alpha_bars = _host_alpha_bars(schedule)
    yield SamplerState(steps[0], xt, None)
    x0_preds: list[Tensor] = []
    lambdas: list[float] = []
    for k, (t, s) in enumerate(zip(steps, steps[1:] + [-1])):
        _, x0_pred = _predict(eps_model, schedule, xt, t, clip_denoised)
        x0_preds = [x0_pred, *x0_preds][:order]
        lambdas = [_alpha_std_lambda(alpha_bars[t])[2], *lambdas][:order]
        used = 1 if s == -1 else min(order, k + 1)
        xt = dpm_solver_update(
            xt, alpha_bars[t], alpha_bars[s], x0_preds[:used], lambdas[:used]
        )
        yield SamplerState(s, xt, x0_pred)


def dpm_solver_trajectory(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: Noise,
    num_steps: int = 10,
    order: int = 2,
    spacing: str = "logsnr",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield x_T ~ N(0, I), then the DPM-Solver++ state after each of num_steps steps
    (num_steps network calls), the last at t = -1. device None means the schedule's.
    """
    solver_timesteps(schedule, num_steps, spacing)  # checks before the noise is drawn
    if order not in ORDERS:
        raise ValueError(f"order must be one of {ORDERS}, got {order!r}")
    xT, _ = start_chain(schedule, shape, generator, device, dtype)
    yield from dpm_solver_trajectory_from(
        eps_model,
        schedule,
        xT,
        schedule.T - 1,
        num_steps,
        order,
        spacing,
        clip_denoised,
    )


def heun_update(
    x_bar: Tensor, sigma: float, sigma_next: float, eps_t: Tensor, eps_s: Tensor | None
) -> Tensor:
    """One step of d x_bar / d sigma = eps from sigma to sigma_next: Heun's (the mean of
    the slopes at both ends) when eps_s, the slope at the Euler point, is given; else
    Euler's, x_bar + (sigma_next - sigma) eps_t (DDIM with eta = 0).
    Book: eq. pf-ode-sigma
    """
    slope = eps_t if eps_s is None else 0.5 * (eps_t + eps_s)
    return x_bar + (sigma_next - sigma) * slope


def heun_trajectory_from(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    xt: Tensor,
    t_start: int,
    num_steps: int = 10,
    spacing: str = "karras",
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield xt (at code index t_start), then the state after each of num_steps steps of
    Heun's method, the last (to sigma = 0, the data) Euler's: 2 num_steps - 1 network
    calls. The states are in x_t's coordinates, x_t = sqrt(alpha_bar_t) x_bar.
    """
    v.check_tensor("xt", xt)
    steps = solver_timesteps(schedule, num_steps, spacing, t_start)
    alpha_bars = _host_alpha_bars(schedule)
    yield SamplerState(steps[0], xt, None)
    for t, s in zip(steps, steps[1:] + [-1]):
        sigma = math.sqrt((1 - alpha_bars[t]) / alpha_bars[t])
        sigma_next = math.sqrt((1 - alpha_bars[s]) / alpha_bars[s])
        eps_t, x0_pred = _predict(eps_model, schedule, xt, t, clip_denoised)
        x_bar = xt / math.sqrt(alpha_bars[t])
        eps_s = None
        if s >= 0:
            x_euler = heun_update(x_bar, sigma, sigma_next, eps_t, None)
            x_s = x_euler * math.sqrt(alpha_bars[s])
            eps_s, _ = _predict(eps_model, schedule, x_s, s, clip_denoised)
        xt = heun_update(x_bar, sigma, sigma_next, eps_t, eps_s) * math.sqrt(
            alpha_bars[s]
        )
        yield SamplerState(s, xt, x0_pred)


def heun_trajectory(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: Noise,
    num_steps: int = 10,
    spacing: str = "karras",
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield x_T ~ N(0, I), then the state after each of num_steps Heun steps
    (2 num_steps - 1 network calls), the last at t = -1. device None: the schedule's.
    Book: eq. pf-ode-sigma
    """
    solver_timesteps(schedule, num_steps, spacing)  # checks before the noise is drawn
    xT, _ = start_chain(schedule, shape, generator, device, dtype)
    yield from heun_trajectory_from(
        eps_model, schedule, xT, schedule.T - 1, num_steps, spacing, clip_denoised
    )


def _flow_predict(
    velocity_model: EpsModel, x: Tensor, r: float, clip: bool
) -> tuple[Tensor, Tensor]:
    """(nu, x0_pred) at straight-path time r; with clip, x0_pred in [-1, 1] and nu
    from it."""
    nu = velocity_model(x, torch.full((x.shape[0],), r, dtype=x.dtype, device=x.device))
    a, b = 1 - r, r
    x0_pred, eps = x0_eps_from_prediction("flow", nu, x, a, b)
    if clip:
        x0_pred = x0_pred.clamp(-1, 1)
        _, eps = x0_eps_from_prediction("x0", x0_pred, x, a, b)
        nu = target("flow", x0_pred, eps, a, b)
    return nu, x0_pred


def straight_times(schedule: NoiseSchedule, steps: Sequence[int]) -> list[float]:
    """The straight path's times r_t = b_t / (a_t + b_t) of code indices `steps`, then
    0 (the data): a grid on which a flow model and a variance-preserving model read as
    `objectives.StraightVelocity` are evaluated at the same times."""
    alpha_bar = schedule.alpha_bars.detach().double().cpu()[list(steps)]
    return vp_to_straight(torch.zeros_like(alpha_bar), alpha_bar)[1].tolist() + [0.0]


def flow_trajectory_from(
    velocity_model: EpsModel,
    x: Tensor,
    r_start: float = 1.0,
    num_steps: int = 10,
    method: str = "heun",
    clip_denoised: bool = False,
    times: Sequence[float] | None = None,
) -> Iterator[SamplerState]:
    """Yield x (at straight-path time r_start), then the state after each of num_steps
    steps of dx/dr = nu_theta(x, r) down to r = 0 on an even grid (the state's t is r,
    a float): Euler's (num_steps network calls) or Heun's, the last step Euler's
    (2 num_steps - 1), with the same steps (`heun_update`) as the sigma-ODE.
    `times`, decreasing from r_start to 0, replaces the even grid (len(times) - 1
    steps; r_start and num_steps are then unused).
    """
    v.check_tensor("x", x)
    v.choice("method", method, FLOW_METHODS)
    if times is None:
        v.at_least("num_steps", num_steps, 1)
        if not 0.0 < r_start <= 1.0:
            raise ValueError(f"r_start must be in (0, 1], got {r_start}")
        times = torch.linspace(r_start, 0.0, num_steps + 1, dtype=torch.float64)
        times = times.tolist()
    else:
        times = [float(r) for r in times]
        steps_down = all(r > s for r, s in zip(times, times[1:]))
        if len(times) < 2 or not (0.0 < times[0] <= 1.0 and times[-1] == 0.0):
            steps_down = False
        if not steps_down:
            raise ValueError(
                "times must decrease from r_start in (0, 1] to 0 (at least 2 times), "
                f"got {times[:3]}...{times[-2:]}"
            )
    yield SamplerState(times[0], x, None)
    for r, s in zip(times, times[1:]):
        nu_r, x0_pred = _flow_predict(velocity_model, x, r, clip_denoised)
        nu_s = None
        if method == "heun" and s > 0:
            x_euler = heun_update(x, r, s, nu_r, None)
            nu_s, _ = _flow_predict(velocity_model, x_euler, s, clip_denoised)
        x = heun_update(x, r, s, nu_r, nu_s)
        yield SamplerState(s, x, x0_pred)


def flow_trajectory(
    velocity_model: EpsModel,
    shape: Sequence[int],
    generator: Noise,
    num_steps: int = 10,
    method: str = "heun",
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
    clip_denoised: bool = False,
) -> Iterator[SamplerState]:
    """Yield x_1 ~ N(0, I) (r = 1), then the state after each of num_steps steps of
    the straight-path ODE (see flow_trajectory_from), the last at r = 0."""
    v.choice("method", method, FLOW_METHODS)
    v.at_least("num_steps", num_steps, 1)
    x1 = initial_noise(shape, noise_source(generator, device, dtype))
    yield from flow_trajectory_from(
        velocity_model, x1, 1.0, num_steps, method, clip_denoised
    )


FLOW_METHODS = ("euler", "heun")
SAMPLERS = ("ddpm", "ddim", "dpm-solver++", "heun", "euler", "flow-map")
# which samplers each objective's model can use: eps, x0 and v models are eps-models
SAMPLERS_FOR = {
    **{o: ("ddpm", "ddim", "dpm-solver++", "heun") for o in VP_OBJECTIVES},
    "flow": FLOW_METHODS,
    "meanflow": ("flow-map",),  # steps x_s = x_r - (r - s) u_theta (`flow_map`)
}


def network_calls(sampler: str, num_steps: int, T: int) -> int:
    """How many times `sampler` calls the network: T for ddpm (num_steps is ignored),
    num_steps for ddim, dpm-solver++, euler and flow-map, 2 num_steps - 1 for heun."""
    v.choice("sampler", sampler, SAMPLERS)
    return {"ddpm": T, "heun": 2 * num_steps - 1}.get(sampler, num_steps)


def check_sampler(sampler: str, objective: str = "eps") -> str:
    """sampler, if a model trained for `objective` can use it; else a ValueError
    naming both and the samplers that objective allows."""
    v.choice("sampler", sampler, SAMPLERS)
    v.choice("objective", objective, OBJECTIVES)
    if sampler not in SAMPLERS_FOR[objective]:
        raise ValueError(
            f"sampler {sampler!r} cannot use a model trained with objective "
            f"{objective!r}; for {objective!r} use one of {SAMPLERS_FOR[objective]}"
        )
    return sampler


def sampler_trajectory(
    sampler: str,
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    shape: Sequence[int],
    generator: Noise,
    num_steps: int,
    eta: float = 0.0,
    clip_denoised: bool = False,
    objective: str = "eps",
) -> Iterator[SamplerState]:
    """The trajectory of a sampler named in SAMPLERS, each with its default spacing:
    ddpm (T ancestral steps), ddim (num_steps, eta), dpm-solver++ (2M, log-SNR steps),
    heun (Karras et al.'s steps). For objective "flow", eps_model is the velocity model
    and the sampler is euler or heun on the straight path (`flow_trajectory`)."""
    check_sampler(sampler, objective)
    run = dict(clip_denoised=clip_denoised)
    if objective == "meanflow":  # eps_model is u_theta(x, s, r); nothing to clip
        from .flow_map import flow_map_trajectory  # flow_map builds on this module

        x1 = initial_noise(
            shape, noise_source(generator, schedule.device, torch.float32)
        )
        return flow_map_trajectory(eps_model, x1, num_steps)
    if objective == "flow":
        device = schedule.device
        return flow_trajectory(
            eps_model, shape, generator, num_steps, sampler, device, **run
        )
    if sampler == "ddpm":
        return ddpm_trajectory(eps_model, schedule, shape, generator, **run)
    if sampler == "ddim":
        return ddim_trajectory(
            eps_model, schedule, shape, generator, num_steps, eta, **run
        )
    if sampler == "dpm-solver++":
        return dpm_solver_trajectory(
            eps_model, schedule, shape, generator, num_steps, **run
        )
    return heun_trajectory(eps_model, schedule, shape, generator, num_steps, **run)
