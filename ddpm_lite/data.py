"""MNIST as tensors, and the book's pixel convention: x = 2 * p / 255 - 1 in [-1, 1].

Where the data comes from, in order:
1. a directory given as `root`, or by the environment variable DDPM_LITE_MNIST_DIR,
   holding the four standard IDX files (gzip-compressed or raw); with `download=True`
   missing files are first fetched from the public mirrors, MD5-checked, written
   atomically;
2. the small real-MNIST subset shipped inside this package (6,000 training and 2,000
   test images, CC BY-SA 3.0), with a notice saying so at logging level INFO (the
   command line shows it; a library caller sees it only after configuring `logging`).
A failed download that falls back to the subset issues a `UserWarning`.
"""

from __future__ import annotations

import gzip
import http.client
import logging
import os
import urllib.request
import warnings
from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor

from . import _validate as v
from .files import atomic_write, file_hash

ENV_VAR = "DDPM_LITE_MNIST_DIR"
SPLITS = ("train", "test")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
SUBSET_DIR = Path(__file__).with_name("mnist_subset")
logger = logging.getLogger(__name__)
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049


MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
MD5 = {  # of the four original archives
    "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
    "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
    "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
}


class DownloadError(OSError):
    """No mirror delivered a complete file with the right checksum."""


class MNIST(NamedTuple):
    images: Tensor  # (N, 28, 28) uint8, pixel values 0..255
    labels: Tensor  # (N,) int64, digits 0..9
    source: str  # the directory the files were read from


def to_model_range(pixels: Tensor) -> Tensor:
    """uint8 pixels p in 0..255 -> float x = 2 p / 255 - 1 in [-1, 1].

    (N, H, W) gains a channel axis: (N, 1, H, W).
    """
    if pixels.dtype != torch.uint8:
        raise TypeError(f"pixels must be uint8 (0..255), got dtype {pixels.dtype}")
    x = pixels.to(torch.float32) * (2.0 / 255.0) - 1.0
    return x.unsqueeze(1) if x.ndim == 3 else x


def to_pixels(x: Tensor) -> Tensor:
    """The inverse of to_model_range: clip to [-1, 1], round to the nearest level."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def _find_file(directory: Path, stem: str) -> Path | None:
    for name in (stem + ".gz", stem):
        if (directory / name).is_file():
            return directory / name
    return None


def _read_idx(path: Path, magic: int) -> Tensor:
    """Parse one IDX file (gzip or raw).

    Raise ValueError naming the file if it is truncated or corrupt.
    """
    try:
        raw = (
            gzip.decompress(path.read_bytes())
            if path.suffix == ".gz"
            else path.read_bytes()
        )
    except (OSError, EOFError, gzip.BadGzipFile) as err:
        raise ValueError(
            f"{path}: not a readable gzip file ({err}); delete it and fetch it again"
        ) from err
    if len(raw) < 8 or int.from_bytes(raw[:4], "big") != magic:
        found = int.from_bytes(raw[:4], "big") if len(raw) >= 4 else None
        raise ValueError(f"{path}: bad IDX header (magic {found}, expected {magic})")
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    offset = 4 + 4 * ndim
    expected = offset + int(torch.tensor(dims).prod())
    if len(raw) != expected:
        raise ValueError(
            f"{path}: truncated or corrupt, "
            f"{len(raw)} bytes where the header promises {expected}"
        )
    return torch.frombuffer(bytearray(raw[offset:]), dtype=torch.uint8).reshape(dims)


def read_mnist_dir(directory: str | os.PathLike, split: str) -> MNIST:
    """Read one split from a directory of standard IDX files."""
    directory = Path(directory)
    image_stem, label_stem = FILES[split]
    paths = [_find_file(directory, image_stem), _find_file(directory, label_stem)]
    if None in paths:
        raise FileNotFoundError(
            f"{directory} lacks {image_stem}[.gz] or {label_stem}[.gz]"
        )
    images = _read_idx(paths[0], IMAGE_MAGIC)
    labels = _read_idx(paths[1], LABEL_MAGIC).long()
    if images.ndim != 3 or images.shape[0] != labels.shape[0]:
        raise ValueError(
            f"{directory}: {images.shape[0]} images but {labels.shape[0]} labels"
        )
    return MNIST(images, labels, str(directory))


def _fetch(url: str, target: Path, md5: str, timeout: float) -> None:
    """Stream url into a temporary file beside target, check its length and MD5, then
    rename it into place: an interrupted or corrupt download leaves nothing behind."""

    def write(temporary: str) -> None:
        with (
            open(temporary, "wb") as out,
            urllib.request.urlopen(url, timeout=timeout) as response,
        ):
            expected = response.headers.get("Content-Length")
            written = 0
            for chunk in iter(lambda: response.read(1 << 16), b""):
                out.write(chunk)
                written += len(chunk)
        if expected is not None and written != int(expected):
            raise DownloadError(
                f"{url}: connection closed after {written} of {expected} bytes"
            )
        if file_hash(temporary, "md5") != md5:
            raise DownloadError(f"{url}: MD5 mismatch (expected {md5})")

    atomic_write(target, write)


def download_mnist(
    directory: str | os.PathLike,
    split: str | None = None,
    mirrors: tuple[str, ...] | None = None,
    checksums: dict[str, str] | None = None,
    timeout: float = 30.0,
) -> Path:
    """Fetch the missing MNIST archives of `split` (or of both) into `directory`.

    Files already present with the right MD5 are kept. Each file is tried on every
    mirror in turn; DownloadError lists every failure when none succeeds.
    """
    mirrors = (
        MIRRORS if mirrors is None else mirrors
    )  # looked up at call time, so tests can redirect
    checksums = MD5 if checksums is None else checksums
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    stems = FILES[split] if split is not None else FILES["train"] + FILES["test"]
    for name in (stem + ".gz" for stem in stems):
        target = directory / name
        if target.is_file() and file_hash(target, "md5") == checksums[name]:
            continue
        failures = []
        for mirror in mirrors:
            try:
                _fetch(mirror + name, target, checksums[name], timeout)
                break
            except (
                OSError,
                http.client.HTTPException,
            ) as err:  # URLError is an OSError; IncompleteRead an HTTPException
                failures.append(f"{mirror}{name}: {err}")
        else:
            raise DownloadError(
                f"could not download {name}:\n  " + "\n  ".join(failures)
            )
    return directory


def load_mnist(
    split: str = "train", root: str | os.PathLike | None = None, download: bool = False
) -> MNIST:
    """MNIST `split` ("train" or "test").

    From `root`, else $DDPM_LITE_MNIST_DIR, else the shipped subset. With download=True
    and a directory given, missing files are downloaded first; if that fails (offline),
    the shipped subset is used, with a warning.
    """
    v.choice("split", split, SPLITS)
    given = root if root is not None else os.environ.get(ENV_VAR)
    if given is not None:
        if download:
            try:
                download_mnist(given, split)
            except DownloadError as err:
                warnings.warn(
                    f"MNIST download failed ({str(err).splitlines()[0]}); "
                    "using the shipped subset",
                    stacklevel=2,
                )
                return _shipped_subset(split)
        return read_mnist_dir(given, split)
    return _shipped_subset(split)


def _shipped_subset(split: str) -> MNIST:
    logger.info(
        f"no MNIST directory available (argument root or ${ENV_VAR}); "
        "using the shipped subset of real MNIST (6,000 train / 2,000 test images; "
        "LeCun, Cortes & Burges, CC BY-SA 3.0).",
    )
    return read_mnist_dir(SUBSET_DIR, split)
