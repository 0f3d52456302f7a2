"""p_phi(y | x_t, t): shapes, that training learns, checkpoints, and bad input."""

import pytest
import torch

from ddpm_lite.checkpoint import CheckpointError
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.fit import save_fitted
from ddpm_lite.guidance import classifier_grad
from ddpm_lite.noisy_classifier import (
    NoisyClassifier,
    NoisyClassifierConfig,
    accuracy_at,
    load_noisy_classifier,
    train_noisy_classifier,
)

SMALL = NoisyClassifierConfig(channels=(16, 32), emb_dim=64)


@pytest.fixture(scope="module")
def trained():
    train = load_mnist("train")
    return train_noisy_classifier(
        SMALL,
        to_model_range(train.images),
        train.labels,
        steps=300,
        batch_size=64,
        lr=5e-3,
    )


@pytest.fixture(scope="module")
def test_set():
    test = load_mnist("test")
    return to_model_range(test.images[:1000]), test.labels[:1000]


def test_logits_shape_and_dependence_on_t():
    torch.manual_seed(0)
    model = NoisyClassifier(SMALL).eval()
    x = torch.randn(3, 1, 28, 28)
    a, b = model(x, torch.tensor([0, 0, 0])), model(x, torch.tensor([999, 999, 999]))
    assert a.shape == (3, 10) and not torch.allclose(a, b)


def test_training_learns_clean_digits_and_is_near_chance_on_pure_noise(
    trained, test_set
):
    g = torch.Generator().manual_seed(0)
    # Measured: 0.63 at t = 0 after 300 small steps on the CPU (9 s); chance is 0.1, and 1,000 images give an SE
    # of ~0.016. At t = 999, sqrt(alpha_bar) ~ 0.006 leaves almost no signal: 0.2 is far above what it can reach.
    assert accuracy_at(trained.model, *test_set, 0, g) > 0.4
    assert accuracy_at(trained.model, *test_set, 999, g) < 0.2


def test_classifier_grad_matches_finite_differences_of_log_p(trained, test_set):
    import copy

    model = copy.deepcopy(trained.model).double()
    g = torch.Generator().manual_seed(2)
    y, t = test_set[1][:4], torch.full((4,), 100)
    # a noisy input, as guidance sees it: a clean digit's flat background ties max pooling, which is not differentiable there
    x = test_set[0][:4].double() + 0.2 * torch.randn(
        4, 1, 28, 28, generator=g, dtype=torch.float64
    )
    v = torch.randn(x.shape, generator=g, dtype=torch.float64)
    v = v / v.flatten(1).norm(dim=1)[:, None, None, None]  # a unit step
    log_p = lambda z: torch.log_softmax(model(z, t), 1).gather(1, y[:, None])[:, 0]  # noqa: E731
    h = 1e-4
    finite_difference = (log_p(x + h * v) - log_p(x - h * v)) / (2 * h)
    directional = (classifier_grad(model, y)(x, t) * v).flatten(1).sum(1)
    # central differences: O(h^2) ~ 1e-8 relative to the curvature; float64 rounding ~1e-12 / h
    assert torch.allclose(finite_difference, directional, rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip_and_checksum(tmp_path, trained, test_set):
    save_fitted(tmp_path / "c", trained.model, {"note": "test"})
    loaded = load_noisy_classifier(tmp_path / "c")
    x, t = test_set[0][:5], torch.full((5,), 300)
    with torch.no_grad():
        assert torch.equal(loaded(x, t), trained.model(x, t))
    data = bytearray((tmp_path / "c.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "c.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        load_noisy_classifier(tmp_path / "c")


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"channels": (12, 32)}, "channels must be two positive multiples of groups=8"),
        ({"schedule": "exp"}, "schedule must be one of"),
        ({"num_classes": 1}, "num_classes must be >= 2"),
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        NoisyClassifierConfig(**kwargs)


def test_training_rejects_mismatched_labels():
    with pytest.raises(ValueError, match=r"labels must have shape \(4,\)"):
        train_noisy_classifier(
            SMALL, torch.zeros(4, 1, 28, 28), torch.zeros(3, dtype=torch.long)
        )


def test_shipped_weights_load_and_classify_clean_and_noisy_digits(test_set):
    import json

    from ddpm_lite.noisy_classifier import SHIPPED

    model = load_noisy_classifier()
    info = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert (
        info["data"]["train"].startswith("60000 images")
        and info["metrics"]["test_accuracy_at_t"]["0"] > 0.98
    )
    g = torch.Generator().manual_seed(1)
    # The sidecar records 0.991 (t = 0) and 0.974 (t = 250) on the 10,000 test images; these 1,000 are among them
    # (SE ~0.005 at these rates), so 0.95 leaves room only for sampling noise in the noise draw.
    assert (
        accuracy_at(model, *test_set, 0, g) > 0.95
        and accuracy_at(model, *test_set, 250, g) > 0.95
    )
