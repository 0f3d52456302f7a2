"""FD-MNIST of the shipped model's solvers at few calls, with several seeds and grids.

    python benchmarks/solver_spread.py --data-dir ../shared/data/mnist --n 1000 \
        --seeds 0 1 --json benchmarks/results/solver_spread.json

The solver sweep (solver_sweep.py) measured one seed of 200 samples a point: too few to
rank solvers whose FDs differ by less than the FD's own sampling noise. Here each point is
--n unconditional samples (x0_pred clipped) per seed, the seeds being separate sample sets
from the same starting points for every solver, so that the spread between seeds tells
which differences are resolved. Solvers, each at --calls network calls (Heun at the odd
count below): DDIM (its even-t grid) with eta 0 and 1, DPM-Solver++(2M) on its log-SNR grid and on the
even-t grid, and Heun on Karras's grid and on the even-t grid. The file is written after
every point, and a second run with the same --json adds the points it lacks.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from fd_mnist import Scorer
from hardware import describe
from records import open_record, save_record

from ddpm_lite.checkpoint import sha256_of
from ddpm_lite.pretrained import load_pretrained, pretrained_path
from ddpm_lite.sampling import ddim_trajectory, final_sample
from ddpm_lite.solvers import dpm_solver_trajectory, heun_trajectory, network_calls

CONFIGS = (  # (sampler, spacing, eta): each paper's default grid first
    ("ddim", "time", 0.0),
    ("ddim", "time", 1.0),
    ("dpm-solver++", "logsnr", 0.0),
    ("dpm-solver++", "time", 0.0),
    ("heun", "karras", 0.0),
    ("heun", "time", 0.0),
)


def run(model, schedule, sampler, spacing, eta, steps, shape, g):
    if sampler == "ddim":
        return ddim_trajectory(
            model, schedule, shape, g, steps, eta, clip_denoised=True
        )
    if sampler == "heun":
        return heun_trajectory(
            model, schedule, shape, g, steps, spacing, clip_denoised=True
        )
    return dpm_solver_trajectory(
        model, schedule, shape, g, steps, spacing=spacing, clip_denoised=True
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, help="MNIST IDX files")
    parser.add_argument("--n", type=int, default=1000, help="samples per seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--calls", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    model, schedule, _, _ = load_pretrained("mnist")
    weights = pretrained_path("mnist").with_suffix(".safetensors")
    scorer = Scorer(args.data_dir)
    record = open_record(args.json, args.n)
    record.update(
        hardware=describe(torch.device("cpu")), weights=weights.name,
        weights_sha256=sha256_of(weights), n=args.n, clip_denoised=True,
        test_images=scorer.count,
    )  # fmt: skip
    points = record["points"]
    done = {(p["sampler"], p["spacing"], p["eta"], p["nfe"], p["seed"]) for p in points}
    for calls in args.calls:
        for sampler, spacing, eta in CONFIGS:
            steps = (calls + 1) // 2 if sampler == "heun" else calls
            nfe = network_calls(sampler, steps, schedule.T)
            for seed in args.seeds:
                if (sampler, spacing, eta, nfe, seed) in done:
                    continue
                began, out = time.perf_counter(), []
                for k, start in enumerate(range(0, args.n, args.batch_size)):
                    shape = (min(args.batch_size, args.n - start), 1, 28, 28)
                    g = torch.Generator().manual_seed(seed * 100_000 + k)
                    with torch.no_grad():
                        states = run(
                            model, schedule, sampler, spacing, eta, steps, shape, g
                        )
                        out.append(final_sample(states).clamp(-1, 1))
                points.append({
                    "sampler": sampler, "spacing": spacing, "eta": eta, "steps": steps,
                    "nfe": nfe, "seed": seed, "fd_mnist": scorer.fd(torch.cat(out)),
                    "seconds": round(time.perf_counter() - began, 1),
                })  # fmt: skip
                print(points[-1], flush=True)
                save_record(args.json, record)
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
