"""FD-MNIST of the shipped model against network calls for DDIM, DPM-Solver++(2M) and Heun.

    python benchmarks/solver_sweep.py --data-dir ../shared/data/mnist --n 1000 \
        --json benchmarks/results/solver_sweep.json

Unconditional samples, x0_pred clipped, one seed per configuration (the same x_T for every
sampler): DDIM (eta = 0) and DPM-Solver++(2M) at --calls network calls (DPM-Solver++ only
where its log-SNR grid fits T's indices: up to 38 steps at T = 1000), Heun at the odd
call counts nearest below them (2 n - 1), and DDIM-100 as the reference line. The data
file holds a live check (DPM-Solver++ at 10 calls, 64 samples, scored against the first
2,000 test images, which ship with the package) that the solvers chapter recomputes, and
the weights' SHA-256, so a retrained model makes the file stale.
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

from ddpm_lite.checkpoint import sha256_of
from ddpm_lite.files import atomic_write
from ddpm_lite.pretrained import load_pretrained, pretrained_path
from ddpm_lite.sampling import final_sample
from ddpm_lite.solvers import network_calls, sampler_trajectory, solver_timesteps

LIVE_CHECK = {"sampler": "dpm-solver++", "steps": 10, "n": 64, "seed": 0}


def max_logsnr_steps(schedule) -> int:
    """The most DPM-Solver++ steps whose log-SNR grid rounds to distinct indices."""
    n = 1
    while n < schedule.T:
        try:
            solver_timesteps(schedule, n + 1, "logsnr")
        except ValueError:
            return n
        n += 1
    return n


def draw(model, schedule, sampler, steps, n, batch_size, seed, objective="eps"):
    """n clipped samples of one sampler; batch k's x_T is the same for every sampler."""
    out = []
    for k, start in enumerate(range(0, n, batch_size)):
        shape = (min(batch_size, n - start), 1, 28, 28)
        g = torch.Generator().manual_seed(seed + k)
        run = sampler_trajectory(
            sampler, model, schedule, shape, g, steps, 0.0, True, objective
        )
        with torch.no_grad():
            out.append(final_sample(run).clamp(-1, 1))
    return torch.cat(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir", type=Path, help="MNIST IDX files (default: subset)"
    )
    parser.add_argument("--n", type=int, default=1000, help="samples per configuration")
    parser.add_argument("--calls", type=int, nargs="*", default=[5, 10, 20, 30, 50])
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    device = torch.device("cpu")
    model, schedule, _, _ = load_pretrained("mnist")
    weights = pretrained_path("mnist").with_suffix(".safetensors")
    scorer = Scorer(args.data_dir)
    configs = [("ddim", 100)]
    most = max_logsnr_steps(schedule)
    for calls in args.calls:
        configs += [("ddim", calls), ("heun", (calls + 1) // 2)]
        if calls <= most:  # the log-SNR grid of more steps does not fit T's indices
            configs.append(("dpm-solver++", calls))
    runs = []
    for sampler, steps in configs:
        began = time.perf_counter()
        x = draw(model, schedule, sampler, steps, args.n, args.batch_size, seed=0)
        fd = scorer.fd(x)
        nfe = network_calls(sampler, steps, schedule.T)
        seconds = round(time.perf_counter() - began, 1)
        runs.append(
            {
                "sampler": sampler,
                "steps": steps,
                "nfe": nfe,
                "fd_mnist": fd,
                "seconds": seconds,
            }
        )
        print(runs[-1], flush=True)
    c = LIVE_CHECK
    x = draw(model, schedule, c["sampler"], c["steps"], c["n"], c["n"], c["seed"])
    live_fd = Scorer(None, 2000).fd(x)
    record = {
        "command": "python benchmarks/solver_sweep.py " + " ".join(sys.argv[1:]),
        "hardware": describe(device),
        "weights": weights.name,
        "weights_sha256": sha256_of(weights),
        "n": args.n,
        "clip_denoised": True,
        "test_images": scorer.count,
        "dpm_solver_most_steps": most,
        "runs": runs,
        "live_check": {
            **c,
            "reference": LIVE_REFERENCE,
            "fd_mnist": live_fd,
        },
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(
        args.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2))
    )
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
