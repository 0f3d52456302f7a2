import math

import numpy as np
import pytest
import torch
from scipy import stats

from ddpm_lite.metrics import sliced_wasserstein


def test_in_one_dimension_it_is_the_wasserstein_distance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 1, generator=g, dtype=torch.float64)
    y = 0.5 + 2 * torch.randn(500, 1, generator=g, dtype=torch.float64)
    # every unit direction in 1-D is +-1, and W1 is symmetric under a sign flip
    ours = sliced_wasserstein(x, y, 10, g).item()
    assert ours == pytest.approx(stats.wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy()), rel=1e-12)


def test_zero_for_identical_sets():
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
    assert sliced_wasserstein(x, x.flip(0), 50, torch.Generator().manual_seed(2)).item() == 0.0


def test_shift_in_two_dimensions_gives_two_over_pi_times_its_length():
    # Shifting by c moves every projection by <c, theta>; for theta uniform on the circle
    # E|<c, theta>| = 2 |c| / pi. With 20,000 directions the SE is ~0.003 |c|; 5 SE allowed.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 2, generator=g, dtype=torch.float64)
    c = torch.tensor([3.0, 4.0], dtype=torch.float64)
    ours = sliced_wasserstein(x, x + c, 20_000, g).item()
    assert abs(ours - 2 * 5.0 / math.pi) < 5 * 5.0 * 0.0031


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"x and y must both have shape \(n, d\)"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(4, 2), 5, torch.Generator())


def test_projection_count_must_be_positive():
    with pytest.raises(ValueError, match="n_projections must be >= 1"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 2), 0, torch.Generator())
