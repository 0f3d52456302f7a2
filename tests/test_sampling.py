import math

import pytest
import torch

from ddpm_lite.diffusion import q_posterior, q_sample
from ddpm_lite.sampling import (
    ddim_step,
    ddim_timesteps,
    ddim_trajectory,
    ddpm_step,
    ddpm_trajectory,
    final_sample,
)
from ddpm_lite.schedules import NoiseSchedule, make_betas

K_SE = (
    5.0  # Monte Carlo tolerance in standard errors: false failure rate 6e-7 per check
)
DATA_MEAN, DATA_VAR = (
    0.6,
    0.09,
)  # 1-D Gaussian data, where the best eps_theta is known exactly


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule(make_betas("linear", 1000))


def exact_eps_model(schedule):
    """E[eps | x_t] for x0 ~ N(DATA_MEAN, DATA_VAR): the minimiser of L_simple."""

    def eps_model(xt, t):
        ab = schedule.alpha_bars.to(xt.dtype)[t].reshape(-1, *([1] * (xt.ndim - 1)))
        return (
            torch.sqrt(1 - ab)
            * (xt - torch.sqrt(ab) * DATA_MEAN)
            / (ab * DATA_VAR + 1 - ab)
        )

    return eps_model


def linear_step_coefficients(schedule, t, t_prev, kind, variance="beta_tilde"):
    """x_prev = a * x_t + b + sigma * z for the exact eps model, from the papers' formulas in float64."""
    ab, beta = schedule.alpha_bars[t].item(), schedule.betas[t].item()
    ab_prev = 1.0 if t_prev < 0 else schedule.alpha_bars[t_prev].item()
    c, d = (
        math.sqrt(1 - ab) / (ab * DATA_VAR + 1 - ab),
        math.sqrt(ab) * DATA_MEAN,
    )  # eps = c (x - d)
    if kind == "ddpm":  # Ho et al. Algorithm 2
        a = (1 - beta * c / math.sqrt(1 - ab)) / math.sqrt(1 - beta)
        b = beta * c * d / (math.sqrt(1 - ab) * math.sqrt(1 - beta))
        sigma2 = beta * (1 - ab_prev) / (1 - ab) if variance == "beta_tilde" else beta
        return a, b, (sigma2 if t > 0 else 0.0)
    # DDIM, eta = 0: x_prev = sqrt(ab_prev) (x - sqrt(1-ab) eps) / sqrt(ab) + sqrt(1 - ab_prev) eps
    k = math.sqrt(1 - ab_prev) - math.sqrt(ab_prev) * math.sqrt(1 - ab) / math.sqrt(ab)
    return math.sqrt(ab_prev / ab) + k * c, -k * c * d, 0.0


def propagate_moments(schedule, steps, kind, variance="beta_tilde"):
    mean, var = 0.0, 1.0
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        a, b, s2 = linear_step_coefficients(schedule, t, t_prev, kind, variance)
        mean, var = a * mean + b, a * a * var + s2
    return mean, var


def assert_sample_moments(x, mean, var):
    n = x.numel()
    assert abs(x.mean().item() - mean) < K_SE * math.sqrt(var / n)
    assert abs(x.var().item() - var) < K_SE * var * math.sqrt(2 / (n - 1))


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_ddpm_sampler_moments_follow_the_float64_recursion(schedule, variance):
    g = torch.Generator().manual_seed(0)
    x = final_sample(
        ddpm_trajectory(
            exact_eps_model(schedule),
            schedule,
            (40_000, 1),
            g,
            variance,
            dtype=torch.float64,
        )
    )
    mean, var = propagate_moments(schedule, list(range(999, -1, -1)), "ddpm", variance)
    assert_sample_moments(x, mean, var)


def package_moments(schedule, steps, kind, variance="beta_tilde"):
    """Mean and variance of the package's sampler output, exactly: with the exact eps model each step is
    x_prev = a x + b + sigma z, and a, b, sigma are read off ddpm_step / ddim_step at x in {0, 1}, z in {0, 1}."""
    model = exact_eps_model(schedule)
    x = torch.tensor([[0.0], [1.0], [0.0]], dtype=torch.float64)
    z = torch.tensor([[0.0], [0.0], [1.0]], dtype=torch.float64)
    mean, var = 0.0, 1.0
    for t, t_prev in zip(steps, steps[1:] + [-1]):
        eps = model(x, torch.full((3,), t))
        out = (
            ddpm_step(schedule, x, t, eps, z, variance).x_prev
            if kind == "ddpm"
            else ddim_step(schedule, x, t, t_prev, eps).x_prev
        )
        b, a, sigma = (
            out[0, 0].item(),
            (out[1, 0] - out[0, 0]).item(),
            (out[2, 0] - out[0, 0]).item(),
        )
        mean, var = a * mean + b, a * a * var + sigma**2
    return mean, var


def test_package_moments_agree_with_the_papers_formulas(schedule):
    steps = ddim_timesteps(1000, 50)
    for kind, variance in (
        ("ddpm", "beta_tilde"),
        ("ddpm", "beta"),
        ("ddim", "beta_tilde"),
    ):
        expected = propagate_moments(
            schedule,
            list(range(999, -1, -1)) if kind == "ddpm" else steps,
            kind,
            variance,
        )
        got = package_moments(
            schedule,
            list(range(999, -1, -1)) if kind == "ddpm" else steps,
            kind,
            variance,
        )
        assert got == pytest.approx(expected, rel=1e-9)


def test_ddpm_variance_choices_bracket_the_data_variance(schedule):
    # sigma^2 = beta_tilde is optimal for a point mass, sigma^2 = beta for N(0, I) data (Ho et al.
    # sec. 3.2); for data in between, the package's two samplers' final variances bracket the truth.
    # Exact moments of the package's steps, so no Monte Carlo error enters.
    steps = list(range(999, -1, -1))
    mean_small, var_small = package_moments(schedule, steps, "ddpm", "beta_tilde")
    mean_large, var_large = package_moments(schedule, steps, "ddpm", "beta")
    assert var_small < DATA_VAR < var_large
    assert mean_small == pytest.approx(
        DATA_MEAN, rel=1e-4
    ) and mean_large == pytest.approx(DATA_MEAN, rel=1e-4)


def test_ddim_sampler_moments_follow_the_float64_recursion(schedule):
    g = torch.Generator().manual_seed(1)
    x = final_sample(
        ddim_trajectory(
            exact_eps_model(schedule),
            schedule,
            (40_000, 1),
            g,
            num_steps=50,
            dtype=torch.float64,
        )
    )
    mean, var = propagate_moments(schedule, ddim_timesteps(1000, 50), "ddim")
    assert_sample_moments(x, mean, var)


def test_ddim_variance_error_shrinks_with_more_steps(schedule):
    # Coarse deterministic steps shrink the variance (0.075 at 50 steps vs 0.09); at 1000 steps
    # DDIM follows the probability-flow ODE closely.
    errors = [
        abs(package_moments(schedule, ddim_timesteps(1000, n), "ddim")[1] - DATA_VAR)
        for n in (10, 50, 250, 1000)
    ]
    assert errors == sorted(errors, reverse=True)
    assert errors[-1] < 0.015 * DATA_VAR


def test_ddpm_step_adds_no_noise_at_t0(schedule):
    xt, eps = torch.randn(3, 4), torch.randn(3, 4)
    a = ddpm_step(schedule, xt, 0, eps, torch.randn(3, 4)).x_prev
    b = ddpm_step(schedule, xt, 0, eps, torch.randn(3, 4)).x_prev
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_ddpm_step_with_true_eps_is_posterior_mean_plus_scaled_noise(schedule):
    g = torch.Generator().manual_seed(2)
    x0, eps, z = (torch.randn(4, 5, generator=g, dtype=torch.float64) for _ in range(3))
    t = torch.tensor([1, 10, 500, 999])
    xt = q_sample(schedule, x0, t, eps)
    post = q_posterior(schedule, x0, xt, t)
    torch.testing.assert_close(
        ddpm_step(schedule, xt, t, eps, z).x_prev, post.mean + post.variance.sqrt() * z
    )


def test_ddim_eta0_is_deterministic(schedule):
    eps_model = exact_eps_model(schedule)
    x_T = torch.randn(8, 1, generator=torch.Generator().manual_seed(3))
    outs = []
    for seed in (10, 11):  # different noise available; eta = 0 must not use it
        xt = x_T
        steps = ddim_timesteps(1000, 20)
        for t, t_prev in zip(steps, steps[1:] + [-1]):
            noise = torch.randn(8, 1, generator=torch.Generator().manual_seed(seed + t))
            xt = ddim_step(
                schedule,
                xt,
                t,
                t_prev,
                eps_model(xt, torch.full((8,), t)),
                eta=0.0,
                noise=noise,
            ).x_prev
        outs.append(xt)
    torch.testing.assert_close(outs[0], outs[1], rtol=0, atol=0)


def test_ddim_eta1_on_consecutive_steps_is_the_ancestral_step(schedule):
    g = torch.Generator().manual_seed(4)
    xt, eps, z = (torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3))
    for t in (1, 50, 999):
        ddim = ddim_step(schedule, xt, t, t - 1, eps, eta=1.0, noise=z).x_prev
        ddpm = ddpm_step(schedule, xt, t, eps, z, variance="beta_tilde").x_prev
        torch.testing.assert_close(ddim, ddpm, rtol=1e-10, atol=1e-10)


def test_ddim_step_to_minus_one_returns_x0_pred(schedule):
    xt, eps = (
        torch.randn(2, 3, dtype=torch.float64),
        torch.randn(2, 3, dtype=torch.float64),
    )
    out = ddim_step(schedule, xt, 19, -1, eps)
    torch.testing.assert_close(out.x_prev, out.x0_pred)


def test_ddim_timesteps_are_the_trailing_spacing():
    # "trailing": 999, 979, ..., 19, every T / num_steps = 20 code indices, ending at 19 (not 0).
    steps = ddim_timesteps(1000, 50)
    assert steps == list(range(999, 0, -20))
    assert ddim_timesteps(10, 10) == list(range(9, -1, -1))
    assert ddim_timesteps(1000, 1) == [999]


def test_ddpm_trajectory_yields_every_state(schedule):
    small = NoiseSchedule(make_betas("linear", 5))
    states = list(
        ddpm_trajectory(
            lambda x, t: torch.zeros_like(x),
            small,
            (2, 3),
            torch.Generator().manual_seed(0),
        )
    )
    assert [s.t for s in states] == [4, 3, 2, 1, 0, -1]  # x_T is code index T-1
    assert states[0].x0_pred is None and all(s.x0_pred is not None for s in states[1:])


def test_samplers_leave_the_global_rng_alone(schedule):
    small = NoiseSchedule(make_betas("linear", 5))
    before = torch.random.get_rng_state()
    final_sample(
        ddpm_trajectory(
            lambda x, t: torch.zeros_like(x),
            small,
            (2, 3),
            torch.Generator().manual_seed(0),
        )
    )
    final_sample(
        ddim_trajectory(
            lambda x, t: torch.zeros_like(x),
            small,
            (2, 3),
            torch.Generator().manual_seed(0),
            3,
            eta=0.5,
        )
    )
    assert torch.equal(before, torch.random.get_rng_state())


def test_same_seed_gives_the_same_sample(schedule):
    small = NoiseSchedule(make_betas("linear", 5))
    run = lambda: final_sample(
        ddpm_trajectory(
            lambda x, t: 0.1 * x, small, (2, 3), torch.Generator().manual_seed(7)
        )
    )
    torch.testing.assert_close(run(), run(), rtol=0, atol=0)


# --- bad input ---------------------------------------------------------------------------


def test_ddim_with_eta_needs_noise(schedule):
    with pytest.raises(ValueError, match="noise is required when eta > 0"):
        ddim_step(schedule, torch.zeros(1, 2), 5, 4, torch.zeros(1, 2), eta=0.5)


def test_ddim_t_prev_must_be_below_t(schedule):
    with pytest.raises(ValueError, match="t_prev must be smaller than t"):
        ddim_step(schedule, torch.zeros(1, 2), 5, 5, torch.zeros(1, 2))


def test_ddim_t_prev_below_minus_one_is_rejected(schedule):
    with pytest.raises(ValueError, match=r"t_prev must be in \[-1, 999\]"):
        ddim_step(schedule, torch.zeros(1, 2), 5, -2, torch.zeros(1, 2))


@pytest.mark.parametrize("eta", [-1.0, 1.5, float("nan")])
def test_eta_outside_the_ddim_family_is_rejected(schedule, eta):
    # above 1, sigma_ts^2 > 1 - alpha_bar_prev: the step would leave the family
    z = torch.zeros(1, 2)
    with pytest.raises(ValueError, match=r"eta must be in \[0, 1\]"):
        ddim_step(schedule, z, 5, 4, z, eta=eta, noise=z)
    with pytest.raises(ValueError, match=r"eta must be in \[0, 1\]"):
        next(ddim_trajectory(lambda x, t: x, schedule, (1, 2), None, 5, eta))


@pytest.mark.parametrize("num_steps", [0, 1001])
def test_ddim_num_steps_out_of_range_is_rejected(num_steps):
    with pytest.raises(ValueError, match=r"num_steps must be in \[1, 1000\]"):
        ddim_timesteps(1000, num_steps)


def test_ddpm_step_unknown_variance_is_rejected(schedule):
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="variance must be one of"):
        ddpm_step(schedule, x, 3, x, x, variance="learned")


def test_ddpm_step_noise_shape_mismatch_is_rejected(schedule):
    with pytest.raises(ValueError, match=r"noise must have the shape of xt"):
        ddpm_step(schedule, torch.zeros(2, 3), 3, torch.zeros(2, 3), torch.zeros(3, 3))


def test_sampler_rejects_empty_shape(schedule):
    with pytest.raises(
        ValueError, match="shape must be a non-empty sequence of positive ints"
    ):
        next(ddpm_trajectory(lambda x, t: x, schedule, (0, 3), torch.Generator()))


def test_final_sample_of_an_empty_trajectory_is_an_error():
    with pytest.raises(ValueError, match="trajectory yielded no state"):
        final_sample(iter([]))


def test_trajectory_from_the_top_repeats_the_full_ancestral_trajectory():
    from ddpm_lite.sampling import ddpm_trajectory_from

    schedule = NoiseSchedule(make_betas("linear", 30)).to(dtype=torch.float64)
    model = lambda xt, t: 0.1 * xt  # noqa: E731
    full = list(
        ddpm_trajectory(
            model,
            schedule,
            (4, 2),
            torch.Generator().manual_seed(3),
            dtype=torch.float64,
        )
    )
    g = torch.Generator().manual_seed(3)
    x_T = torch.randn(4, 2, generator=g, dtype=torch.float64)
    resumed = list(ddpm_trajectory_from(model, schedule, x_T, 29, g))
    assert [s.t for s in resumed] == [s.t for s in full] and all(
        torch.equal(a.xt, b.xt) for a, b in zip(full, resumed)
    )


def test_trajectory_from_a_middle_step_takes_t_start_plus_one_steps():
    from ddpm_lite.sampling import ddpm_trajectory_from

    schedule = NoiseSchedule(make_betas("linear", 30))
    states = list(
        ddpm_trajectory_from(
            lambda xt, t: torch.zeros_like(xt),
            schedule,
            torch.zeros(2, 3),
            9,
            torch.Generator(),
        )
    )
    assert [s.t for s in states] == list(range(9, -2, -1))


@pytest.mark.parametrize("t_start", [-1, 30, 2.0])
def test_trajectory_from_rejects_a_start_outside_the_schedule(t_start):
    from ddpm_lite.sampling import ddpm_trajectory_from

    schedule = NoiseSchedule(make_betas("linear", 30))
    with pytest.raises(ValueError, match=r"t_start must be an int in \[0, 29\]"):
        next(
            ddpm_trajectory_from(
                lambda xt, t: xt,
                schedule,
                torch.zeros(2, 3),
                t_start,
                torch.Generator(),
            )
        )


# --- clipping x0_pred, against diffusers -------------------------------------------------------

# diffusers keeps alpha_bar in float32, where 1 - alpha_bar near t = 0 (about 1e-4) carries a relative
# error of order 1e-3: coefficients agree to ~1e-4, far below the O(1) effect of a missing clip.
DIFFUSERS_TOL = {"atol": 2e-4, "rtol": 1e-4}


def _random_state(seed, shape=(4, 1, 6, 6)):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64), torch.randn(
        shape, generator=g, dtype=torch.float64
    )


@pytest.mark.parametrize("t", [999, 500, 50, 1, 0])
def test_clipped_ddpm_step_matches_diffusers_clip_sample(schedule, t):
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDPMScheduler(
        num_train_timesteps=1000,
        trained_betas=schedule.betas.numpy(),
        variance_type="fixed_small",
        clip_sample=True,
    )
    xt, eps = _random_state(t)
    expected = scheduler.step(
        eps.float(), t, xt.float(), generator=torch.Generator().manual_seed(3)
    )
    noise = torch.randn(xt.shape, generator=torch.Generator().manual_seed(3)).double()
    out = ddpm_step(schedule, xt, t, eps, noise, clip_denoised=True)
    assert out.x0_pred.abs().max() <= 1 and (
        t < 50 or out.x0_pred.abs().max() == 1
    )  # the clip is active at large t
    torch.testing.assert_close(
        out.x0_pred.float(), expected.pred_original_sample, **DIFFUSERS_TOL
    )
    torch.testing.assert_close(
        out.x_prev.float(), expected.prev_sample, **DIFFUSERS_TOL
    )


@pytest.mark.parametrize("t", [999, 619, 59, 19])
@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_clipped_ddim_step_matches_diffusers_with_clipped_model_output(
    schedule, t, eta
):
    # diffusers recomputes eps from the clipped x0 only with use_clipped_model_output=True, as ddpm_lite does.
    diffusers = pytest.importorskip("diffusers")
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=1000,
        trained_betas=schedule.betas.numpy(),
        clip_sample=True,
        set_alpha_to_one=True,
    )
    scheduler.set_timesteps(
        50
    )  # its step goes from t to t - 20; below 20, to alpha_bar = 1
    xt, eps = _random_state(t)
    noise = torch.randn(
        xt.shape, generator=torch.Generator().manual_seed(4), dtype=torch.float64
    )
    expected = scheduler.step(
        eps.float(),
        t,
        xt.float(),
        eta=eta,
        use_clipped_model_output=True,
        variance_noise=noise.float(),
    )
    out = ddim_step(
        schedule, xt, t, max(t - 20, -1), eps, eta=eta, noise=noise, clip_denoised=True
    )
    torch.testing.assert_close(
        out.x0_pred.float(), expected.pred_original_sample, **DIFFUSERS_TOL
    )
    torch.testing.assert_close(
        out.x_prev.float(), expected.prev_sample, **DIFFUSERS_TOL
    )


def test_clipping_changes_nothing_when_x0_pred_is_inside_the_box(schedule):
    x0 = torch.rand(8, 1, 5, 5, dtype=torch.float64) * 1.8 - 0.9
    eps, noise = _random_state(1, x0.shape)
    xt = q_sample(
        schedule, x0, 300, eps
    )  # with the true eps, x0_pred = x0 is inside [-1, 1]
    for clip in (False, True):
        out = ddpm_step(schedule, xt, 300, eps, noise, clip_denoised=clip)
        torch.testing.assert_close(out.x0_pred, x0)
    plain, clipped = (
        ddpm_step(schedule, xt, 300, eps, noise, clip_denoised=c).x_prev
        for c in (False, True)
    )
    torch.testing.assert_close(plain, clipped)
    plain, clipped = (
        ddim_step(schedule, xt, 300, 200, eps, clip_denoised=c).x_prev
        for c in (False, True)
    )
    torch.testing.assert_close(plain, clipped)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_clipped_trajectories_keep_every_x0_pred_in_the_box(schedule, sampler):
    wild = lambda xt, t: -3 * xt  # noqa: E731  an eps_theta whose x0_pred leaves [-1, 1]
    g = torch.Generator().manual_seed(0)
    run = (
        ddpm_trajectory(wild, schedule, (2, 3), g, clip_denoised=True)
        if sampler == "ddpm"
        else ddim_trajectory(
            wild, schedule, (2, 3), g, num_steps=20, clip_denoised=True
        )
    )
    states = list(run)[1:]
    assert all(s.x0_pred.abs().max() <= 1 for s in states)
    assert states[-1].xt.abs().max() <= 1  # the last step returns x0_pred itself


# --- no host-device synchronisation in the loops ----------------------------------------------


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_a_sampling_step_reads_nothing_on_the_host(sampler, request):
    schedule = NoiseSchedule(make_betas("linear", 1000)).to(dtype=torch.float32)
    from ddpm_lite.unet import UNet, UNetConfig

    model = UNet(
        UNetConfig(
            base_channels=16,
            channel_mults=(1, 2),
            num_res_blocks=1,
            attention_resolutions=(14,),
            groups=8,
            num_classes=10,
        )
    ).eval()
    eps_model = lambda xt, t: model(xt, t, torch.full_like(t, 3))  # noqa: E731
    g = torch.Generator().manual_seed(0)
    run = (
        ddpm_trajectory(eps_model, schedule, (2, 1, 28, 28), g, clip_denoised=True)
        if sampler == "ddpm"
        else ddim_trajectory(
            eps_model,
            schedule,
            (2, 1, 28, 28),
            g,
            num_steps=10,
            eta=0.5,
            clip_denoised=True,
        )
    )
    next(run)
    request.getfixturevalue("no_host_sync")
    with torch.no_grad():
        for _ in range(3):
            state = next(run)
    assert state.x0_pred is not None


def test_samplers_follow_the_schedules_device_by_default():
    # The meta device stands in for a GPU: x_T is drawn where the schedule lives, not on the CPU.
    schedule = NoiseSchedule(make_betas("linear", 100)).to("meta")
    assert (
        next(
            ddim_trajectory(lambda xt, t: xt, schedule, (2, 3), torch.Generator())
        ).xt.device.type
        == "meta"
    )
    assert (
        next(
            ddpm_trajectory(lambda xt, t: xt, schedule, (2, 3), torch.Generator())
        ).xt.device.type
        == "meta"
    )


def test_a_guided_sampling_step_reads_nothing_on_the_host(request):
    from ddpm_lite.guidance import classifier_free_guidance
    from ddpm_lite.unet import UNet, UNetConfig

    schedule = NoiseSchedule(make_betas("linear", 1000)).to(dtype=torch.float32)
    unet = UNetConfig(
        base_channels=8, channel_mults=(1,), num_res_blocks=1, groups=8, num_classes=10
    )
    model = UNet(unet).eval()
    eps_model = classifier_free_guidance(model, torch.tensor([3, 4]), 10, 2.0)
    g = torch.Generator().manual_seed(0)
    run = ddim_trajectory(
        eps_model, schedule, (2, 1, 28, 28), g, 10, clip_denoised=True
    )
    next(run)
    request.getfixturevalue("no_host_sync")
    with torch.no_grad():
        assert next(run).x0_pred is not None
