"""Does the shipped model copy its training images? Nearest-neighbour distances, samples vs held-out images.

    python benchmarks/memorization.py --data-dir ../shared/data/mnist --n 1000 \
        --json benchmarks/results/memorization.json

Draws --n unconditional DDIM-50 samples (eta 0, x0_pred clipped, seed 0) and takes --n MNIST test
images (never trained on). For each, the distance to its nearest neighbour among all training
images, in pixel space (L2 in [-1, 1]) and in the evaluation classifier's features. A model that
copies puts its samples much closer to the training set than held-out digits are. Writes
quantiles and histograms of both distributions, stamped with the command and the weights' SHA-256.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from hardware import describe
from sample_quality import draw

from ddpm_lite.checkpoint import checkpoint_files, sha256_of
from ddpm_lite.classifier import load_classifier, predict
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.files import atomic_write
from ddpm_lite.pretrained import load_pretrained, pretrained_path

QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95)


def nearest_distances(
    queries: torch.Tensor, bank: torch.Tensor, chunk: int = 250
) -> torch.Tensor:
    """For each row of queries (n, d), the L2 distance to its nearest row of bank (m, d)."""
    return torch.cat([torch.cdist(q, bank).min(1).values for q in queries.split(chunk)])


def summary(d: torch.Tensor, edges: torch.Tensor) -> dict:
    return {
        "quantiles": dict(
            zip(
                map(str, QUANTILES), torch.quantile(d, torch.tensor(QUANTILES)).tolist()
            )
        ),
        "histogram": torch.histogram(d.clamp(edges[0], edges[-1]), edges)
        .hist.int()
        .tolist(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, help="MNIST IDX files (default: the shipped subset)"
    )
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    classifier = load_classifier()
    model, schedule, _, _ = load_pretrained("mnist")
    train, test = (
        load_mnist(s, root=args.data_dir) if args.data_dir else load_mnist(s)
        for s in ("train", "test")
    )
    train_x, test_x = (
        to_model_range(train.images),
        to_model_range(test.images[: args.n]),
    )
    samples = draw(
        model,
        schedule,
        args.n,
        250,
        "ddim",
        50,
        0.0,
        True,
        torch.Generator().manual_seed(0),
    )
    record = {
        "command": "python benchmarks/memorization.py " + " ".join(sys.argv[1:]),
        "hardware": describe(torch.device("cpu")),
        "n": args.n,
        "training_images": len(train.labels),
        "weights": "mnist_ddpm.safetensors",
        "weights_sha256": sha256_of(checkpoint_files(pretrained_path("mnist"))[0]),
        "sampler": "DDIM-50, eta 0, clipped",
        "seed": 0,
    }
    train_f = predict(classifier, train_x)[0]
    for space, (bank, s, q) in {
        "pixels": (train_x.flatten(1), samples.flatten(1), test_x.flatten(1)),
        "features": (
            train_f,
            predict(classifier, samples)[0],
            predict(classifier, test_x)[0],
        ),
    }.items():
        d_samples, d_test = nearest_distances(s, bank), nearest_distances(q, bank)
        edges = torch.linspace(
            0, torch.cat([d_samples, d_test]).max().item() * 1.01, 41
        )
        record[space] = {
            "edges": edges.tolist(),
            "samples": summary(d_samples, edges),
            "test": summary(d_test, edges),
            "samples_closer_than_test_1st_percentile": (
                d_samples < torch.quantile(d_test, 0.01)
            )
            .float()
            .mean()
            .item(),
        }
        print(
            space,
            {
                k: (v["samples"]["quantiles"]["0.5"], v["test"]["quantiles"]["0.5"])
                for k, v in [(space, record[space])]
            },
            flush=True,
        )
    atomic_write(
        args.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2))
    )


if __name__ == "__main__":
    main()
