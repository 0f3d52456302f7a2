import gzip
from pathlib import Path

import pytest
import torch

from ddpm_lite.data import ENV_VAR, SUBSET_DIR, load_mnist, read_mnist_dir, to_model_range, to_pixels

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_shared = pytest.mark.skipif(not SHARED_MNIST.is_dir(), reason="../shared/data/mnist is not present")


@needs_shared
@pytest.mark.parametrize("split,n", [("train", 60_000), ("test", 10_000)])
def test_parses_the_real_mnist_files(split, n):
    data = read_mnist_dir(SHARED_MNIST, split)
    assert data.images.shape == (n, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.shape == (n,) and set(data.labels.unique().tolist()) == set(range(10))


@needs_shared
def test_shipped_subset_is_the_first_images_of_the_real_files():
    real, subset = read_mnist_dir(SHARED_MNIST, "train"), read_mnist_dir(SUBSET_DIR, "train")
    assert torch.equal(subset.images, real.images[:6000]) and torch.equal(subset.labels, real.labels[:6000])


def test_shipped_subset_sizes_and_licence_notice(monkeypatch, capsys):
    monkeypatch.delenv(ENV_VAR, raising=False)
    train, test = load_mnist("train"), load_mnist("test")
    assert train.images.shape == (6000, 28, 28) and test.images.shape == (2000, 28, 28)
    assert "shipped subset of real MNIST" in capsys.readouterr().out
    size = sum(p.stat().st_size for p in SUBSET_DIR.iterdir())
    assert size <= 2_000_000


def test_environment_variable_selects_the_directory(monkeypatch, tmp_path):
    write_idx_pair(tmp_path, "test", n=3)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert load_mnist("test").images.shape == (3, 28, 28)


def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    return header + array.numpy().tobytes()


def write_idx_pair(directory, split, n, compress=True):
    stems = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"), "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}[split]
    images = torch.arange(n * 784, dtype=torch.int64).remainder(256).to(torch.uint8).reshape(n, 28, 28)
    labels = torch.arange(n).remainder(10).to(torch.uint8)
    for stem, magic, array in zip(stems, (2051, 2049), (images, labels)):
        raw = idx_bytes(array, magic)
        if compress:
            (directory / (stem + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (directory / stem).write_bytes(raw)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_reads_gzip_and_raw_idx(tmp_path, compress):
    images, labels = write_idx_pair(tmp_path, "train", n=5, compress=compress)
    data = read_mnist_dir(tmp_path, "train")
    assert torch.equal(data.images, images) and torch.equal(data.labels, labels.long())


def test_truncated_file_is_rejected_with_its_name(tmp_path):
    write_idx_pair(tmp_path, "train", n=5)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-100]))
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: truncated or corrupt, 3836 bytes where the header promises 3936"):
        read_mnist_dir(tmp_path, "train")


def test_corrupt_gzip_is_rejected_with_its_name(tmp_path):
    write_idx_pair(tmp_path, "train", n=5)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: not a readable gzip file"):
        read_mnist_dir(tmp_path, "train")


def test_wrong_magic_is_rejected(tmp_path):
    write_idx_pair(tmp_path, "train", n=2)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01" + bytes(100)))
    with pytest.raises(ValueError, match=r"bad IDX header \(magic 2049, expected 2051\)"):
        read_mnist_dir(tmp_path, "train")


def test_missing_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="lacks train-images-idx3-ubyte"):
        read_mnist_dir(tmp_path, "train")


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\)"):
        load_mnist("validation")


def test_pixel_convention_round_trips_every_level():
    pixels = torch.arange(256, dtype=torch.uint8).reshape(1, 16, 16)
    x = to_model_range(pixels)
    assert x.shape == (1, 1, 16, 16) and x.min() == -1.0 and x.max() == 1.0
    assert torch.equal(to_pixels(x)[:, 0], pixels)


def test_pixel_convention_rejects_floats():
    with pytest.raises(TypeError, match="pixels must be uint8"):
        to_model_range(torch.zeros(2, 28, 28))
