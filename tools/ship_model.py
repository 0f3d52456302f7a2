"""Write a training checkpoint's EMA weights into ddpm_lite/weights/ as a shipped model.

    python tools/ship_model.py runs/mnist-cond/checkpoint-0003800 --out ddpm_lite/weights/mnist_ddpm \
        --data-dir ../shared/data/mnist [--quality benchmarks/results/quality_mnist.json ...]

Only the EMA weights and the loss history travel (the optimizer state stays behind); the sidecar
keeps the checkpoint's provenance (command, steps, images seen, wall time, device, torch, code
version) and adds the SHA-256 of the checkpoint it came from and any measured quality files.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

from ddpm_lite.checkpoint import (
    checkpoint_files,
    load_checkpoint,
    save_checkpoint,
    sha256_of,
)

MNIST_DIR = "$DDPM_LITE_MNIST_DIR"  # how the sidecar names the training data's directory: no path of this machine


def without_local_paths(info: dict, data_dir: str) -> dict:
    """The sidecar with this machine's MNIST directory replaced by MNIST_DIR (the files are the standard four)."""
    text = json.dumps(info).replace(json.dumps(data_dir)[1:-1], MNIST_DIR)
    return json.loads(text)


KEPT = (
    "step",
    "unet_config",
    "train_config",
    "data",
    "command",
    "wall_seconds_total",
    "images_seen",
    "device",
    "code_version",
    "torch",
    "metrics",
    "init_from",  # a warm start's source and its SHA-256
    "teacher",  # a distilled model's teacher and its SHA-256
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "checkpoint", type=Path, help="training checkpoint, path without suffix"
    )
    parser.add_argument(
        "--out", type=Path, required=True, help="shipped model, path without suffix"
    )
    parser.add_argument(
        "--quality",
        type=Path,
        nargs="*",
        default=[],
        help="JSON files from benchmarks/ to record",
    )
    parser.add_argument(
        "--data-dir",
        required=True,
        help="the MNIST directory the run used, as written in its command",
    )
    parser.add_argument(
        "--half",
        action="store_true",
        help="store the weights in float16 (half the size; they load as float32)",
    )
    args = parser.parse_args()
    tensors, info = load_checkpoint(args.checkpoint)
    dtype = torch.float16 if args.half else torch.float32
    kept = {
        k: v.to(dtype) if v.is_floating_point() else v
        for k, v in tensors.items()
        if k.startswith("ema.")
    }
    kept["history.loss"] = tensors["history.loss"]
    sidecar = without_local_paths(
        {k: info[k] for k in KEPT if k in info}, args.data_dir
    )
    sidecar["weights_dtype"] = str(dtype).removeprefix("torch.")
    sidecar["source_checkpoint"] = {
        "name": args.checkpoint.name,
        "sha256": sha256_of(checkpoint_files(args.checkpoint)[0]),
    }
    sidecar["quality"] = [
        without_local_paths(json.loads(p.read_text()), args.data_dir)
        for p in args.quality
    ]
    weights = save_checkpoint(args.out, kept, sidecar)
    print(
        f"wrote {weights} ({weights.stat().st_size / 1e6:.2f} MB) and {checkpoint_files(args.out)[1].name}"
    )


if __name__ == "__main__":
    main()
