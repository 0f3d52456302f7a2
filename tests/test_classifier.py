"""The MNIST classifier behind FD-MNIST and MNIST-IS: shapes, augmentation, training, and the shipped weights."""

import shutil

import pytest
import torch

from ddpm_lite.checkpoint import CheckpointError
from ddpm_lite.classifier import (
    SHIPPED,
    ClassifierConfig,
    MNISTClassifier,
    accuracy,
    load_classifier,
    predict,
    random_shift,
    train_classifier,
)
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.fit import save_fitted
from ddpm_lite.metrics import feature_stats, frechet_distance


@pytest.fixture(scope="module")
def shipped():
    return load_classifier()


@pytest.fixture(scope="module")
def subset():
    train, test = (
        load_mnist("train"),
        load_mnist("test"),
    )  # the shipped real-MNIST subset
    return (
        to_model_range(train.images),
        train.labels,
        to_model_range(test.images),
        test.labels,
    )


def test_shapes_of_features_and_logits():
    model = MNISTClassifier(ClassifierConfig(channels=(4, 8), features=16)).eval()
    x = torch.zeros(3, 1, 28, 28)
    assert model.features(x).shape == (3, 16) and model(x).shape == (3, 10)


def test_random_shift_moves_whole_images_by_at_most_max_shift():
    x = torch.zeros(200, 1, 28, 28)
    x[:, :, 14, 14] = 1.0  # one lit pixel: its new position is the shift
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    rows, cols = (
        shifted[:, 0].flatten(1).argmax(1).div(28, rounding_mode="floor"),
        shifted[:, 0].flatten(1).argmax(1) % 28,
    )
    assert (shifted.flatten(1).sum(1) == 1).all()
    assert set((rows - 14).tolist()) == set(range(-2, 3)) and set(
        (cols - 14).tolist()
    ) == set(range(-2, 3))


def test_random_shift_of_zero_is_the_identity():
    x = torch.randn(4, 1, 28, 28)
    assert random_shift(x, 0, torch.Generator()).equal(x)


def test_predict_in_batches_matches_one_pass(shipped, subset):
    x = subset[2][:50]
    feats, probs = predict(shipped, x, batch_size=7)
    with torch.no_grad():
        assert torch.allclose(feats, shipped.features(x), atol=1e-5)
        assert torch.allclose(probs, torch.softmax(shipped(x), 1), atol=1e-6)


def test_shipped_classifier_is_accurate_on_the_shipped_test_subset(shipped, subset):
    # The sidecar records 99.57 % on all 10,000 test images. These 2,000 are among them; the
    # classifier is deterministic, so this pins at most ~0.7 % more errors than that rate (~9 of 2,000).
    assert accuracy(shipped, subset[2], subset[3]) >= 0.99


def test_shipped_sidecar_records_its_training(shipped):
    import json

    info = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert info["metrics"]["test_accuracy"] >= 0.993 and info["data"][
        "test"
    ].startswith("10000 images")
    assert info["command"].startswith("python -m ddpm_lite train-classifier")


def test_tampered_weights_fail_the_checksum(tmp_path):
    for suffix in (".safetensors", ".json"):
        shutil.copy(SHIPPED.with_suffix(suffix), tmp_path / f"c{suffix}")
    data = bytearray((tmp_path / "c.safetensors").read_bytes())
    data[-1] ^= 1
    (tmp_path / "c.safetensors").write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="does not match"):
        load_classifier(tmp_path / "c")


def test_training_learns_a_small_problem_and_round_trips(tmp_path, subset):
    config = ClassifierConfig(channels=(8, 16), features=32, epochs=4, batch_size=32)
    images, labels = subset[0][:2000], subset[1][:2000]
    result = train_classifier(config, images, labels)
    # chance is 10 %; 250 steps of a tiny network reach 91 % on 1,000 test images (measured, 2 s)
    assert accuracy(result.model, subset[2][:1000], subset[3][:1000]) > 0.8
    save_fitted(tmp_path / "c", result.model, {"note": "test"})
    loaded = load_classifier(tmp_path / "c")
    x = subset[2][:10]
    with torch.no_grad():
        assert torch.equal(loaded(x), result.model(x))


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"epochs": 0}, "epochs must be >= 1"),
        ({"channels": (8,)}, "channels must be two positive ints"),
        ({"max_shift": -1}, "max_shift must be >= 0"),
    ],
)
def test_bad_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ClassifierConfig(**kwargs)


def test_training_rejects_images_of_the_wrong_shape():
    with pytest.raises(ValueError, match=r"images must have shape \(N, 1, 28, 28\)"):
        train_classifier(
            ClassifierConfig(), torch.zeros(4, 28, 28), torch.zeros(4, dtype=torch.long)
        )


def _blur(x, width):
    kernel = torch.ones(1, 1, width, width) / width**2
    return torch.nn.functional.conv2d(
        torch.nn.functional.pad(x, (width // 2,) * 4, mode="replicate"), kernel
    )


@pytest.mark.parametrize(
    "corrupt,levels",
    [
        (
            lambda x, s, g: (x + s * torch.randn(x.shape, generator=g)).clamp(-1, 1),
            (0.0, 0.2, 0.4, 0.8),
        ),
        (lambda x, w, g: _blur(x, w) if w > 1 else x, (1, 3, 5, 7)),
    ],
)
def test_fd_mnist_rises_monotonically_with_noise_and_blur(
    shipped, subset, corrupt, levels
):
    """The issue's sanity check: a worse copy of the test set is farther from the training set."""
    reference = feature_stats(predict(shipped, subset[0][:2000])[0])
    g = torch.Generator().manual_seed(0)
    distances = [
        frechet_distance(
            feature_stats(predict(shipped, corrupt(subset[2], level, g))[0]), reference
        )
        for level in levels
    ]
    assert all(a < b for a, b in zip(distances, distances[1:])), distances
