"""Distances between sample sets and scores of samples, as pure functions.

FD-MNIST and MNIST-IS take features and class probabilities from
`classifier.MNISTClassifier`.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


def sliced_wasserstein(
    x: Tensor, y: Tensor, n_projections: int, generator: torch.Generator
) -> float:
    """Sliced 1-Wasserstein distance between two equal-size point sets x, y: (n, d).

    SW_1 = E_theta W_1(<x, theta>, <y, theta>) over random unit directions theta; in
    1-D, W_1 between equal-size empirical laws is the mean gap between sorted samples.
    """
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(
            "x and y must both have shape (n, d); "
            f"got {tuple(x.shape)} and {tuple(y.shape)}"
        )
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    theta = torch.randn(
        x.shape[1], n_projections, generator=generator, device=x.device, dtype=x.dtype
    )
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ theta, dim=0)
    py, _ = torch.sort(y @ theta, dim=0)
    return (px - py).abs().mean().item()


class FeatureStats(NamedTuple):
    mean: Tensor  # (F,)
    cov: Tensor  # (F, F), the unbiased sample covariance


def feature_stats(features: Tensor) -> FeatureStats:
    """Mean and covariance of features (n, F), in float64.

    The Gaussian that FD-MNIST fits to a sample set.
    """
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(
            f"features must have shape (n, F) with n >= 2, got {tuple(features.shape)}"
        )
    f = features.double()
    return FeatureStats(f.mean(0), torch.cov(f.T).reshape(f.shape[1], f.shape[1]))


def _psd_sqrt(a: Tensor) -> Tensor:
    values, vectors = torch.linalg.eigh(a)
    # rounding leaves eigenvalues of a PSD matrix slightly negative; they are zero
    return (vectors * values.clamp(min=0).sqrt()) @ vectors.T


def frechet_distance(a: FeatureStats, b: FeatureStats) -> float:
    """Squared Frechet (2-Wasserstein) distance between N(mu_a, S_a) and N(mu_b, S_b):

    |mu_a - mu_b|^2 + tr(S_a) + tr(S_b) - 2 tr((S_a^1/2 S_b S_a^1/2)^1/2).

    The symmetric form keeps every square root that of a PSD matrix, so eigh suffices.
    """
    if a.mean.shape != b.mean.shape:
        raise ValueError(
            "a and b must have the same feature size, "
            f"got {tuple(a.mean.shape)} and {tuple(b.mean.shape)}"
        )
    root_a = _psd_sqrt(a.cov)
    cross = torch.linalg.eigvalsh(root_a @ b.cov @ root_a).clamp(min=0).sqrt().sum()
    return (
        (a.mean - b.mean).square().sum() + a.cov.trace() + b.cov.trace() - 2 * cross
    ).item()


def inception_score(probs: Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) for class probabilities probs (n, K).

    p(y) is their mean over the n images. The score lies between 1 (every image the
    same unsure guess) and K (confident, and the classes balanced).
    """
    if probs.ndim != 2:
        raise ValueError(f"probs must have shape (n, K), got {tuple(probs.shape)}")
    p = probs.double().clamp(min=1e-30)  # 0 log 0 = 0
    marginal = p.mean(0, keepdim=True)
    return torch.exp((p * (p.log() - marginal.log())).sum(1).mean()).item()


def class_histogram(probs: Tensor, num_classes: int = 10) -> Tensor:
    """The fraction of images predicted as each class, (num_classes,).

    Mode coverage at a glance.
    """
    return (
        torch.bincount(probs.argmax(1), minlength=num_classes).double() / probs.shape[0]
    )
