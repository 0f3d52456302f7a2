"""Every GPU figure of the README in one command, written to one JSON file.

    make venv && .venv/bin/python benchmarks/gpu_suite.py --data-dir D    # on CUDA, <= 10 min
    .venv/bin/python benchmarks/gpu_suite.py --smoke                      # every stage, CPU
    .venv/bin/python benchmarks/gpu_suite.py --table FILE                 # README rows

Stages, each timed and each recording the device's peak memory:
1. training throughput of the `cpu` and `gpu` presets in bf16, with and without
   torch.compile: images/s after warm-up, and model FLOP utilisation (the U-Net's
   forward + backward FLOPs per image times images/s, over the device's bf16 peak);
2. the `gpu` preset trained for a fixed time, FD-MNIST of its EMA at each checkpoint, and
   the time to reach twice the real-data floor (FD between training and test digits);
3. 10,000 samples of the shipped model with DDIM-50 and with DPM-Solver++(2M) at 10
   network calls: seconds and FD-MNIST.
The JSON holds the hardware line and the command. Where the numbers say the `gpu` preset's
recipe does not suit the device (no quality in time, a small fraction of its peak, little
of its memory used), the suite says so. --smoke runs every stage on the CPU with the tiny
preset for a few steps (no torch.compile: the C++ build takes minutes), so a test keeps
the suite from rotting between GPU days.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from hardware import describe
from train_throughput import training_flops_per_image

from ddpm_lite.checkpoint import latest_checkpoint
from ddpm_lite.classifier import load_classifier, predict
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.devices import resolve_device
from ddpm_lite.files import atomic_write
from ddpm_lite.metrics import feature_stats, frechet_distance
from ddpm_lite.presets import get_preset
from ddpm_lite.pretrained import load_pretrained
from ddpm_lite.sampling import final_sample
from ddpm_lite.solvers import sampler_trajectory
from ddpm_lite.train import train
from ddpm_lite.trained import load_trained

SAMPLING = [
    ("ddim", 50),
    ("dpm-solver++", 10),
]  # the best solver of the solvers chapter
# Dense bf16 tensor-core peaks from the vendors' data sheets, in TFLOP/s (no sparsity).
BF16_PEAK_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
}


def bf16_peak(device: torch.device) -> tuple[float, str]:
    """(TFLOP/s, where it came from): the data sheet's, else a measured bf16 matmul."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
        for key, peak in BF16_PEAK_TFLOPS.items():
            if key in name:
                return peak, f"data sheet ({key})"
    n = 4096 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    a @ b
    sync(device)
    began = time.perf_counter()
    for _ in range(10):
        a @ b
    sync(device)
    return 2 * n**3 * 10 / (time.perf_counter() - began) / 1e12, "measured matmul"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_memory_gb(device: torch.device) -> float:
    """Since the last reset: CUDA's allocator peak, or the process's peak RSS on a CPU."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 1e9
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6  # KiB on Linux


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def fd_of(samples, classifier, reference) -> float:
    return frechet_distance(feature_stats(predict(classifier, samples)[0]), reference)


def draw(model, schedule, sampler, steps, n, batch, device, seed=0):
    out = []
    with (
        torch.no_grad(),
        torch.autocast(device.type, torch.bfloat16, device.type == "cuda"),
    ):
        for k, start in enumerate(range(0, n, batch)):
            shape = (min(batch, n - start), 1, 28, 28)
            g = torch.Generator(device).manual_seed(seed + k)
            run = sampler_trajectory(
                sampler, model, schedule, shape, g, steps, 0.0, True
            )
            out.append(final_sample(run).float().clamp(-1, 1))
    return torch.cat(out)


def throughput(preset_name, compile_, images, device, steps, batch) -> dict:
    """Images/s over the second half of a run (building, upload, compiling excluded)."""
    preset = get_preset(preset_name)
    half = max(1, steps // 2)
    config = replace(
        preset.train,
        steps=2 * half,
        checkpoint_every=half,
        device=device.type,
        precision="bf16",
        compile=compile_,
        batch_size=batch or preset.train.batch_size,
        warmup_steps=1,
    )
    reset_peak(device)
    with tempfile.TemporaryDirectory() as out:
        train(preset.unet, config, images, out, progress=False)
        first, second = (
            json.loads((Path(out) / f"checkpoint-{s:07d}.json").read_text())
            for s in (half, 2 * half)
        )
    seconds = second["wall_seconds_this_run"] - first["wall_seconds_this_run"]
    rate = half * config.batch_size / seconds
    flops = training_flops_per_image(preset.unet)
    return {
        "preset": preset_name,
        "compile": compile_,
        "batch_size": config.batch_size,
        "images_per_s": rate,
        "gflop_per_image": flops / 1e9,
        "achieved_tflops": rate * flops / 1e12,
        "peak_memory_gb": peak_memory_gb(device),
    }


def time_to_quality(
    preset_name,
    images,
    device,
    budget_s,
    chunk,
    eval_n,
    eval_steps,
    classifier,
    reference,
    floor,
) -> dict:
    """Train in chunks of `chunk` steps until budget_s: FD of the EMA after each chunk."""
    preset = get_preset(preset_name)
    points, began = [], time.perf_counter()
    reset_peak(device)
    with tempfile.TemporaryDirectory() as out:
        k = 0
        while time.perf_counter() - began < budget_s:
            k += 1
            config = replace(
                preset.train,
                steps=k * chunk,
                checkpoint_every=chunk,
                device=device.type,
                keep_checkpoints=1,
            )
            train(preset.unet, config, images, out, progress=False)
            trained_s = time.perf_counter() - began
            model, schedule, info = load_trained(
                latest_checkpoint(Path(out)), device=device
            )
            fd = fd_of(
                draw(model, schedule, "ddim", eval_steps, eval_n, 500, device),
                classifier,
                reference,
            )
            points.append(
                {
                    "step": info["step"],
                    "train_seconds": info["wall_seconds_total"],
                    "wall_seconds": trained_s,
                    "fd_mnist": fd,
                }
            )
            print(f"  step {info['step']}: FD-MNIST {fd:.2f}", flush=True)
    reached = [p for p in points if p["fd_mnist"] <= 2 * floor]
    return {
        "preset": preset_name,
        "eval_samples": eval_n,
        "points": points,
        "seconds_to_twice_floor": reached[0]["train_seconds"] if reached else None,
        "peak_memory_gb": peak_memory_gb(device),
    }


def sampling(device, n, configs, classifier, reference) -> list[dict]:
    model, schedule, _, _ = load_pretrained("mnist", device)
    runs = []
    for sampler, steps in configs:
        reset_peak(device)
        sync(device)
        began = time.perf_counter()
        x = draw(model, schedule, sampler, steps, n, min(n, 2500), device)
        sync(device)
        seconds = time.perf_counter() - began
        runs.append(
            {
                "sampler": sampler,
                "steps": steps,
                "n": n,
                "seconds": seconds,
                "fd_mnist": fd_of(x, classifier, reference),
                "peak_memory_gb": peak_memory_gb(device),
            }
        )
        print(f"  {sampler}-{steps}: {n} samples in {seconds:.1f} s", flush=True)
    return runs


def verdicts(record: dict, device: torch.device) -> list[str]:
    """What the numbers say about the gpu preset's recipe on this device."""
    said = []
    gpu = [r for r in record["throughput"] if r["preset"] == "gpu"]
    best = max((r["achieved_tflops"] for r in gpu), default=0.0)
    if best < 0.05 * record["bf16_peak_tflops"]:
        said.append(
            f"the gpu preset uses {best / record['bf16_peak_tflops']:.1%} of the device's "
            "bf16 peak: its U-Net or batch is too small for this device"
        )
    quality = record["time_to_quality"]
    if quality["seconds_to_twice_floor"] is None:
        said.append(
            "the gpu preset did not reach twice the FD-MNIST floor in "
            f"{record['budget_seconds']} s: its recipe converges too slowly here"
        )
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory / 1e9
        used = max(r["peak_memory_gb"] for r in gpu)
        if used < 0.1 * total:
            said.append(
                f"training used {used:.1f} of {total:.0f} GB: a larger batch would fit"
            )
    return said


def table(path: Path) -> str:
    """The README's rows for one suite file."""
    r = json.loads(path.read_text())
    rows = [
        f"Measured by `{r['command']}` ({r['hardware']}):",
        "",
        "| what | number |",
        "| --- | --- |",
    ]
    for t in r["throughput"]:
        mfu = t["achieved_tflops"] / r["bf16_peak_tflops"]
        rows.append(
            f"| train `{t['preset']}`, bf16, compile={t['compile']} | "
            f"{t['images_per_s']:,.0f} images/s, {mfu:.1%} of bf16 peak, "
            f"{t['peak_memory_gb']:.1f} GB |"
        )
    q = r["time_to_quality"]
    reached = q["seconds_to_twice_floor"]
    rows.append(
        f"| `{q['preset']}` to twice the FD floor ({r['fd_floor']:.2f}) | "
        + (f"{reached:.0f} s |" if reached is not None else "not reached |")
    )
    for s in r["sampling"]:
        rows.append(
            f"| {s['n']:,} samples, {s['sampler']}-{s['steps']} | "
            f"{s['seconds']:.1f} s, FD-MNIST {s['fd_mnist']:.2f} |"
        )
    rows += [f"| note | {v} |" for v in r["verdicts"]]
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--smoke", action="store_true", help="every stage, briefly, CPU"
    )
    parser.add_argument(
        "--data-dir", type=Path, help="MNIST IDX files (default: subset)"
    )
    parser.add_argument("--budget-seconds", type=float, default=240.0)
    parser.add_argument(
        "--json", type=Path, help="default: benchmarks/results/gpu/<date>.json"
    )
    parser.add_argument(
        "--table", type=Path, help="print the README rows of a suite file"
    )
    args = parser.parse_args()
    if args.table:
        print(table(args.table))
        return
    device = torch.device("cpu") if args.smoke else resolve_device("cuda")
    train_set = (
        load_mnist("train", root=args.data_dir)
        if args.data_dir
        else load_mnist("train")
    )
    test = (
        load_mnist("test", root=args.data_dir) if args.data_dir else load_mnist("test")
    )
    images = to_model_range(train_set.images)
    classifier = load_classifier(device=device)
    n_ref = 500 if args.smoke else 10_000
    reference = feature_stats(
        predict(classifier, to_model_range(test.images[:n_ref]).to(device))[0]
    )
    floor_images = to_model_range(train_set.images[:n_ref]).to(device)
    floor = frechet_distance(
        feature_stats(predict(classifier, floor_images)[0]), reference
    )
    peak, peak_source = bf16_peak(device)
    began = time.perf_counter()
    record = {
        "command": "python benchmarks/gpu_suite.py " + " ".join(sys.argv[1:]),
        "hardware": describe(device),
        "smoke": args.smoke,
        "bf16_peak_tflops": peak,
        "bf16_peak_source": peak_source,
        "fd_floor": floor,
        "budget_seconds": 2.0 if args.smoke else args.budget_seconds,
    }
    print("1. training throughput", flush=True)
    if args.smoke:
        record["throughput"] = [throughput("tiny", False, images, device, 4, 8)]
        record["throughput"][0]["preset"] = "gpu"  # the smoke run stands in for it
    else:
        record["throughput"] = [
            throughput(p, c, images, device, 200, None)
            for p in ("cpu", "gpu")
            for c in (False, True)
        ]
    print("2. time to quality", flush=True)
    record["time_to_quality"] = time_to_quality(
        "tiny" if args.smoke else "gpu",
        images,
        device,
        record["budget_seconds"],
        2 if args.smoke else 1000,
        16 if args.smoke else 2000,
        4 if args.smoke else 50,  # DDIM steps of each evaluation
        classifier,
        reference,
        floor,
    )
    print("3. sampling", flush=True)
    configs = [("ddim", 4), ("dpm-solver++", 3)] if args.smoke else SAMPLING
    n = 16 if args.smoke else 10_000
    record["sampling"] = sampling(device, n, configs, classifier, reference)
    record["wall_seconds"] = time.perf_counter() - began
    record["verdicts"] = verdicts(record, device)
    stamp = time.strftime("%Y-%m-%d")
    path = (
        args.json
        or Path("benchmarks/results/gpu")
        / f"{stamp}-{'smoke' if args.smoke else 'cuda'}.json"
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: Path(tmp).write_text(json.dumps(record, indent=2)))
    print(describe(device))
    print(table(path))
    for line in record["verdicts"]:
        print(f"the suite says: {line}")
    print(f"wrote {path} in {record['wall_seconds']:.0f} s")


if __name__ == "__main__":
    main()
