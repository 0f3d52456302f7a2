"""What the network predicts: eps, x0, v, or flow matching's velocity.

Every path here writes the noisy image as x_t = a_t x0 + b_t eps. DDPM's
variance-preserving path has a_t = sqrt(alpha_bar_t), b_t = sqrt(1 - alpha_bar_t) at
code index t; flow matching's straight path (Lipman et al. 2023, Liu et al. 2023) has
a = 1 - r, b = r at time r in [0, 1]. Every target is another combination,
target = c_t x0 + d_t eps:

    eps:  (c, d) = (0, 1)        x0:   (c, d) = (1, 0)
    v:    (c, d) = (-b_t, a_t)   (Salimans & Ho 2022: d x_t / d phi, a_t = cos phi)
    flow: (c, d) = (-1, 1)       (d x_r / d r on the straight path)

so one loss serves all four, and a prediction together with x_t gives x0 and eps back
by solving the 2 x 2 system [[a, b], [c, d]] (x0, eps) = (x_t, prediction).
Book: eq. target-family
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from . import _validate as v
from .schedules import NoiseSchedule, gather

# "meanflow": the average velocity u_theta(x_r, s, r) on the straight path (`flow_map`),
# whose target is not a fixed combination of x0 and eps
OBJECTIVES = ("eps", "x0", "v", "flow", "meanflow")
TARGET_OBJECTIVES = ("eps", "x0", "v", "flow")  # those with target c x0 + d eps
STRAIGHT_OBJECTIVES = ("flow", "meanflow")
VP_OBJECTIVES = ("eps", "x0", "v")  # the variance-preserving path's
# The U-Net's sinusoidal time embedding was built for code indices 0..999, so the
# straight path's time r in [0, 1] is given to it as 1000 r.
FLOW_TIME_SCALE = 1000.0


def check_objective(objective: str) -> str:
    return v.choice("objective", objective, OBJECTIVES)


def path_coefficients(
    objective: str, schedule: NoiseSchedule, t: Tensor, like: Tensor
) -> tuple[Tensor, Tensor]:
    """(a_t, b_t) of x_t = a_t x0 + b_t eps, shaped (B, 1, ..., 1) like `like`.

    t: (B,) code indices (long) on the variance-preserving path; (B,) times r in
    [0, 1] on flow's straight path (a = 1 - r, b = r; the schedule is then unused).
    """
    if objective in STRAIGHT_OBJECTIVES:
        t = t.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))
        return 1 - t, t
    alpha_bar = gather(schedule.alpha_bars, t, like)
    return torch.sqrt(alpha_bar), torch.sqrt(1 - alpha_bar)


def target_coefficients(
    objective: str, a: Tensor, b: Tensor
) -> tuple[Tensor | float, Tensor | float]:
    """(c_t, d_t) of the objective's target c_t x0 + d_t eps, on the path (a_t, b_t).

    Book: eq. target-family
    """
    return {
        "eps": (0.0, 1.0),
        "x0": (1.0, 0.0),
        "v": (-b, a),
        "flow": (-1.0, 1.0),
    }[objective]


def target(objective: str, x0: Tensor, eps: Tensor, a: Tensor, b: Tensor) -> Tensor:
    """What a network trained for `objective` predicts at x_t = a x0 + b eps."""
    if objective == "eps":
        return eps  # (0, 1): the product would only add round-off-free zeros
    c, d = target_coefficients(objective, a, b)
    return c * x0 + d * eps


def x0_eps_from_prediction(
    objective: str, prediction: Tensor, xt: Tensor, a: Tensor, b: Tensor
) -> tuple[Tensor, Tensor]:
    """(x0, eps) from x_t and a prediction of the objective's target: the solution of
    a x0 + b eps = x_t, c x0 + d eps = prediction (Cramer's rule, det = a d - b c).

    Book: eq. target-inverse
    """
    c, d = target_coefficients(objective, a, b)
    det = a * d - b * c
    return (d * xt - b * prediction) / det, (a * prediction - c * xt) / det


def vp_to_straight(xt: Tensor, alpha_bar: Tensor) -> tuple[Tensor, Tensor]:
    """A point of the variance-preserving path as a point of the straight one:
    x_t / (a_t + b_t) at time r = b_t / (a_t + b_t), with a_t = sqrt(alpha_bar_t),
    b_t = sqrt(1 - alpha_bar_t): a_t x0 + b_t eps becomes (1 - r) x0 + r eps.

    Book: eq. vp-to-straight
    """
    a, b = torch.sqrt(alpha_bar), torch.sqrt(1 - alpha_bar)
    return xt / (a + b), b / (a + b)


def loss_weight(objective: str, snr: Tensor) -> Tensor:
    """w(SNR) with loss_objective = w(SNR) * loss_eps for one prediction, SNR =
    alpha_bar / (1 - alpha_bar) = (a / b)^2: x0 1 / SNR, v 1 + 1 / SNR, the score
    1 + SNR, and flow (at the straight path's r = b / (a + b)) (1 + 1 / sqrt(SNR))^2.

    Book: eq. loss-weights
    """
    weights = {
        "eps": lambda: torch.ones_like(snr),
        "x0": lambda: 1 / snr,
        "v": lambda: 1 + 1 / snr,
        "score": lambda: 1 + snr,
        "flow": lambda: (1 + 1 / torch.sqrt(snr)) ** 2,
    }
    v.choice("objective", objective, tuple(weights))
    return weights[objective]()


def network_time(objective: str, t: Tensor) -> Tensor:
    """The time the U-Net is given: the code index t, or FLOW_TIME_SCALE r for flow."""
    return FLOW_TIME_SCALE * t if objective in STRAIGHT_OBJECTIVES else t


class EpsFromPrediction(nn.Module):
    """An eps-model (eps_theta(x_t, t[, y])) made from a network that predicts x0 or v
    on the variance-preserving path, for the samplers and guidance."""

    def __init__(self, net: nn.Module, objective: str, schedule: NoiseSchedule):
        super().__init__()
        if v.choice("objective", objective, VP_OBJECTIVES) == "eps":
            raise ValueError("an eps network is an eps-model already; use it as it is")
        self.net, self.objective, self.schedule = net, objective, schedule

    @property
    def config(self):
        return self.net.config

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        prediction = self.net(xt, t) if y is None else self.net(xt, t, y)
        a, b = path_coefficients(self.objective, self.schedule, t, xt)
        prediction = prediction.to(xt.dtype)
        return x0_eps_from_prediction(self.objective, prediction, xt, a, b)[1]


class VelocityModel(nn.Module):
    """nu_theta(x, r[, y]): a flow-matching network's velocity at time r in [0, 1]
    (r = 1 is the noise, r = 0 the data), for the straight-path solvers."""

    objective = "flow"

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    @property
    def config(self):
        return self.net.config

    def forward(self, x: Tensor, r: Tensor, y: Tensor | None = None) -> Tensor:
        time = network_time("flow", r)
        return self.net(x, time) if y is None else self.net(x, time, y)


class StraightVelocity(nn.Module):
    """A variance-preserving eps-model read as a velocity model on the straight path,
    for comparing objectives on one time grid: at (x, r) with r = r_t of a code index
    t (`vp_to_straight`), x_t = (a_t + b_t) x and the velocity is eps_hat - x0_hat.
    Only the r_t of code indices are accepted: the network was trained at those.

    Book: eq. vp-to-straight
    """

    objective = "flow"

    def __init__(self, eps_model: nn.Module, schedule: NoiseSchedule):
        super().__init__()
        self.eps_model, self.schedule = eps_model, schedule
        alpha_bars = schedule.alpha_bars.detach().double().cpu()
        self.r_table = vp_to_straight(torch.zeros_like(alpha_bars), alpha_bars)[1]

    @property
    def config(self):
        return self.eps_model.config

    def code_index(self, r: Tensor) -> Tensor:
        """The code index t with r_t = r, for each r (ValueError if there is none)."""
        r = r.detach().double().cpu()
        t = (self.r_table[None, :] - r[:, None]).abs().argmin(dim=1)
        gap = float((self.r_table[t] - r).abs().max())
        if gap > 1e-6:
            raise ValueError(
                f"r must be the straight-path time r_t of a code index t (solvers."
                f"straight_times); the nearest is {gap:.1e} away"
            )
        return t

    def forward(self, x: Tensor, r: Tensor, y: Tensor | None = None) -> Tensor:
        t = self.code_index(r).to(x.device)
        a, b = path_coefficients("eps", self.schedule, t, x)
        xt = (a + b).to(x.dtype) * x
        eps = self.eps_model(xt, t) if y is None else self.eps_model(xt, t, y)
        x0, eps = x0_eps_from_prediction("eps", eps.to(x.dtype), xt, a, b)
        return target("flow", x0, eps, a, b)


def prediction_model(net: nn.Module, objective: str, schedule: NoiseSchedule):
    """What the samplers use: the eps-model of a VP network (the network itself for
    "eps"), the velocity model of a flow network, or the average-velocity model
    u_theta(x, s, r[, y]) of a MeanFlow network."""
    check_objective(objective)
    if objective == "eps":
        return net
    if objective == "flow":
        return VelocityModel(net)
    if objective == "meanflow":
        from .flow_map import AverageVelocityNet  # flow_map builds on this module

        return AverageVelocityNet(net)
    return EpsFromPrediction(net, objective, schedule)
