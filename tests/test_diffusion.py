import math

import pytest
import torch
from scipy import stats
from torch.distributions import Normal, kl_divergence

from ddpm_lite.diffusion import (
    loss_simple,
    loss_weighted,
    nats_to_bits_per_dim,
    p_mean_from_eps,
    predict_eps_from_x0,
    predict_x0_from_eps,
    q_posterior,
    q_sample,
    q_step,
    vlb_prior_term,
    vlb_term,
    vlb_weights,
)
from ddpm_lite.schedules import NoiseSchedule, gather, make_betas

K_SE = (
    5.0  # Monte Carlo tolerance in standard errors: false failure rate 6e-7 per check
)


@pytest.fixture(scope="module")
def schedule():
    return NoiseSchedule(make_betas("linear", 1000))


@pytest.mark.parametrize("t", [0, 10, 250, 999])
def test_q_sample_matches_iterated_q_step(schedule, t):
    g = torch.Generator().manual_seed(t)
    n, x0_value = 100_000, 1.5
    x = torch.full((n,), x0_value, dtype=torch.float64)
    for s in range(t + 1):
        x = q_step(schedule, x, s, torch.randn(n, generator=g, dtype=torch.float64))
    closed = q_sample(
        schedule,
        torch.full((n,), x0_value, dtype=torch.float64),
        t,
        torch.randn(n, generator=g, dtype=torch.float64),
    )
    # Both samples come from the same Gaussian if the closed form is right: a two-sample test
    # on the mean (SE = sqrt(2 var / n)) and on the variance (SE = var * sqrt(2 * 2 / n)).
    var = closed.var().item()
    assert abs(x.mean().item() - closed.mean().item()) < K_SE * math.sqrt(2 * var / n)
    assert abs(x.var().item() - var) < K_SE * var * math.sqrt(4 / n)


def test_q_sample_moments_match_a_float64_recursion(schedule):
    # Independent of alpha_bar: mean_{t} = sqrt(1-beta) mean_{t-1}, var_t = (1-beta) var_{t-1} + beta.
    mean, var = 1.5, 0.0
    for t in range(400):
        b = schedule.betas[t].item()
        mean, var = math.sqrt(1 - b) * mean, (1 - b) * var + b
    ones = torch.ones(1, dtype=torch.float64)
    assert q_sample(schedule, 1.5 * ones, 399, 0 * ones).item() == pytest.approx(
        mean, rel=1e-12
    )
    assert (q_sample(schedule, 0 * ones, 399, ones).item()) ** 2 == pytest.approx(
        var, rel=1e-12
    )


@pytest.mark.parametrize("t", [1, 5, 500, 999])
@pytest.mark.parametrize("x0,xt", [(0.8, 0.3), (-1.0, 1.2)])
def test_q_posterior_matches_bayes_on_a_grid(schedule, t, x0, xt):
    # p(x_{t-1} | x_t, x0) ∝ q(x_t | x_{t-1}) q(x_{t-1} | x0), evaluated on a fine grid.
    beta = schedule.betas[t].item()
    alpha_bar_prev = math.prod(1 - b for b in schedule.betas[:t].tolist())
    grid = torch.linspace(-6, 6, 400_001, dtype=torch.float64)
    f64 = lambda v: torch.tensor(
        v, dtype=torch.float64
    )  # Python floats would become float32 here
    log_w = Normal(math.sqrt(1 - beta) * grid, f64(math.sqrt(beta))).log_prob(f64(xt))
    log_w = log_w + Normal(
        f64(math.sqrt(alpha_bar_prev) * x0), f64(math.sqrt(1 - alpha_bar_prev))
    ).log_prob(grid)
    w = torch.softmax(log_w, dim=0)
    grid_mean = (w * grid).sum().item()
    grid_var = (w * (grid - grid_mean) ** 2).sum().item()
    post = q_posterior(
        schedule,
        torch.tensor([x0], dtype=torch.float64),
        torch.tensor([xt], dtype=torch.float64),
        t,
    )
    # The grid step 3e-5 is far below the posterior sd (>= 0.01 here), so the quadrature error
    # is ~1e-9 relative; 1e-6 leaves room while catching any wrong coefficient.
    assert post.mean.item() == pytest.approx(grid_mean, rel=1e-6, abs=1e-9)
    assert post.variance.item() == pytest.approx(grid_var, rel=1e-6)


def test_q_posterior_at_t0_is_a_point_mass_at_x0(schedule):
    x0, xt = torch.tensor([0.4]), torch.tensor([0.41])
    post = q_posterior(schedule, x0, xt, 0)
    assert post.mean.item() == pytest.approx(0.4) and post.variance.item() == 0.0


def test_x0_and_eps_predictions_invert_q_sample(schedule):
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(8, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(8, 1, 4, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 2, 100, 500, 900, 998, 999])
    xt = q_sample(schedule, x0, t, eps)
    torch.testing.assert_close(
        predict_x0_from_eps(schedule, xt, t, eps), x0, rtol=1e-9, atol=1e-9
    )
    torch.testing.assert_close(
        predict_eps_from_x0(schedule, xt, t, x0), eps, rtol=1e-9, atol=1e-9
    )


def test_p_mean_with_true_eps_is_the_posterior_mean(schedule):
    g = torch.Generator().manual_seed(1)
    x0 = torch.randn(6, 3, generator=g, dtype=torch.float64)
    eps = torch.randn(6, 3, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 1, 10, 300, 700, 999])
    xt = q_sample(schedule, x0, t, eps)
    torch.testing.assert_close(
        p_mean_from_eps(schedule, xt, t, eps), q_posterior(schedule, x0, xt, t).mean
    )


def test_float32_inputs_give_float32_outputs(schedule):
    x0 = torch.randn(2, 5)
    out = q_sample(schedule, x0, 3, torch.randn(2, 5))
    assert out.dtype == torch.float32


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_vlb_term_is_the_kl_of_torch_distributions(schedule, variance):
    g = torch.Generator().manual_seed(2)
    x0 = torch.randn(5, 7, generator=g, dtype=torch.float64)
    eps = torch.randn(5, 7, generator=g, dtype=torch.float64)
    eps_theta = eps + 0.1 * torch.randn(5, 7, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 2, 50, 600, 999])
    xt = q_sample(schedule, x0, t, eps)
    post = q_posterior(schedule, x0, xt, t)
    sigma2 = (
        schedule.posterior_variance if variance == "beta_tilde" else schedule.betas
    )[t].unsqueeze(1)
    ref = kl_divergence(
        Normal(post.mean, post.variance.sqrt()),
        Normal(p_mean_from_eps(schedule, xt, t, eps_theta), sigma2.sqrt()),
    ).sum(dim=1)
    torch.testing.assert_close(
        vlb_term(schedule, x0, xt, t, eps_theta, variance), ref, rtol=1e-9, atol=1e-12
    )


def test_vlb_term_at_t0_is_the_decoder_nll_from_scipy(schedule):
    pixels = torch.tensor([[0, 17, 128, 255]], dtype=torch.float64)
    x0 = pixels / 127.5 - 1
    eps_theta = torch.tensor([[0.3, -0.2, 0.0, 1.0]], dtype=torch.float64)
    xt = q_sample(schedule, x0, 0, torch.zeros_like(x0))
    mean = p_mean_from_eps(schedule, xt, 0, eps_theta).numpy()[0]
    scale = math.sqrt(
        schedule.posterior_variance[1].item()
    )  # beta_tilde_0 = 0 is clipped to beta_tilde_1
    x = x0.numpy()[0]
    upper = [math.inf if v > 0.999 else v + 1 / 255 for v in x]
    lower = [-math.inf if v < -0.999 else v - 1 / 255 for v in x]
    ref = -sum(
        math.log(stats.norm.cdf(u, m, scale) - stats.norm.cdf(lo, m, scale))
        for u, lo, m in zip(upper, lower, mean)
    )
    assert vlb_term(schedule, x0, xt, 0, eps_theta).item() == pytest.approx(
        ref, rel=1e-9
    )


def test_vlb_prior_term_matches_torch_distributions(schedule):
    x0 = torch.tensor([[1.0, -1.0, 0.3]], dtype=torch.float64)
    ab = schedule.alpha_bars[-1]
    ref = kl_divergence(Normal(ab.sqrt() * x0, (1 - ab).sqrt()), Normal(0.0, 1.0)).sum(
        dim=1
    )
    torch.testing.assert_close(vlb_prior_term(schedule, x0), ref)


@pytest.mark.parametrize("variance", ["beta_tilde", "beta"])
def test_weighted_loss_differs_from_kl_by_a_constant_in_theta(schedule, variance):
    # L_{t-1} = lambda_t ||eps - eps_theta||^2 + C_t: the difference must not depend on eps_theta.
    g = torch.Generator().manual_seed(3)
    x0 = torch.randn(4, 6, generator=g, dtype=torch.float64)
    eps = torch.randn(4, 6, generator=g, dtype=torch.float64)
    t = torch.tensor([1, 30, 400, 999])
    xt = q_sample(schedule, x0, t, eps)
    gaps = []
    for scale in (0.0, 0.5, 2.0):
        eps_theta = eps + scale * torch.randn(4, 6, generator=g, dtype=torch.float64)
        gaps.append(
            vlb_term(schedule, x0, xt, t, eps_theta, variance)
            - loss_weighted(schedule, t, eps, eps_theta, variance)
        )
    torch.testing.assert_close(gaps[1], gaps[0], rtol=1e-7, atol=1e-9)
    torch.testing.assert_close(gaps[2], gaps[0], rtol=1e-7, atol=1e-9)
    if (
        variance == "beta_tilde"
    ):  # sigma^2 = beta_tilde: the variance part of the KL vanishes
        torch.testing.assert_close(
            gaps[0], torch.zeros(4, dtype=torch.float64), rtol=0, atol=1e-9
        )


def test_vlb_weight_for_beta_tilde_is_larger_than_for_beta(schedule):
    assert (
        vlb_weights(schedule, "beta_tilde")[1:] >= vlb_weights(schedule, "beta")[1:]
    ).all()


def test_loss_simple_is_mean_squared_error_per_example():
    eps = torch.zeros(2, 3)
    eps_theta = torch.tensor([[1.0, 1.0, 1.0], [0.0, 0.0, 3.0]])
    torch.testing.assert_close(loss_simple(eps, eps_theta), torch.tensor([1.0, 3.0]))


def test_bits_per_dim_divides_by_dims_and_ln2():
    assert nats_to_bits_per_dim(
        torch.tensor([784 * math.log(2.0)]), 784
    ).item() == pytest.approx(1.0)


# --- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("t", [-1, 1000, 5000])
def test_int_t_out_of_range_is_rejected(schedule, t):
    with pytest.raises(ValueError, match=r"t must be in \[0, 999\] \(T=1000\)"):
        q_sample(schedule, torch.zeros(2, 3), t, torch.zeros(2, 3))


def test_tensor_t_out_of_range_is_rejected(schedule):
    with pytest.raises(ValueError, match=r"t must be in \[0, 999\].*from 0 to 1000"):
        q_sample(
            schedule, torch.zeros(2, 3), torch.tensor([0, 1000]), torch.zeros(2, 3)
        )


def test_float_t_is_rejected(schedule):
    with pytest.raises(TypeError, match="t must have an integer dtype"):
        q_sample(
            schedule, torch.zeros(2, 3), torch.tensor([1.0, 2.0]), torch.zeros(2, 3)
        )


def test_t_with_wrong_batch_is_rejected(schedule):
    with pytest.raises(ValueError, match=r"t must have shape \(2,\)"):
        q_sample(
            schedule, torch.zeros(2, 3), torch.tensor([1, 2, 3]), torch.zeros(2, 3)
        )


def test_noise_shape_mismatch_is_rejected(schedule):
    with pytest.raises(
        ValueError, match=r"noise must have the shape of x0, \(2, 3\); got \(2, 4\)"
    ):
        q_sample(schedule, torch.zeros(2, 3), 1, torch.zeros(2, 4))


def test_noise_dtype_mismatch_is_rejected(schedule):
    with pytest.raises(
        ValueError,
        match="noise must have the dtype of x_prev, torch.float32; got torch.float64",
    ):
        q_step(schedule, torch.zeros(2, 3), 1, torch.zeros(2, 3, dtype=torch.float64))


def test_noise_device_mismatch_is_rejected(schedule):
    # The meta device stands in for a GPU: the check fires before any arithmetic.
    with pytest.raises(
        ValueError, match="noise must be on the device of x0, cpu; got meta"
    ):
        q_sample(schedule, torch.zeros(2, 3), 1, torch.zeros(2, 3, device="meta"))


def test_t_device_mismatch_is_rejected(schedule):
    with pytest.raises(ValueError, match="t must be on the device of x"):
        q_sample(
            schedule,
            torch.zeros(2, 3),
            torch.zeros(2, dtype=torch.long, device="meta"),
            torch.zeros(2, 3),
        )


def test_integer_x_is_rejected(schedule):
    with pytest.raises(TypeError, match="x0 must be a floating-point tensor"):
        q_sample(schedule, torch.zeros(2, 3, dtype=torch.long), 1, torch.zeros(2, 3))


def test_unknown_variance_is_rejected(schedule):
    x = torch.zeros(1, 2)
    with pytest.raises(
        ValueError, match=r"variance must be one of \('beta_tilde', 'beta'\)"
    ):
        vlb_term(schedule, x, x, 1, x, variance="learned")


# --- the kernels: what the checked functions and every loop call -------------------------


def test_each_checked_function_is_its_kernel(schedule):
    from ddpm_lite import diffusion as d

    g = torch.Generator().manual_seed(0)
    x0, eps, xt = (
        torch.randn(4, 3, generator=g, dtype=torch.float64) for _ in range(3)
    )
    t = torch.tensor([0, 1, 500, 999])
    ab = schedule.alpha_bars[t][:, None]
    assert torch.equal(
        d.q_sample(schedule, x0, t, eps), d.forward_marginal(x0, eps, ab)
    )
    assert torch.equal(
        d.predict_x0_from_eps(schedule, xt, t, eps), d.x0_from_eps(xt, eps, ab)
    )
    assert torch.equal(
        d.predict_eps_from_x0(schedule, xt, t, x0), d.eps_from_x0(xt, x0, ab)
    )
    assert torch.equal(
        d.q_posterior(schedule, x0, xt, t).mean, d.posterior_mean(schedule, x0, xt, t)
    )
    assert torch.equal(
        d.p_mean_from_eps(schedule, xt, t, eps), d.model_mean(schedule, xt, t, eps)
    )


def test_the_kernels_read_nothing_on_the_host(schedule, request):
    from ddpm_lite import diffusion as d

    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(2, 4, generator=g, dtype=torch.float64)
    t = torch.tensor([0, 7])
    request.getfixturevalue("no_host_sync")
    ab = gather(schedule.alpha_bars, t, x0)
    xt = d.forward_marginal(x0, eps, ab)
    d.x0_from_eps(xt, eps, ab), d.eps_from_x0(xt, x0, ab)
    d.posterior_mean(schedule, x0, xt, t), d.model_mean(schedule, xt, t, eps)
    # (bound_term is left out: its decoder term checks that x0 lies in [-1, 1], one
    # host read per call, which the evaluation chapters and benchmarks can afford.)
