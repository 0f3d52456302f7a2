"""The negative log-likelihood bound of a trained model, estimated without all T terms.

-log p_theta(x0) <= L_T + sum_{t=1}^{T-1} L_t + L_0 (paper indices; code indices 0..T-1
below), with L_0 the discretized decoder, so the bound is in nats of 8-bit images. Each
KL term needs a network call, so the sum over t is estimated: the code indices 1..T-1
are split into `num_strata` contiguous strata of (nearly) equal size, one t is drawn
uniformly in each stratum, and the term is weighted by its stratum's size. That is an
unbiased estimate of the sum with less variance than uniform draws. L_T (no parameters)
is computed exactly; L_0 (the largest single term) at one draw of x_1 ~ q(x_1 | x0), an
unbiased one-sample estimate. Book: eq. vlb-decomposition
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from . import _validate as v
from .diffusion import (
    VARIANCES,
    EpsModel,
    bound_term,
    forward_marginal,
    nats_to_bits_per_dim,
    vlb_prior_term,
)
from .schedules import NoiseSchedule, gather


class BoundEstimate(NamedTuple):
    """Per image, in nats: the bound's three parts.

    `bits_per_dim` is their sum per dimension, in bits.
    """

    prior: Tensor  # L_T, (B,)
    decoder: Tensor  # L_0, (B,)
    kl_sum: Tensor  # the estimate of sum_{t=1}^{T-1} L_t, (B,)
    bits_per_dim: Tensor  # (B,)


def strata(T: int, num_strata: int) -> Tensor:
    """The num_strata + 1 edges that split code indices 1..T-1 into contiguous strata.

    A (num_strata + 1,) long tensor.
    """
    if not 1 <= num_strata <= T - 1:
        raise ValueError(
            f"num_strata must be in [1, {T - 1}] (T={T}), got {num_strata}"
        )
    return torch.round(torch.linspace(1, T, num_strata + 1, dtype=torch.float64)).long()


@torch.no_grad()
def vlb_estimate(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x0: Tensor,
    num_strata: int,
    generator: torch.Generator,
    variance: str = "beta_tilde",
) -> BoundEstimate:
    """An unbiased, stratified estimate of the variational bound on -log p_theta(x0).

    One estimate for each image in x0: (B, ...) on the pixel grid
    {-1, -1 + 2/255, ..., 1}. Costs num_strata + 1 network calls per image.
    """
    v.check_tensor("x0", x0)
    v.choice("variance", variance, VARIANCES)
    edges = strata(schedule.T, num_strata).to(x0.device)
    B = x0.shape[0]
    decoder = _term(
        eps_model,
        schedule,
        x0,
        torch.zeros(B, dtype=torch.long, device=x0.device),
        generator,
        variance,
    )
    kl_sum = torch.zeros(B, dtype=x0.dtype, device=x0.device)
    for low, high in zip(edges[:-1].tolist(), edges[1:].tolist()):
        offset = torch.randint(
            0, high - low, (B,), generator=generator, device=x0.device
        )
        kl_sum = kl_sum + (high - low) * _term(
            eps_model, schedule, x0, low + offset, generator, variance
        )
    prior = vlb_prior_term(schedule, x0)
    dims = math.prod(x0.shape[1:])
    return BoundEstimate(
        prior, decoder, kl_sum, nats_to_bits_per_dim(prior + decoder + kl_sum, dims)
    )


@torch.no_grad()
def vlb_terms(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x0: Tensor,
    ts: list[int],
    generator: torch.Generator,
    variance: str = "beta_tilde",
) -> Tensor:
    """The bound's terms at the given code indices (0 is L_0, t >= 1 the KL L_t), one
    noise draw each: (len(ts), B) nats."""
    v.check_tensor("x0", x0)
    return torch.stack(
        [
            _term(
                eps_model,
                schedule,
                x0,
                v.timesteps(t, schedule.T, x0),
                generator,
                variance,
            )
            for t in ts
        ]
    )


def _term(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x0: Tensor,
    t: Tensor,
    generator: torch.Generator,
    variance: str,
) -> Tensor:
    """One term of the bound per image at code indices t (B,), with one noise draw:
    L_0 where t = 0, else L_t."""
    eps = torch.randn(x0.shape, generator=generator, device=x0.device, dtype=x0.dtype)
    xt = forward_marginal(x0, eps, gather(schedule.alpha_bars, t, x0))
    return bound_term(schedule, x0, xt, t, eps_model(xt, t), variance)
