"""lerp and slerp: endpoints, the circle, norms, and bad input."""
import math

import pytest
import torch

from ddpm_lite.interpolation import lerp, slerp


@pytest.mark.parametrize("interpolate", [lerp, slerp])
def test_endpoints_are_the_inputs(interpolate):
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64), torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64)
    assert torch.allclose(interpolate(a, b, 0.0), a, atol=1e-12) and torch.allclose(interpolate(a, b, 1.0), b, atol=1e-12)


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.8])
def test_slerp_of_orthonormal_vectors_walks_the_unit_circle(lam):
    a, b = torch.tensor([[1.0, 0.0]], dtype=torch.float64), torch.tensor([[0.0, 1.0]], dtype=torch.float64)
    expected = torch.tensor([[math.cos(lam * math.pi / 2), math.sin(lam * math.pi / 2)]], dtype=torch.float64)
    assert torch.allclose(slerp(a, b, lam), expected, atol=1e-12)


def test_slerp_keeps_the_norm_of_equal_norm_noise_and_lerp_shrinks_it():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(200, 784, generator=g, dtype=torch.float64), torch.randn(200, 784, generator=g, dtype=torch.float64)
    b = b * (a.norm(dim=1, keepdim=True) / b.norm(dim=1, keepdim=True))
    assert torch.allclose(slerp(a, b, 0.5).norm(dim=1), a.norm(dim=1), rtol=1e-10)
    # independent high-dimensional noise is nearly orthogonal: the midpoint's norm is ~1/sqrt(2) of it
    ratio = (lerp(a, b, 0.5).norm(dim=1) / a.norm(dim=1)).mean().item()
    assert abs(ratio - 1 / math.sqrt(2)) < 0.02


def test_slerp_of_nearly_parallel_inputs_is_lerp():
    a = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    b = a * (1 + 1e-9)
    assert torch.allclose(slerp(a, b, 0.3), lerp(a, b, 0.3), atol=1e-12) and torch.isfinite(slerp(a, a, 0.5)).all()


@pytest.mark.parametrize("interpolate", [lerp, slerp])
def test_bad_input_is_rejected(interpolate):
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
        interpolate(torch.zeros(2, 3), torch.zeros(2, 3), 1.5)
    with pytest.raises(ValueError, match="b must have the shape of a"):
        interpolate(torch.zeros(2, 3), torch.zeros(2, 4), 0.5)
