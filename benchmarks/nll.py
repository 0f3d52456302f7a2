"""The shipped model's negative log-likelihood bound on MNIST test images, in bits per dimension.

    python benchmarks/nll.py --data-dir ../shared/data/mnist --n 2000 --strata 50 \
        --json benchmarks/results/nll.json

For each of the first --n test images, an unbiased stratified estimate of the variational bound
L_T + sum_t L_{t-1} + L_0 (`likelihood.vlb_estimate`: L_0 and L_T exact, one t per stratum of the
other 999 terms), with the discretized decoder, so the number is a bound on the NLL of 8-bit images.
Reports the mean and its standard error over images, the mean of each part, the mean term at a
few t, and a live check (the first 32 test images, seed 0) that the evaluation chapter recomputes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch
from hardware import describe

from ddpm_lite.checkpoint import checkpoint_files, sha256_of
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.files import atomic_write
from ddpm_lite.likelihood import vlb_estimate, vlb_terms
from ddpm_lite.pretrained import load_pretrained, pretrained_path

LIVE_CHECK = {"images": 32, "strata": 50, "seed": 0}
TERM_STEPS = [
    1,
    2,
    3,
    5,
    10,
    20,
    50,
    100,
    200,
    500,
    1000,
]  # paper steps: t = 1 is L_0, the others the KL L_{t-1}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-dir",
        type=Path,
        help="MNIST IDX files (default: the shipped subset, 2,000 test images)",
    )
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--strata", type=int, default=50)
    parser.add_argument("--batch-size", type=int, default=250)
    parser.add_argument("--json", type=Path, required=True)
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    model, schedule, _, _ = load_pretrained("mnist")
    test = (
        load_mnist("test", root=args.data_dir) if args.data_dir else load_mnist("test")
    )
    x0 = to_model_range(test.images[: args.n])
    g = torch.Generator().manual_seed(0)
    began = time.perf_counter()
    parts = [
        vlb_estimate(model, schedule, batch, args.strata, g)
        for batch in x0.split(args.batch_size)
    ]
    seconds = time.perf_counter() - began
    bpd = torch.cat([p.bits_per_dim for p in parts]).double()
    nats_per_bit = x0[0].numel() * math.log(2)
    mean_of = lambda name: (
        torch.cat([getattr(p, name) for p in parts]).double().mean().item()
        / nats_per_bit
    )  # noqa: E731
    terms = vlb_terms(
        model,
        schedule,
        x0[:500],
        [s - 1 for s in TERM_STEPS],
        torch.Generator().manual_seed(1),
    ).double()
    live = vlb_estimate(
        model,
        schedule,
        x0[: LIVE_CHECK["images"]],
        LIVE_CHECK["strata"],
        torch.Generator().manual_seed(LIVE_CHECK["seed"]),
    ).bits_per_dim.double()
    weights = checkpoint_files(pretrained_path("mnist"))[0]
    record = {
        "command": "python benchmarks/nll.py " + " ".join(sys.argv[1:]),
        "hardware": describe(torch.device("cpu")),
        "weights": weights.name,
        "weights_sha256": sha256_of(weights),
        "n": len(bpd),
        "strata": args.strata,
        "seconds": round(seconds, 1),
        "bits_per_dim": bpd.mean().item(),
        "standard_error": (bpd.std() / math.sqrt(len(bpd))).item(),
        "parts_bits_per_dim": {
            "L_T": mean_of("prior"),
            "L_0": mean_of("decoder"),
            "sum of L_1..L_999": mean_of("kl_sum"),
        },
        "mean_term_nats_at_paper_step": {
            str(s): v for s, v in zip(TERM_STEPS, terms.mean(1).tolist())
        },
        "live_check": {**LIVE_CHECK, "bits_per_dim": live.mean().item()},
    }
    print(
        json.dumps(
            {k: v for k, v in record.items() if k != "mean_term_nats_at_paper_step"},
            indent=1,
        ),
        flush=True,
    )
    atomic_write(
        args.json, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2))
    )


if __name__ == "__main__":
    main()
