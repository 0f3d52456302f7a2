"""eps_theta(x_t, t[, y]): the U-Net of DDPM, small enough to read top to bottom.

Built upward: time embedding, residual block, attention, then the U-Net itself. Shapes
are for MNIST, (B, 1, 28, 28): the down path goes 28 -> 14 -> 7 and self-attention runs
only at 7 x 7, where it is cheap. Imports nothing from the rest of the package.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = 28
    in_channels: int = 1
    base_channels: int = 64
    # one level per entry; each level but the last halves the size
    channel_mults: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 2
    # the sizes at which to add self-attention
    attention_resolutions: tuple[int, ...] = (7,)
    dropout: float = 0.1
    groups: int = 32  # GroupNorm groups; must divide every channel count
    # class conditioning for guidance; None adds no parameters
    num_classes: int | None = None
    # a second time input, the gap r - s of an average-velocity model (MeanFlow,
    # `flow_map`); False adds no parameters
    time_gap: bool = False

    def __post_init__(self) -> None:
        if self.image_size % 2 ** (len(self.channel_mults) - 1):
            raise ValueError(
                f"image_size {self.image_size} must be divisible by 2^(levels - 1) = "
                f"{2 ** (len(self.channel_mults) - 1)}"
            )
        if not self.channel_mults or min(self.channel_mults) < 1:
            raise ValueError(
                "channel_mults must be a non-empty tuple of positive ints, "
                f"got {self.channel_mults}"
            )
        for mult in self.channel_mults:
            if (self.base_channels * mult) % self.groups:
                raise ValueError(
                    f"groups={self.groups} must divide every channel count; "
                    f"{self.base_channels * mult} is not divisible"
                )
        if self.num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be >= 1, got {self.num_res_blocks}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.num_classes is not None and self.num_classes < 1:
            raise ValueError(
                f"num_classes must be None or >= 1, got {self.num_classes}"
            )


def timestep_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Sinusoidal step embedding, (B,) -> (B, dim), as in Transformers and DDPM.

    Frequencies run geometrically from 1 to 1/max_period, so both single steps and the
    whole range of t are resolved.
    Book: eq. time-embedding
    """
    half = dim // 2
    freqs = torch.exp(
        -math.log(max_period)
        * torch.arange(half, device=t.device, dtype=torch.float32)
        / half
    )
    angles = t.float()[:, None] * freqs[None]
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)


class ResBlock(nn.Module):
    """GroupNorm -> SiLU -> conv, twice, plus a residual path.

    The time (and class) embedding is added between the two convolutions.
    """

    def __init__(
        self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int
    ):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, in_ch)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = nn.GroupNorm(groups, out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1)
        # each block starts as the identity: stable early training
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(F.silu(emb))[:, :, None, None]
        h = self.conv2(self.dropout(F.silu(self.norm2(h))))
        return self.skip(x) + h


class Attention(nn.Module):
    """Single-head self-attention over the H*W positions, residual."""

    def __init__(self, channels: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.out = nn.Conv2d(channels, channels, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: Tensor) -> Tensor:
        B, C, H, W = x.shape
        q, k, v = (
            self.qkv(self.norm(x)).reshape(B, 3, C, H * W).transpose(-1, -2).unbind(1)
        )  # each (B, HW, C)
        h = F.scaled_dot_product_attention(q[:, None], k[:, None], v[:, None])[:, 0]
        return x + self.out(h.transpose(-1, -2).reshape(B, C, H, W))


class UNet(nn.Module):
    """eps_theta(x_t, t, y).

    x_t: (B, C, H, W); t: (B,) long code indices; y: (B,) long labels, or None;
    gap: (B,) the second time of a `time_gap` model (None: 0).
    """

    def __init__(self, config: UNetConfig = UNetConfig()):
        super().__init__()
        self.config = c = config
        ch, emb_dim = c.base_channels, 4 * c.base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        # Index num_classes is the "no label" token
        # that classifier-free guidance trains with.
        self.class_emb = (
            nn.Embedding(c.num_classes + 1, emb_dim) if c.num_classes else None
        )
        self.gap_mlp = None
        if c.time_gap:
            self.gap_mlp = nn.Sequential(
                nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
            )
            # zero at first: a velocity model's weights, loaded, give u = nu at any gap
            nn.init.zeros_(self.gap_mlp[2].weight)
            nn.init.zeros_(self.gap_mlp[2].bias)
        self.conv_in = nn.Conv2d(c.in_channels, ch, 3, padding=1)

        self.down, skip_channels, size = nn.ModuleList(), [ch], c.image_size
        for level, mult in enumerate(c.channel_mults):
            for _ in range(c.num_res_blocks):
                self.down.append(self._block(ch, c.base_channels * mult, size))
                ch = c.base_channels * mult
                skip_channels.append(ch)
            if level < len(c.channel_mults) - 1:
                # halve H and W
                self.down.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skip_channels.append(ch)
                size //= 2
        self.middle = nn.ModuleList(
            [
                ResBlock(ch, ch, emb_dim, c.dropout, c.groups),
                Attention(ch, c.groups),
                ResBlock(ch, ch, emb_dim, c.dropout, c.groups),
            ]
        )
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(c.channel_mults))):
            # one more block than down: it also eats the downsample's skip
            for _ in range(c.num_res_blocks + 1):
                self.up.append(
                    self._block(ch + skip_channels.pop(), c.base_channels * mult, size)
                )
                ch = c.base_channels * mult
            if level > 0:
                self.up.append(
                    nn.Sequential(
                        nn.Upsample(scale_factor=2, mode="nearest"),
                        nn.Conv2d(ch, ch, 3, padding=1),
                    )
                )
                size *= 2
        self.norm_out = nn.GroupNorm(c.groups, ch)
        self.conv_out = nn.Conv2d(ch, c.in_channels, 3, padding=1)
        nn.init.zeros_(self.conv_out.weight)  # predicts eps = 0 at first
        nn.init.zeros_(self.conv_out.bias)

    def _block(self, in_ch: int, out_ch: int, size: int) -> nn.ModuleList:
        c = self.config
        layers = [ResBlock(in_ch, out_ch, 4 * c.base_channels, c.dropout, c.groups)]
        if size in c.attention_resolutions:
            layers.append(Attention(out_ch, c.groups))
        return nn.ModuleList(layers)

    @staticmethod
    def _run(block: nn.Module, h: Tensor, emb: Tensor) -> Tensor:
        # a ResBlock, possibly followed by attention
        if isinstance(block, nn.ModuleList):
            h = block[0](h, emb)
            return block[1](h) if len(block) > 1 else h
        return block(h)  # a down- or upsampling layer

    def forward(
        self, x: Tensor, t: Tensor, y: Tensor | None = None, gap: Tensor | None = None
    ) -> Tensor:
        emb = self.time_mlp(
            timestep_embedding(t, self.config.base_channels).to(x.dtype)
        )
        if self.gap_mlp is not None:
            gap = torch.zeros_like(t, dtype=x.dtype) if gap is None else gap
            emb = emb + self.gap_mlp(
                timestep_embedding(gap, self.config.base_channels).to(x.dtype)
            )
        elif gap is not None:
            raise ValueError(
                "gap was given, but the model has no second time (time_gap=False)"
            )
        if self.class_emb is not None:
            # no label: the "no label" token (a long, also when t is a flow time r)
            null = torch.full(t.shape, self.config.num_classes, device=t.device)
            labels = y if y is not None else null
            emb = emb + self.class_emb(labels)
        elif y is not None:
            raise ValueError(
                "y was given, but the model has no class conditioning "
                "(num_classes=None)"
            )
        h = self.conv_in(x)
        skips = [h]
        for block in self.down:
            h = self._run(block, h, emb)
            skips.append(h)
        h = self.middle[0](h, emb)
        h = self.middle[1](h)
        h = self.middle[2](h, emb)
        for block in self.up:
            if isinstance(block, nn.ModuleList):
                h = torch.cat([h, skips.pop()], dim=1)
            h = self._run(block, h, emb)
        return self.conv_out(F.silu(self.norm_out(h)))
