"""FD-MNIST of the side-by-side runs (eps, v, flow matching) at every checkpoint, at equal
network calls.

    python benchmarks/objective_sweep.py runs/objective-eps runs/objective-v runs/objective-flow \
        --models benchmarks/results/objectives --data-dir ../shared/data/mnist --n 1000 \
        --json benchmarks/results/objective_sweep.json

Each run directory is one `python -m ddpm_lite train` run (its command is in every sidecar);
keep all its checkpoints (--keep-checkpoints). At each checkpoint its EMA weights draw --n
unconditional samples, x0_pred clipped, with the first-order solver at --calls network calls:
DDIM (eta = 0) for an eps or v model, Euler for a flow model (the same method, in the
straight path's coordinates). At the last checkpoint also with a second seed (the sampling
noise of the FD) and with Heun at the odd call count below --calls. --models holds the last
checkpoints' EMA weights as shipped (tools/ship_model.py); the data file records their SHA-256
and a live check on the flow model that the flow-matching chapter recomputes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
from fd_mnist import LIVE_REFERENCE, Scorer
from hardware import describe
from solver_sweep import draw

from ddpm_lite.checkpoint import checkpoint_files, sha256_of
from ddpm_lite.files import atomic_write
from ddpm_lite.solvers import network_calls
from ddpm_lite.trained import load_trained, objective_of

LIVE_CHECK = {"objective": "flow", "sampler": "euler", "steps": 20, "n": 64, "seed": 0}


def first_order(objective: str) -> str:
    return "euler" if objective == "flow" else "ddim"


def score(scorer, stem, sampler, steps, n, batch_size, seed) -> dict:
    model, schedule, info = load_trained(stem)
    objective = objective_of(info)
    began = time.perf_counter()
    x = draw(model, schedule, sampler, steps, n, batch_size, seed, objective)
    return {
        "objective": objective,
        "step": info["step"],
        "images_seen": info["images_seen"],
        "checkpoint_sha256": sha256_of(checkpoint_files(stem)[0]),
        "sampler": sampler,
        "steps": steps,
        "nfe": network_calls(sampler, steps, schedule.T),
        "seed": seed,
        "fd_mnist": scorer.fd(x),
        "seconds": round(time.perf_counter() - began, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", type=Path, nargs="+", help="training run directories")
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, help="MNIST IDX files")
    parser.add_argument("--n", type=int, default=1000, help="samples per point")
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    scorer = Scorer(args.data_dir)
    points, runs = [], {}
    for run in args.runs:
        stems = sorted(p.with_suffix("") for p in run.glob("checkpoint-*.json"))
        info = json.loads(stems[-1].with_suffix(".json").read_text())
        objective = objective_of(info)
        runs[objective] = {"command": info["command"], "wall_seconds": info.get(
            "wall_seconds_total"), "device": info["device"]}  # fmt: skip
        sampler = first_order(objective)
        one = (args.n, args.batch_size)
        for stem in stems:
            points.append(score(scorer, stem, sampler, args.calls, *one, seed=0))
            print(points[-1], flush=True)
        last = stems[-1]
        points.append(score(scorer, last, sampler, args.calls, *one, seed=10_000))
        print(points[-1], flush=True)
        heun = (args.calls + 1) // 2
        points.append(score(scorer, last, "heun", heun, *one, seed=0))
        print(points[-1], flush=True)
    models = {}
    for objective in runs:
        stem = args.models / f"mnist_{objective}"
        models[objective] = {
            "file": str(checkpoint_files(stem)[0]),
            "sha256": sha256_of(checkpoint_files(stem)[0]),
        }
    c = LIVE_CHECK
    model, schedule, _ = load_trained(args.models / f"mnist_{c['objective']}")
    x = draw(
        model, schedule, c["sampler"], c["steps"], c["n"], c["n"], c["seed"], "flow"
    )
    record = {
        "command": "python benchmarks/objective_sweep.py " + " ".join(sys.argv[1:]),
        "hardware": describe(torch.device("cpu")),
        "n": args.n,
        "clip_denoised": True,
        "test_images": scorer.count,
        "runs": runs,
        "models": models,
        "points": points,
        "live_check": {
            **c,
            "reference": LIVE_REFERENCE,
            "fd_mnist": Scorer(None, 2000).fd(x),
        },
    }
    atomic_write(
        args.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2))
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
