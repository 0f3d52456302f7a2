"""Toy data whose diffusion is known exactly: Gaussian mixtures (1-D or d-D, isotropic
components) and two moons.

Noising a mixture keeps it a mixture: component k of q(x_t) has mean sqrt(alpha_bar) m_k
and variance alpha_bar s_k^2 + 1 - alpha_bar. So q(x_t), its score and the optimal
eps_theta(x_t, t) = E[eps | x_t] = -sqrt(1 - alpha_bar) * grad log q(x_t) are exact, and
samplers and losses can be checked without training a network.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class GaussianMixture:
    """sum_k weights[k] N(means[k], stds[k]^2 I).

    weights: (K,), means: (K, d), stds: (K,).
    """

    weights: Tensor
    means: Tensor
    stds: Tensor

    def __post_init__(self) -> None:
        K = self.weights.shape[0]
        if (
            self.weights.ndim != 1
            or self.means.shape[0] != K
            or self.stds.shape != (K,)
            or self.means.ndim != 2
        ):
            raise ValueError("weights must be (K,), means (K, d) and stds (K,)")
        if (
            not bool((self.weights > 0).all())
            or abs(self.weights.sum().item() - 1) > 1e-6
        ):
            raise ValueError("weights must be positive and sum to 1")
        if not bool((self.stds > 0).all()):
            raise ValueError("stds must be positive")

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator) -> Tensor:
        """n samples, shape (n, d)."""
        return self.sample_labelled(n, generator)[0]

    def sample_labelled(
        self, n: int, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """n samples (n, d) and the component each came from (n,).

        The component indices are the class labels of guidance.
        """
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(
            n,
            self.dim,
            generator=generator,
            device=self.means.device,
            dtype=self.means.dtype,
        )
        return self.means[k] + self.stds[k, None] * z, k

    def component(self, k: int) -> "GaussianMixture":
        """Component k alone, as a one-component mixture.

        It is the class-conditional law p(x | y = k).
        """
        return GaussianMixture(
            self.weights.new_ones(1), self.means[k : k + 1], self.stds[k : k + 1]
        )

    def log_posterior(self, x: Tensor) -> Tensor:
        """log p(y = k | x) for each component k, (n, K): the exact Bayes classifier."""
        return torch.log_softmax(self.component_log_probs(x), dim=1)

    def component_log_probs(self, x: Tensor) -> Tensor:
        """log(w_k N(x; m_k, s_k^2 I)) for every component, shape (n, K)."""
        d = self.dim
        sq = ((x[:, None, :] - self.means[None]) ** 2).sum(-1)
        var = self.stds**2
        return (
            torch.log(self.weights)
            - 0.5 * sq / var
            - 0.5 * d * torch.log(2 * math.pi * var)
        )

    def log_prob(self, x: Tensor) -> Tensor:
        """log density at x: (n, d) -> (n,)."""
        return torch.logsumexp(self.component_log_probs(x), dim=1)

    def score(self, x: Tensor) -> Tensor:
        """grad_x log p(x), shape (n, d).

        The responsibility-weighted pull towards each mean.
        """
        resp = torch.softmax(self.component_log_probs(x), dim=1)
        pulls = (self.means[None] - x[:, None, :]) / (self.stds**2)[None, :, None]
        return (resp[..., None] * pulls).sum(1)

    def noised(self, alpha_bar: float) -> "GaussianMixture":
        """The law of sqrt(alpha_bar) x0 + sqrt(1 - alpha_bar) eps, x0 in this mixture.

        Book: eq. fwd-marginal
        """
        return GaussianMixture(
            self.weights,
            math.sqrt(alpha_bar) * self.means,
            torch.sqrt(alpha_bar * self.stds**2 + 1 - alpha_bar),
        )

    def straight_path(self, r: float) -> "GaussianMixture":
        """The law of (1 - r) x0 + r eps, x0 in this mixture (flow matching's path).

        Book: eq. straight-path
        """
        return GaussianMixture(
            self.weights,
            (1 - r) * self.means,
            torch.sqrt((1 - r) ** 2 * self.stds**2 + r**2),
        )

    def smoothed(self, sigma: float) -> "GaussianMixture":
        """The law of x0 + sigma z (variance exploding).

        Each component keeps its mean; its variance grows by sigma^2.

        Book: eq. annealed-step
        """
        return GaussianMixture(
            self.weights, self.means, torch.sqrt(self.stds**2 + sigma**2)
        )


def gaussian_mixture_1d(weights, means, stds, dtype=torch.float64) -> GaussianMixture:
    """A 1-D mixture from plain lists.

    gaussian_mixture_1d([.3, .7], [-2, 1], [.5, .3])
    """
    t = lambda v: torch.as_tensor(v, dtype=dtype)
    return GaussianMixture(t(weights), t(means).reshape(-1, 1), t(stds))


def exact_eps_model(mixture: GaussianMixture, alpha_bars: Tensor):
    """The optimal eps_theta for this mixture's data, exactly:

    eps_theta(x_t, t) = E[eps | x_t] = -sqrt(1 - alpha_bar_t) * score of q(x_t).

    The minimiser of L_simple for this data: no network, no training.
    Book: eq. loss-simple
    """

    def eps_model(xt: Tensor, t: Tensor) -> Tensor:
        out = torch.empty_like(xt)
        for step in t.unique().tolist():
            rows = t == step
            ab = alpha_bars[step].item()
            out[rows] = -math.sqrt(1 - ab) * mixture.noised(ab).score(
                xt[rows].to(mixture.means.dtype)
            ).to(xt.dtype)
        return out

    return eps_model


def two_moons(n: int, generator: torch.Generator, noise: float = 0.08) -> Tensor:
    """n points on two interleaved half circles, scaled to about [-1, 1]^2: (n, 2).

    With no tensor to follow, the points are drawn on the generator's device.
    """
    device = generator.device
    upper = torch.rand(n, generator=generator, device=device) < 0.5
    angle = math.pi * torch.rand(n, generator=generator, device=device)
    x = torch.where(upper, torch.cos(angle), 1 - torch.cos(angle))
    y = torch.where(upper, torch.sin(angle), 0.5 - torch.sin(angle))
    points = torch.stack([x - 0.5, y - 0.25], dim=1) / 1.1
    return points + noise * torch.randn(n, 2, generator=generator, device=device)


def _frequencies(time_features: int) -> Tensor:
    """time_features // 2 frequencies from 1 down to 1/1000."""
    half = time_features // 2
    return torch.exp(-math.log(1000.0) * torch.arange(half) / half)


def _sinusoidal(time: Tensor, frequencies: Tensor) -> Tensor:
    """(B,) times in [0, 1000] -> (B, 2 len(frequencies)) sines and cosines."""
    angles = time[:, None] * frequencies[None].to(time.dtype)
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)


def _mlp(in_dim: int, hidden: int, out_dim: int) -> torch.nn.Sequential:
    """Three SiLU layers of `hidden` units: the toy networks' body."""
    return torch.nn.Sequential(
        torch.nn.Linear(in_dim, hidden),
        torch.nn.SiLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.SiLU(),
        torch.nn.Linear(hidden, hidden),
        torch.nn.SiLU(),
        torch.nn.Linear(hidden, out_dim),
    )


class ToyEpsMLP(torch.nn.Module):
    """eps_theta for low-dimensional toy data: an MLP on [x_t, sinusoidal embedding(t)].

    With num_classes > 0 it also reads a label y (index num_classes is the "no label"
    token of classifier-free guidance); with out_dim = K it serves as a
    noise-conditional classifier.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 128,
        time_features: int = 32,
        T: int = 1000,
        num_classes: int = 0,
        out_dim: int | None = None,
    ):
        super().__init__()
        self.T, self.num_classes = T, num_classes
        self.register_buffer("frequencies", _frequencies(time_features))
        self.label_embedding = (
            torch.nn.Embedding(num_classes + 1, time_features) if num_classes else None
        )
        self.net = _mlp(dim + time_features, hidden, out_dim or dim)

    def forward(self, xt: Tensor, t: Tensor, y: Tensor | None = None) -> Tensor:
        # t / T in [0, 1) times frequencies from 1 to 1/1000 of 1000: resolves single
        # steps near t = 0
        features = _sinusoidal(t.to(xt.dtype) / self.T * 1000.0, self.frequencies)
        if self.label_embedding is not None:
            y = torch.full_like(t, self.num_classes) if y is None else y
            features = features + self.label_embedding(y).to(xt.dtype)
        elif y is not None:
            raise ValueError("y was given, but this model has num_classes=0")
        return self.net(torch.cat([xt, features], dim=1))


def exact_velocity_model(mixture: GaussianMixture):
    """The optimal flow-matching velocity for this mixture's data, exactly:

    nu*(x, r) = E[eps - x0 | x_r = x] = (x - E[x0 | x_r = x]) / r on the straight path
    x_r = (1 - r) x0 + r eps. E[x0 | x_r] is each component's posterior mean (Gaussian
    conditioning) weighted by its responsibility, so nu* is defined at r = 1 too. At
    r = 0, x_r is the data itself and eps is independent of it: nu* = E[eps] - x = -x.
    Book: eq. marginal-velocity
    """

    def velocity_model(x: Tensor, r: Tensor) -> Tensor:
        out = torch.empty_like(x)
        for time in r.unique().tolist():
            rows, xs = r == time, x[r == time].to(mixture.means.dtype)
            if time == 0:
                out[rows] = -xs.to(x.dtype)
                continue
            noised = mixture.straight_path(time)
            resp = torch.softmax(noised.component_log_probs(xs), dim=1)  # (n, K)
            var = mixture.stds**2
            gain = (1 - time) * var / ((1 - time) ** 2 * var + time**2)  # (K,)
            means = mixture.means[None]  # (1, K, d)
            posterior = means + gain[None, :, None] * (xs[:, None] - (1 - time) * means)
            x0_mean = (resp[..., None] * posterior).sum(1)
            out[rows] = ((xs - x0_mean) / time).to(x.dtype)
        return out

    return velocity_model


class ToyFlowMapMLP(torch.nn.Module):
    """u_theta(x, s, r), the average velocity from time r down to s (`flow_map`), for
    low-dimensional toy data: an MLP on [x, features(r), features(r - s)], the pair
    Geng et al. (2025) feed. At s = r it is a velocity model nu_theta(x, r).

    The features are sines and cosines of time_scale * time at frequencies 1 to 1/1000.
    At time_scale 1 they vary slowly in time: MeanFlow's target differentiates the
    network in r, and 1000 (the U-Nets' scale) makes that derivative swamp the target.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 128,
        time_features: int = 32,
        time_scale: float = 1.0,
    ):
        super().__init__()
        self.time_scale = time_scale
        self.register_buffer("frequencies", _frequencies(time_features))
        self.net = _mlp(dim + 2 * time_features, hidden, dim)

    def forward(self, x: Tensor, s: Tensor, r: Tensor) -> Tensor:
        r, gap = self.time_scale * r.to(x.dtype), self.time_scale * (r - s).to(x.dtype)
        features = [_sinusoidal(time, self.frequencies) for time in (r, gap)]
        return self.net(torch.cat([x, *features], dim=1))
