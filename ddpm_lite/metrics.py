"""Distances between sample sets, as pure functions."""
from __future__ import annotations

import torch
from torch import Tensor


def sliced_wasserstein(x: Tensor, y: Tensor, n_projections: int, generator: torch.Generator) -> Tensor:
    """Sliced 1-Wasserstein distance between two equal-size point sets x, y: (n, d).

    SW_1 = E_theta W_1(<x, theta>, <y, theta>) over random unit directions theta; in 1-D,
    W_1 between equal-size empirical laws is the mean gap between sorted samples.
    """
    if x.ndim != 2 or x.shape != y.shape:
        raise ValueError(f"x and y must both have shape (n, d); got {tuple(x.shape)} and {tuple(y.shape)}")
    if n_projections < 1:
        raise ValueError(f"n_projections must be >= 1, got {n_projections}")
    theta = torch.randn(x.shape[1], n_projections, generator=generator, dtype=x.dtype)
    theta = theta / theta.norm(dim=0, keepdim=True)
    px, _ = torch.sort(x @ theta, dim=0)
    py, _ = torch.sort(y @ theta, dim=0)
    return (px - py).abs().mean()
