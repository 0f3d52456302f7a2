"""Training speed of `ddpm_lite.train` in images per second, after warm-up (and compilation).

    python benchmarks/train_throughput.py                 # the default U-Net, on CUDA if present
    python benchmarks/train_throughput.py --tiny --steps 40 --batch-size 32 --device cpu

Runs train() with two checkpoints and times the second half from the sidecars' wall clock,
so model building, data upload and torch.compile are excluded; the first half's rate is
printed too. Uses the MNIST directory given (or the shipped subset): speed does not depend
on which images.
"""
from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import torch

from ddpm_lite.__main__ import TINY
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.train import TrainConfig, resolve_device, train
from ddpm_lite.unet import UNetConfig

from hardware import describe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--steps", type=int, default=400, help="total steps; the second half is timed")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--data-dir", type=Path)
    args = parser.parse_args()
    device = resolve_device(args.device)
    mnist = load_mnist("train", root=args.data_dir) if args.data_dir else load_mnist("train")
    unet_config = UNetConfig(**(TINY if args.tiny else {}))
    half = max(1, args.steps // 2)
    config = TrainConfig(steps=2 * half, batch_size=args.batch_size, checkpoint_every=half, device=args.device, compile=args.compile)
    with tempfile.TemporaryDirectory() as out:
        train(unet_config, config, to_model_range(mnist.images), out, progress=False)
        first, second = (json.loads((Path(out) / f"checkpoint-{s:07d}.json").read_text()) for s in (half, 2 * half))
    warm = half * args.batch_size / (second["wall_seconds_this_run"] - first["wall_seconds_this_run"])
    cold = half * args.batch_size / first["wall_seconds_this_run"]
    params = sum(p.numel() for p in __import__("ddpm_lite.unet", fromlist=["UNet"]).UNet(unet_config).parameters())
    print(describe(device))
    print(f"U-Net {'tiny' if args.tiny else 'default'} ({params / 1e6:.2f} M parameters), batch {args.batch_size}, "
          f"compile={args.compile}, bf16={device.type == 'cuda'}")
    print(f"training: {warm:,.0f} images/s after warm-up ({half} steps timed); first {half} steps {cold:,.0f} images/s")


if __name__ == "__main__":
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    main()
