"""One line describing where a benchmark ran: date, device, threads, torch."""

from __future__ import annotations

import datetime
import platform

import torch


def cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def describe(device: torch.device) -> str:
    where = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()}, {torch.get_num_threads()} threads"
    )
    return f"{datetime.date.today().isoformat()} | {device.type}: {where} | torch {torch.__version__}"
