"""A reverse loop's randomness comes from a noise source: `randn(shape) -> Tensor`.

Every sampler draws its x_T and its per-step noise from one source, so the source alone
decides what a run sees:
- `GeneratorNoise`: N(0, I) from a seeded torch.Generator (a `generator=` argument
  becomes one);
- `RecordingNoise`: passes another source's draws through and keeps them;
- `RecordedNoise`: replays given draws, in order (another implementation of a sampler
  can be fed the same noise, and checked against this one);
- `SharedNoise`: one draw repeated over blocks of rows, so every row block of a batch
  (every mixing weight of an interpolation) gets the same z.
The browser's sampler (`_static/ddpm/sampler.mjs`) takes the same kind of object.
"""

from __future__ import annotations

from typing import Protocol, Sequence

import torch
from torch import Tensor


class NoiseSource(Protocol):
    def randn(self, shape: Sequence[int]) -> Tensor: ...


class GeneratorNoise:
    """N(0, I) draws from `generator`, on `device` in `dtype`."""

    def __init__(self, generator: torch.Generator, device, dtype: torch.dtype):
        self.generator, self.device, self.dtype = generator, device, dtype

    def randn(self, shape: Sequence[int]) -> Tensor:
        return torch.randn(
            tuple(shape), generator=self.generator, device=self.device, dtype=self.dtype
        )


class RecordingNoise:
    """Another source's draws, passed through and kept in `draws` in the order drawn."""

    def __init__(self, source: NoiseSource):
        self.source, self.draws = source, []

    def randn(self, shape: Sequence[int]) -> Tensor:
        z = self.source.randn(shape)
        self.draws.append(z)
        return z


class RecordedNoise:
    """Replays `draws` in order.

    A draw of another shape, or one past the end, is an error.
    """

    def __init__(self, draws: Sequence[Tensor]):
        self.draws, self.used = list(draws), 0

    def randn(self, shape: Sequence[int]) -> Tensor:
        if self.used == len(self.draws):
            raise ValueError(f"the recorded noise has only {len(self.draws)} draws")
        z = self.draws[self.used]
        if tuple(z.shape) != tuple(shape):
            raise ValueError(
                f"draw {self.used} of the recorded noise has shape {tuple(z.shape)}, "
                f"the sampler asks for {tuple(shape)}"
            )
        self.used += 1
        return z


class SharedNoise:
    """Blocks of `rows` rows share one draw.

    randn((k * rows, ...)) repeats a (rows, ...) draw.
    """

    def __init__(self, source: NoiseSource, rows: int):
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        self.source, self.rows = source, rows

    def randn(self, shape: Sequence[int]) -> Tensor:
        if shape[0] % self.rows:
            raise ValueError(
                f"a batch of {shape[0]} is not whole blocks of {self.rows}"
            )
        z = self.source.randn((self.rows, *shape[1:]))
        return z.repeat(shape[0] // self.rows, *[1] * (len(shape) - 1))


def noise_source(
    generator: torch.Generator | NoiseSource, device, dtype: torch.dtype
) -> NoiseSource:
    """A torch.Generator as a GeneratorNoise on device in dtype.

    A noise source is returned as it is.
    """
    if isinstance(generator, torch.Generator):
        return GeneratorNoise(generator, device, dtype)
    if callable(getattr(generator, "randn", None)):
        return generator
    raise TypeError(
        "generator must be a torch.Generator or a noise source with randn(shape), "
        f"got {type(generator).__name__}"
    )
