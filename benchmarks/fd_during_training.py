"""FD-MNIST of a run's EMA weights at its saved checkpoints: sample quality against training time.

    python benchmarks/fd_during_training.py runs/mnist-cond --data-dir ../shared/data/mnist --n 400 --every 2 \
        --json benchmarks/results/fd_during_training.json

For every complete checkpoint in the directory (train with --keep-checkpoints large enough to
keep them), draws --n DDIM-50 samples (x0_pred clipped, unconditional: the "no label" token for
a class-conditional run) and scores them against the 10,000 test images. Records the step,
images seen, the run's wall time and the checkpoint's SHA-256 at each point (the last checkpoint
is always included), the FD of --n real training images (the floor at that sample size), and
the SHA-256 of the shipped model the run became.
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
from ddpm_lite.metrics import feature_stats, frechet_distance, inception_score
from ddpm_lite.pretrained import pretrained_path
from ddpm_lite.trained import load_trained


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a training run's directory")
    parser.add_argument("--data-dir", type=Path)
    parser.add_argument("--n", type=int, default=500)
    parser.add_argument(
        "--every", type=int, default=1, help="use every k-th checkpoint"
    )
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    classifier = load_classifier()
    test = (
        load_mnist("test", root=args.data_dir) if args.data_dir else load_mnist("test")
    )
    test_stats = feature_stats(
        predict(classifier, to_model_range(test.images[:10_000]))[0]
    )
    train = (
        load_mnist("train", root=args.data_dir)
        if args.data_dir
        else load_mnist("train")
    )
    floor = frechet_distance(
        feature_stats(predict(classifier, to_model_range(train.images[: args.n]))[0]),
        test_stats,
    )
    all_stems = sorted(p.with_suffix("") for p in args.run.glob("checkpoint-*.json"))
    stems = all_stems[:: args.every] + (
        [all_stems[-1]] if (len(all_stems) - 1) % args.every else []
    )
    points = []
    for stem in stems:
        model, schedule, info = load_trained(stem)
        x = draw(
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
        feats, probs = predict(classifier, x)
        points.append(
            {
                "step": info["step"],
                "images_seen": info["step"] * info["train_config"]["batch_size"],
                "wall_seconds": info.get(
                    "wall_seconds_total", info["wall_seconds_this_run"]
                ),
                "checkpoint_sha256": sha256_of(checkpoint_files(stem)[0]),
                "fd_mnist": frechet_distance(feature_stats(feats), test_stats),
                "mnist_is": inception_score(probs),
            }
        )
        print(points[-1], flush=True)
    record = {
        "command": "python benchmarks/fd_during_training.py " + " ".join(sys.argv[1:]),
        "hardware": describe(torch.device("cpu")),
        "n": args.n,
        "sampler": "DDIM-50, eta 0, clipped",
        "seed": 0,
        "fd_floor_train_images": floor,
        "weights": "mnist_ddpm.safetensors",
        "weights_sha256": sha256_of(checkpoint_files(pretrained_path("mnist"))[0]),
        "points": points,
    }
    atomic_write(
        args.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2))
    )


if __name__ == "__main__":
    main()
