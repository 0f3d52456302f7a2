"""The forward process q and the reverse step p_theta, as pure functions of a schedule.

Shapes: x0, xt, eps: (B, ...); t: an int or a (B,) long tensor, 0-based (`schedules`).
Variance choices for the reverse step: "beta_tilde" (sigma_t^2 = beta_tilde_t, the
posterior's) or "beta" (sigma_t^2 = beta_t), Ho et al. 2020 sec. 3.2.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch
from torch import Tensor

from . import _validate as v
from .gaussian import discretized_gaussian_log_likelihood, normal_kl
from .schedules import NoiseSchedule, gather

VARIANCES = ("beta_tilde", "beta")

EpsModel = Callable[[Tensor, Tensor], Tensor]  # eps_theta(x_t, t), t a (B,) long tensor


class Posterior(NamedTuple):
    mean: Tensor
    variance: Tensor
    log_variance: Tensor


# --- Kernels: each formula of the two processes, once. They trust their inputs (t a
# valid (B,) long tensor, shapes alike), so they never read a value on the host and a
# GPU runs ahead. The checked functions below validate and call them; so does every
# loop.


def forward_marginal(x0: Tensor, noise: Tensor, alpha_bar: Tensor) -> Tensor:
    """x_t = sqrt(alpha_bar) * x0 + sqrt(1 - alpha_bar) * noise; alpha_bar broadcasts.

    Book: eq. fwd-marginal
    """
    return torch.sqrt(alpha_bar) * x0 + torch.sqrt(1 - alpha_bar) * noise


def x0_from_eps(xt: Tensor, eps: Tensor, alpha_bar: Tensor) -> Tensor:
    """x0 = (x_t - sqrt(1 - alpha_bar) * eps) / sqrt(alpha_bar).

    Eq. fwd-marginal solved for x0.
    Book: eq. x0-from-eps
    """
    return (xt - torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(alpha_bar)


def eps_from_x0(xt: Tensor, x0: Tensor, alpha_bar: Tensor) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar) * x0) / sqrt(1 - alpha_bar).

    Eq. fwd-marginal solved for eps.
    Book: eq. x0-from-eps
    """
    return (xt - torch.sqrt(alpha_bar) * x0) / torch.sqrt(1 - alpha_bar)


def posterior_mean(
    schedule: NoiseSchedule, x0: Tensor, xt: Tensor, t: Tensor
) -> Tensor:
    """mu_tilde = sqrt(alpha_bar_prev) * beta_t / (1 - alpha_bar_t) * x0
    + sqrt(alpha_t) * (1 - alpha_bar_prev) / (1 - alpha_bar_t) * xt.

    Book: eq. posterior-mean
    """
    coef_x0 = gather(schedule.posterior_mean_coef1, t, x0)
    coef_xt = gather(schedule.posterior_mean_coef2, t, x0)
    return coef_x0 * x0 + coef_xt * xt


def model_mean(schedule: NoiseSchedule, xt: Tensor, t: Tensor, eps: Tensor) -> Tensor:
    """mu_theta = (x_t - beta_t / sqrt(1 - alpha_bar_t) * eps_theta) / sqrt(alpha_t).

    This is mu_tilde(x_t, x0) with x0 = x0_from_eps(x_t, eps_theta).
    Book: eq. mu-theta-eps
    """
    beta = gather(schedule.betas, t, xt)
    alpha_bar = gather(schedule.alpha_bars, t, xt)
    return (xt - beta / torch.sqrt(1 - alpha_bar) * eps) / torch.sqrt(1 - beta)


# --- The checked functions: validate, then call a kernel.


def q_step(
    schedule: NoiseSchedule, x_prev: Tensor, t: int | Tensor, noise: Tensor
) -> Tensor:
    """One Markov-chain step: x_t = sqrt(1 - beta_t) * x_prev + sqrt(beta_t) * noise.

    At t = 0, x_prev is the data x0.
    Book: eq. fwd-step
    """
    v.check_tensor("x_prev", x_prev)
    v.check_like("noise", noise, "x_prev", x_prev)
    t = v.timesteps(t, schedule.T, x_prev)
    beta = gather(schedule.betas, t, x_prev)
    return torch.sqrt(1 - beta) * x_prev + torch.sqrt(beta) * noise


def q_sample(
    schedule: NoiseSchedule, x0: Tensor, t: int | Tensor, noise: Tensor
) -> Tensor:
    """The forward marginal q(x_t | x0) in closed form, checked.

    x_t = sqrt(alpha_bar_t) * x0 + sqrt(1 - alpha_bar_t) * noise.
    Book: eq. fwd-marginal
    """
    v.check_tensor("x0", x0)
    v.check_like("noise", noise, "x0", x0)
    t = v.timesteps(t, schedule.T, x0)
    return forward_marginal(x0, noise, gather(schedule.alpha_bars, t, x0))


def q_posterior(
    schedule: NoiseSchedule, x0: Tensor, xt: Tensor, t: int | Tensor
) -> Posterior:
    """q(x_{t-1} | x_t, x0) = N(mu_tilde, beta_tilde), checked.

    beta_tilde = (1 - alpha_bar_prev) / (1 - alpha_bar_t) * beta_t;
    mu_tilde: posterior_mean. At t = 0 the posterior is a point mass at x0
    (beta_tilde = 0); its log-variance is clipped.
    Book: eq. posterior-mean, eq. posterior-variance
    """
    v.check_tensor("x0", x0)
    v.check_like("xt", xt, "x0", x0)
    t = v.timesteps(t, schedule.T, x0)
    variance = gather(schedule.posterior_variance, t, x0).expand_as(x0)
    log_variance = gather(schedule.posterior_log_variance_clipped, t, x0)
    return Posterior(
        posterior_mean(schedule, x0, xt, t), variance, log_variance.expand_as(x0)
    )


def predict_x0_from_eps(
    schedule: NoiseSchedule, xt: Tensor, t: int | Tensor, eps: Tensor
) -> Tensor:
    """x0_from_eps at code index t, checked.

    Book: eq. x0-from-eps
    """
    v.check_tensor("xt", xt)
    v.check_like("eps", eps, "xt", xt)
    t = v.timesteps(t, schedule.T, xt)
    return x0_from_eps(xt, eps, gather(schedule.alpha_bars, t, xt))


def predict_eps_from_x0(
    schedule: NoiseSchedule, xt: Tensor, t: int | Tensor, x0: Tensor
) -> Tensor:
    """eps_from_x0 at code index t, checked.

    Book: eq. x0-from-eps
    """
    v.check_tensor("xt", xt)
    v.check_like("x0", x0, "xt", xt)
    t = v.timesteps(t, schedule.T, xt)
    return eps_from_x0(xt, x0, gather(schedule.alpha_bars, t, xt))


def p_mean_from_eps(
    schedule: NoiseSchedule, xt: Tensor, t: int | Tensor, eps: Tensor
) -> Tensor:
    """model_mean, checked.

    Book: eq. mu-theta-eps
    """
    v.check_tensor("xt", xt)
    v.check_like("eps", eps, "xt", xt)
    return model_mean(schedule, xt, v.timesteps(t, schedule.T, xt), eps)


def p_log_variance(
    schedule: NoiseSchedule, xt: Tensor, t: Tensor, variance: str
) -> Tensor:
    """log sigma_t^2 of the reverse step, broadcast like xt (read for its shape only).

    "beta_tilde": the clipped posterior log-variance (beta_tilde_0 = 0 is replaced by
    beta_tilde_1, so the decoder at t = 0 has a positive width); "beta": log beta_t.
    Book: eq. reverse-variance
    """
    v.choice("variance", variance, VARIANCES)
    values = (
        schedule.posterior_log_variance_clipped
        if variance == "beta_tilde"
        else torch.log(schedule.betas)
    )
    return gather(values, t, xt).expand_as(xt)


def _sum_per_example(x: Tensor) -> Tensor:
    return x.flatten(1).sum(dim=1)


def vlb_prior_term(schedule: NoiseSchedule, x0: Tensor) -> Tensor:
    """L_T = KL( q(x_T | x0) || N(0, I) ) per example, in nats, shape (B,).

    It has no parameters; with a good schedule it is nearly zero.
    Book: eq. vlb-decomposition
    """
    v.check_tensor("x0", x0)
    alpha_bar_T = gather(
        schedule.alpha_bars,
        torch.full((x0.shape[0],), schedule.T - 1, device=x0.device),
        x0,
    )
    mean = torch.sqrt(alpha_bar_T) * x0
    logvar = torch.log1p(-alpha_bar_T).expand_as(x0)
    return _sum_per_example(
        normal_kl(mean, logvar, torch.zeros_like(x0), torch.zeros_like(x0))
    )


def bound_term(
    schedule: NoiseSchedule,
    x0: Tensor,
    xt: Tensor,
    t: Tensor,
    eps_theta: Tensor,
    variance: str,
) -> Tensor:
    """The kernel of vlb_term: trusts its inputs (t a valid (B,) long tensor)."""
    mean = model_mean(schedule, xt, t, eps_theta)
    log_var = p_log_variance(schedule, xt, t, variance)
    posterior_log_var = gather(schedule.posterior_log_variance_clipped, t, x0)
    kl = _sum_per_example(
        normal_kl(posterior_mean(schedule, x0, xt, t), posterior_log_var, mean, log_var)
    )
    decoder_nll = -_sum_per_example(
        discretized_gaussian_log_likelihood(x0.clamp(-1, 1), mean, 0.5 * log_var)
    )
    return torch.where(t == 0, decoder_nll, kl)


def vlb_term(
    schedule: NoiseSchedule,
    x0: Tensor,
    xt: Tensor,
    t: int | Tensor,
    eps_theta: Tensor,
    variance: str = "beta_tilde",
) -> Tensor:
    """The VLB term at step t per example, in nats, shape (B,).

    t >= 1: L_{t-1} = KL( q(x_{t-1} | x_t, x0) || p_theta(x_{t-1} | x_t) ), summed
    over dimensions. t == 0: L_0 = -log p_theta(x0 | x_1), the discretized Gaussian
    decoder (x0 must be on the pixel grid). (Paper indices; in code index t the KL
    compares the laws of x_{t-1}, and t = 0 is the decoder.)
    Book: eq. vlb-decomposition, eq. decoder-L0
    """
    v.check_tensor("x0", x0)
    v.check_like("xt", xt, "x0", x0)
    v.check_like("eps_theta", eps_theta, "x0", x0)
    t = v.timesteps(t, schedule.T, x0)
    v.choice("variance", variance, VARIANCES)
    return bound_term(schedule, x0, xt, t, eps_theta, variance)


def nats_to_bits_per_dim(nats: Tensor, num_dims: int) -> Tensor:
    """Per-example nats -> bits per dimension: nats / (num_dims * ln 2)."""
    return nats / (num_dims * math.log(2.0))


def loss_simple(eps: Tensor, eps_theta: Tensor) -> Tensor:
    """L_simple per example: the mean over dims of (eps - eps_theta)^2, shape (B,).

    Book: eq. loss-simple
    """
    v.check_tensor("eps", eps)
    v.check_like("eps_theta", eps_theta, "eps", eps)
    return ((eps - eps_theta) ** 2).flatten(1).mean(dim=1)


def vlb_weights(schedule: NoiseSchedule, variance: str = "beta_tilde") -> Tensor:
    """gamma_t = beta_t^2 / (2 sigma_t^2 alpha_t (1 - alpha_bar_t)) for every t.

    A float64 tensor (T,).
    L_{t-1} = gamma_t * ||eps - eps_theta||^2 + (a constant in theta), for t >= 1.
    At t = 0 the "beta_tilde" sigma^2 is the clipped beta_tilde_1 (see p_log_variance).
    Book: eq. vlb-weight
    """
    v.choice("variance", variance, VARIANCES)
    sigma2 = (
        torch.exp(schedule.posterior_log_variance_clipped)
        if variance == "beta_tilde"
        else schedule.betas
    )
    return schedule.betas**2 / (
        2 * sigma2 * schedule.alphas * (1 - schedule.alpha_bars)
    )


def loss_weighted(
    schedule: NoiseSchedule,
    t: int | Tensor,
    eps: Tensor,
    eps_theta: Tensor,
    variance: str = "beta_tilde",
) -> Tensor:
    """The VLB's eps-form per example: gamma_t * sum over dims of (eps - eps_theta)^2.

    Shape (B,).

    Book: eq. vlb-weight
    """
    v.check_tensor("eps", eps)
    v.check_like("eps_theta", eps_theta, "eps", eps)
    t = v.timesteps(t, schedule.T, eps)
    weight = gather(vlb_weights(schedule, variance), t, eps).flatten()
    return weight * _sum_per_example((eps - eps_theta) ** 2)
