import math

import pytest
import torch
import torch.nn.functional as F
from torch.distributions import Normal, kl_divergence

from ddpm_lite.vae import VAE, elbo, iwae_bound


def test_elbo_matches_torch_distributions():
    torch.manual_seed(0)
    vae = VAE(data_dim=20, hidden=16, latent_dim=3).double()
    x = torch.rand(
        4, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )
    ours = elbo(vae, x, torch.Generator().manual_seed(2))
    mean, logvar = vae.encode(x)
    q = Normal(mean, torch.exp(0.5 * logvar))
    eps = torch.randn(
        mean.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64
    )
    z = mean + q.stddev * eps
    logits = vae.decode(z)
    log_lik = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).sum(1)
    ref = log_lik - kl_divergence(
        q, Normal(torch.zeros_like(mean), torch.ones_like(mean))
    ).sum(1)
    torch.testing.assert_close(ours, ref, rtol=1e-10, atol=1e-10)


def test_iwae_with_one_sample_is_the_elbo_in_expectation():
    torch.manual_seed(0)
    vae = VAE(data_dim=20, hidden=16, latent_dim=3).double()
    x = torch.rand(
        1, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    ).expand(20_000, 20)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        diff = iwae_bound(vae, x, 1, g) - elbo(vae, x, g)
    assert abs(diff.mean().item()) < 5 * diff.std().item() / math.sqrt(len(diff))


def test_iwae_bound_rises_with_k():
    torch.manual_seed(0)
    vae = VAE(data_dim=20, hidden=16, latent_dim=3).double()
    x = torch.rand(
        1000, 20, generator=torch.Generator().manual_seed(1), dtype=torch.float64
    )  # rise ~0.2 nats, SE ~0.02
    g = torch.Generator().manual_seed(4)
    with torch.no_grad():
        rise = iwae_bound(vae, x, 100, g) - iwae_bound(vae, x, 1, g)
    assert rise.mean().item() > 5 * rise.std().item() / math.sqrt(len(rise))


@pytest.mark.parametrize(
    "bound",
    [
        lambda vae, x, g: elbo(vae, x, g),
        lambda vae, x, g: iwae_bound(vae, x, 5, g),
    ],
    ids=["elbo", "iwae_bound"],
)
def test_bounds_draw_z_on_the_inputs_device(bound):
    # The meta device stands in for a GPU: eps is drawn where x and the model live (a
    # draw on the CPU would meet the meta tensors in reparameterize and raise).
    vae = VAE(data_dim=20, hidden=16, latent_dim=3).to("meta")
    x = torch.empty(4, 20, device="meta")
    assert bound(vae, x, torch.Generator()).device.type == "meta"
