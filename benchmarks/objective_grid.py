"""FD-MNIST of the eps, v and flow models on one time grid: the controlled comparison.

    python benchmarks/objective_grid.py --models benchmarks/results/objectives \
        --data-dir ../shared/data/mnist --n 1000 --seeds 0 1 2 \
        --json benchmarks/results/objective_grid.json

The objective sweep (objective_sweep.py) samples each model with its own solver's grid:
DDIM even in t for eps and v, Euler even in r for flow. Here every model runs the same
solver on the same straight-path times: the eps and v models are read as velocity models
on the straight path (objectives.StraightVelocity: x_t = (a_t + b_t) x, velocity
eps_hat - x0_hat), which makes Euler's method DDIM, and all three are evaluated at the
r_t of the same code indices (solvers.straight_times), from the same starting points
(x_T / (a_T + b_T) at r_T), x0_pred clipped. Grids: "time" (DDIM's, even in t) and
"straight" (even in r_t); solvers: Euler at --calls calls and Heun at the odd count
below. Each seed is a separate set of --n samples, so the spread between seeds is the
sampling noise of one FD. A live check (64 samples of the v model, scored against the
first 2,000 test images, which ship with the package) is recomputed by the flow-matching
chapter. The file is written after every point; a second run with the
same --json adds the points it lacks (its command is recorded too).
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
from ddpm_lite.objectives import StraightVelocity, vp_to_straight
from ddpm_lite.sampling import final_sample
from ddpm_lite.solvers import flow_trajectory_from, solver_timesteps, straight_times
from ddpm_lite.trained import load_trained, objective_of

OBJECTIVES = ("eps", "v", "flow")
LIVE_CHECK = {"objective": "v", "grid": "straight", "method": "euler", "calls": 20,
              "n": 64, "seed": 0}  # fmt: skip


def velocity_model(stem: Path):
    """The model at `stem` as a velocity model on the straight path, its schedule, and
    its objective."""
    model, schedule, info = load_trained(stem)
    objective = objective_of(info)
    if objective != "flow":
        model = StraightVelocity(model, schedule)
    return model, schedule, objective


def grid(schedule, spacing: str, method: str, calls: int) -> list[float]:
    """The straight-path times of `calls` network calls of `method` on `spacing`."""
    steps = calls if method == "euler" else (calls + 1) // 2
    return straight_times(schedule, solver_timesteps(schedule, steps, spacing))


def draw(model, schedule, times, method, n, batch_size, seed) -> torch.Tensor:
    """n clipped samples; batch k starts from x_T drawn with seed + k, rescaled to the
    straight path at times[0] (the same points for every model)."""
    top = schedule.alpha_bars[-1:].double().cpu()
    out = []
    for k, start in enumerate(range(0, n, batch_size)):
        g = torch.Generator().manual_seed(seed + k)
        xT = torch.randn(min(batch_size, n - start), 1, 28, 28, generator=g)
        x, _ = vp_to_straight(xT, top.float())
        run = flow_trajectory_from(model, x, times[0], 0, method, True, times)
        with torch.no_grad():
            out.append(final_sample(run).clamp(-1, 1))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, help="MNIST IDX files")
    parser.add_argument("--n", type=int, default=1000, help="samples per point")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--grids", nargs="+", default=["straight", "time"])
    parser.add_argument("--methods", nargs="+", default=["euler", "heun"])
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    scorer = Scorer(args.data_dir)
    models = {}
    for objective in OBJECTIVES:
        stem = args.models / f"mnist_{objective}"
        models[objective] = velocity_model(stem)
        assert models[objective][2] == objective, (stem, models[objective][2])
    record = open_record(args.json, args.n)
    record.update(
        hardware=describe(torch.device("cpu")), n=args.n, clip_denoised=True,
        test_images=scorer.count, models={
            o: {"file": str(checkpoint_files(args.models / f"mnist_{o}")[0]),
                "sha256": sha256_of(checkpoint_files(args.models / f"mnist_{o}")[0])}
            for o in OBJECTIVES
        },
    )  # fmt: skip
    points = record["points"]
    done = {(p["objective"], p["grid"], p["method"], p["seed"]) for p in points}
    for spacing in args.grids:
        for method in args.methods:
            for objective, (model, schedule, _) in models.items():
                times = grid(schedule, spacing, method, args.calls)
                nfe = len(times) - 1 if method == "euler" else 2 * len(times) - 3
                for seed in args.seeds:
                    if (objective, spacing, method, seed) in done:
                        continue
                    began = time.perf_counter()
                    x = draw(model, schedule, times, method, args.n, args.batch_size,
                             seed * 100_000)  # fmt: skip
                    points.append({
                        "objective": objective, "grid": spacing, "method": method,
                        "nfe": nfe, "seed": seed, "r_first": times[0],
                        "r_last_call": times[-2], "fd_mnist": scorer.fd(x),
                        "seconds": round(time.perf_counter() - began, 1),
                    })  # fmt: skip
                    print(points[-1], flush=True)
                    save_record(args.json, record)
    c = LIVE_CHECK
    model, schedule, _ = models[c["objective"]]
    times = grid(schedule, c["grid"], c["method"], c["calls"])
    x = draw(model, schedule, times, c["method"], c["n"], c["n"], c["seed"])
    save_live_check(args.json, record, c, x)


if __name__ == "__main__":
    main()
