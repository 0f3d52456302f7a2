"""The probability-flow ODE solvers: against DDIM, diffusers' schedulers, and the exact
flow of Gaussian data, where eps is known in closed form."""

import math

import pytest
import torch

from ddpm_lite.sampling import ddim_trajectory_from, final_sample
from ddpm_lite.schedules import NoiseSchedule, gather, make_betas
from ddpm_lite.solvers import (
    dpm_solver_trajectory,
    dpm_solver_trajectory_from,
    dpm_solver_update,
    flow_trajectory,
    flow_trajectory_from,
    heun_trajectory,
    heun_trajectory_from,
    network_calls,
    solver_timesteps,
    straight_times,
)

SCHEDULE = NoiseSchedule(make_betas("linear", 1000))  # float64
MU, TAU = 0.3, 0.5  # the data: N(MU, TAU^2) in every dimension


def gaussian_eps(schedule):
    """E[eps | x_t] for N(MU, TAU^2) data: sqrt(1 - ab) (x_t - sqrt(ab) MU) / (ab TAU^2 + 1 - ab)."""

    def eps_model(xt, t):
        ab = gather(schedule.alpha_bars, t, xt)
        return (1 - ab).sqrt() * (xt - ab.sqrt() * MU) / (ab * TAU**2 + 1 - ab)

    return eps_model


def exact_flow(x_T, alpha_bar_T, alpha_bar):
    """The probability-flow ODE's map from x_T to the noise level alpha_bar: the
    standardized value (x - sqrt(ab) MU) / sqrt(ab TAU^2 + 1 - ab) is conserved."""
    z = (x_T - math.sqrt(alpha_bar_T) * MU) / math.sqrt(
        alpha_bar_T * TAU**2 + 1 - alpha_bar_T
    )
    return math.sqrt(alpha_bar) * MU + math.sqrt(alpha_bar * TAU**2 + 1 - alpha_bar) * z


def x_T(n=64):
    return torch.randn(
        n, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64
    )


def test_order_one_on_ddims_steps_is_ddim():
    eps_model = gaussian_eps(SCHEDULE)
    for n in (1, 7, 50):
        dpm = dpm_solver_trajectory_from(eps_model, SCHEDULE, x_T(), 999, n, 1, "time")
        ddim = ddim_trajectory_from(eps_model, SCHEDULE, x_T(), 999, None, n)
        for a, b in zip(dpm, ddim):
            assert a.t == b.t
            torch.testing.assert_close(a.xt, b.xt, rtol=1e-12, atol=1e-12)


def test_heuns_euler_step_is_ddim():
    from ddpm_lite.sampling import alpha_bar_at, ddim_update
    from ddpm_lite.solvers import heun_update

    xt, eps = x_T(), x_T().flip(0)
    t, s = 700, 400
    ab_t, ab_s = float(SCHEDULE.alpha_bars[t]), float(SCHEDULE.alpha_bars[s])
    sigma = lambda ab: math.sqrt((1 - ab) / ab)  # noqa: E731
    x_bar = heun_update(xt / math.sqrt(ab_t), sigma(ab_t), sigma(ab_s), eps, None)
    step = ddim_update(
        SCHEDULE, xt, torch.full((64,), t), alpha_bar_at(SCHEDULE, s), eps
    )
    torch.testing.assert_close(
        x_bar * math.sqrt(ab_s), step.x_prev, rtol=1e-12, atol=1e-12
    )


def error_at_t0(run_states, x0_T):
    """|x at code index 0 - the exact flow there|, the largest over the batch."""
    state = next(s for s in run_states if s.t == 0)
    exact = exact_flow(
        x0_T, float(SCHEDULE.alpha_bars[-1]), float(SCHEDULE.alpha_bars[0])
    )
    return (state.xt - exact).abs().max().item()


@pytest.mark.parametrize(
    "solver,order",
    [("dpm-1", 1), ("dpm-2", 2), ("heun", 2)],
)
def test_the_measured_order_of_each_solver(solver, order):
    # Error at t = 0 against the exact flow, for 16 and 32 steps on the log-SNR grid: a
    # p-th order solver's error halves p times. (Fewer steps are not yet in the
    # asymptotic regime: 2M's error at 8 steps happens to cross zero. More than about 36
    # log-SNR steps do not fit T = 1000's indices: lambda_0 - lambda_1 = 0.35.)
    eps_model = gaussian_eps(SCHEDULE)
    errors = []
    for n in (16, 32):
        if solver == "heun":
            run = heun_trajectory_from(eps_model, SCHEDULE, x_T(), 999, n, "logsnr")
        else:
            k = int(solver[-1])
            run = dpm_solver_trajectory_from(
                eps_model, SCHEDULE, x_T(), 999, n, k, "logsnr"
            )
        errors.append(error_at_t0(list(run), x_T()))
    slope = math.log2(errors[0] / errors[1])
    assert abs(slope - order) < 0.35, (errors, slope)


def diffusers_reference(scheduler, steps, eps_model, x):
    """diffusers' states on our time steps (its step() computes in float32)."""
    scheduler.set_timesteps(timesteps=steps)
    states = []
    for t in scheduler.timesteps:
        t_batch = torch.full((x.shape[0],), int(t))
        model_input = scheduler.scale_model_input(x, t)
        out = eps_model(model_input.double(), t_batch)
        x = scheduler.step(out.float(), t, x.float()).prev_sample.double()
        states.append(x)
    return states


def test_dpm_solver_2m_follows_diffusers():
    from diffusers import DPMSolverMultistepScheduler

    scheduler = DPMSolverMultistepScheduler(
        trained_betas=SCHEDULE.betas.numpy(),
        algorithm_type="dpmsolver++",
        solver_order=2,
        final_sigmas_type="zero",
    )
    steps = solver_timesteps(SCHEDULE, 12, "logsnr")
    eps_model = gaussian_eps(SCHEDULE)
    ours = list(
        dpm_solver_trajectory_from(eps_model, SCHEDULE, x_T(), 999, 12, 2, "logsnr")
    )
    theirs = diffusers_reference(scheduler, steps, eps_model, x_T())
    # Both take order 1 first, then 2M, and order 1 to sigma = 0 at the end. diffusers
    # computes in float32 from float32 alpha_bars: agreement to ~1e-5.
    for a, b in zip(ours[1:], theirs):
        torch.testing.assert_close(a.xt, b, rtol=2e-5, atol=2e-5)


def test_heun_follows_diffusers():
    from diffusers import HeunDiscreteScheduler

    scheduler = HeunDiscreteScheduler(trained_betas=SCHEDULE.betas.numpy())
    steps = solver_timesteps(SCHEDULE, 8, "karras")
    eps_model = gaussian_eps(SCHEDULE)
    ours = list(heun_trajectory_from(eps_model, SCHEDULE, x_T(), 999, 8, "karras"))
    # diffusers' Heun works in x_bar = x_t / sqrt(ab) and calls the model twice per
    # step (each call one step() of the scheduler); keep every second state.
    x = x_T() / math.sqrt(float(SCHEDULE.alpha_bars[-1]))
    theirs = diffusers_reference(scheduler, steps, eps_model, x)
    ab = SCHEDULE.alpha_bars.tolist() + [1.0]
    for k, a in enumerate(ours[1:]):
        b = theirs[min(2 * k + 1, len(theirs) - 1)] * math.sqrt(ab[a.t])
        torch.testing.assert_close(a.xt, b, rtol=2e-5, atol=2e-5)


class CountingModel:
    def __init__(self, eps_model):
        self.eps_model, self.calls = eps_model, 0

    def __call__(self, xt, t):
        self.calls += 1
        return self.eps_model(xt, t)


@pytest.mark.parametrize("n", [1, 5, 10])
def test_network_calls_are_n_for_dpm_solver_and_2n_minus_1_for_heun(n):
    dpm, heun = (
        CountingModel(gaussian_eps(SCHEDULE)),
        CountingModel(gaussian_eps(SCHEDULE)),
    )
    g = torch.Generator().manual_seed(0)
    final_sample(
        dpm_solver_trajectory(dpm, SCHEDULE, (2, 1), g, n, dtype=torch.float64)
    )
    final_sample(heun_trajectory(heun, SCHEDULE, (2, 1), g, n, dtype=torch.float64))
    assert (dpm.calls, heun.calls) == (n, 2 * n - 1)


@pytest.mark.parametrize("spacing", ["time", "logsnr", "karras", "straight"])
def test_the_time_steps_start_at_t_start_and_decrease(spacing):
    steps = solver_timesteps(SCHEDULE, 10, spacing)
    assert steps[0] == 999 and len(steps) == 10
    assert all(a > b >= 0 for a, b in zip(steps, steps[1:]))
    if spacing in ("logsnr", "karras"):
        assert steps[-1] == 0  # they end at the data's neighbour, t = 0
    assert solver_timesteps(SCHEDULE, 4, spacing, t_start=300)[0] == 300


def test_the_straight_grid_is_even_in_r_to_the_nearest_index():
    # r_t = b / (a + b) written out, and the even targets from r_T down, 0 left out
    ab = SCHEDULE.alpha_bars
    r = (1 - ab).sqrt() / (ab.sqrt() + (1 - ab).sqrt())
    steps = solver_timesteps(SCHEDULE, 20, "straight")
    targets = [float(r[999]) * (1 - k / 20) for k in range(20)]
    for t, target in zip(steps, targets):
        neighbours = r[max(t - 1, 0) : t + 2]
        assert (neighbours - target).abs().min() == abs(r[t] - target)  # the nearest
        assert abs(float(r[t]) - target) < 0.01
    assert straight_times(SCHEDULE, steps) == [float(r[t]) for t in steps] + [0.0]


@pytest.mark.parametrize(
    "times",
    [[1.0, 0.5], [0.5, 0.7, 0.0], [1.5, 0.5, 0.0], [0.0], [1.0, 0.5, 0.5, 0.0]],
)
def test_a_straight_path_grid_must_fall_from_r_start_to_0(times):
    with pytest.raises(ValueError, match="times must decrease from r_start"):
        next(flow_trajectory_from(gaussian_velocity, x_T(), times=times))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"order": 4}, r"order must be one of \(1, 2, 3\), got 4"),
        ({"num_steps": 0}, r"num_steps must be in \[1, 1000\]"),
        ({"num_steps": 300, "spacing": "logsnr"}, "rounds to only"),
        (
            {"spacing": "cosine"},
            r"spacing must be one of \('time', 'logsnr', 'karras', 'straight'\)",
        ),
    ],
)
def test_bad_solver_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        next(
            dpm_solver_trajectory(
                gaussian_eps(SCHEDULE), SCHEDULE, (2, 1), None, **kwargs
            )
        )


def test_a_start_outside_the_schedule_is_rejected():
    with pytest.raises(ValueError, match=r"t_start must be an int in \[0, 999\]"):
        next(heun_trajectory_from(gaussian_eps(SCHEDULE), SCHEDULE, x_T(), 1000))


def test_the_step_to_the_data_is_first_order_only():
    with pytest.raises(ValueError, match="has order 1 only"):
        dpm_solver_update(x_T(), 0.5, 1.0, [x_T(), x_T()], [0.0, -1.0])


@pytest.mark.parametrize("solver", ["dpm", "heun"])
def test_solvers_run_guided_and_read_nothing_on_the_host(solver, request):
    from ddpm_lite.guidance import classifier_free_guidance
    from ddpm_lite.unet import UNet, UNetConfig

    schedule = NoiseSchedule(make_betas("linear", 1000)).to(dtype=torch.float32)
    unet = UNetConfig(
        base_channels=8, channel_mults=(1,), num_res_blocks=1, groups=8, num_classes=10
    )
    eps_model = classifier_free_guidance(
        UNet(unet).eval(), torch.tensor([3, 4]), 10, 2.0
    )
    g = torch.Generator().manual_seed(0)
    shape = (2, 1, 28, 28)
    if solver == "dpm":
        run = dpm_solver_trajectory(
            eps_model, schedule, shape, g, 4, clip_denoised=True
        )
    else:
        run = heun_trajectory(eps_model, schedule, shape, g, 4, clip_denoised=True)
    next(run)
    request.getfixturevalue("no_host_sync")
    with torch.no_grad():
        states = [next(run) for _ in range(4)]
    assert [s.t for s in states][-1] == -1  # (no value read: the check is still on)


def test_solvers_draw_x_T_on_the_device_asked_for():
    # The meta device stands in for a GPU (the schedule's coefficients are read once on
    # the host, so the schedule itself stays a CPU one here).
    g = torch.Generator()
    for trajectory in (dpm_solver_trajectory, heun_trajectory):
        x = next(trajectory(None, SCHEDULE, (2, 3), g, device="meta")).xt
        assert x.device.type == "meta"


def gaussian_velocity(x, t):
    """E[eps - x0 | x_t] on the straight path for N(MU, TAU^2) data: with
    var_t = (1 - t)^2 TAU^2 + t^2, E[x0 | x_t] = MU + (1 - t) TAU^2 (x - (1 - t) MU)
    / var_t and u = (x - E[x0 | x_t]) / t."""
    s = t.reshape(-1, *([1] * (x.ndim - 1)))
    var = (1 - s) ** 2 * TAU**2 + s**2
    x0_mean = MU + (1 - s) * TAU**2 * (x - (1 - s) * MU) / var
    return (x - x0_mean) / s


@pytest.mark.parametrize("method,order", [("euler", 1), ("heun", 2)])
def test_the_measured_order_of_each_straight_path_solver(method, order):
    # The straight path's exact flow of Gaussian data: x_0 = MU + TAU x_1.
    errors = []
    for n in (16, 32):
        run = flow_trajectory_from(gaussian_velocity, x_T(), 1.0, n, method)
        errors.append((final_sample(run) - (MU + TAU * x_T())).abs().max().item())
    slope = math.log2(errors[0] / errors[1])
    assert abs(slope - order) < 0.35, (errors, slope)


@pytest.mark.parametrize("n", [1, 5])
def test_network_calls_on_the_straight_path(n):
    for method in ("euler", "heun"):
        model = CountingModel(gaussian_velocity)
        g = torch.Generator().manual_seed(0)
        run = flow_trajectory(model, (2, 1), g, n, method, dtype=torch.float64)
        states = list(run)
        assert [s.t for s in states] == torch.linspace(
            1, 0, n + 1, dtype=torch.float64
        ).tolist()
        assert model.calls == network_calls(method, n, 1000)


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"method": "rk4"}, r"method must be one of \('euler', 'heun'\), got 'rk4'"),
        ({"num_steps": 0}, r"num_steps must be >= 1, got 0"),
        ({"r_start": 1.5}, r"r_start must be in \(0, 1\], got 1.5"),
    ],
)
def test_bad_straight_path_arguments_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        next(flow_trajectory_from(gaussian_velocity, x_T(), **kwargs))
