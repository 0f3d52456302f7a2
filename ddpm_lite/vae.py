"""A small VAE for MNIST: Gaussian encoder q_phi(z|x), Bernoulli decoder p_theta(x|z).

The prior is N(0, I). The ELBO uses the same two tools as diffusion: a reparameterized
sample and a Gaussian KL.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .gaussian import normal_kl, reparameterize


class VAE(nn.Module):
    """x: (B, data_dim) with values in [0, 1]; z: (B, latent_dim)."""

    def __init__(self, data_dim: int = 784, hidden: int = 400, latent_dim: int = 2):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(
            nn.Linear(data_dim, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim)
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, data_dim)
        )

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """The mean and log-variance of q_phi(z | x)."""
        mean, logvar = self.encoder(x).chunk(2, dim=1)
        return mean, logvar

    def decode(self, z: Tensor) -> Tensor:
        """The logits of p_theta(x | z), one Bernoulli per pixel."""
        return self.decoder(z)


def elbo(vae: VAE, x: Tensor, generator: torch.Generator) -> Tensor:
    """The ELBO per example, with one sample of z:

    ELBO(x) = E_q[log p_theta(x | z)] - KL(q_phi(z | x) || N(0, I)).  Shape (B,).

    Book: eq. vae-elbo
    """
    mean, logvar = vae.encode(x)
    eps = torch.randn(
        mean.shape, generator=generator, device=mean.device, dtype=mean.dtype
    )
    z = reparameterize(mean, torch.exp(0.5 * logvar), eps)
    log_likelihood = -F.binary_cross_entropy_with_logits(
        vae.decode(z), x, reduction="none"
    ).sum(1)
    kl = normal_kl(mean, logvar, torch.zeros_like(mean), torch.zeros_like(logvar)).sum(
        1
    )
    return log_likelihood - kl


def iwae_bound(vae: VAE, x: Tensor, k: int, generator: torch.Generator) -> Tensor:
    """The importance-weighted lower bound on log p(x) (Burda et al. 2016):

    log (1/k) sum_i p(x, z_i) / q(z_i | x), z_i ~ q(z | x).  Shape (B,).

    It tightens as k grows; k = 1 is the ELBO with a sampled KL.
    """
    mean, logvar = vae.encode(x)
    std = torch.exp(0.5 * logvar)
    eps = torch.randn(
        (k, *mean.shape), generator=generator, device=mean.device, dtype=mean.dtype
    )
    z = reparameterize(mean, std, eps)  # (k, B, latent)
    log_q = (-0.5 * eps**2 - torch.log(std) - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_prior = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    logits = vae.decode(z.reshape(-1, vae.latent_dim)).reshape(k, *x.shape)
    log_likelihood = -F.binary_cross_entropy_with_logits(
        logits, x.expand(k, *x.shape), reduction="none"
    ).sum(-1)
    return torch.logsumexp(log_likelihood + log_prior - log_q, dim=0) - math.log(k)
