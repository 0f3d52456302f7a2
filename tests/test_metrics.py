import math

import numpy as np
import pytest
import torch
from scipy import stats
from torch.overrides import TorchFunctionMode

from ddpm_lite.metrics import (
    FeatureStats,
    class_histogram,
    feature_stats,
    frechet_distance,
    inception_score,
    sliced_wasserstein,
)


def test_in_one_dimension_it_is_the_wasserstein_distance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 1, generator=g, dtype=torch.float64)
    y = 0.5 + 2 * torch.randn(500, 1, generator=g, dtype=torch.float64)
    # every unit direction in 1-D is +-1, and W1 is symmetric under a sign flip
    ours = sliced_wasserstein(x, y, 10, g)
    assert ours == pytest.approx(
        stats.wasserstein_distance(x[:, 0].numpy(), y[:, 0].numpy()), rel=1e-12
    )


def test_zero_for_identical_sets():
    x = torch.randn(100, 3, generator=torch.Generator().manual_seed(1))
    assert sliced_wasserstein(x, x.flip(0), 50, torch.Generator().manual_seed(2)) == 0.0


def test_shift_in_two_dimensions_gives_two_over_pi_times_its_length():
    # Shifting by c moves every projection by <c, theta>; for theta uniform on the
    # circle E|<c, theta>| = 2 |c| / pi. With 20,000 directions the SE is ~0.003 |c|;
    # 5 SE allowed.
    g = torch.Generator().manual_seed(3)
    x = torch.randn(300, 2, generator=g, dtype=torch.float64)
    c = torch.tensor([3.0, 4.0], dtype=torch.float64)
    ours = sliced_wasserstein(x, x + c, 20_000, g)
    assert abs(ours - 2 * 5.0 / math.pi) < 5 * 5.0 * 0.0031


class _RecordDraws(TorchFunctionMode):
    """Inside the block, the device of every tensor torch.randn returns.

    A meta tensor holds no value, so its Tensor.item() gives nan here, not an error.
    """

    def __init__(self):
        super().__init__()
        self.devices = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.item and args[0].is_meta:
            return math.nan
        out = func(*args, **(kwargs or {}))
        if func is torch.randn:
            self.devices.append(out.device.type)
        return out


def test_directions_are_drawn_on_the_inputs_device():
    # The meta device stands in for a GPU. A meta @ cpu product does not raise (a CUDA
    # one does), so the test records where the directions were drawn.
    x = torch.empty(5, 3, device="meta")
    with _RecordDraws() as draws:
        distance = sliced_wasserstein(x, x, 4, torch.Generator())
    assert draws.devices == ["meta"]
    assert isinstance(distance, float)


def test_shape_mismatch_is_rejected():
    with pytest.raises(ValueError, match=r"x and y must both have shape \(n, d\)"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(4, 2), 5, torch.Generator())


def test_projection_count_must_be_positive():
    with pytest.raises(ValueError, match="n_projections must be >= 1"):
        sliced_wasserstein(torch.zeros(3, 2), torch.zeros(3, 2), 0, torch.Generator())


def _random_stats(g: torch.Generator, dim: int) -> FeatureStats:
    a = torch.randn(dim, dim, generator=g, dtype=torch.float64)
    return FeatureStats(
        torch.randn(dim, generator=g, dtype=torch.float64), a @ a.T / dim
    )


def test_frechet_distance_matches_scipy_sqrtm():
    from scipy import linalg

    g = torch.Generator().manual_seed(4)
    a, b = _random_stats(g, 20), _random_stats(g, 20)
    # the textbook formula with the (non-symmetric) product sqrtm(S_a S_b), as FID code
    # computes it
    cross = linalg.sqrtm(a.cov.numpy() @ b.cov.numpy()).real.trace()
    expected = (
        ((a.mean - b.mean) ** 2).sum().item()
        + a.cov.trace().item()
        + b.cov.trace().item()
        - 2 * cross
    )
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_frechet_distance_in_one_dimension_is_the_closed_form():
    # W2^2 between N(m1, s1^2) and N(m2, s2^2) is (m1 - m2)^2 + (s1 - s2)^2
    one_d = lambda m, s: FeatureStats(
        torch.tensor([m], dtype=torch.float64),
        torch.tensor([[s * s]], dtype=torch.float64),
    )
    assert frechet_distance(one_d(0.5, 2.0), one_d(-1.0, 0.5)) == pytest.approx(
        1.5**2 + 1.5**2, rel=1e-12
    )


def test_frechet_distance_is_zero_for_equal_stats_and_symmetric():
    g = torch.Generator().manual_seed(5)
    a, b = _random_stats(g, 8), _random_stats(g, 8)
    assert abs(frechet_distance(a, a)) < 1e-10
    assert frechet_distance(a, b) == pytest.approx(frechet_distance(b, a), rel=1e-9)


def test_frechet_distance_rejects_mismatched_sizes():
    g = torch.Generator().manual_seed(6)
    with pytest.raises(ValueError, match="a and b must have the same feature size"):
        frechet_distance(_random_stats(g, 3), _random_stats(g, 4))


def test_feature_stats_match_numpy():
    f = torch.randn(50, 4, generator=torch.Generator().manual_seed(7))
    stats_ = feature_stats(f)
    assert np.allclose(stats_.mean.numpy(), f.double().numpy().mean(0))
    assert np.allclose(stats_.cov.numpy(), np.cov(f.double().numpy(), rowvar=False))


def test_feature_stats_needs_two_rows():
    with pytest.raises(
        ValueError, match=r"features must have shape \(n, F\) with n >= 2"
    ):
        feature_stats(torch.zeros(1, 3))


def test_inception_score_is_k_for_confident_balanced_predictions():
    probs = torch.eye(10).repeat(3, 1)
    assert inception_score(probs) == pytest.approx(10.0, rel=1e-9)


def test_inception_score_is_one_when_every_prediction_is_the_same():
    probs = torch.softmax(
        torch.randn(1, 10, generator=torch.Generator().manual_seed(8)), 1
    ).repeat(5, 1)
    assert inception_score(probs) == pytest.approx(1.0, rel=1e-12)


def test_inception_score_matches_scipy_entropy():
    p = torch.softmax(
        3
        * torch.randn(
            40, 10, generator=torch.Generator().manual_seed(9), dtype=torch.float64
        ),
        1,
    )
    marginal = p.numpy().mean(0)
    expected = math.exp(np.mean([stats.entropy(row, marginal) for row in p.numpy()]))
    assert inception_score(p) == pytest.approx(expected, rel=1e-10)


def test_class_histogram_counts_argmax():
    probs = torch.tensor(
        [[0.9, 0.1, 0.0], [0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]]
    )
    assert class_histogram(probs, 3).tolist() == [0.5, 0.25, 0.25]
