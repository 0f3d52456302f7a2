import gzip
import hashlib
import logging
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch

from ddpm_lite.data import (
    ENV_VAR,
    FILES,
    IMAGE_MAGIC,
    LABEL_MAGIC,
    SUBSET_DIR,
    DownloadError,
    download_mnist,
    load_mnist,
    read_mnist_dir,
    to_model_range,
    to_pixels,
)


@pytest.fixture(scope="module")
def real_mnist_dir():
    """The four original MNIST files.

    From $DDPM_LITE_MNIST_DIR, or else the checkout's sibling shared/data/mnist.
    """
    candidates = [
        os.environ.get(ENV_VAR),
        Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist",
    ]
    for candidate in candidates:
        if candidate and all(
            (Path(candidate) / (f + ".gz")).is_file() or (Path(candidate) / f).is_file()
            for split in ("train", "test")
            for f in FILES[split]
        ):
            return Path(candidate)
    pytest.skip(
        f"no full MNIST directory "
        f"(set ${ENV_VAR} to one holding the four original files)"
    )


def write_idx(directory, split, images, labels):
    """Standard gzip IDX files, as tools/make_mnist_subset.py writes them."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem, magic, array in zip(
        FILES[split], (IMAGE_MAGIC, LABEL_MAGIC), (images, labels)
    ):
        header = magic.to_bytes(4, "big") + b"".join(
            int(d).to_bytes(4, "big") for d in array.shape
        )
        with gzip.open(directory / (stem + ".gz"), "wb") as f:
            f.write(header + array.numpy().tobytes())


def test_parses_generated_idx_files(tmp_path):
    images = torch.randint(
        0,
        256,
        (7, 28, 28),
        generator=torch.Generator().manual_seed(0),
        dtype=torch.uint8,
    )
    labels = torch.tensor([3, 1, 4, 1, 5, 9, 2], dtype=torch.uint8)
    write_idx(tmp_path, "test", images, labels)
    data = read_mnist_dir(tmp_path, "test")
    assert torch.equal(data.images, images) and data.labels.tolist() == labels.tolist()


@pytest.mark.parametrize("split,n", [("train", 60_000), ("test", 10_000)])
def test_parses_the_real_mnist_files(split, n, real_mnist_dir):
    data = read_mnist_dir(real_mnist_dir, split)
    assert data.images.shape == (n, 28, 28) and data.images.dtype == torch.uint8
    assert data.labels.shape == (n,) and set(data.labels.unique().tolist()) == set(
        range(10)
    )


def test_shipped_subset_is_the_first_images_of_the_real_files(real_mnist_dir):
    real, subset = (
        read_mnist_dir(real_mnist_dir, "train"),
        read_mnist_dir(SUBSET_DIR, "train"),
    )
    assert torch.equal(subset.images, real.images[:6000]) and torch.equal(
        subset.labels, real.labels[:6000]
    )


def test_shipped_subset_sizes_and_licence_notice(monkeypatch, capsys, caplog):
    monkeypatch.delenv(ENV_VAR, raising=False)
    with caplog.at_level(logging.INFO, logger="ddpm_lite.data"):
        train, test = load_mnist("train"), load_mnist("test")
    assert train.images.shape == (6000, 28, 28) and test.images.shape == (2000, 28, 28)
    assert (
        "shipped subset of real MNIST" in caplog.text and "CC BY-SA 3.0" in caplog.text
    )
    assert capsys.readouterr().out == ""  # library code prints nothing
    size = sum(p.stat().st_size for p in SUBSET_DIR.iterdir())
    assert size <= 2_000_000


def test_environment_variable_selects_the_directory(monkeypatch, tmp_path):
    write_idx_pair(tmp_path, "test", n=3)
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert load_mnist("test").images.shape == (3, 28, 28)


def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.numpy().tobytes()


def write_idx_pair(directory, split, n, compress=True):
    stems = {
        "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
        "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
    }[split]
    images = (
        torch.arange(n * 784, dtype=torch.int64)
        .remainder(256)
        .to(torch.uint8)
        .reshape(n, 28, 28)
    )
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
    with pytest.raises(
        ValueError,
        match=r"train-images-idx3-ubyte.gz: truncated or corrupt, "
        r"3836 bytes where the header promises 3936",
    ):
        read_mnist_dir(tmp_path, "train")


def test_corrupt_gzip_is_rejected_with_its_name(tmp_path):
    write_idx_pair(tmp_path, "train", n=5)
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(
        ValueError, match=r"train-labels-idx1-ubyte.gz: not a readable gzip file"
    ):
        read_mnist_dir(tmp_path, "train")


def test_wrong_magic_is_rejected(tmp_path):
    write_idx_pair(tmp_path, "train", n=2)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(b"\x00\x00\x08\x01" + bytes(100))
    )
    with pytest.raises(
        ValueError, match=r"bad IDX header \(magic 2049, expected 2051\)"
    ):
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


# --- download, against a server on 127.0.0.1 ------------------------------------------


@pytest.fixture
def served_files(tmp_path):
    """Generated gzip IDX files for the test split, their MD5s and a server per
    behaviour."""
    source = tmp_path / "source"
    source.mkdir()
    images, labels = write_idx_pair(source, "test", n=50)
    files = {p.name: p.read_bytes() for p in source.iterdir()}
    checksums = {name: hashlib.md5(data).hexdigest() for name, data in files.items()}
    servers = []

    def serve(behaviour: str) -> str:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                data = files.get(self.path.lstrip("/"))
                if data is None:
                    self.send_error(404)
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if behaviour == "drop":  # promise everything, send half, hang up
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.connection.close()
                elif behaviour == "corrupt":
                    self.wfile.write(bytes(len(data)))
                else:
                    self.wfile.write(data)

            def log_message(self, *args):
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/"

    yield serve, checksums, images, labels
    for server in servers:
        server.shutdown()


def test_download_writes_verified_files_that_load(tmp_path, served_files):
    serve, checksums, images, labels = served_files
    target = tmp_path / "mnist"
    download_mnist(
        target, "test", mirrors=(serve("ok"),), checksums=checksums, timeout=5
    )
    data = read_mnist_dir(target, "test")
    assert torch.equal(data.images, images) and torch.equal(data.labels, labels.long())
    assert sorted(p.name for p in target.iterdir()) == sorted(
        checksums
    )  # no temporary files left


def test_dropped_connection_leaves_no_file_and_names_the_cause(tmp_path, served_files):
    serve, checksums, *_ = served_files
    target = tmp_path / "mnist"
    with pytest.raises(
        DownloadError, match=r"could not download t10k-\w+-idx\d-ubyte.gz"
    ):
        download_mnist(
            target, "test", mirrors=(serve("drop"),), checksums=checksums, timeout=5
        )
    assert list(target.iterdir()) == []


def test_corrupt_download_is_rejected_and_the_next_mirror_used(tmp_path, served_files):
    serve, checksums, images, _ = served_files
    target = tmp_path / "mnist"
    download_mnist(
        target,
        "test",
        mirrors=(serve("corrupt"), serve("ok")),
        checksums=checksums,
        timeout=5,
    )
    assert torch.equal(read_mnist_dir(target, "test").images, images)


def test_all_mirrors_failing_reports_each_failure(tmp_path, served_files):
    serve, checksums, *_ = served_files
    with pytest.raises(DownloadError, match=r"(?s)MD5 mismatch.*closed after"):
        download_mnist(
            tmp_path / "m",
            "test",
            mirrors=(serve("corrupt"), serve("drop")),
            checksums=checksums,
            timeout=5,
        )


def test_failed_download_falls_back_to_the_shipped_subset(
    tmp_path, monkeypatch, capsys
):
    import ddpm_lite.data as data

    monkeypatch.setattr(
        data, "MIRRORS", ("http://127.0.0.1:9/",)
    )  # port 9 (discard): refused at once
    monkeypatch.delenv(ENV_VAR, raising=False)
    with pytest.warns(
        UserWarning, match="MNIST download failed .*using the shipped subset"
    ):
        result = load_mnist("test", root=tmp_path / "empty", download=True)
    assert result.images.shape == (2000, 28, 28)
    assert capsys.readouterr().out == ""
