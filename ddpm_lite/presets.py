"""The named model + training recipes, defined once: `tiny`, `cpu` and `gpu`.

`python -m ddpm_lite train --preset NAME`, the tests and the benchmarks all read them
here. The `cpu` preset was chosen by measuring on a 2-core x86 CPU (see
benchmarks/README.md): the 1.1 M-parameter U-Net below trains at about 110 images/s in
float32 with channels-last, where bf16 autocast was slower, the 6.5 M default about 21
and the tiny one about 200.
"""

from __future__ import annotations

from typing import NamedTuple

from . import _validate as v
from .train import TrainConfig
from .unet import UNetConfig


class Preset(NamedTuple):
    unet: UNetConfig
    train: TrainConfig
    about: str


PRESETS: dict[str, Preset] = {
    "tiny": Preset(
        UNetConfig(
            base_channels=16,
            channel_mults=(1, 2),
            num_res_blocks=1,
            attention_resolutions=(14,),
            groups=8,
        ),
        TrainConfig(
            steps=2_000,
            batch_size=64,
            lr=2e-3,
            warmup_steps=100,
            ema_decay=0.995,
            checkpoint_every=500,
        ),
        "0.18 M parameters; blurry digit-like shapes after minutes on a CPU",
    ),
    "cpu": Preset(
        # Dropout 0: a few epochs underfit, so regularising would only slow the run.
        UNetConfig(
            base_channels=32,
            channel_mults=(1, 2, 2),
            num_res_blocks=1,
            attention_resolutions=(7,),
            groups=8,
            dropout=0.0,
        ),
        # Cosine decay to zero: on a short budget, the final low-lr steps
        # do what a long EMA would.
        TrainConfig(
            steps=4_000,
            batch_size=128,
            lr=1e-3,
            warmup_steps=200,
            ema_decay=0.999,
            lr_schedule="cosine",
            checkpoint_every=250,
        ),
        "1.1 M parameters; digits after about 90 minutes on a 2-core CPU",
    ),
    "gpu": Preset(
        UNetConfig(),
        TrainConfig(),
        "6.5 M parameters; the DDPM-paper recipe scaled to MNIST, for a GPU",
    ),
}


def get_preset(name: str) -> Preset:
    v.choice("preset", name, tuple(PRESETS))
    return PRESETS[name]
