"""Interpolating between two inputs: linearly, or along the great circle (spherical).

For noise, the straight line is the wrong path: the midpoint of two independent N(0, I)
draws has variance 1/2, so a sampler started there sees noise of the wrong size. Spherical
interpolation keeps the norm of equal-norm endpoints, and so keeps noise looking like noise.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ._validate import check_like, check_tensor


def _check(a: Tensor, b: Tensor, lam: float) -> None:
    check_tensor("a", a)
    check_like("b", b, "a", a)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"lam must be in [0, 1], got {lam}")


def lerp(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """(1 - lam) a + lam b, elementwise.  a, b: (B, ...)."""
    _check(a, b, lam)
    return (1 - lam) * a + lam * b


def slerp(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """sin((1 - lam) theta) / sin(theta) a + sin(lam theta) / sin(theta) b, per example.

    theta is the angle between a[i] and b[i] as flattened vectors; where it is ~0 the two
    weights tend to 1 - lam and lam, so lerp is used.
    """
    _check(a, b, lam)
    fa, fb = a.flatten(1), b.flatten(1)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp(min=torch.finfo(a.dtype).tiny)
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    small = theta < 1e-4  # sin(theta) ~ theta: the ratios lose precision; the chord and the arc coincide
    safe = torch.where(small, torch.ones_like(theta), theta)
    wa = torch.where(small, 1 - lam, torch.sin((1 - lam) * safe) / torch.sin(safe))
    wb = torch.where(small, torch.full_like(theta, lam), torch.sin(lam * safe) / torch.sin(safe))
    shape = (-1,) + (1,) * (a.ndim - 1)
    return wa.reshape(shape) * a + wb.reshape(shape) * b
