"""One network call: the flow map of the straight path and its average velocity.

On the straight path x_r = (1 - r) x0 + r eps (r = 1 the noise, r = 0 the data) the
ODE dx/dr = nu(x, r) carries x_r to x_s for every s < r. That map, the flow map
X(x, s, r), is what a one-step generator learns. Written through the average velocity

    u(x, s, r) = (x - X(x, s, r)) / (r - s) = 1 / (r - s) int_s^r nu(x_tau, tau) dtau,

one step x_s = x_r - (r - s) u(x_r, s, r) is exact for every step size. Differentiating
(r - s) u(x_r, s, r) = int_s^r nu(x_tau, tau) dtau in r along the path gives MeanFlow's
identity (Geng et al. 2025)

    u(x_r, s, r) = nu(x_r, r) - (r - s) du/dr,   du/dr = grad_x u . nu + d_r u,

the total derivative being one Jacobian-vector product with tangent (nu, 0, 1). A
network u_theta trained to satisfy it needs neither a teacher nor an ODE solve.
Book: eq. meanflow-identity
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch
from torch import Tensor
from torch.nn.attention import SDPBackend, sdpa_kernel

from . import _validate as v
from .objectives import FLOW_TIME_SCALE, path_coefficients, target
from .sampling import SamplerState, final_sample
from .solvers import heun_update

# u_theta(x, s, r): the average velocity from time r down to time s
AverageVelocityModel = Callable[[Tensor, Tensor, Tensor], Tensor]
VelocityModel = Callable[[Tensor, Tensor], Tensor]


def _column(time: Tensor, like: Tensor) -> Tensor:
    """(B,) times as (B, 1, ..., 1), to scale (B, ...) tensors row by row."""
    return time.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def integrate_flow(
    velocity_model: VelocityModel, x: Tensor, r: float, s: float, num_steps: int = 64
) -> Tensor:
    """X(x, s, r): x at time r carried to time s along dx/dr = nu(x, r) by num_steps
    classical Runge-Kutta steps (error ~ step^4): the flow map, to check one-step
    models against.
    """
    v.check_tensor("x", x)
    v.at_least("num_steps", num_steps, 1)

    def nu(point: Tensor, time: float) -> Tensor:
        return velocity_model(point, torch.full_like(point[:, 0], time))

    # every stage's time from one grid, so the last is s exactly: (r + k h) + h can
    # land a round-off below 0, where the velocity divides by the time
    times = torch.linspace(r, s, num_steps + 1, dtype=torch.float64).tolist()
    for time, next_time in zip(times, times[1:]):
        h, middle = next_time - time, 0.5 * (time + next_time)
        k1 = nu(x, time)
        k2 = nu(x + 0.5 * h * k1, middle)
        k3 = nu(x + 0.5 * h * k2, middle)
        k4 = nu(x + h * k3, next_time)
        x = x + h / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x


def average_velocity(
    velocity_model: VelocityModel, x: Tensor, s: float, r: float, num_steps: int = 64
) -> Tensor:
    """u(x, s, r) = (x - X(x, s, r)) / (r - s), the flow map by `integrate_flow`.

    Book: eq. average-velocity
    """
    if not s < r:
        raise ValueError(f"s must be below r (the map runs to the data), got {s}, {r}")
    return (x - integrate_flow(velocity_model, x, r, s, num_steps)) / (r - s)


def meanflow_target(
    u_model: AverageVelocityModel, xr: Tensor, s: Tensor, r: Tensor, nu: Tensor
) -> tuple[Tensor, Tensor]:
    """(u_theta(x_r, s, r), its target nu - (r - s) du/dr), du/dr the derivative along
    the path: one forward-mode pass (torch.func.jvp) with tangent (nu, 0, 1). The
    target carries no gradient; u does.

    xr, nu: (B, ...); s, r: (B,) with s <= r. The pass runs attention on the math
    kernel: the fused ones (flash, memory-efficient; on CUDA, and on the CPU for some
    shapes) have no forward-mode derivative in torch 2.13.
    Book: eq. meanflow-target
    """
    tangents = (nu, torch.zeros_like(s), torch.ones_like(r))
    with sdpa_kernel(SDPBackend.MATH):
        u, du_dr = torch.func.jvp(u_model, (xr, s, r), tangents)
    return u, (nu - _column(r - s, xr) * du_dr).detach()


def meanflow_loss(
    u_model: AverageVelocityModel,
    x0: Tensor,
    eps: Tensor,
    s: Tensor,
    r: Tensor,
    teacher: VelocityModel | None = None,
    weight_power: float = 0.0,
) -> Tensor:
    """mean || u_theta(x_r, s, r) - sg(nu - (r - s) du/dr) ||^2, x_r = (1-r) x0 + r eps.

    nu is the conditional velocity eps - x0 (MeanFlow, no teacher), or a teacher's
    velocity nu(x_r, r), its expectation given x_r, never more variable. The target is
    affine in nu, so both have the same expected target. Where s = r the loss is flow
    matching's. weight_power p > 0 weights each example's squared error e by
    sg(1 / (e + 1e-3)^p) (Geng et al.'s adaptive weight; they use p = 1 on ImageNet,
    0.75 on CIFAR-10): large errors of a noisy target count less.
    Book: eq. meanflow-target
    """
    a, b = path_coefficients("flow", None, r, x0)
    xr = a * x0 + b * eps
    if teacher is None:
        nu = target("flow", x0, eps, a, b)
    else:
        with torch.no_grad():
            nu = teacher(xr, r)
    u, u_target = meanflow_target(u_model, xr, s, r, nu)
    error = (u - u_target).pow(2).flatten(1).mean(1)  # per example
    if weight_power:
        error = error / (error.detach() + 1e-3) ** weight_power
    return error.mean()


def time_pairs(
    n: int, generator: torch.Generator, flow_fraction: float = 0.75
) -> tuple[Tensor, Tensor]:
    """(s, r), n pairs with 0 <= s <= r <= 1: r the larger of two uniform times, s the
    smaller, except in a fraction flow_fraction of rows where s = r (flow matching's
    instantaneous velocity, the identity's anchor; Geng et al. use 0.75).
    """
    v.at_least("n", n, 1)
    if not 0 <= flow_fraction <= 1:
        raise ValueError(f"flow_fraction must be in [0, 1], got {flow_fraction}")
    device = generator.device
    times = torch.rand(n, 2, generator=generator, device=device)
    r, s = times.max(dim=1).values, times.min(dim=1).values
    same = torch.rand(n, generator=generator, device=device) < flow_fraction
    return torch.where(same, r, s), r


def flow_map_trajectory(
    u_model: AverageVelocityModel, x1: Tensor, num_steps: int = 1
) -> Iterator[SamplerState]:
    """Yield x_1 (r = 1), then x after each of num_steps network calls on an even grid
    down to r = 0: each step x_s = x_r - (r - s) u_theta(x_r, s, r), an Euler step
    (`heun_update`) whose slope is the average velocity, so exact for an exact u at
    any num_steps.
    Book: eq. flow-map-step
    """
    v.check_tensor("x1", x1)
    v.at_least("num_steps", num_steps, 1)
    times = torch.linspace(1.0, 0.0, num_steps + 1, dtype=torch.float64).tolist()
    x = x1
    yield SamplerState(times[0], x, None)
    for r, s in zip(times, times[1:]):
        row = torch.ones(x.shape[0], dtype=x.dtype, device=x.device)
        x = heun_update(x, r, s, u_model(x, s * row, r * row), None)
        yield SamplerState(s, x, None)


def flow_map_sample(
    u_model: AverageVelocityModel, x1: Tensor, num_steps: int = 1
) -> Tensor:
    """x_0 from x_1 in num_steps network calls (`flow_map_trajectory`)."""
    return final_sample(flow_map_trajectory(u_model, x1, num_steps))


def u_theta(
    net: Callable, x: Tensor, s: Tensor, r: Tensor, y: Tensor | None = None
) -> Tensor:
    """The average velocity of a U-Net with a second time (`UNetConfig.time_gap`): it
    reads r and the gap r - s, each times FLOW_TIME_SCALE, as a velocity model reads r.
    """
    return net(x, FLOW_TIME_SCALE * r, y, gap=FLOW_TIME_SCALE * (r - s))


class AverageVelocityNet(torch.nn.Module):
    """u_theta(x, s, r[, y]) of a U-Net with a second time (`u_theta`): a velocity
    model's weights load into it and start it at u = nu (the gap's layer starts at 0).
    """

    objective = "meanflow"

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        if not getattr(net.config, "time_gap", False):
            raise ValueError("the net needs a second time input (time_gap=True)")
        self.net = net

    @property
    def config(self):
        return self.net.config

    def forward(
        self, x: Tensor, s: Tensor, r: Tensor, y: Tensor | None = None
    ) -> Tensor:
        gap = FLOW_TIME_SCALE * (r - s)
        return self.net(x, FLOW_TIME_SCALE * r, y, gap=gap)
