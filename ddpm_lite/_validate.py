"""Argument checks for the public functions: clear errors instead of deep torch ones."""

from __future__ import annotations

import torch
from torch import Tensor


def check_tensor(name: str, x: object) -> Tensor:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not torch.is_floating_point(x):
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {x.dtype}")
    if x.ndim < 1:
        raise ValueError(
            f"{name} must have a batch dimension, shape (B, ...); got a scalar"
        )
    return x


def check_like(name: str, y: object, ref_name: str, ref: Tensor) -> Tensor:
    """y must match ref in shape, device and dtype."""
    check_tensor(name, y)
    assert isinstance(y, Tensor)
    if y.shape != ref.shape:
        raise ValueError(
            f"{name} must have the shape of {ref_name}, {tuple(ref.shape)}; "
            f"got {tuple(y.shape)}"
        )
    if y.device != ref.device:
        raise ValueError(
            f"{name} must be on the device of {ref_name}, {ref.device}; got {y.device}"
        )
    if y.dtype != ref.dtype:
        raise ValueError(
            f"{name} must have the dtype of {ref_name}, {ref.dtype}; got {y.dtype}"
        )
    return y


def timesteps(
    t: int | Tensor, T: int, x: Tensor, *, low: int = 0, name: str = "t"
) -> Tensor:
    """t as a (B,) long tensor on x's device, checked to lie in {low, ..., T-1}.

    An int is broadcast over the batch; a tensor must have shape (B,) or (), an
    integer dtype and x's device.
    """
    batch = x.shape[0]
    if isinstance(t, bool):
        raise TypeError(f"{name} must be an int or an integer tensor, got bool")
    if isinstance(t, int):
        if not low <= t < T:
            raise ValueError(f"{name} must be in [{low}, {T - 1}] (T={T}), got {t}")
        return torch.full((batch,), t, dtype=torch.long, device=x.device)
    if not isinstance(t, Tensor):
        raise TypeError(
            f"{name} must be an int or an integer tensor, got {type(t).__name__}"
        )
    if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
        raise TypeError(
            f"{name} must have an integer dtype (torch.long), got {t.dtype}"
        )
    if t.device != x.device:
        raise ValueError(
            f"{name} must be on the device of x, {x.device}; got {t.device}"
        )
    if t.ndim == 0:
        t = t.expand(batch)
    if t.shape != (batch,):
        raise ValueError(
            f"{name} must have shape ({batch},) to match the batch of x, "
            f"or be a scalar; got {tuple(t.shape)}"
        )
    if t.numel() and not bool(((t >= low) & (t < T)).all()):
        raise ValueError(
            f"{name} must be in [{low}, {T - 1}] (T={T}); "
            f"got values from {int(t.min())} to {int(t.max())}"
        )
    return t.long()


def choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    """value, if it is one of `allowed`; else a ValueError naming name and choices."""
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value  # type: ignore[return-value]


def step_index(name: str, value: object, T: int, *, low: int = 0) -> int:
    """A code index as a Python int in {low, ..., T-1}, e.g. a sampler's t_start."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value < T:
        raise ValueError(
            f"{name} must be an int in [{low}, {T - 1}] (T={T}), got {value!r}"
        )
    return value


def num_steps(value: object, most: int, why: str) -> int:
    """A number of sampler steps in {1, ..., most}.

    `why` says where the bound comes from.
    """
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise ValueError(f"num_steps must be in [1, {most}] ({why}), got {value!r}")
    return value


def at_least(name: str, value: float, low: float) -> float:
    """A number >= low (NaN is refused too)."""
    if not value >= low:
        raise ValueError(f"{name} must be >= {low}, got {value}")
    return value


def in_unit_interval(name: str, value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value
