"""The score view: scores from eps, Langevin dynamics, denoising score matching, the probability-flow ODE."""

import math

import pytest
import torch

from ddpm_lite.sampling import ddim_step
from ddpm_lite.schedules import NoiseSchedule, make_betas
from ddpm_lite.score import (
    annealed_langevin,
    dsm_loss,
    langevin,
    langevin_step,
    pf_ode_velocity,
    score_from_eps,
    sigma_of_alpha_bar,
)
from ddpm_lite.toy import GaussianMixture, exact_eps_model, gaussian_mixture_1d

F64 = dict(dtype=torch.float64)
SCHEDULE = NoiseSchedule(make_betas("linear", 1000))
MIXTURE = GaussianMixture(
    torch.tensor([0.7, 0.3], **F64),
    torch.tensor([[-2.0, 0.0], [2.0, 0.5]], **F64),
    torch.tensor([0.4, 0.6], **F64),
)


@pytest.mark.parametrize("t", [0, 250, 999])
def test_score_from_exact_eps_is_the_autograd_score_of_q_xt(t):
    noised = MIXTURE.noised(SCHEDULE.alpha_bars[t].item())
    xt = noised.sample(64, torch.Generator().manual_seed(t))
    eps = exact_eps_model(MIXTURE, SCHEDULE.alpha_bars)(xt, torch.full((64,), t))
    x = xt.clone().requires_grad_(True)
    (autograd_score,) = torch.autograd.grad(noised.log_prob(x).sum(), x)
    assert torch.allclose(
        score_from_eps(SCHEDULE, t, eps), autograd_score, rtol=1e-9, atol=1e-9
    )


def test_score_from_eps_rejects_out_of_range_t():
    with pytest.raises(ValueError, match=r"t must be in \[0, 999\]"):
        score_from_eps(SCHEDULE, 1000, torch.zeros(2, 2))


def test_langevin_step_is_drift_plus_scaled_noise():
    x, score = torch.ones(3, 2, **F64), torch.full((3, 2), 2.0, **F64)
    step = langevin_step(x, score, 0.25, torch.Generator().manual_seed(0))
    z = torch.randn(3, 2, generator=torch.Generator().manual_seed(0), **F64)
    assert torch.allclose(step, x + 0.125 * score + 0.5 * z)


def test_langevin_on_a_gaussian_reaches_the_discretized_stationary_law():
    # x' - m = a (x - m) + sqrt(d) z with a = 1 - d / (2 s^2): mean m, variance s^2 / (1 - d / (4 s^2)).
    # n = 40,000 chains: SE of the mean = sqrt(v / n) ~ 0.004, of the variance v sqrt(2 / n) ~ 0.7 %; 5 SE allowed.
    m, s, d, n = -0.3, 0.7, 0.4, 40_000
    target = gaussian_mixture_1d([1.0], [m], [s])
    x = langevin(
        target.score,
        torch.full((n, 1), 3.0, **F64),
        d,
        200,
        torch.Generator().manual_seed(1),
    )
    v = s**2 / (1 - d / (4 * s**2))
    assert abs(x.mean().item() - m) < 5 * math.sqrt(v / n)
    assert abs(x.var().item() - v) < 5 * v * math.sqrt(2 / n)


def test_annealed_langevin_recovers_the_weights_of_separated_modes():
    g = torch.Generator().manual_seed(2)
    start = 8 * torch.rand(4000, 2, generator=g, **F64) - 4
    sigmas = torch.logspace(math.log10(4.0), math.log10(0.05), 20).tolist()
    x = annealed_langevin(
        lambda x, s: MIXTURE.smoothed(s).score(x), sigmas, start, 2e-3, 100, g
    )
    left = (x[:, 0] < 0).double().mean().item()
    # binomial SE ~0.007 plus the finite-annealing bias (~0.01 measured); plain Langevin keeps the start's 0.5
    assert abs(left - 0.7) < 0.03


@pytest.mark.parametrize(
    "sigmas,message",
    [
        ([0.1, 1.0], "strictly decreasing"),
        ([1.0, 1.0], "strictly decreasing"),
        ([1.0, 0.0], "positive"),
        ([], "positive and strictly decreasing"),
    ],
)
def test_annealed_langevin_rejects_bad_noise_levels(sigmas, message):
    with pytest.raises(ValueError, match=message):
        annealed_langevin(
            lambda x, s: x, sigmas, torch.zeros(2, 2), 0.1, 1, torch.Generator()
        )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"step_size": 0.0}, "step_size must be > 0"),
        ({"n_steps": 0}, "n_steps must be >= 1"),
    ],
)
def test_langevin_rejects_bad_arguments(kwargs, message):
    args = {"step_size": 0.1, "n_steps": 1, **kwargs}
    with pytest.raises(ValueError, match=message):
        langevin(lambda x: x, torch.zeros(2, 2), generator=torch.Generator(), **args)


def test_dsm_minus_explicit_score_matching_does_not_depend_on_the_model():
    # Vincent (2011): DSM = ESM + C. With common random numbers the per-sample differences are
    # precise; 5 SE of their mean allowed.
    sigma, n = 0.7, 50_000
    x = MIXTURE.sample(n, torch.Generator().manual_seed(3))
    smoothed = MIXTURE.smoothed(sigma)
    gaps = []
    for model in (smoothed.score, torch.zeros_like, lambda y: 0.5 - 2 * y):
        dsm = dsm_loss(model, x, sigma, torch.Generator().manual_seed(4))
        x_tilde = x + sigma * torch.randn(
            x.shape, generator=torch.Generator().manual_seed(4), **F64
        )
        gaps.append(dsm - (model(x_tilde) - smoothed.score(x_tilde)).square().sum(1))
    for gap in gaps[1:]:
        difference = gap - gaps[0]
        assert abs(difference.mean().item()) < 5 * difference.std().item() / math.sqrt(
            n
        )


def test_dsm_loss_rejects_non_positive_sigma():
    with pytest.raises(ValueError, match="sigma must be > 0"):
        dsm_loss(torch.zeros_like, torch.zeros(2, 2), 0.0, torch.Generator())


def test_sigma_of_alpha_bar_inverts_alpha_bar_equals_one_over_one_plus_sigma_squared():
    alpha_bar = SCHEDULE.alpha_bars
    assert torch.allclose(
        1 / (1 + sigma_of_alpha_bar(alpha_bar) ** 2), alpha_bar, rtol=1e-12
    )


@pytest.mark.parametrize("t,t_prev", [(999, 950), (400, 399), (10, -1)])
def test_ddim_step_is_an_euler_step_of_the_probability_flow_ode(t, t_prev):
    def eps_at_sigma(x, sigma):
        alpha_bar = 1 / (1 + sigma**2)
        return -math.sqrt(1 - alpha_bar) * MIXTURE.noised(alpha_bar).score(x)

    xt = torch.randn(16, 2, generator=torch.Generator().manual_seed(5), **F64)
    eps = exact_eps_model(MIXTURE, SCHEDULE.alpha_bars)(xt, torch.full((16,), t))
    ddim = ddim_step(SCHEDULE, xt, t, t_prev, eps).x_prev
    sigma_t = sigma_of_alpha_bar(SCHEDULE.alpha_bars[t]).item()
    sigma_prev = (
        sigma_of_alpha_bar(SCHEDULE.alpha_bars[t_prev]).item() if t_prev >= 0 else 0.0
    )
    x_bar = xt * math.sqrt(1 + sigma_t**2)
    euler = x_bar + (sigma_prev - sigma_t) * pf_ode_velocity(
        eps_at_sigma, sigma_t, x_bar
    )
    assert torch.allclose(euler / math.sqrt(1 + sigma_prev**2), ddim, atol=1e-11)
