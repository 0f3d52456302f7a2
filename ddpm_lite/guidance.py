"""Guidance: steering a diffusion model towards a class y.

Both kinds act on the noise prediction, so they wrap an eps_model and return another
one; the samplers in `sampling` run them unchanged. The guidance scale w is the argument
`scale` (diffusers' guidance_scale).

- Classifier guidance adds w * grad log p_phi(y | x_t) to the score of q(x_t) (Dhariwal
  & Nichol): through eps = -sqrt(1 - alpha_bar_t) * score that is
  eps - w sqrt(1 - alpha_bar_t) grad log p_phi.
- Classifier-free guidance mixes a conditional and an unconditional prediction of one
  network (Ho & Salimans, whose w is this w - 1):
  eps_uncond + w (eps_cond - eps_uncond).
With exact models the two agree at the same scale w: the classifier that classifier-free
guidance implies is p(y | x_t) = q(x_t | y) p(y) / q(x_t).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .schedules import NoiseSchedule, gather

EpsModel = Callable[[Tensor, Tensor], Tensor]
GradFn = Callable[[Tensor, Tensor], Tensor]


def _check_scale(scale: float) -> None:
    if not scale >= 0:
        raise ValueError(f"scale must be >= 0, got {scale}")


def classifier_grad(
    classifier: Callable[[Tensor, Tensor], Tensor], y: Tensor
) -> GradFn:
    """(x_t, t) -> grad_x log p_phi(y | x_t, t) by autograd.

    classifier: (x_t, t) -> logits (B, K); y: (B,) long.
    """

    def grad_log_p_y(xt: Tensor, t: Tensor) -> Tensor:
        with torch.enable_grad():
            x = xt.detach().requires_grad_(True)
            log_p = (
                torch.log_softmax(classifier(x, t), dim=1).gather(1, y[:, None]).sum()
            )
            (grad,) = torch.autograd.grad(log_p, x)
        return grad

    return grad_log_p_y


def classifier_guidance(
    eps_model: EpsModel, grad_log_p_y: GradFn, schedule: NoiseSchedule, scale: float
) -> EpsModel:
    """eps_hat = eps_theta - w sqrt(1 - alpha_bar_t) grad log p_phi(y | x_t); w = scale.

    eps_theta and p_phi are evaluated at (x_t, t). In the ancestral step this moves the
    mean by w * (beta_t / sqrt(alpha_t)) * grad log p_phi: Dhariwal and Nichol's
    mu + w Sigma grad with Sigma = beta_t, up to 1 / sqrt(alpha_t) = 1 + O(beta_t).
    At w = 0 the classifier is not called: the result is eps_model itself.
    Book: eq. guided-eps
    """
    _check_scale(scale)
    if scale == 0:
        return eps_model

    def guided(xt: Tensor, t: Tensor) -> Tensor:
        sqrt_one_minus_alpha_bar = torch.sqrt(1 - gather(schedule.alpha_bars, t, xt))
        return eps_model(xt, t) - scale * sqrt_one_minus_alpha_bar * grad_log_p_y(xt, t)

    return guided


def classifier_free_guidance(
    cond_model: Callable[[Tensor, Tensor, Tensor], Tensor],
    y: Tensor,
    null_label: int,
    scale: float,
) -> EpsModel:
    """eps_hat = eps(x_t, t, null) + w (eps(x_t, t, y) - eps(x_t, t, null)); w = scale.

    w = 1 is the conditional model. At w = 1 (0) only the conditional (unconditional)
    prediction is computed: the result is that model's, bit for bit, at half the cost.
    Book: eq. cfg-eps
    """
    _check_scale(scale)
    if not isinstance(y, Tensor) or y.dtype.is_floating_point or y.dtype == torch.bool:
        raise TypeError(
            "y must be an integer tensor of class labels, "
            f"got {getattr(y, 'dtype', type(y).__name__)}"
        )

    if scale == 1:
        return lambda xt, t: cond_model(xt, t, y)
    if scale == 0:
        return lambda xt, t: cond_model(xt, t, torch.full_like(y, null_label))

    def guided(xt: Tensor, t: Tensor) -> Tensor:
        both = cond_model(
            torch.cat([xt, xt]),
            torch.cat([t, t]),
            torch.cat([y, torch.full_like(y, null_label)]),
        )
        eps_cond, eps_uncond = both.chunk(2)
        return eps_uncond + scale * (eps_cond - eps_uncond)

    return guided


def drop_labels(
    y: Tensor, p_uncond: float, null_label: int, generator: torch.Generator
) -> Tensor:
    """Replace each label by null_label with probability p_uncond.

    Trained on such labels, one network learns both eps(x, t, y) and eps(x, t).
    """
    if not 0.0 <= p_uncond <= 1.0:
        raise ValueError(f"p_uncond must be in [0, 1], got {p_uncond}")
    drop = torch.rand(y.shape, generator=generator, device=y.device) < p_uncond
    return torch.where(drop, torch.full_like(y, null_label), y)


def random_labels(n: int, num_classes: int, seed: int) -> Tensor:
    """n labels drawn uniformly from 0..num_classes - 1, from their own seeded generator
    (the starting noise of a run with the same seed stays the same). With a
    class-conditional model at w = 1 each sample is then x ~ p(x | y), y ~ uniform: a
    draw of p(x) = sum_y p(y) p(x | y) where the classes are equally likely (MNIST's ten
    are 9.0-11.2 % of its training images), made by the conditional network, which
    label dropout trains on most batches, rather than by its "no label" branch."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, num_classes, (n,), generator=generator)
