"""FD-MNIST, MNIST-IS and the class histogram of samples, beside the real-data references.

    python benchmarks/sample_quality.py --data-dir ../shared/data/mnist                  # references only
    python benchmarks/sample_quality.py --pretrained mnist --data-dir ../shared/data/mnist --n 2000 \
        --json benchmarks/results/quality_mnist.json
    python benchmarks/sample_quality.py --pretrained mnist-cond --guidance-scale 1 --n 500 --data-dir ../shared/data/mnist
    python benchmarks/sample_quality.py runs/mnist --n 10000 --sampler ddpm              # any training checkpoint

References: FD-MNIST between n training images and the 10,000 test images (the floor a perfect
model reaches with n samples: the estimate is biased upward at small n), and MNIST-IS of the
test set. Features and class probabilities come from the shipped classifier. With mnist-cond,
each digit gets n/10 samples and the accuracy of the requested class is reported too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from hardware import describe

from ddpm_lite.checkpoint import checkpoint_files, resolve_checkpoint, sha256_of
from ddpm_lite.classifier import load_classifier, predict
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.devices import resolve_device
from ddpm_lite.files import atomic_write
from ddpm_lite.guidance import classifier_free_guidance
from ddpm_lite.metrics import (
    class_histogram,
    feature_stats,
    frechet_distance,
    inception_score,
)
from ddpm_lite.pretrained import load_pretrained, pretrained_path
from ddpm_lite.sampling import ddim_trajectory, ddpm_trajectory, final_sample
from ddpm_lite.trained import load_trained


def load(args, device):
    """(model, schedule, weights file) of --pretrained NAME or a checkpoint path."""
    if args.pretrained:
        model, schedule, _, _ = load_pretrained(args.pretrained, device)
        return (
            model,
            schedule,
            pretrained_path(args.pretrained).with_suffix(".safetensors"),
        )
    stem = resolve_checkpoint(args.checkpoint)
    model, schedule, _ = load_trained(stem, device=device)
    return model, schedule, checkpoint_files(stem)[0]


@torch.no_grad()
def draw(
    eps_model,
    schedule,
    n,
    batch_size,
    sampler,
    steps,
    eta,
    clip,
    generator,
    labels=None,
    variance="beta_tilde",
):
    """n samples in [-1, 1]; with labels (n,), eps_model(x, t, y) is called with each batch's labels."""
    out = []
    for start in range(0, n, batch_size):
        b = min(batch_size, n - start)
        model = eps_model if labels is None else eps_model(labels[start : start + b])
        shape = (b, 1, 28, 28)
        trajectory = (
            ddim_trajectory(
                model, schedule, shape, generator, steps, eta=eta, clip_denoised=clip
            )
            if sampler == "ddim"
            else ddpm_trajectory(
                model, schedule, shape, generator, variance, clip_denoised=clip
            )
        )
        out.append(final_sample(trajectory).clamp(-1, 1))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", type=Path)
    parser.add_argument("--pretrained", choices=("mnist", "mnist-cond"))
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="MNIST IDX files (default: the shipped subset, 6,000 / 2,000)",
    )
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--eta", type=float, default=0.0)
    parser.add_argument(
        "--no-clip",
        action="store_true",
        help="do not clip x0_pred (clipped by default)",
    )
    parser.add_argument(
        "--guidance-scale",
        type=float,
        default=1.0,
        help="mnist-cond: classifier-free guidance w",
    )
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--json",
        type=Path,
        help="also write the results here, stamped with command and checksum",
    )
    args = parser.parse_args()
    if args.checkpoint and args.pretrained:
        parser.error("give a checkpoint or --pretrained, not both")
    device = resolve_device(args.device)
    classifier = load_classifier(device=device)
    train, test = (
        load_mnist(s, root=args.data_dir) if args.data_dir else load_mnist(s)
        for s in ("train", "test")
    )
    n_test = min(10_000, len(test.labels))
    test_feats, test_probs = predict(
        classifier, to_model_range(test.images[:n_test]).to(device)
    )
    test_stats = feature_stats(test_feats)
    n_floor = min(args.n, len(train.labels))
    floor = frechet_distance(
        feature_stats(
            predict(classifier, to_model_range(train.images[:n_floor]).to(device))[0]
        ),
        test_stats,
    )
    print(describe(device))
    print(
        f"references: FD-MNIST floor ({n_floor} train vs {n_test} test) {floor:.3f}; MNIST-IS of the test set "
        f"{inception_score(test_probs):.3f}; classifier accuracy "
        f"{(test_probs.argmax(1).cpu() == test.labels[:n_test]).float().mean().item():.4f}"
    )
    if args.checkpoint is None and args.pretrained is None:
        return
    model, schedule, weights = load(args, device)
    g = torch.Generator(device).manual_seed(args.seed)
    clip = not args.no_clip
    labels = None
    if args.pretrained == "mnist-cond":
        labels = torch.arange(10, device=device).repeat_interleave(-(-args.n // 10))[
            : args.n
        ]
        eps_model = lambda y: classifier_free_guidance(
            model, y, 10, args.guidance_scale
        )  # noqa: E731
    else:
        eps_model = model
    began = time.perf_counter()
    x = draw(
        eps_model,
        schedule,
        args.n,
        args.batch_size,
        args.sampler,
        args.steps,
        args.eta,
        clip,
        g,
        labels,
    )
    seconds = time.perf_counter() - began
    feats, probs = predict(classifier, x)
    name = (
        f"DDIM-{args.steps} (eta {args.eta})" if args.sampler == "ddim" else "DDPM-1000"
    )
    result = {
        "fd_mnist": frechet_distance(feature_stats(feats), test_stats),
        "mnist_is": inception_score(probs),
        "class_histogram": [round(v, 4) for v in class_histogram(probs).tolist()],
        "max_prob_mean": probs.max(1).values.mean().item(),
    }
    if labels is not None:
        result["requested_class_accuracy"] = (
            (probs.argmax(1) == labels).float().mean().item()
        )
        result["guidance_scale"] = args.guidance_scale
    print(
        f"{name}, {args.n} samples, clip={clip}, from {weights.name}: "
        + "; ".join(
            f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}"
            for k, v in result.items()
        )
        + f"; sampling took {seconds:.0f} s"
    )
    if args.json:
        record = {
            "command": "python benchmarks/sample_quality.py " + " ".join(sys.argv[1:]),
            "hardware": describe(device),
            "weights": weights.name,
            "weights_sha256": sha256_of(weights),
            "n": args.n,
            "sampler": name,
            "clip_denoised": clip,
            "seed": args.seed,
            "sampling_seconds": round(seconds, 1),
            "fd_mnist_floor_same_n": floor,
            "n_floor": n_floor,
            **result,
        }
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(
            args.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2))
        )


if __name__ == "__main__":
    main()
