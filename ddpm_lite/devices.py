"""Which device a run uses, and how a sidecar names it."""

from __future__ import annotations

import platform

import torch

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(name: str) -> torch.device:
    """The device a name selects; "cuda" without a GPU is an error.

    "auto": CUDA when torch sees a GPU, else the CPU.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device must be one of {DEVICES} (or e.g. 'cuda:1'): {err}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={name!r} was asked for, but torch sees no CUDA device"
        )
    return device


def describe_device(device: torch.device) -> str:
    """The device as a sidecar records it: the GPU's name, or the CPU and threads."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    return f"cpu ({cpu}, {torch.get_num_threads()} threads)"
