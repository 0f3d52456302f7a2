"""The FD-MNIST reference sets the sweeps score against: the shipped classifier's features of
the MNIST test images (all 10,000, or the first 2,000 that ship with the package for the
chapters' live checks)."""

from __future__ import annotations

from pathlib import Path

from ddpm_lite.classifier import load_classifier, predict
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.metrics import feature_stats, frechet_distance

LIVE_REFERENCE = "the first 2,000 MNIST test images"


class Scorer:
    """FD-MNIST of samples in [-1, 1] against the test images' feature statistics."""

    def __init__(self, data_dir: Path | None, count: int = 10_000):
        self.classifier = load_classifier()
        test = load_mnist("test", root=data_dir) if data_dir else load_mnist("test")
        self.count = len(test.labels[:count])
        features = predict(self.classifier, to_model_range(test.images[:count]))[0]
        self.reference = feature_stats(features)

    def fd(self, x) -> float:
        return frechet_distance(
            feature_stats(predict(self.classifier, x)[0]), self.reference
        )
