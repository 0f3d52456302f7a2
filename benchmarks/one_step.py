"""One-step generators against their teacher: FD-MNIST at 1, 2 and 4 network calls.

    python benchmarks/one_step.py --data-dir ../shared/data/mnist --n 2000 \
        --json benchmarks/results/one_step.json

Every point draws the same --n starting points x_1 (batch k from seed + k) and the same
labels, each uniform at random (`guidance.random_labels`), and samples the conditional
network at w = 1 (a one-step model has no second prediction to mix). The shipped
one-step models (mnist-meanflow: MeanFlow's loss; mnist-meanflow-distil: the same loss
with the teacher's velocity) take --calls steps of their average velocity
(`flow_map.flow_map_sample`); the teacher (mnist-flow) takes Heun's --teacher-steps
steps (2k - 1 calls) and Euler's steps at each of --calls, the same number of calls.
Samples are clipped to [-1, 1]. A live check (the shipped model, 1 call, 64 samples,
scored against the 2,000 test images that ship with the package) is recomputed by the
one-step chapter. The file is written after every point; a second run with the same
--json adds the points it lacks.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from fd_mnist import Scorer
from hardware import describe
from records import open_record, save_live_check, save_record

from ddpm_lite.checkpoint import sha256_of
from ddpm_lite.flow_map import flow_map_sample
from ddpm_lite.guidance import random_labels
from ddpm_lite.pretrained import load_pretrained, pretrained_path
from ddpm_lite.sampling import final_sample
from ddpm_lite.solvers import flow_trajectory_from, network_calls

STUDENTS, TEACHER = ("mnist-meanflow", "mnist-meanflow-distil"), "mnist-flow"
LIVE_CHECK = {"model": STUDENTS[0], "calls": 1, "n": 64, "seed": 0}


def starting_points(n: int, seed: int, batch_size: int = 250) -> torch.Tensor:
    """n draws of x_1 ~ N(0, I), batch k from seed + k."""
    return torch.cat([
        torch.randn(min(batch_size, n - start), 1, 28, 28,
                    generator=torch.Generator().manual_seed(seed + k))
        for k, start in enumerate(range(0, n, batch_size))
    ])  # fmt: skip


def one_step_samples(model, x1, labels, calls, batch_size=250):
    """flow_map_sample of each batch with its labels, clipped."""
    out = []
    for x, y in zip(x1.split(batch_size), labels.split(batch_size)):
        with torch.no_grad():
            out.append(flow_map_sample(lambda x, s, r: model(x, s, r, y), x, calls))
    return torch.cat(out).clamp(-1, 1)


def teacher_samples(model, x1, labels, method, steps, batch_size=250):
    """The teacher's straight-path steps (`solvers.flow_trajectory_from`), clipped."""
    out = []
    for x, y in zip(x1.split(batch_size), labels.split(batch_size)):
        run = flow_trajectory_from(lambda x, r: model(x, r, y), x, 1.0, steps, method,
                                   clip_denoised=True)  # fmt: skip
        with torch.no_grad():
            out.append(final_sample(run))
    return torch.cat(out).clamp(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="MNIST IDX files")
    parser.add_argument("--n", type=int, default=2000, help="samples per point")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--calls", type=int, nargs="*", default=[1, 2, 4])
    parser.add_argument("--teacher-steps", type=int, default=10)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    scorer = Scorer(args.data_dir)
    record = open_record(args.json, args.n)
    models = {}
    for name in (*STUDENTS, TEACHER):
        weights = pretrained_path(name).with_suffix(".safetensors")
        models[name] = {"file": f"ddpm_lite/weights/{weights.name}",
                        "sha256": sha256_of(weights)}  # fmt: skip
    record.update(
        hardware=describe(torch.device("cpu")), n=args.n, seed=args.seed,
        labels="random, w = 1", clip=True, test_images=scorer.count, models=models,
    )  # fmt: skip
    points = record["points"]
    done = {(p["model"], p["method"], p["calls"]) for p in points}
    x1 = starting_points(args.n, args.seed)
    labels = random_labels(args.n, 10, args.seed)

    def measure(model_name, method, calls, draw):
        key = (model_name, method, calls)
        if key in done:
            return
        began = time.perf_counter()
        x = draw()
        point = {"model": model_name, "method": method, "calls": calls,
                 "sha256": models[model_name]["sha256"], "fd_mnist": scorer.fd(x),
                 "seconds": round(time.perf_counter() - began, 1)}  # fmt: skip
        points.append(point)
        done.add(key)
        print(point, flush=True)
        save_record(args.json, record)

    teacher = load_pretrained(TEACHER).model
    k = args.teacher_steps
    heun_calls = network_calls("heun", k, 1000)
    measure(TEACHER, "heun", heun_calls,
            lambda: teacher_samples(teacher, x1, labels, "heun", k))  # fmt: skip
    students = {name: load_pretrained(name).model for name in STUDENTS}
    for calls in args.calls:
        for name, model in students.items():
            measure(name, "flow-map", calls,
                    lambda: one_step_samples(model, x1, labels, calls))  # fmt: skip
        measure(TEACHER, "euler", calls,
                lambda: teacher_samples(teacher, x1, labels, "euler", calls))  # fmt: skip
    c = LIVE_CHECK
    g = torch.Generator().manual_seed(c["seed"])
    x1 = torch.randn(c["n"], 1, 28, 28, generator=g)
    y = random_labels(c["n"], 10, c["seed"])
    x = one_step_samples(students[c["model"]], x1, y, c["calls"])
    save_live_check(args.json, record, c, x)


if __name__ == "__main__":
    main()
