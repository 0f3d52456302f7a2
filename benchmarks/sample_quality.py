"""FD-MNIST, MNIST-IS and the class histogram of samples, beside the real-data references.

    python benchmarks/sample_quality.py --data-dir ../shared/data/mnist                  # references only
    python benchmarks/sample_quality.py runs/mnist --data-dir ../shared/data/mnist --n 10000 --sampler ddim

References: FD-MNIST between 10,000 training and the 10,000 test images (the floor a perfect
model can reach with 10k samples), and MNIST-IS of the test set. Features and class
probabilities come from the shipped classifier (ddpm_lite.classifier).
"""
from __future__ import annotations

import argparse
from pathlib import Path

import torch

from ddpm_lite.checkpoint import latest_checkpoint
from ddpm_lite.classifier import load_classifier, predict
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.metrics import class_histogram, feature_stats, frechet_distance, inception_score
from ddpm_lite.sampling import ddim_trajectory, ddpm_trajectory, final_sample
from ddpm_lite.schedules import NoiseSchedule, make_betas
from ddpm_lite.train import load_model, resolve_device

from hardware import describe


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", type=Path)
    parser.add_argument("--data-dir", type=Path, help="MNIST IDX files (default: the shipped subset, 6,000 / 2,000)")
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--sampler", choices=("ddim", "ddpm"), default="ddim")
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    device = resolve_device(args.device)
    classifier = load_classifier(device=device)
    train, test = (load_mnist(s, root=args.data_dir) if args.data_dir else load_mnist(s) for s in ("train", "test"))
    n_ref = min(10_000, len(test.labels))
    train_x, test_x = to_model_range(train.images[:n_ref]).to(device), to_model_range(test.images[:n_ref]).to(device)
    test_feats, test_probs = predict(classifier, test_x)
    test_stats = feature_stats(test_feats)
    print(describe(device))
    print(f"references on {n_ref} images: FD-MNIST floor (train vs test) {frechet_distance(feature_stats(predict(classifier, train_x)[0]), test_stats):.3f}; "
          f"MNIST-IS of the test set {inception_score(test_probs):.3f}; classifier accuracy "
          f"{(test_probs.argmax(1).cpu() == test.labels[:n_ref]).float().mean().item():.4f}")
    if args.checkpoint is None:
        return
    stem = latest_checkpoint(args.checkpoint) if args.checkpoint.is_dir() else args.checkpoint
    model = load_model(stem, device=device)
    schedule = NoiseSchedule(make_betas("linear", 1000)).to(device, torch.float32)
    g = torch.Generator(device).manual_seed(0)
    shape = (model.config.in_channels, model.config.image_size, model.config.image_size)
    samples = []
    for start in range(0, args.n, args.batch_size):
        b = min(args.batch_size, args.n - start)
        trajectory = ddim_trajectory(model, schedule, (b, *shape), g, args.steps, device=device) if args.sampler == "ddim" \
            else ddpm_trajectory(model, schedule, (b, *shape), g, device=device)
        samples.append(final_sample(trajectory).clamp(-1, 1))
    feats, probs = predict(classifier, torch.cat(samples))
    name = f"DDIM-{args.steps}" if args.sampler == "ddim" else "DDPM-1000"
    print(f"{name}, {args.n} samples from {stem}: FD-MNIST {frechet_distance(feature_stats(feats), test_stats):.3f}; "
          f"MNIST-IS {inception_score(probs):.3f}; class histogram {[round(v, 3) for v in class_histogram(probs).tolist()]}")


if __name__ == "__main__":
    main()
