"""Training speed of `ddpm_lite.train` in images per second, and the fraction of the machine it uses.

    python benchmarks/train_throughput.py --preset cpu --device cpu
    python benchmarks/train_throughput.py --preset cpu --precision bf16 --device cpu
    python benchmarks/train_throughput.py --preset gpu --compile            # on CUDA

Runs train() with two checkpoints and times the second half from the sidecars' wall clock,
so model building, data upload and torch.compile are excluded. The FLOPs of one training
image (forward and backward) are counted by torch's FlopCounterMode; the achieved GFLOP/s is
set beside a measured float32 matmul peak of the same device (a 2048 x 2048 product).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
from hardware import describe
from torch.utils.flop_counter import FlopCounterMode

from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.devices import resolve_device
from ddpm_lite.presets import get_preset
from ddpm_lite.train import train
from ddpm_lite.unet import UNet


def training_flops_per_image(unet_config, batch: int = 8) -> float:
    model = UNet(unet_config)
    x, t = torch.randn(batch, 1, 28, 28), torch.randint(0, 1000, (batch,))
    with FlopCounterMode(display=False) as counter:
        model(x, t).square().mean().backward()
    return counter.get_total_flops() / batch


def matmul_peak_gflops(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    began = time.perf_counter()
    for _ in range(repeats):
        a @ b
    if device.type == "cuda":
        torch.cuda.synchronize()
    return 2 * n**3 * repeats / (time.perf_counter() - began) / 1e9


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="cpu", help="tiny, cpu or gpu")
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--steps", type=int, default=60, help="total steps; the second half is timed"
    )
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--precision", default="auto", help="auto, fp32 or bf16")
    parser.add_argument("--no-channels-last", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    device = resolve_device(args.device)
    preset = get_preset(args.preset)
    mnist = (
        load_mnist("train", root=args.data_dir)
        if args.data_dir
        else load_mnist("train")
    )
    half = max(1, args.steps // 2)
    config = replace(
        preset.train,
        steps=2 * half,
        checkpoint_every=half,
        device=args.device,
        compile=args.compile,
        precision=args.precision,
        channels_last=not args.no_channels_last,
        batch_size=args.batch_size or preset.train.batch_size,
    )
    with tempfile.TemporaryDirectory() as out:
        train(preset.unet, config, to_model_range(mnist.images), out, progress=False)
        first, second = (
            json.loads((Path(out) / f"checkpoint-{s:07d}.json").read_text())
            for s in (half, 2 * half)
        )
    rate = (
        half
        * config.batch_size
        / (second["wall_seconds_this_run"] - first["wall_seconds_this_run"])
    )
    flops = training_flops_per_image(preset.unet)
    peak = matmul_peak_gflops(device)
    params = sum(p.numel() for p in UNet(preset.unet).parameters())
    print(describe(device))
    print(
        f"preset {args.preset}: U-Net {params / 1e6:.2f} M parameters, batch {config.batch_size}, precision "
        f"{args.precision}, channels_last={config.channels_last}, compile={args.compile}"
    )
    print(f"training: {rate:,.1f} images/s after warm-up ({half} steps timed)")
    print(
        f"{flops / 1e9:.3f} GFLOP per image (forward + backward): {rate * flops / 1e9:,.1f} GFLOP/s achieved; "
        f"float32 matmul peak {peak:,.1f} GFLOP/s; {rate * flops / 1e9 / peak:.1%} of it"
    )


if __name__ == "__main__":
    main()
