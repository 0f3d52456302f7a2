"""The flow map and MeanFlow's average velocity, against a Gaussian's closed form.

For x0 ~ N(m, sd^2) in 1-D, x_r = (1 - r) x0 + r eps is N((1 - r) m, (1 - r)^2 sd^2 + r^2)
and the ODE's flow map, monotone in 1-D, sends each quantile to the same quantile:
X(x, s, r) = mean_s + std_s / std_r (x - mean_r). Every check below compares with that.
"""

import math

import pytest
import torch

from ddpm_lite.flow_map import (
    average_velocity,
    flow_map_sample,
    integrate_flow,
    meanflow_loss,
    meanflow_target,
    time_pairs,
)
from ddpm_lite.toy import ToyFlowMapMLP, exact_velocity_model, gaussian_mixture_1d

M, SD = 1.5, 0.4
GAUSSIAN = gaussian_mixture_1d([1.0], [M], [SD])


def moments(r):
    return (1 - r) * M, torch.sqrt((1 - r) ** 2 * SD**2 + r**2)


def exact_map(x, s, r):
    (mean_s, std_s), (mean_r, std_r) = moments(s), moments(r)
    return mean_s + std_s / std_r * (x - mean_r)


def exact_u(x, s, r):
    """The closed-form average velocity, differentiable in x, s and r (for the JVP)."""
    s, r = s.reshape(-1, 1), r.reshape(-1, 1)
    return (x - exact_map(x, s, r)) / (r - s)


def points(n=64, seed=0):
    return torch.randn(n, 1, generator=torch.Generator().manual_seed(seed)).double()


@pytest.mark.parametrize("r,s", [(0.9, 0.1), (0.4, 0.0), (1.0, 0.0)])
def test_runge_kutta_on_the_exact_velocity_gives_the_closed_form_flow_map(r, s):
    x = points()
    # (0.4, 0.0): (0.4 + 63 h) + h is -2e-17, not 0, and nu divides by r
    carried = integrate_flow(exact_velocity_model(GAUSSIAN), x, r, s)
    expected = exact_map(x, torch.tensor(s).double(), torch.tensor(r).double())
    # RK4 with 64 steps of 0.0125 on a smooth field: error ~ 1e-9
    torch.testing.assert_close(carried, expected, rtol=0, atol=1e-7)


def test_the_exact_velocity_at_the_data_end_is_minus_x_and_continuous():
    x = points()
    nu = exact_velocity_model(GAUSSIAN)
    torch.testing.assert_close(nu(x, torch.zeros(64).double()), -x)
    # nu(x, r) - (-x) is O(r) near r = 0
    torch.testing.assert_close(
        nu(x, torch.full((64,), 1e-6).double()), -x, atol=1e-4, rtol=0
    )


def test_average_velocity_is_the_chord_of_the_flow_map():
    x = points()
    u = average_velocity(exact_velocity_model(GAUSSIAN), x, 0.2, 0.7)
    s, r = torch.full((64,), 0.2).double(), torch.full((64,), 0.7).double()
    torch.testing.assert_close(u, exact_u(x, s, r), rtol=0, atol=1e-7)


def test_average_velocity_refuses_a_map_away_from_the_data():
    with pytest.raises(ValueError, match="s must be below r"):
        average_velocity(exact_velocity_model(GAUSSIAN), points(), 0.7, 0.2)


def test_the_exact_average_velocity_is_its_own_meanflow_target():
    """u = nu - (r - s) du/dr holds for the true u: the identity, and the JVP's tangent."""
    x1 = points(seed=1)
    gen = torch.Generator().manual_seed(2)
    s, r = time_pairs(64, gen, flow_fraction=0.0)
    s, r = s.double(), r.double().clamp(min=0.05)  # nu is exact but divides by r
    xr = exact_map(x1, r.reshape(-1, 1), torch.ones(64, 1).double())
    nu = exact_velocity_model(GAUSSIAN)(xr, r)
    u, u_target = meanflow_target(exact_u, xr, s, r, nu)
    torch.testing.assert_close(u_target, u, rtol=0, atol=1e-10)


def test_the_exact_average_velocity_has_zero_loss_with_the_exact_teacher():
    gen = torch.Generator().manual_seed(4)
    x0 = GAUSSIAN.sample(64, gen)
    eps = torch.randn(64, 1, generator=gen, dtype=torch.float64)
    s, r = time_pairs(64, gen, flow_fraction=0.0)  # exact_u divides by r - s
    s, r = s.double(), r.double().clamp(min=0.05)
    loss = meanflow_loss(exact_u, x0, eps, s, r, teacher=exact_velocity_model(GAUSSIAN))
    assert loss.item() < 1e-20  # float64 round-off, squared
    # without the teacher, the conditional velocity is a noisy draw: the loss is not 0
    assert meanflow_loss(exact_u, x0, eps, s, r).item() > 0.01


def test_the_jvp_is_the_derivative_along_the_path_by_finite_differences():
    torch.manual_seed(0)
    net = ToyFlowMapMLP(dim=2, hidden=32, time_scale=1000.0).double()
    x = torch.randn(8, 2).double()
    nu = torch.randn(8, 2).double()
    s, r = torch.rand(8).double() * 0.4, 0.5 + torch.rand(8).double() * 0.4
    u, u_target = meanflow_target(net, x, s, r, nu)
    du_dr = (nu - u_target) / (r - s)[:, None]
    # the r features turn at up to 1000 rad per unit r, so the third derivative is
    # ~1e9: truncation h^2 1e9 / 6 ~ 2e-6 at h = 1e-7, round-off 1e-16 / h ~ 1e-9
    h = 1e-7
    forward = net(x + h * nu, s, r + h)
    backward = net(x - h * nu, s, r - h)
    torch.testing.assert_close(du_dr, (forward - backward) / (2 * h), rtol=0, atol=1e-5)


def test_the_loss_gradient_flows_through_u_only():
    torch.manual_seed(0)
    net = ToyFlowMapMLP(dim=2, hidden=32).double()
    x0, eps = torch.randn(16, 2).double(), torch.randn(16, 2).double()
    s, r = time_pairs(16, torch.Generator().manual_seed(0), flow_fraction=0.5)
    s, r = s.double(), r.double()
    meanflow_loss(net, x0, eps, s, r).backward()
    through_jvp = [p.grad.clone() for p in net.parameters()]
    net.zero_grad()
    xr = (1 - r)[:, None] * x0 + r[:, None] * eps
    _, u_target = meanflow_target(net, xr, s, r, eps - x0)
    # a plain forward pass against a constant target
    (net(xr, s, r) - u_target.detach()).pow(2).mean().backward()
    for a, b in zip(through_jvp, (p.grad for p in net.parameters())):
        torch.testing.assert_close(a, b)


def test_where_s_equals_r_the_loss_is_flow_matching():
    torch.manual_seed(0)
    net = ToyFlowMapMLP(dim=2, hidden=32)
    x0, eps, r = torch.randn(16, 2), torch.randn(16, 2), torch.rand(16)
    xr = (1 - r)[:, None] * x0 + r[:, None] * eps
    flow_matching = (net(xr, r, r) - (eps - x0)).pow(2).mean()
    torch.testing.assert_close(meanflow_loss(net, x0, eps, r, r), flow_matching)


def test_time_pairs_are_ordered_with_the_asked_fraction_equal():
    s, r = time_pairs(20_000, torch.Generator().manual_seed(0), flow_fraction=0.75)
    assert bool((s <= r).all()) and float(s.min()) >= 0 and float(r.max()) <= 1
    # binomial SE of the fraction: sqrt(0.75 * 0.25 / 20_000) = 0.0031; 5 SE
    assert abs(float((s == r).double().mean()) - 0.75) < 0.016
    # the larger of two uniforms has mean 2/3 (SE 0.0017 at 20,000): 5 SE
    assert abs(float(r.mean()) - 2 / 3) < 0.009


@pytest.mark.parametrize("fraction", [-0.1, 1.5])
def test_time_pairs_refuse_a_fraction_outside_the_unit_interval(fraction):
    with pytest.raises(ValueError, match="flow_fraction must be in"):
        time_pairs(4, torch.Generator(), flow_fraction=fraction)


@pytest.mark.parametrize("num_steps", [1, 2, 4])
def test_an_exact_average_velocity_samples_exactly_at_any_number_of_steps(num_steps):
    x1 = points(seed=3)
    x0 = flow_map_sample(exact_u, x1, num_steps)
    expected = exact_map(x1, torch.tensor(0.0).double(), torch.tensor(1.0).double())
    torch.testing.assert_close(x0, expected, rtol=0, atol=1e-12)
    # the exact map sends N(0, 1) to the data's law N(M, SD^2)
    assert math.isclose(float(expected.std() / x1.std()), SD, rel_tol=1e-9)


def test_flow_map_sample_refuses_zero_steps():
    with pytest.raises(ValueError, match="num_steps"):
        flow_map_sample(exact_u, points(), 0)


def test_the_jvp_through_the_u_net_matches_reverse_mode_and_finite_differences():
    from ddpm_lite.flow_map import AverageVelocityNet
    from ddpm_lite.unet import UNet, UNetConfig

    torch.manual_seed(0)
    config = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                        attention_resolutions=(14,), groups=4, dropout=0.0,
                        time_gap=True)  # fmt: skip
    u_net = AverageVelocityNet(UNet(config).double()).eval()
    with torch.no_grad():  # as if trained: zero-initialised layers no longer zero
        for p in u_net.parameters():
            p.add_(0.02 * torch.randn_like(p))
    x, nu = torch.randn(2, 1, 28, 28).double(), torch.randn(2, 1, 28, 28).double()
    s, r = torch.tensor([0.1, 0.3]).double(), torch.tensor([0.6, 0.9]).double()
    u, u_target = meanflow_target(u_net, x, s, r, nu)
    du_dr = (nu - u_target) / (r - s).reshape(-1, 1, 1, 1)
    # reverse mode (autograd's double-backward JVP), independent of torch.func's
    # forward mode; the time embedding runs in float32, so finite differences in r
    # would only see its rounding
    tangents = (nu, torch.zeros_like(s), torch.ones_like(r))
    _, by_reverse = torch.autograd.functional.jvp(u_net, (x, s, r), tangents)
    torch.testing.assert_close(du_dr, by_reverse, rtol=1e-6, atol=1e-9)
    # the x part against central differences in float64
    _, du_dx_nu = meanflow_target(lambda x_, s_, r_: u_net(x_, s, r), x, s, r, nu)
    delta = 1e-6
    numeric = (u_net(x + delta * nu, s, r) - u_net(x - delta * nu, s, r)) / (2 * delta)
    by_jvp = (nu - du_dx_nu) / (r - s).reshape(-1, 1, 1, 1)
    torch.testing.assert_close(by_jvp, numeric, rtol=0, atol=1e-8)
    # and the net reads s: the gap r - s is its second time
    assert not torch.allclose(u_net(x, 0 * s, r), u_net(x, s, r))


def test_average_velocity_net_needs_a_second_time():
    from ddpm_lite.flow_map import AverageVelocityNet
    from ddpm_lite.unet import UNet, UNetConfig

    with pytest.raises(ValueError, match="time_gap=True"):
        AverageVelocityNet(UNet(UNetConfig(base_channels=8, groups=4)))


def test_the_adaptive_weight_divides_each_examples_error_by_its_own_size():
    torch.manual_seed(0)
    net = ToyFlowMapMLP(dim=2, hidden=16)
    x0, eps = torch.randn(8, 2), torch.randn(8, 2)
    s, r = time_pairs(8, torch.Generator().manual_seed(0), flow_fraction=0.0)
    xr = (1 - r)[:, None] * x0 + r[:, None] * eps
    u, u_target = meanflow_target(net, xr, s, r, eps - x0)
    error = (u - u_target).pow(2).mean(1).detach()
    expected = (error / (error + 1e-3)).mean()  # p = 1: each term just below 1
    loss = meanflow_loss(net, x0, eps, s, r, weight_power=1.0)
    torch.testing.assert_close(loss, expected)
    assert torch.isclose(meanflow_loss(net, x0, eps, s, r), error.mean())


def test_the_jvp_runs_through_attention_whose_fused_kernel_has_no_forward_mode():
    import torch.nn.functional as F

    # contiguous float32 (B, 1, L, d): the CPU's flash kernel, no forward-mode rule
    q = torch.randn(2, 1, 49, 32)

    def u_model(x, s, r):
        h = F.scaled_dot_product_attention(x, x, x)
        return h * (r - s).reshape(-1, 1, 1, 1)

    with pytest.raises(NotImplementedError, match="forward AD"):
        torch.func.jvp(lambda x: F.scaled_dot_product_attention(x, x, x), (q,), (q,))
    s, r = torch.tensor([0.1, 0.2]), torch.tensor([0.5, 0.9])
    u, u_target = meanflow_target(u_model, q, s, r, torch.randn_like(q))
    assert u.shape == u_target.shape == q.shape and torch.isfinite(u_target).all()
