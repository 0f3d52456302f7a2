"""Noise schedules: the variances beta_t and every tensor derived from them.

Index convention. Code index t in {0, ..., T-1} is the paper's step t+1 (Ho et al.
2020 number the steps 1..T). So `betas[0]` is the paper's beta_1, `alpha_bars[t]` is
the paper's alpha_bar_{t+1}, and at t = 0 the "previous" sample is the data x0:
alpha_bars_prev[0] = 1 and beta_tilde[0] = 0. The book states this once, in the
notation chapter (Book: sec. notation-index).

Everything here is computed in float64: alpha_bar is a product of up to T factors
close to one, and float32 rounding accumulates visibly in 1 - alpha_bar at small t.
Call `.to(device, dtype)` once to move the finished tensors where the model runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

import torch
from torch import Tensor

from . import _validate as v

# The kinds of schedule and the defaults of each; make_betas rejects any other keyword.
_DEFAULT_PARAMS = {
    "linear": {"beta_start": 1e-4, "beta_end": 0.02},  # Ho et al. 2020
    "cosine": {"s": 0.008, "max_beta": 0.999},  # Nichol & Dhariwal 2021
    "quadratic": {"beta_start": 1e-4, "beta_end": 0.02},
    "sigmoid": {"beta_start": 1e-4, "beta_end": 0.02},
}
# The one list of kinds: ("linear", "cosine", "quadratic", "sigmoid").
SCHEDULE_KINDS = tuple(_DEFAULT_PARAMS)


def make_betas(kind: str, T: int, **params: float) -> Tensor:
    """The variance schedule beta_0..beta_{T-1}, float64 of shape (T,).

    With u = t / (T-1) (u = 0 when T = 1):
    linear:    beta_t = beta_start + (beta_end - beta_start) * u
    quadratic: beta_t = (sqrt(beta_start) + (sqrt(beta_end) - sqrt(beta_start)) * u)^2
    sigmoid:   beta_t = beta_start + (beta_end - beta_start) * sigmoid(-6 + 12 u)
    cosine:    f(t) = cos((t/T + s) / (1 + s) * pi/2)^2,
               beta_t = min(1 - f(t+1) / f(t), max_beta)  (s: the book's delta)

    Book: eq. beta-schedules
    """
    v.choice("kind", kind, SCHEDULE_KINDS)
    if isinstance(T, bool) or not isinstance(T, int):
        raise TypeError(f"T must be an int, got {type(T).__name__}")
    if T < 1:
        raise ValueError(f"T must be >= 1, got {T}")
    unknown = set(params) - set(_DEFAULT_PARAMS[kind])
    if unknown:
        raise TypeError(
            f"unknown parameter(s) {sorted(unknown)} for kind {kind!r}; "
            f"accepted: {sorted(_DEFAULT_PARAMS[kind])}"
        )
    p = {**_DEFAULT_PARAMS[kind], **params}
    if kind == "cosine":
        betas = _cosine_betas(T, p["s"], p["max_beta"])
    else:
        betas = _interpolated_betas(kind, T, p["beta_start"], p["beta_end"])
    check_betas(betas)
    return betas


def _interpolated_betas(
    kind: str, T: int, beta_start: float, beta_end: float
) -> Tensor:
    for name, value in (("beta_start", beta_start), ("beta_end", beta_end)):
        if not 0.0 < value < 1.0:  # also rejects NaN
            raise ValueError(f"{name} must be in the open interval (0, 1), got {value}")
    if beta_start > beta_end:
        raise ValueError(
            f"beta_start must be <= beta_end, "
            f"got beta_start={beta_start} > beta_end={beta_end}"
        )
    u = (
        torch.linspace(0.0, 1.0, T, dtype=torch.float64)
        if T > 1
        else torch.zeros(1, dtype=torch.float64)
    )
    if kind == "linear":
        return beta_start + (beta_end - beta_start) * u
    if kind == "quadratic":
        return (
            math.sqrt(beta_start) + (math.sqrt(beta_end) - math.sqrt(beta_start)) * u
        ) ** 2
    return beta_start + (beta_end - beta_start) * torch.sigmoid(-6.0 + 12.0 * u)


def _cosine_betas(T: int, s: float, max_beta: float) -> Tensor:
    if not s >= 0.0:
        raise ValueError(f"s must be >= 0, got {s}")
    if not 0.0 < max_beta < 1.0:
        raise ValueError(
            f"max_beta must be in the open interval (0, 1), got {max_beta}"
        )
    u = torch.arange(T + 1, dtype=torch.float64) / T
    alpha_bar = torch.cos((u + s) / (1 + s) * math.pi / 2) ** 2
    # The clip keeps beta < 1 near u = 1, where alpha_bar -> 0 and the ratio blows up.
    return (1 - alpha_bar[1:] / alpha_bar[:-1]).clamp(max=max_beta)


def check_betas(betas: Tensor) -> None:
    """Raise ValueError unless betas is a 1-D, non-empty tensor of values in (0, 1)."""
    if not isinstance(betas, Tensor):
        raise TypeError(f"betas must be a torch.Tensor, got {type(betas).__name__}")
    if betas.ndim != 1 or betas.numel() == 0:
        raise ValueError(
            f"betas must have shape (T,) with T >= 1, got shape {tuple(betas.shape)}"
        )
    if not torch.is_floating_point(betas):
        raise TypeError(
            f"betas must be a floating-point tensor, got dtype {betas.dtype}"
        )
    inside = (betas > 0) & (betas < 1)  # NaN compares False, so it lands here too
    if not bool(inside.all()):
        bad = int((~inside).nonzero()[0, 0])
        raise ValueError(
            "every beta must be in the open interval (0, 1); "
            f"betas[{bad}] = {betas[bad].item()}"
        )


@dataclass(frozen=True, eq=False)
class NoiseSchedule:
    """A variance schedule with the tensors derived from it, each of shape (T,).

    alphas[t]            = 1 - beta_t
    alpha_bars[t]        = prod_{s<=t} alpha_s              (Book: eq. fwd-marginal)
    alpha_bars_prev[t]   = alpha_bars[t-1], with alpha_bars_prev[0] = 1
    posterior_variance   = beta_tilde_t
                         = (1 - alpha_bar_prev) / (1 - alpha_bar) * beta_t
    posterior_log_variance_clipped = log beta_tilde, with beta_tilde_0 (= 0) replaced
                           by beta_tilde_1, so that the log stays finite
    posterior_mean_coef1 = sqrt(alpha_bar_prev) * beta_t / (1 - alpha_bar_t)
                           (multiplies x0)
    posterior_mean_coef2 = sqrt(alpha_t) * (1 - alpha_bar_prev) / (1 - alpha_bar_t)
                           (multiplies xt)
    snr                  = alpha_bar / (1 - alpha_bar)

    Book: eq. posterior-variance, eq. posterior-mean
    """

    betas: Tensor
    alphas: Tensor = field(init=False)
    alpha_bars: Tensor = field(init=False)
    alpha_bars_prev: Tensor = field(init=False)
    posterior_variance: Tensor = field(init=False)
    posterior_log_variance_clipped: Tensor = field(init=False)
    posterior_mean_coef1: Tensor = field(init=False)
    posterior_mean_coef2: Tensor = field(init=False)
    snr: Tensor = field(init=False)

    def __post_init__(self) -> None:
        check_betas(self.betas)
        betas = self.betas.detach().to(device="cpu", dtype=torch.float64)
        alphas = 1 - betas
        alpha_bars = torch.cumprod(alphas, dim=0)
        if alpha_bars[-1] == 0:
            first = int((alpha_bars == 0).nonzero()[0, 0])
            raise ValueError(
                f"alpha_bar underflows to 0 in float64 at t={first}: the betas destroy "
                "the signal completely, and "
                "x0 = (x_t - sqrt(1 - alpha_bar) eps) / sqrt(alpha_bar) is undefined; "
                "use smaller betas or fewer steps"
            )
        alpha_bars_prev = torch.cat(
            [torch.ones(1, dtype=torch.float64), alpha_bars[:-1]]
        )
        posterior_variance = (1 - alpha_bars_prev) / (1 - alpha_bars) * betas
        clip_from = posterior_variance[1:2] if len(betas) > 1 else betas[:1]
        derived = {
            "betas": betas,
            "alphas": alphas,
            "alpha_bars": alpha_bars,
            "alpha_bars_prev": alpha_bars_prev,
            "posterior_variance": posterior_variance,
            "posterior_log_variance_clipped": torch.log(
                torch.cat([clip_from, posterior_variance[1:]])
            ),
            "posterior_mean_coef1": alpha_bars_prev.sqrt() * betas / (1 - alpha_bars),
            "posterior_mean_coef2": alphas.sqrt()
            * (1 - alpha_bars_prev)
            / (1 - alpha_bars),
            "snr": alpha_bars / (1 - alpha_bars),
        }
        for name, value in derived.items():
            object.__setattr__(self, name, value)

    @property
    def T(self) -> int:
        return self.betas.shape[0]

    @property
    def device(self) -> torch.device:
        return self.betas.device

    def to(
        self, device: torch.device | str | None = None, dtype: torch.dtype | None = None
    ) -> "NoiseSchedule":
        """A copy with every tensor moved; the values were computed in float64 first."""
        moved = object.__new__(NoiseSchedule)
        for f in fields(self):
            object.__setattr__(
                moved, f.name, getattr(self, f.name).to(device=device, dtype=dtype)
            )
        return moved

    def __repr__(self) -> str:
        return (
            f"NoiseSchedule(T={self.T}, beta[0]={self.betas[0].item():.3g}, "
            f"beta[T-1]={self.betas[-1].item():.3g}, dtype={self.betas.dtype})"
        )


def gather(values: Tensor, t: Tensor, x: Tensor) -> Tensor:
    """values[t] as (B, 1, ..., 1), to broadcast against x, in x's device and dtype.

    values: (T,) a schedule tensor; t: (B,) long; x: (B, ...).
    """
    return values.to(x.device)[t].to(x.dtype).reshape(-1, *([1] * (x.ndim - 1)))
