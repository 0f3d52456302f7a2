"""A small MNIST classifier whose features replace Inception's in FD-MNIST and MNIST-IS.

Inception weights cannot be assumed (offline readers, CI), and an ImageNet network is a
poor judge of digits anyway. This CNN reaches >= 99.3 % on the MNIST test set; its 128
penultimate features (after global average pooling) are what `metrics.frechet_distance`
compares.

Trained by one command, `python -m ddpm_lite train-classifier`, and shipped in the
package (`weights/mnist_classifier.*`, a checkpoint whose SHA-256 is checked on
loading).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .fit import FitResult, check_labelled_images, fit, load_fitted

SHIPPED = Path(__file__).with_name("weights") / "mnist_classifier"


@dataclass(frozen=True)
class ClassifierConfig:
    channels: tuple[int, int] = (32, 64)
    features: int = 128  # the width of the feature vector FD-MNIST uses
    epochs: int = 6
    batch_size: int = 128
    lr: float = 3e-3  # the peak of a one-cycle schedule
    weight_decay: float = 5e-4
    # random translations of up to 2 pixels: MNIST digits are not all centred alike
    max_shift: int = 2
    seed: int = 0

    def __post_init__(self) -> None:
        for name in ("features", "epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if len(self.channels) != 2 or min(self.channels) < 1:
            raise ValueError(f"channels must be two positive ints, got {self.channels}")
        if self.max_shift < 0:
            raise ValueError(f"max_shift must be >= 0, got {self.max_shift}")


def _conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(),
    )


class MNISTClassifier(nn.Module):
    """28x28 digits in [-1, 1] -> 10 logits: two conv pairs with pooling, a 7x7 conv,
    global average pooling."""

    config_key = "classifier_config"  # where a checkpoint's sidecar keeps the config

    def __init__(self, config: ClassifierConfig = ClassifierConfig()):
        super().__init__()
        self.config = config
        c1, c2 = config.channels
        self.body = nn.Sequential(
            _conv(1, c1),
            _conv(c1, c1),
            nn.MaxPool2d(2),  # 28 -> 14
            _conv(c1, c2),
            _conv(c2, c2),
            nn.MaxPool2d(2),  # 14 -> 7
            _conv(c2, config.features),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
        )
        self.head = nn.Linear(config.features, 10)

    def features(self, x: Tensor) -> Tensor:
        """x: (B, 1, 28, 28) -> the penultimate features, (B, features)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))


def random_shift(x: Tensor, max_shift: int, generator: torch.Generator) -> Tensor:
    """Translate each image by whole pixels in [-max_shift, max_shift]^2.

    The uncovered pixels are filled with the border value.
    """
    if max_shift == 0:
        return x
    B, _, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")
    dy, dx = torch.randint(
        0, 2 * max_shift + 1, (2, B), generator=generator, device=x.device
    )
    rows = (dy[:, None] + torch.arange(H, device=x.device))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(W, device=x.device))[:, None, None, :]
    return padded[
        torch.arange(B, device=x.device)[:, None, None, None],
        torch.arange(x.shape[1], device=x.device)[None, :, None, None],
        rows,
        cols,
    ]


@torch.no_grad()
def predict(
    model: MNISTClassifier, x: Tensor, batch_size: int = 1000
) -> tuple[Tensor, Tensor]:
    """(features (N, F), class probabilities (N, 10)) for images x, in batches.

    x: (N, 1, 28, 28) in [-1, 1].
    """
    model.eval()
    feats, probs = [], []
    for chunk in x.split(batch_size):
        h = model.features(chunk)
        feats.append(h)
        probs.append(torch.softmax(model.head(h), dim=1))
    return torch.cat(feats), torch.cat(probs)


def accuracy(model: MNISTClassifier, x: Tensor, labels: Tensor) -> float:
    return (predict(model, x)[1].argmax(1) == labels).float().mean().item()


def train_classifier(
    config: ClassifierConfig,
    images: Tensor,
    labels: Tensor,
    progress: bool = False,
    device: str | torch.device = "cpu",
) -> FitResult:
    """Train with AdamW, a one-cycle lr and random shifts.

    images: (N, 1, 28, 28) in [-1, 1]; labels: (N,).
    """
    check_labelled_images(images, labels)
    device = torch.device(device)
    torch.manual_seed(config.seed)  # initial weights
    model = MNISTClassifier(config).to(device)
    data, targets = images.to(device), labels.to(device)
    generator = torch.Generator(device).manual_seed(config.seed)
    steps_per_epoch = math.ceil(data.shape[0] / config.batch_size)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=config.lr, weight_decay=config.weight_decay
    )
    lr_schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, config.lr, total_steps=config.epochs * steps_per_epoch
    )
    batches = (
        batch
        for _ in range(config.epochs)
        for batch in torch.randperm(
            data.shape[0], generator=generator, device=device
        ).split(config.batch_size)
    )

    def batch_loss(step: int) -> Tensor:
        batch = next(batches)
        return F.cross_entropy(
            model(random_shift(data[batch], config.max_shift, generator)),
            targets[batch],
        )

    steps = config.epochs * steps_per_epoch
    return fit(model, optimizer, lr_schedule, batch_loss, steps, progress)


def load_classifier(
    path_stem: str | Path = SHIPPED, device: str | torch.device = "cpu"
) -> MNISTClassifier:
    """The classifier from a checkpoint (the shipped one by default), in eval mode.

    The weights' SHA-256 is checked.
    """
    return load_fitted(MNISTClassifier, ClassifierConfig, path_stem, device)
