"""Rebuild ddpm_lite/mnist_subset/ from the original MNIST archives.

    python tools/make_mnist_subset.py ../shared/data/mnist

Takes the first 6,000 training and the first 2,000 test images with their labels and
writes them as standard gzip IDX files (gzip mtime 0, so the output is reproducible).
"""

import gzip
import sys

from ddpm_lite.data import FILES, IMAGE_MAGIC, LABEL_MAGIC, SUBSET_DIR, read_mnist_dir

COUNTS = {"train": 6000, "test": 2000}


def idx_bytes(array, magic):
    header = magic.to_bytes(4, "big") + b"".join(
        int(d).to_bytes(4, "big") for d in array.shape
    )
    return header + array.contiguous().numpy().tobytes()


def main(source: str) -> None:
    SUBSET_DIR.mkdir(exist_ok=True)
    for split, n in COUNTS.items():
        data = read_mnist_dir(source, split)
        for stem, magic, array in zip(
            FILES[split],
            (IMAGE_MAGIC, LABEL_MAGIC),
            (data.images[:n], data.labels[:n].to(dtype=data.images.dtype)),
        ):
            path = SUBSET_DIR / (stem + ".gz")
            with (
                open(path, "wb") as raw,
                gzip.GzipFile(
                    filename=stem, mode="wb", fileobj=raw, mtime=0, compresslevel=9
                ) as f,
            ):
                f.write(idx_bytes(array, magic))
            print(path, path.stat().st_size, "bytes")


if __name__ == "__main__":
    main(sys.argv[1])
