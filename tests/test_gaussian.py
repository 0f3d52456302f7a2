import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.distributions import Normal, kl_divergence

from ddpm_lite.gaussian import (
    BIN_HALF_WIDTH,
    discretized_gaussian_log_likelihood,
    merge_gaussians,
    normal_kl,
    reparameterize,
)

# Monte Carlo checks use k = 5 standard errors: a two-sided false failure rate of 6e-7
# per check.
K_SE = 5.0


def assert_moments(samples, mean, var):
    """Sample mean within 5 SE (SE = sqrt(var/n)); sample variance within 5 SE of a
    variance for Gaussian data, SE = var * sqrt(2/(n-1))."""
    n = samples.numel()
    se_mean = math.sqrt(var / n)
    se_var = var * math.sqrt(2 / (n - 1))
    assert abs(samples.mean().item() - mean) < K_SE * se_mean
    assert abs(samples.var().item() - var) < K_SE * se_var


def test_reparameterized_samples_have_the_target_moments():
    g = torch.Generator().manual_seed(0)
    eps = torch.randn(200_000, generator=g, dtype=torch.float64)
    z = reparameterize(
        torch.tensor(1.5, dtype=torch.float64),
        torch.tensor(0.7, dtype=torch.float64),
        eps,
    )
    assert_moments(z, 1.5, 0.49)


def test_reparameterized_sample_carries_gradients_to_mean_and_std():
    mean = torch.tensor(0.3, requires_grad=True)
    std = torch.tensor(2.0, requires_grad=True)
    eps = torch.tensor([0.5, -1.0, 2.0])
    reparameterize(mean, std, eps).sum().backward()
    assert mean.grad.item() == pytest.approx(3.0) and std.grad.item() == pytest.approx(
        1.5
    )


def test_merged_gaussian_matches_monte_carlo_sum():
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x = 0.5 + math.sqrt(0.3) * torch.randn(n, generator=g, dtype=torch.float64)
    y = -2.0 + math.sqrt(1.7) * torch.randn(n, generator=g, dtype=torch.float64)
    merged = merge_gaussians(
        torch.tensor(0.5), torch.tensor(0.3), torch.tensor(-2.0), torch.tensor(1.7)
    )
    assert_moments(x + y, merged.mean.item(), merged.variance.item())


def test_ddpm_two_step_merge_has_variance_one_minus_alpha_product():
    # merging two Gaussians (note 003):
    # sqrt(a_t (1 - a_{t-1})) eps1 + sqrt(1 - a_t) eps2 ~ N(0, 1 - a_t a_{t-1})
    a_t, a_prev = torch.tensor(0.97), torch.tensor(0.99)
    merged = merge_gaussians(
        torch.tensor(0.0), a_t * (1 - a_prev), torch.tensor(0.0), 1 - a_t
    )
    assert merged.variance.item() == pytest.approx(
        1 - a_t.item() * a_prev.item(), rel=1e-6
    )


@pytest.mark.parametrize(
    "m1,v1,m2,v2",
    [
        (0.0, 1.0, 0.0, 1.0),
        (1.0, 0.5, -0.3, 2.0),
        (3.0, 1e-4, 2.9, 1e-3),
        (-1.0, 4.0, 1.0, 0.01),
    ],
)
def test_normal_kl_matches_torch_distributions(m1, v1, m2, v2):
    t = lambda x: torch.tensor(x, dtype=torch.float64)
    ours = normal_kl(t(m1), t(math.log(v1)), t(m2), t(math.log(v2)))
    ref = kl_divergence(Normal(t(m1), t(v1).sqrt()), Normal(t(m2), t(v2).sqrt()))
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-12)


def test_normal_kl_matches_numerical_integral():
    m1, s1, m2, s2 = 0.4, 0.8, -0.2, 1.3
    p, q = stats.norm(m1, s1), stats.norm(m2, s2)
    ref, _ = integrate.quad(
        lambda x: p.pdf(x) * (p.logpdf(x) - q.logpdf(x)), -np.inf, np.inf
    )
    ours = normal_kl(
        *(
            torch.tensor(v, dtype=torch.float64)
            for v in (m1, math.log(s1**2), m2, math.log(s2**2))
        )
    )
    assert ours.item() == pytest.approx(ref, rel=1e-8)


def test_normal_kl_is_zero_for_equal_gaussians_and_positive_otherwise():
    m = torch.tensor([0.0, 1.0])
    lv = torch.tensor([0.0, -3.0])
    assert torch.equal(normal_kl(m, lv, m, lv), torch.zeros(2))
    assert (normal_kl(m, lv, m + 0.1, lv) > 0).all()


PIXEL_GRID = torch.linspace(-1.0, 1.0, 256, dtype=torch.float64)


@pytest.mark.parametrize(
    "mean,log_scale",
    [
        (0.0, math.log(0.1)),
        (0.73, math.log(0.01)),
        (-0.98, math.log(0.5)),
        (0.2, math.log(1e-4)),
    ],
)
def test_discretized_likelihood_sums_to_one_over_256_bins(mean, log_scale):
    logp = discretized_gaussian_log_likelihood(
        PIXEL_GRID,
        torch.full_like(PIXEL_GRID, mean),
        torch.full_like(PIXEL_GRID, log_scale),
    )
    assert logp.exp().sum().item() == pytest.approx(1.0, abs=1e-9)


def test_discretized_likelihood_matches_scipy_bin_probabilities():
    mean, scale = 0.1, 0.3
    logp = discretized_gaussian_log_likelihood(
        PIXEL_GRID,
        torch.full_like(PIXEL_GRID, mean),
        torch.full_like(PIXEL_GRID, math.log(scale)),
    )
    x = PIXEL_GRID.numpy()
    upper = np.where(x > 0.999, np.inf, x + 1 / 255)
    lower = np.where(x < -0.999, -np.inf, x - 1 / 255)
    ref = stats.norm.cdf(upper, mean, scale) - stats.norm.cdf(lower, mean, scale)
    np.testing.assert_allclose(logp.exp().numpy(), ref, rtol=1e-9, atol=1e-15)


def test_discretized_likelihood_is_finite_far_in_the_tails():
    # A bin 1000 scales from the mean: naive cdf differences give log(0) = -inf here.
    x = torch.tensor([0.5], dtype=torch.float64)
    logp = discretized_gaussian_log_likelihood(
        x, torch.tensor([-0.5]), torch.tensor([math.log(1e-3)])
    )
    ref = stats.norm.logsf(
        (0.5 - 1 / 255 + 0.5) / 1e-3
    )  # the bin's lower edge dominates
    assert torch.isfinite(logp).all()
    assert logp.item() == pytest.approx(ref, rel=1e-3)


def test_bin_width_is_two_over_255():
    assert 2 * BIN_HALF_WIDTH == pytest.approx((PIXEL_GRID[1] - PIXEL_GRID[0]).item())


def test_discretized_likelihood_rejects_x_outside_unit_interval():
    with pytest.raises(ValueError, match=r"x must lie in \[-1, 1\]"):
        discretized_gaussian_log_likelihood(
            torch.tensor([1.5]), torch.zeros(1), torch.zeros(1)
        )
