"""Interpolating between two inputs: linearly, or along the great circle (spherical);
and between two images through the diffusion's latent x_t (note 000's interpolation
test; Ho et al., App. D).

For noise, the straight line is the wrong path: the midpoint of two independent N(0, I)
draws has variance 1/2, so a sampler started there sees noise of the wrong size.
Spherical interpolation keeps the norm of equal-norm endpoints, and so keeps noise
looking like noise.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from . import _validate as v
from .diffusion import EpsModel, q_sample
from .noise import GeneratorNoise, SharedNoise
from .sampling import ddim_trajectory_from, ddpm_trajectory_from, final_sample
from .schedules import NoiseSchedule

MIXES = ("lerp", "slerp")
SAMPLERS = ("ddim", "ddpm")


def _check(a: Tensor, b: Tensor, lam: float) -> None:
    v.check_tensor("a", a)
    v.check_like("b", b, "a", a)
    v.in_unit_interval("lam", lam)


def lerp(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """(1 - lam) a + lam b, elementwise.  a, b: (B, ...)."""
    _check(a, b, lam)
    return (1 - lam) * a + lam * b


def slerp(a: Tensor, b: Tensor, lam: float) -> Tensor:
    """sin((1 - lam) theta) / sin(theta) a + sin(lam theta) / sin(theta) b, per example.

    theta is the angle between a[i] and b[i] as flattened vectors; where it is ~0 the
    two weights tend to 1 - lam and lam, so lerp is used.
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
    """DDIM steps to decode from code index t at the stride of DDIM-50 over T = 1000.

    steps = ceil((t + 1) / stride).
    """
    return max(1, -(-(t + 1) // stride))


@torch.no_grad()
def interpolate_via_noise(
    eps_model: EpsModel,
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
    """Decoded interpolations between x_a and x_b (B, ...) through x_t.

    Returns a tensor (len(lams), B, ...).

    Each endpoint is encoded by q to code index t with its own noise,
    x_t = q_sample(x, t, eps), drawn once and shared by every lam; the two x_t are mixed
    (`lerp` or `slerp`) and the reverse process decodes each mix from t: DDIM with
    eta = 0 (num_steps, default ddim_steps_for(t)) or ancestral DDPM
    (sigma_t^2 = beta_tilde_t), whose per-step noise z is also the same for every lam.
    So only lam changes along a row. t = -1 mixes the images themselves and decodes
    nothing.
    """
    v.check_tensor("x_a", x_a)
    v.check_like("x_b", x_b, "x_a", x_a)
    v.choice("mix", mix, MIXES)
    v.choice("sampler", sampler, SAMPLERS)
    v.step_index("t", t, schedule.T, low=-1)
    if len(lams) == 0:
        raise ValueError("lams must hold at least one mixing weight")
    mix_fn = slerp if mix == "slerp" else lerp
    if t == -1:
        return torch.stack([mix_fn(x_a, x_b, lam) for lam in lams])
    noise = GeneratorNoise(generator, x_a.device, x_a.dtype)
    xt_a = q_sample(schedule, x_a, t, noise.randn(x_a.shape))
    xt_b = q_sample(schedule, x_b, t, noise.randn(x_a.shape))
    mixed = torch.cat([mix_fn(xt_a, xt_b, lam) for lam in lams])
    if sampler == "ddim":  # deterministic
        steps = ddim_steps_for(t) if num_steps is None else num_steps
        run = ddim_trajectory_from(
            eps_model, schedule, mixed, t, noise, steps, clip_denoised=clip_denoised
        )
    else:  # ancestral: each step's z is drawn for one row of B and shared by every lam
        shared = SharedNoise(noise, x_a.shape[0])
        run = ddpm_trajectory_from(
            eps_model, schedule, mixed, t, shared, clip_denoised=clip_denoised
        )
    return final_sample(run).reshape(len(lams), *x_a.shape)
