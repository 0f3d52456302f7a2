import math

import pytest
import torch

from ddpm_lite.diffusion import vlb_prior_term
from ddpm_lite.likelihood import strata, vlb_estimate, vlb_terms
from ddpm_lite.schedules import NoiseSchedule, make_betas

SCHEDULE = NoiseSchedule(make_betas("linear", 40))


def eps_model(xt, t):
    # Any fixed function of (x_t, t) will do: the estimator must be unbiased for every model.
    return 0.3 * torch.tanh(xt) + 0.01 * t[:, None].to(xt.dtype)


def pixels(n, d, seed):
    p = torch.randint(
        0, 256, (1, d), generator=torch.Generator().manual_seed(seed)
    ).double()
    return (
        (2 * p / 255 - 1).expand(n, d).contiguous()
    )  # n copies of one image: n independent draws of the estimate


def test_strata_cover_every_kl_index_once():
    edges = strata(1000, 7)
    covered = torch.cat(
        [torch.arange(a, b) for a, b in zip(edges[:-1].tolist(), edges[1:].tolist())]
    )
    assert torch.equal(covered, torch.arange(1, 1000))
    assert (edges[1:] - edges[:-1]).max() - (edges[1:] - edges[:-1]).min() <= 1


def test_the_stratified_estimate_is_unbiased_for_the_full_sum():
    # The full bound, every term computed (one noise draw per term), against the estimate with 5 strata.
    x0 = pixels(4000, 6, seed=1)
    full = vlb_terms(
        eps_model,
        SCHEDULE,
        x0,
        list(range(SCHEDULE.T)),
        torch.Generator().manual_seed(0),
    ).sum(0)
    full = full + vlb_prior_term(SCHEDULE, x0)
    estimate = vlb_estimate(
        eps_model, SCHEDULE, x0, 5, torch.Generator().manual_seed(1)
    )
    total = estimate.prior + estimate.decoder + estimate.kl_sum
    se = math.sqrt(full.var().item() / len(full) + total.var().item() / len(total))
    assert abs(total.mean().item() - full.mean().item()) < 4 * se
    assert torch.allclose(estimate.bits_per_dim, total / (6 * math.log(2)))


def test_a_biased_estimator_is_caught():
    # The same check would notice an estimator that forgot the stratum weights (a sanity check on its power).
    x0 = pixels(4000, 6, seed=1)
    full = vlb_terms(
        eps_model,
        SCHEDULE,
        x0,
        list(range(SCHEDULE.T)),
        torch.Generator().manual_seed(0),
    ).sum(0)
    estimate = vlb_estimate(
        eps_model, SCHEDULE, x0, 5, torch.Generator().manual_seed(1)
    )
    unweighted = estimate.decoder + estimate.kl_sum / ((SCHEDULE.T - 1) / 5)
    se = math.sqrt(
        full.var().item() / len(full) + unweighted.var().item() / len(unweighted)
    )
    assert abs(unweighted.mean().item() - full.mean().item()) > 4 * se


@pytest.mark.parametrize("n", [0, 40])
def test_bad_number_of_strata_is_rejected(n):
    with pytest.raises(ValueError, match="num_strata must be in"):
        vlb_estimate(eps_model, SCHEDULE, pixels(2, 4, 0), n, torch.Generator())
