"""Interpolating between two inputs: linearly, or along the great circle (spherical); and between
two images through the diffusion's latent x_t (note 000's interpolation test; Ho et al., App. D).

For noise, the straight line is the wrong path: the midpoint of two independent N(0, I)
draws has variance 1/2, so a sampler started there sees noise of the wrong size. Spherical
interpolation keeps the norm of equal-norm endpoints, and so keeps noise looking like noise.
"""

from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor

from ._validate import check_like, check_tensor
from .diffusion import q_sample
from .sampling import ddim_trajectory_from, ddpm_update, final_sample
from .schedules import NoiseSchedule

MIXES = ("lerp", "slerp")
SAMPLERS = ("ddim", "ddpm")


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
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp(
        min=torch.finfo(a.dtype).tiny
    )
    theta = torch.arccos(cos.clamp(-1.0, 1.0))
    small = (
        theta < 1e-4
    )  # sin(theta) ~ theta: the ratios lose precision; the chord and the arc coincide
    safe = torch.where(small, torch.ones_like(theta), theta)
    wa = torch.where(small, 1 - lam, torch.sin((1 - lam) * safe) / torch.sin(safe))
    wb = torch.where(
        small, torch.full_like(theta, lam), torch.sin(lam * safe) / torch.sin(safe)
    )
    shape = (-1,) + (1,) * (a.ndim - 1)
    return wa.reshape(shape) * a + wb.reshape(shape) * b


def ddim_steps_for(t: int, stride: int = 20) -> int:
    """DDIM steps to decode from code index t at the stride of DDIM-50 over T = 1000: ceil((t + 1) / stride)."""
    return max(1, -(-(t + 1) // stride))


@torch.no_grad()
def interpolate_via_noise(
    eps_model: Callable[[Tensor, Tensor], Tensor],
    schedule: NoiseSchedule,
    x_a: Tensor,
    x_b: Tensor,
    t: int,
    lams: Sequence[float],
    generator: torch.Generator,
    mix: str = "slerp",
    sampler: str = "ddim",
    num_steps: int | None = None,
    clip_denoised: bool = True,
) -> Tensor:
    """Decoded interpolations between x_a and x_b (B, ...) through x_t: a tensor (len(lams), B, ...).

    Each endpoint is encoded by q to code index t with its own noise, x_t = q_sample(x, t, eps), drawn
    once and shared by every lam; the two x_t are mixed (`lerp` or `slerp`) and the reverse process
    decodes each mix from t: DDIM with eta = 0 (num_steps, default ddim_steps_for(t)) or ancestral
    DDPM (sigma_t^2 = beta_tilde_t), whose per-step noise z is also the same for every lam.
    So only lam changes along a row. t = -1 mixes the images themselves and decodes nothing.
    """
    check_tensor("x_a", x_a)
    check_like("x_b", x_b, "x_a", x_a)
    if mix not in MIXES:
        raise ValueError(f"mix must be one of {MIXES}, got {mix!r}")
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")
    if isinstance(t, bool) or not isinstance(t, int) or not -1 <= t < schedule.T:
        raise ValueError(
            f"t must be an int in [-1, {schedule.T - 1}] (a code index; -1 is the data), got {t!r}"
        )
    if len(lams) == 0:
        raise ValueError("lams must hold at least one mixing weight")
    mix_fn = slerp if mix == "slerp" else lerp
    if t == -1:
        return torch.stack([mix_fn(x_a, x_b, lam) for lam in lams])
    noise_a = torch.randn(
        x_a.shape, generator=generator, device=x_a.device, dtype=x_a.dtype
    )
    noise_b = torch.randn(
        x_a.shape, generator=generator, device=x_a.device, dtype=x_a.dtype
    )
    xt_a, xt_b = (
        q_sample(schedule, x_a, t, noise_a),
        q_sample(schedule, x_b, t, noise_b),
    )
    mixed = [mix_fn(xt_a, xt_b, lam) for lam in lams]
    if sampler == "ddim":  # deterministic: every lam in one batch
        steps = ddim_steps_for(t) if num_steps is None else num_steps
        decoded = final_sample(
            ddim_trajectory_from(
                eps_model,
                schedule,
                torch.cat(mixed),
                t,
                generator,
                steps,
                clip_denoised=clip_denoised,
            )
        )
        return decoded.reshape(len(lams), *x_a.shape)
    # Ancestral: every lam in one batch, with the same z at each step for every lam (drawn once per step for
    # one row of B and repeated), so only lam changes along a row. The loop is ddpm_trajectory_from's.
    xt = torch.cat(mixed)
    for step in reversed(range(t + 1)):
        t_batch = torch.full((xt.shape[0],), step, dtype=torch.long, device=xt.device)
        z = torch.randn(
            x_a.shape, generator=generator, device=xt.device, dtype=xt.dtype
        ).repeat(len(lams), *[1] * (x_a.ndim - 1))
        xt, _ = ddpm_update(
            schedule,
            xt,
            t_batch,
            eps_model(xt, t_batch),
            z,
            "beta_tilde",
            clip_denoised,
        )
    return xt.reshape(len(lams), *x_a.shape)
