"""The shipped flow-matching model (mnist-flow): FD-MNIST against network calls, the
requested digit's accuracy with and without guidance, and its float16 weights against
the run's float32 ones.

    python benchmarks/flow_model.py --data-dir ../shared/data/mnist --n 2000 \
        --float32 runs/mnist-flow-2500/checkpoint-0002500 \
        --json benchmarks/results/flow_model.json

Unconditional points (the network given the "no label" token): Euler's and Heun's steps
on the straight path's even grid (`solvers.flow_trajectory`), x0_pred clipped, --n
samples from one seed, at each of --euler-steps and --heun-steps (Heun's k steps are
2k - 1 network calls). Conditional points: an equal number of each digit with Heun's
--guided-steps steps, judged by the shipped classifier (not trained with the model):
--n samples at guidance scale w = 1 (the conditional model), --n with each label drawn
uniformly at random (`guidance.random_labels`: all digits, from the conditional network),
--sweep-n at each of --scales (w = 0 is the unconditional model). --float32: the same checkpoint in float32
against the shipped float16 weights, --sweep-n samples each from the same noise. A live check (64 samples, scored against the first 2,000 test images,
which ship with the package) is recomputed by the flow-matching chapter. The file is
written after every point; a second run with the same --json adds the points it lacks.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from fd_mnist import Scorer
from hardware import describe
from records import open_record, save_live_check, save_record

from ddpm_lite.checkpoint import checkpoint_files, sha256_of
from ddpm_lite.classifier import predict
from ddpm_lite.guidance import classifier_free_guidance, random_labels
from ddpm_lite.pretrained import load_pretrained, pretrained_path
from ddpm_lite.sampling import final_sample
from ddpm_lite.solvers import flow_trajectory, network_calls
from ddpm_lite.trained import load_trained

NAME = "mnist-flow"
LIVE_CHECK = {"method": "heun", "steps": 10, "n": 64, "seed": 0}


def sample(model, n, method, steps, seed, labels=None, scale=None, batch_size=250):
    """n clipped samples; batch k from seed + k; with labels, guided at `scale`."""
    out = []
    for k, start in enumerate(range(0, n, batch_size)):
        b = min(batch_size, n - start)
        g = torch.Generator().manual_seed(seed + k)
        velocity = model
        if labels is not None:
            y = labels[start : start + b]
            velocity = classifier_free_guidance(
                model, y, model.config.num_classes, scale
            )
        run = flow_trajectory(velocity, (b, 1, 28, 28), g, steps, method,
                              clip_denoised=True)  # fmt: skip
        with torch.no_grad():
            out.append(final_sample(run).clamp(-1, 1))
    return torch.cat(out)


def balanced_labels(n: int) -> torch.Tensor:
    return torch.arange(10).repeat_interleave(-(-n // 10))[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="MNIST IDX files")
    parser.add_argument("--n", type=int, default=2000, help="samples per point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--euler-steps", type=int, nargs="*", default=[10])
    parser.add_argument("--heun-steps", type=int, nargs="*", default=[5, 10])
    parser.add_argument("--guided-steps", type=int, default=10)
    parser.add_argument("--sweep-n", type=int, default=500, help="samples per w")
    parser.add_argument("--scales", type=float, nargs="*", default=[0, 2, 4])
    parser.add_argument("--float32", type=Path, help="the run's checkpoint, float32")
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    scorer = Scorer(args.data_dir)
    model = load_pretrained(NAME).model
    weights = pretrained_path(NAME).with_suffix(".safetensors")
    record = open_record(args.json, args.n)
    record.update(
        hardware=describe(torch.device("cpu")), n=args.n, seed=args.seed,
        clip_denoised=True, test_images=scorer.count,
        models={NAME: {"file": f"ddpm_lite/weights/{weights.name}",
                       "sha256": sha256_of(weights)}},
    )  # fmt: skip
    points = record["points"]
    done = {(p["kind"], p["method"], p["steps"], p["scale"], p["n"]) for p in points}

    def measure(kind, method, steps, n, scale=None, labels=None, net=model):
        if (kind, method, steps, scale, n) in done:
            return
        began = time.perf_counter()
        x = sample(net, n, method, steps, args.seed, labels, scale)
        point = {"kind": kind, "method": method, "steps": steps,
                 "calls": network_calls(method, steps, 1000), "scale": scale, "n": n,
                 "fd_mnist": scorer.fd(x)}  # fmt: skip
        if labels is not None:
            probs = predict(scorer.classifier, x)[1]
            point["right_digit"] = (probs.argmax(1) == labels).float().mean().item()
        point["seconds"] = round(time.perf_counter() - began, 1)
        points.append(point)
        done.add((kind, method, steps, scale, n))
        print(point, flush=True)
        save_record(args.json, record)

    for steps in args.heun_steps:
        measure("unconditional", "heun", steps, args.n)
    for steps in args.euler_steps:
        measure("unconditional", "euler", steps, args.n)
    steps = args.guided_steps
    measure("guided", "heun", steps, args.n, 1.0, balanced_labels(args.n))
    # all digits from the conditional network: each label uniform at random, w = 1
    randomly = random_labels(args.n, 10, args.seed)
    measure("random labels", "heun", steps, args.n, 1.0, randomly)
    for scale in args.scales:
        measure(
            "guided", "heun", steps, args.sweep_n, scale, balanced_labels(args.sweep_n)
        )
    if args.float32:
        full = load_trained(args.float32).model
        measure("unconditional", "heun", steps, args.sweep_n)
        measure("unconditional float32", "heun", steps, args.sweep_n, net=full)
        record["float32"] = {"file": str(args.float32),
                             "sha256": sha256_of(checkpoint_files(args.float32)[0])}  # fmt: skip
    c = LIVE_CHECK
    x = sample(model, c["n"], c["method"], c["steps"], c["seed"], batch_size=c["n"])
    save_live_check(args.json, record, c, x)


if __name__ == "__main__":
    main()
