"""p_phi(y | x_t, t): a classifier of noised MNIST digits, for classifier guidance.

It is the source of the guidance gradient. An ordinary classifier has never seen x_t at
large t, so its gradient there is noise. This one is trained on q_sample(x0, t, eps) at
uniformly random t, with the time step fed in the same way the U-Net reads it: a
sinusoidal embedding, projected and added inside every block.
`python -m ddpm_lite train-noisy-classifier` trains it; the weights in `weights/` ship
with the package.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import _validate as v
from .diffusion import forward_marginal, q_sample
from .fit import FitResult, check_labelled_images, fit, load_fitted
from .schedules import SCHEDULE_KINDS, NoiseSchedule, gather, make_betas
from .unet import timestep_embedding

SHIPPED = Path(__file__).with_name("weights") / "mnist_noisy_classifier"


@dataclass(frozen=True)
class NoisyClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    emb_dim: int = 128
    groups: int = 8  # GroupNorm, not BatchNorm: batch statistics would mix noise levels
    num_classes: int = 10
    # the forward process it is trained on: that of the diffusion model it guides
    schedule: str = "linear"
    T: int = 1000

    def __post_init__(self) -> None:
        if len(self.channels) != 2 or any(
            c < 1 or c % self.groups for c in self.channels
        ):
            raise ValueError(
                "channels must be two positive multiples of "
                f"groups={self.groups}, got {self.channels}"
            )
        v.choice("schedule", self.schedule, SCHEDULE_KINDS)
        if self.num_classes < 2 or self.T < 1:
            raise ValueError(
                "num_classes must be >= 2 and T >= 1, "
                f"got {self.num_classes} and {self.T}"
            )


class _TimeBlock(nn.Module):
    """conv -> GroupNorm -> + projection of the time embedding -> SiLU."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, groups: int):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.norm = nn.GroupNorm(groups, c_out)
        self.emb = nn.Linear(emb_dim, c_out)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return F.silu(self.norm(self.conv(x)) + self.emb(emb)[:, :, None, None])


class NoisyClassifier(nn.Module):
    """(x_t: (B, 1, 28, 28), t: (B,) long) -> logits (B, num_classes)."""

    config_key = (
        "noisy_classifier_config"  # where a checkpoint's sidecar keeps the config
    )

    def __init__(self, config: NoisyClassifierConfig = NoisyClassifierConfig()):
        super().__init__()
        self.config = config
        c1, c2, e = *config.channels, config.emb_dim
        self.time_mlp = nn.Sequential(nn.Linear(e, e), nn.SiLU(), nn.Linear(e, e))
        self.blocks = nn.ModuleList(
            [
                _TimeBlock(1, c1, e, config.groups),
                _TimeBlock(c1, c1, e, config.groups),  # 28 x 28, then pool
                _TimeBlock(c1, c2, e, config.groups),
                _TimeBlock(c2, c2, e, config.groups),  # 14 x 14, then pool
                _TimeBlock(c2, c2, e, config.groups),  # 7 x 7
            ]
        )
        self.head = nn.Linear(c2, config.num_classes)

    def forward(self, xt: Tensor, t: Tensor) -> Tensor:
        emb = self.time_mlp(timestep_embedding(t, self.config.emb_dim).to(xt.dtype))
        h = xt
        for i, block in enumerate(self.blocks):
            h = block(h, emb)
            if i in (1, 3):
                h = F.max_pool2d(h, 2)
        return self.head(h.mean(dim=(2, 3)))


def train_noisy_classifier(
    config: NoisyClassifierConfig,
    images: Tensor,
    labels: Tensor,
    steps: int = 3000,
    batch_size: int = 256,
    lr: float = 2e-3,
    seed: int = 0,
    device: str | torch.device = "cpu",
    progress: bool = False,
) -> FitResult:
    """Cross-entropy on (q_sample(x0, t, eps), y) with t ~ Uniform{0..T-1}.

    images: (N, 1, 28, 28) in [-1, 1].
    """
    check_labelled_images(images, labels)
    if steps < 1 or batch_size < 1:
        raise ValueError(
            f"steps and batch_size must be >= 1, got {steps} and {batch_size}"
        )
    device = torch.device(device)
    torch.manual_seed(seed)  # initial weights
    model = NoisyClassifier(config).to(device)
    schedule = NoiseSchedule(make_betas(config.schedule, config.T)).to(
        device, torch.float32
    )
    data, targets = images.to(device), labels.to(device)  # all of it on the device
    generator = torch.Generator(device).manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, lr, total_steps=steps)
    autocast = torch.autocast(
        device.type, dtype=torch.bfloat16, enabled=device.type == "cuda"
    )

    def batch_loss(step: int) -> Tensor:
        batch = torch.randint(
            0, data.shape[0], (batch_size,), generator=generator, device=device
        )
        t = torch.randint(
            0, config.T, (batch_size,), generator=generator, device=device
        )
        x0 = data[batch]
        eps = torch.randn(x0.shape, generator=generator, device=device)
        with autocast:
            xt = forward_marginal(x0, eps, gather(schedule.alpha_bars, t, x0))
            return F.cross_entropy(model(xt, t).float(), targets[batch])

    return fit(model, optimizer, lr_schedule, batch_loss, steps, progress)


@torch.no_grad()
def accuracy_at(
    model: NoisyClassifier,
    images: Tensor,
    labels: Tensor,
    t: int,
    generator: torch.Generator,
) -> float:
    """Accuracy on images noised to code index t (one noise draw), 1000 at a time."""
    schedule = NoiseSchedule(make_betas(model.config.schedule, model.config.T)).to(
        images.device, images.dtype
    )
    correct = 0
    for x, y in zip(images.split(1000), labels.split(1000)):
        t_batch = torch.full((x.shape[0],), t, dtype=torch.long, device=x.device)
        eps = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        correct += (
            (model(q_sample(schedule, x, t_batch, eps), t_batch).argmax(1) == y)
            .sum()
            .item()
        )
    return correct / labels.shape[0]


def load_noisy_classifier(
    path_stem: str | Path = SHIPPED, device: str | torch.device = "cpu"
) -> NoisyClassifier:
    """The classifier from a checkpoint (the shipped one by default), in eval mode.

    The weights' SHA-256 is checked.
    """
    return load_fitted(NoisyClassifier, NoisyClassifierConfig, path_stem, device)
