"""Sampling speed in images per second: DDIM with 50 steps and ancestral sampling with T steps.

    python benchmarks/sample_throughput.py --pretrained mnist --n 256 --ddpm-n 32 --batch-size 256 --device cpu
    python benchmarks/sample_throughput.py runs/mnist --n 10000 --batch-size 2000
    python benchmarks/sample_throughput.py --random-init --preset tiny --n 64 --ddpm-n 8 --device cpu

A checkpoint or a shipped model gives real samples; --random-init times an untrained U-Net of a
preset's shape (the cost per step does not depend on the weights). Times exclude one warm-up
batch. The time for 1,000 images is n / rate, printed beside the measured rate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from hardware import describe

from ddpm_lite.checkpoint import resolve_checkpoint
from ddpm_lite.devices import resolve_device
from ddpm_lite.presets import get_preset
from ddpm_lite.pretrained import load_pretrained
from ddpm_lite.sampling import ddim_trajectory, ddpm_trajectory, final_sample
from ddpm_lite.schedules import NoiseSchedule, make_betas
from ddpm_lite.trained import load_trained
from ddpm_lite.unet import UNet


def images_per_second(
    make_trajectory, n: int, batch_size: int, device: torch.device
) -> tuple[float, float]:
    final_sample(make_trajectory(min(batch_size, n)))  # warm-up: kernels, allocator
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for start in range(0, n, batch_size):
        final_sample(make_trajectory(min(batch_size, n - start)))
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - began
    return n / seconds, seconds


@torch.no_grad()
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", type=Path)
    parser.add_argument("--pretrained", choices=("mnist",), help="the shipped model")
    parser.add_argument("--random-init", action="store_true")
    parser.add_argument(
        "--preset",
        default="gpu",
        help="with --random-init: the U-Net of this preset (tiny, cpu, gpu)",
    )
    parser.add_argument("--n", type=int, default=10_000, help="DDIM-50 samples")
    parser.add_argument("--ddpm-n", type=int, help="ancestral samples (default: --n)")
    parser.add_argument("--batch-size", type=int, default=2000)
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--bf16", action="store_true", help="autocast the U-Net to bfloat16 (CUDA)"
    )
    args = parser.parse_args()
    if (
        sum(
            [args.checkpoint is not None, args.random_init, args.pretrained is not None]
        )
        != 1
    ):
        parser.error("give one of: a checkpoint, --pretrained or --random-init")
    device = resolve_device(args.device)
    if args.random_init:  # an untrained U-Net samples as fast, on the linear schedule
        model = UNet(get_preset(args.preset).unet).to(device).eval()
        schedule = NoiseSchedule(make_betas("linear", 1000)).to(device, torch.float32)
    elif args.pretrained:
        model, schedule, _, _ = load_pretrained(args.pretrained, device)
    else:
        model, schedule, _ = load_trained(
            resolve_checkpoint(args.checkpoint), device=device
        )
    T = schedule.T
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=args.bf16 and device.type == "cuda"
    )

    def eps_model(xt, t):
        with autocast:
            return model(xt, t).float()

    shape = (model.config.in_channels, model.config.image_size, model.config.image_size)
    g = torch.Generator(device).manual_seed(0)
    print(describe(device))
    print(
        f"U-Net {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M parameters, batch {args.batch_size}, bf16={args.bf16}"
    )
    rate, seconds = images_per_second(
        lambda b: ddim_trajectory(
            eps_model, schedule, (b, *shape), g, 50, device=device
        ),
        args.n,
        args.batch_size,
        device,
    )
    print(
        f"DDIM-50:   {rate:,.1f} images/s ({args.n} images in {seconds:.1f} s; 1,000 images: {1000 / rate:,.0f} s)"
    )
    n = args.ddpm_n or args.n
    rate, seconds = images_per_second(
        lambda b: ddpm_trajectory(eps_model, schedule, (b, *shape), g, device=device),
        n,
        args.batch_size,
        device,
    )
    print(
        f"DDPM-{T}: {rate:,.2f} images/s ({n} images in {seconds:.1f} s; 1,000 images: {1000 / rate:,.0f} s)"
    )


if __name__ == "__main__":
    main()
