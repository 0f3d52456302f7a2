"""Guidance on MNIST: the requested class's accuracy against FD-MNIST and MNIST-IS, for both kinds of guidance.

    python benchmarks/guidance_sweep.py --data-dir ../shared/data/mnist --n 200 \
        --json benchmarks/results/guidance_sweep.json

Classifier-free guidance: the shipped class-conditional model at w in --cfg-scales
(eps_uncond + w (eps_cond - eps_uncond); w = 1 is the conditional model, w = 0 the unconditional).
Classifier guidance: the shipped unconditional model steered by the shipped noise-conditional
classifier p_phi(y | x_t, t) at s in --cg-scales. Each configuration draws --n samples, an equal
number of each digit, DDIM-50 (eta 0, x0_pred clipped) from one seed; the *evaluation* classifier
(not the guiding one) judges the requested class. Also records the FD-MNIST floor at --n real
training images, and a small live check (CFG at w = 3, DDIM-10, 50 samples) that the guidance
chapter recomputes exactly, and the weights' SHA-256, so a retrained model makes the file stale.
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

from ddpm_lite.checkpoint import checkpoint_files, sha256_of
from ddpm_lite.classifier import load_classifier, predict
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.files import atomic_write
from ddpm_lite.guidance import (
    classifier_free_guidance,
    classifier_grad,
    classifier_guidance,
)
from ddpm_lite.metrics import feature_stats, frechet_distance, inception_score
from ddpm_lite.noisy_classifier import SHIPPED as NOISY_SHIPPED
from ddpm_lite.noisy_classifier import load_noisy_classifier
from ddpm_lite.pretrained import load_pretrained, pretrained_path

LIVE_CHECK = {"method": "cfg", "scale": 3.0, "steps": 10, "n": 50, "seed": 0}


def guided_model(method: str, scale: float, model, noisy_classifier, schedule):
    """labels (b,) -> eps_model(x_t, t) for one batch: the guided noise prediction."""
    if method == "cfg":
        return lambda y: classifier_free_guidance(
            model, y, model.config.num_classes, scale
        )
    return lambda y: classifier_guidance(
        model, classifier_grad(noisy_classifier, y), schedule, scale
    )


def score(classifier, x, labels, test_stats) -> dict:
    feats, probs = predict(classifier, x)
    return {
        "requested_class_accuracy": (probs.argmax(1) == labels).float().mean().item(),
        "fd_mnist": frechet_distance(feature_stats(feats), test_stats),
        "mnist_is": inception_score(probs),
    }


def balanced_labels(n: int) -> torch.Tensor:
    return torch.arange(10).repeat_interleave(-(-n // 10))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, help="MNIST IDX files (default: the shipped subset)"
    )
    parser.add_argument(
        "--n",
        type=int,
        default=200,
        help="samples per configuration (a multiple of 10)",
    )
    parser.add_argument(
        "--cfg-scales", type=float, nargs="*", default=[0, 1, 2, 3, 5, 7]
    )
    parser.add_argument("--cg-scales", type=float, nargs="*", default=[0, 1, 2, 5, 10])
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    classifier = load_classifier()
    model, schedule, _, _ = load_pretrained("mnist-cond")
    noisy = load_noisy_classifier()
    train, test = (
        load_mnist(s, root=args.data_dir) if args.data_dir else load_mnist(s)
        for s in ("train", "test")
    )
    test_stats = feature_stats(
        predict(classifier, to_model_range(test.images[:10_000]))[0]
    )
    floor = frechet_distance(
        feature_stats(predict(classifier, to_model_range(train.images[: args.n]))[0]),
        test_stats,
    )
    labels = balanced_labels(args.n)
    runs = []
    for method, scales in (("cfg", args.cfg_scales), ("classifier", args.cg_scales)):
        for scale in scales:
            began = time.perf_counter()
            x = draw(
                guided_model(method, scale, model, noisy, schedule),
                schedule,
                args.n,
                250,
                "ddim",
                args.steps,
                0.0,
                True,
                torch.Generator().manual_seed(0),
                labels,
            )
            runs.append(
                {
                    "method": method,
                    "scale": scale,
                    **score(classifier, x, labels, test_stats),
                    "seconds": round(time.perf_counter() - began, 1),
                }
            )
            print(runs[-1], flush=True)
    live = LIVE_CHECK
    live_labels = balanced_labels(live["n"])
    x = draw(
        guided_model(live["method"], live["scale"], model, noisy, schedule),
        schedule,
        live["n"],
        250,
        "ddim",
        live["steps"],
        0.0,
        True,
        torch.Generator().manual_seed(live["seed"]),
        live_labels,
    )
    reference = feature_stats(
        predict(classifier, to_model_range(load_mnist("test").images[:2000]))[0]
    )
    live_result = {
        **live,
        "reference": "the first 2,000 MNIST test images",
        **score(classifier, x, live_labels, reference),
    }
    weights = checkpoint_files(pretrained_path("mnist-cond"))[0]
    record = {
        "command": "python benchmarks/guidance_sweep.py " + " ".join(sys.argv[1:]),
        "hardware": describe(torch.device("cpu")),
        "weights": weights.name,
        "weights_sha256": sha256_of(weights),
        "noisy_classifier_sha256": sha256_of(checkpoint_files(NOISY_SHIPPED)[0]),
        "n": args.n,
        "sampler": f"DDIM-{args.steps}, eta 0, clipped",
        "seed": 0,
        "fd_floor_train_images": floor,
        "runs": runs,
        "live_check": live_result,
    }
    atomic_write(
        args.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2))
    )


if __name__ == "__main__":
    main()
