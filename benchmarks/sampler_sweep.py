"""FD-MNIST and MNIST-IS of the shipped model against the number of network evaluations.

    python benchmarks/sampler_sweep.py --data-dir ../shared/data/mnist --n 250 \
        --json benchmarks/results/sampler_sweep.json

DDIM with eta in {0, 0.5, 1} at 10, 20, 50 and 100 steps, and the ancestral sampler (DDPM,
1,000 steps) with both variances, each on --n samples from one seed, x0_pred clipped. The
data file also holds a small live check (DDIM-10, eta 0, 64 samples, scored against the first
2,000 test images, which ship with the package) that the sampling chapter recomputes exactly, and the weights' SHA-256, so a retrained model makes the file stale.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from hardware import describe
from sample_quality import draw

from ddpm_lite.checkpoint import sha256_of
from ddpm_lite.classifier import load_classifier, predict
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.files import atomic_write
from ddpm_lite.metrics import feature_stats, frechet_distance, inception_score
from ddpm_lite.pretrained import load_pretrained, pretrained_path

LIVE_CHECK = {"sampler": "ddim", "eta": 0.0, "steps": 10, "n": 64, "seed": 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, help="MNIST IDX files (default: the shipped subset)"
    )
    parser.add_argument("--n", type=int, default=250, help="samples per configuration")
    parser.add_argument("--steps", type=int, nargs="*", default=[10, 20, 50, 100])
    parser.add_argument("--etas", type=float, nargs="*", default=[0.0, 0.5, 1.0])
    parser.add_argument(
        "--ddpm-variances",
        nargs="*",
        default=["beta_tilde", "beta"],
        help="the 1,000-step ancestral runs (none: skip them)",
    )
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device("cpu")
    model, schedule, _, _ = load_pretrained("mnist")
    weights = pretrained_path("mnist").with_suffix(".safetensors")
    classifier = load_classifier()
    test = (
        load_mnist("test", root=args.data_dir) if args.data_dir else load_mnist("test")
    )
    test_stats = feature_stats(
        predict(classifier, to_model_range(test.images[:10_000]))[0]
    )

    def score(x):
        feats, probs = predict(classifier, x)
        return frechet_distance(feature_stats(feats), test_stats), inception_score(
            probs
        )

    runs = []
    configs = [
        ("ddim", eta, steps, "beta_tilde") for eta in args.etas for steps in args.steps
    ]
    configs += [("ddpm", 1.0, 1000, variance) for variance in args.ddpm_variances]
    for sampler, eta, steps, variance in configs:
        began = time.perf_counter()
        x = draw(
            model,
            schedule,
            args.n,
            250,
            sampler,
            steps,
            eta,
            True,
            torch.Generator().manual_seed(0),
            variance=variance,
        )
        fd, inception = score(x)
        runs.append(
            {
                "sampler": sampler,
                "eta": eta,
                "steps": steps,
                "variance": variance,
                "nfe": steps,
                "fd_mnist": fd,
                "mnist_is": inception,
                "seconds": round(time.perf_counter() - began, 1),
            }
        )
        print(runs[-1], flush=True)
    c = LIVE_CHECK
    x = draw(
        model,
        schedule,
        c["n"],
        c["n"],
        c["sampler"],
        c["steps"],
        c["eta"],
        True,
        torch.Generator().manual_seed(c["seed"]),
    )
    live_stats = feature_stats(
        predict(classifier, to_model_range(test.images[:2000]))[0]
    )
    feats, probs = predict(classifier, x)
    fd, inception = (
        frechet_distance(feature_stats(feats), live_stats),
        inception_score(probs),
    )
    record = {
        "command": "python benchmarks/sampler_sweep.py " + " ".join(sys.argv[1:]),
        "hardware": describe(device),
        "weights": weights.name,
        "weights_sha256": sha256_of(weights),
        "n": args.n,
        "clip_denoised": True,
        "test_images": len(test.labels[:10_000]),
        "runs": runs,
        "live_check": {
            **c,
            "reference": "the first 2,000 MNIST test images",
            "fd_mnist": fd,
            "mnist_is": inception,
        },
    }
    atomic_write(
        args.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2))
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
