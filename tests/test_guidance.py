"""Guidance: classifier guidance, classifier-free guidance and label dropout, against exact mixture models."""

import math

import pytest
import torch

from ddpm_lite.guidance import (
    classifier_free_guidance,
    classifier_grad,
    classifier_guidance,
    drop_labels,
    random_labels,
)
from ddpm_lite.sampling import ddim_trajectory, ddpm_step, final_sample
from ddpm_lite.schedules import NoiseSchedule, make_betas
from ddpm_lite.toy import GaussianMixture, exact_eps_model
from ddpm_lite.unet import UNet, UNetConfig

F64 = dict(dtype=torch.float64)
SCHEDULE = NoiseSchedule(make_betas("linear", 1000))
MIXTURE = GaussianMixture(
    torch.tensor([0.5, 0.3, 0.2], **F64),
    torch.tensor([[0.0, 1.0], [-1.0, -0.5], [1.0, -0.5]], **F64),
    torch.tensor([0.5, 0.4, 0.6], **F64),
)
EPS_UNCOND = exact_eps_model(MIXTURE, SCHEDULE.alpha_bars)


def exact_posterior_classifier(xt, t):
    """Logits of q(y | x_t): the exact noise-conditional classifier (one t per batch)."""
    return MIXTURE.noised(SCHEDULE.alpha_bars[int(t[0])].item()).log_posterior(xt)


def exact_conditional_eps(xt, t, y):
    out = EPS_UNCOND(xt, t)
    for k in range(3):
        rows = y == k
        out[rows] = exact_eps_model(MIXTURE.component(k), SCHEDULE.alpha_bars)(
            xt[rows], t[rows]
        )
    return out


@pytest.mark.parametrize("t", [5, 300, 900])
def test_classifier_guidance_at_scale_one_gives_the_exact_conditional_eps(t):
    # eq. guidance-bayes: the conditional score is the unconditional one plus grad log q(y | x_t)
    g = torch.Generator().manual_seed(t)
    xt = MIXTURE.noised(SCHEDULE.alpha_bars[t].item()).sample(100, g)
    y, t_batch = torch.randint(0, 3, (100,), generator=g), torch.full((100,), t)
    guided = classifier_guidance(
        EPS_UNCOND, classifier_grad(exact_posterior_classifier, y), SCHEDULE, 1.0
    )(xt, t_batch)
    assert torch.allclose(guided, exact_conditional_eps(xt, t_batch, y), atol=1e-9)


@pytest.mark.parametrize("scale", [0.0, 0.5, 3.0])
def test_classifier_free_guidance_with_exact_models_equals_classifier_guidance(scale):
    g = torch.Generator().manual_seed(1)
    xt = MIXTURE.noised(SCHEDULE.alpha_bars[400].item()).sample(50, g)
    y, t = torch.randint(0, 3, (50,), generator=g), torch.full((50,), 400)
    cfg = classifier_free_guidance(exact_conditional_eps, y, 3, scale)(xt, t)
    cg = classifier_guidance(
        EPS_UNCOND, classifier_grad(exact_posterior_classifier, y), SCHEDULE, scale
    )(xt, t)
    assert torch.allclose(cfg, cg, atol=1e-9)


def test_guided_ancestral_step_moves_the_mean_by_scale_beta_over_sqrt_alpha_times_the_gradient():
    g = torch.Generator().manual_seed(2)
    t = 600
    xt = torch.randn(20, 2, generator=g, **F64)
    y, t_batch, noise = (
        torch.randint(0, 3, (20,), generator=g),
        torch.full((20,), t),
        torch.randn(20, 2, generator=g, **F64),
    )
    grad = classifier_grad(exact_posterior_classifier, y)
    guided = ddpm_step(
        SCHEDULE,
        xt,
        t_batch,
        classifier_guidance(EPS_UNCOND, grad, SCHEDULE, 2.0)(xt, t_batch),
        noise,
    ).x_prev
    plain = ddpm_step(SCHEDULE, xt, t_batch, EPS_UNCOND(xt, t_batch), noise).x_prev
    shift = (
        2.0
        * SCHEDULE.betas[t].item()
        / math.sqrt(SCHEDULE.alphas[t].item())
        * grad(xt, t_batch)
    )
    assert torch.allclose(guided - plain, shift, atol=1e-12)


def test_classifier_grad_is_the_gradient_of_the_log_softmax():
    weights = torch.randn(2, 4, generator=torch.Generator().manual_seed(3), **F64)
    classifier = lambda x, t: x @ weights
    x, y = (
        torch.randn(6, 2, generator=torch.Generator().manual_seed(4), **F64),
        torch.tensor([0, 1, 2, 3, 0, 1]),
    )
    # d/dx log softmax(x W)_y = W[:, y] - W softmax(x W)
    expected = weights[:, y].T - torch.softmax(x @ weights, 1) @ weights.T
    assert torch.allclose(
        classifier_grad(classifier, y)(x, torch.zeros(6, dtype=torch.long)),
        expected,
        atol=1e-12,
    )


def test_classifier_grad_works_under_no_grad():
    classifier = lambda x, t: torch.cat([x, -x], 1)
    x = torch.tensor([[0.0], [0.5], [-2.0]], **F64)
    with torch.no_grad():
        grad = classifier_grad(classifier, torch.tensor([0, 0, 0]))(
            x, torch.zeros(3, dtype=torch.long)
        )
    # log softmax([x, -x])_0 = x - log(e^x + e^-x), whose derivative is 1 - tanh(x)
    assert torch.allclose(grad, 1 - torch.tanh(x), atol=1e-12)


def test_drop_labels_replaces_the_expected_fraction():
    y = torch.zeros(100_000, dtype=torch.long)
    dropped = drop_labels(y, 0.2, 7, torch.Generator().manual_seed(5))
    # binomial SE of the fraction: sqrt(0.2 * 0.8 / 1e5) = 0.0013; 5 SE allowed
    assert abs((dropped == 7).double().mean().item() - 0.2) < 5 * 0.0013
    assert set(dropped.unique().tolist()) == {0, 7}


@pytest.mark.parametrize("p_uncond", [-0.1, 1.5])
def test_drop_labels_rejects_a_probability_outside_zero_one(p_uncond):
    with pytest.raises(ValueError, match=r"p_uncond must be in \[0, 1\]"):
        drop_labels(torch.zeros(3, dtype=torch.long), p_uncond, 3, torch.Generator())


def test_negative_scale_is_rejected():
    with pytest.raises(ValueError, match="scale must be >= 0"):
        classifier_guidance(EPS_UNCOND, lambda x, t: x, SCHEDULE, -1.0)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        classifier_free_guidance(
            exact_conditional_eps, torch.zeros(2, dtype=torch.long), 3, -0.5
        )


def test_classifier_free_guidance_rejects_float_labels():
    with pytest.raises(TypeError, match="y must be an integer tensor of class labels"):
        classifier_free_guidance(exact_conditional_eps, torch.zeros(2), 3, 1.0)


# --- with a U-Net and a sampler, bit for bit ------------------------------------------------


TINY = UNetConfig(
    base_channels=8,
    channel_mults=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(),
    groups=4,
    num_classes=3,
)
SCHEDULE32 = NoiseSchedule(make_betas("linear", 1000)).to(dtype=torch.float32)


@pytest.fixture
def random_unet():
    # The zero-initialised output layers make a fresh U-Net ignore its label; random weights do not.
    torch.manual_seed(0)
    model = UNet(TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def _sample(eps_model, seed=0):
    return final_sample(
        ddim_trajectory(
            eps_model,
            SCHEDULE32,
            (3, 1, 8, 8),
            torch.Generator().manual_seed(seed),
            5,
            eta=0.5,
            clip_denoised=True,
        )
    )


@torch.no_grad()
def test_classifier_free_guidance_at_one_is_the_conditional_model_and_at_zero_the_unconditional(
    random_unet,
):
    model, y = random_unet, torch.tensor([0, 1, 2])
    conditional = _sample(lambda xt, t: model(xt, t, y))
    unconditional = _sample(lambda xt, t: model(xt, t, torch.full_like(y, 3)))
    assert torch.equal(_sample(classifier_free_guidance(model, y, 3, 1.0)), conditional)
    assert torch.equal(
        _sample(classifier_free_guidance(model, y, 3, 0.0)), unconditional
    )
    assert not torch.equal(conditional, unconditional)
    assert not torch.equal(
        _sample(classifier_free_guidance(model, y, 3, 2.0)), conditional
    )


@torch.no_grad()
def test_classifier_guidance_with_a_classifier_blind_to_x_is_unguided_sampling(
    random_unet,
):
    model, y = random_unet, torch.tensor([0, 1, 2])
    blind = lambda xt, t: (
        torch.zeros(xt.shape[0], 3) + 0.0 * xt.sum() + t[:, None].float()
    )  # noqa: E731  depends on t only
    unguided = _sample(lambda xt, t: model(xt, t))
    assert torch.equal(
        _sample(
            classifier_guidance(
                lambda xt, t: model(xt, t), classifier_grad(blind, y), SCHEDULE32, 5.0
            )
        ),
        unguided,
    )
    seeing = lambda xt, t: torch.stack(
        [xt.flatten(1).sum(1), -xt.flatten(1).sum(1), 0 * t.float()], 1
    )  # noqa: E731
    assert not torch.equal(
        _sample(
            classifier_guidance(
                lambda xt, t: model(xt, t), classifier_grad(seeing, y), SCHEDULE32, 5.0
            )
        ),
        unguided,
    )


def test_random_labels_are_uniform_seeded_and_leave_the_global_generator_alone():
    from scipy import stats

    state = torch.random.get_rng_state()
    labels = random_labels(10_000, 10, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(labels, random_labels(10_000, 10, seed=3))
    assert not torch.equal(labels, random_labels(10_000, 10, seed=4))
    counts = torch.bincount(labels, minlength=10)
    assert labels.dtype == torch.long and len(counts) == 10
    # uniform over the ten classes: a chi-square test at the 0.1 % level
    assert stats.chisquare(counts.numpy()).pvalue > 1e-3, counts
