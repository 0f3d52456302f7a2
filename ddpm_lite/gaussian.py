"""Gaussian tools with no diffusion in them: sampling, merging, KL, pixel likelihood."""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor


class Gaussian(NamedTuple):
    mean: Tensor
    variance: Tensor


def reparameterize(mean: Tensor, std: Tensor, eps: Tensor) -> Tensor:
    """z = mean + std * eps with eps ~ N(0, I): a sample that gradients flow through.

    Book: eq. reparam
    """
    return mean + std * eps


def merge_gaussians(
    mean1: Tensor, var1: Tensor, mean2: Tensor, var2: Tensor
) -> Gaussian:
    """The law of X + Y for independent X ~ N(mean1, var1), Y ~ N(mean2, var2).

    X + Y ~ N(mean1 + mean2, var1 + var2): means add and variances add.
    Book: eq. merge-gaussians
    """
    return Gaussian(mean1 + mean2, var1 + var2)


def normal_kl(mean1: Tensor, logvar1: Tensor, mean2: Tensor, logvar2: Tensor) -> Tensor:
    """Elementwise KL( N(mean1, exp(logvar1)) || N(mean2, exp(logvar2)) ), in nats.

    KL = 1/2 * (logvar2 - logvar1 + exp(logvar1 - logvar2)
                + (mean1 - mean2)^2 / exp(logvar2) - 1)
    Log-variances, not variances, are the inputs so that tiny variances stay exact.
    Book: eq. gaussian-kl
    """
    return 0.5 * (
        logvar2
        - logvar1
        + torch.exp(logvar1 - logvar2)
        + (mean1 - mean2) ** 2 * torch.exp(-logvar2)
        - 1.0
    )


BIN_HALF_WIDTH = 1.0 / 255.0  # pixels 0..255 map to [-1, 1] in steps of 2/255


def discretized_gaussian_log_likelihood(
    x: Tensor, means: Tensor, log_scales: Tensor
) -> Tensor:
    """Elementwise log P(x) of N(means, exp(log_scales)^2) binned onto 256 pixel levels.

    x lies on the grid {-1, -1 + 2/255, ..., 1}. Bin k covers [x - 1/255, x + 1/255],
    except that the bin of x = -1 reaches down to -inf and the bin of x = 1 up to +inf,
    so the 256 probabilities sum to one:
        log P(x) = log( Phi((x + 1/255 - mean)/scale) - Phi((x - 1/255 - mean)/scale) )
    Book: eq. decoder-L0
    """
    if not bool(((x >= -1.0) & (x <= 1.0)).all()):
        raise ValueError("x must lie in [-1, 1] (pixels scaled by x = 2 * p / 255 - 1)")
    inv_scale = torch.exp(-log_scales)
    upper = (x - means + BIN_HALF_WIDTH) * inv_scale
    lower = (x - means - BIN_HALF_WIDTH) * inv_scale
    upper = torch.where(x > 1.0 - 1e-3, torch.full_like(upper, math.inf), upper)
    lower = torch.where(x < -1.0 + 1e-3, torch.full_like(lower, -math.inf), lower)
    return _log_normal_cdf_difference(lower, upper)


def _log_normal_cdf_difference(a: Tensor, b: Tensor) -> Tensor:
    """log(Phi(b) - Phi(a)) for a <= b, accurate in both tails.

    Above zero Phi(b) - Phi(a) = Phi(-a) - Phi(-b) avoids subtracting two numbers close
    to one. Written as log Phi(hi) + log(1 - exp(log Phi(lo) - log Phi(hi))) it stays
    finite far out.
    """
    flip = a > 0
    hi = torch.where(flip, -a, b)
    lo = torch.where(flip, -b, a)
    log_hi = torch.special.log_ndtr(hi)
    log_lo = torch.special.log_ndtr(lo)
    # log1p(-exp(d)) for d <= 0; the clamp stops d = 0 (an empty bin) giving -inf * 0.
    d = (log_lo - log_hi).clamp(max=-1e-30)
    return log_hi + torch.log(-torch.expm1(d))
