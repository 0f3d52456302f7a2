"""lerp and slerp: endpoints, the circle, norms, and bad input."""

import math

import pytest
import torch

from ddpm_lite.diffusion import q_sample
from ddpm_lite.interpolation import ddim_steps_for, interpolate_via_noise, lerp, slerp
from ddpm_lite.sampling import ddim_trajectory_from, ddpm_trajectory_from, final_sample
from ddpm_lite.schedules import NoiseSchedule, make_betas


@pytest.mark.parametrize("interpolate", [lerp, slerp])
def test_endpoints_are_the_inputs(interpolate):
    g = torch.Generator().manual_seed(0)
    a, b = (
        torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64),
        torch.randn(3, 1, 4, 4, generator=g, dtype=torch.float64),
    )
    assert torch.allclose(interpolate(a, b, 0.0), a, atol=1e-12) and torch.allclose(
        interpolate(a, b, 1.0), b, atol=1e-12
    )


@pytest.mark.parametrize("lam", [0.1, 0.5, 0.8])
def test_slerp_of_orthonormal_vectors_walks_the_unit_circle(lam):
    a, b = (
        torch.tensor([[1.0, 0.0]], dtype=torch.float64),
        torch.tensor([[0.0, 1.0]], dtype=torch.float64),
    )
    expected = torch.tensor(
        [[math.cos(lam * math.pi / 2), math.sin(lam * math.pi / 2)]],
        dtype=torch.float64,
    )
    assert torch.allclose(slerp(a, b, lam), expected, atol=1e-12)


def test_slerp_keeps_the_norm_of_equal_norm_noise_and_lerp_shrinks_it():
    g = torch.Generator().manual_seed(1)
    a, b = (
        torch.randn(200, 784, generator=g, dtype=torch.float64),
        torch.randn(200, 784, generator=g, dtype=torch.float64),
    )
    b = b * (a.norm(dim=1, keepdim=True) / b.norm(dim=1, keepdim=True))
    assert torch.allclose(slerp(a, b, 0.5).norm(dim=1), a.norm(dim=1), rtol=1e-10)
    # independent high-dimensional noise is nearly orthogonal: the midpoint's norm is ~1/sqrt(2) of it
    ratio = (lerp(a, b, 0.5).norm(dim=1) / a.norm(dim=1)).mean().item()
    assert abs(ratio - 1 / math.sqrt(2)) < 0.02


def test_slerp_of_nearly_parallel_inputs_is_lerp():
    a = torch.tensor([[1.0, 2.0, 3.0]], dtype=torch.float64)
    b = a * (1 + 1e-9)
    assert (
        torch.allclose(slerp(a, b, 0.3), lerp(a, b, 0.3), atol=1e-12)
        and torch.isfinite(slerp(a, a, 0.5)).all()
    )


@pytest.mark.parametrize("interpolate", [lerp, slerp])
def test_bad_input_is_rejected(interpolate):
    with pytest.raises(ValueError, match=r"lam must be in \[0, 1\]"):
        interpolate(torch.zeros(2, 3), torch.zeros(2, 3), 1.5)
    with pytest.raises(ValueError, match="b must have the shape of a"):
        interpolate(torch.zeros(2, 3), torch.zeros(2, 4), 0.5)


# --- through the noise -----------------------------------------------------------------------


SCHEDULE = NoiseSchedule(make_betas("linear", 100))


def eps_model(xt, t):
    return 0.5 * torch.tanh(xt) * (1 + t[:, None, None, None] / 100)


def endpoints():
    g = torch.Generator().manual_seed(4)
    return torch.rand(2, 1, 3, 3, generator=g, dtype=torch.float64) * 2 - 1, torch.rand(
        2, 1, 3, 3, generator=g, dtype=torch.float64
    ) * 2 - 1


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_an_endpoint_decodes_as_that_image_encoded_and_decoded_alone(sampler):
    a, b = endpoints()
    t = 40
    out = interpolate_via_noise(
        eps_model,
        SCHEDULE,
        a,
        b,
        t,
        [0.0, 0.5, 1.0],
        torch.Generator().manual_seed(0),
        sampler=sampler,
    )
    # independently: the same generator draws eps_a, eps_b, then the reverse chain runs on x_t^a alone
    g = torch.Generator().manual_seed(0)
    eps_a, eps_b = (
        torch.randn(a.shape, generator=g, dtype=a.dtype),
        torch.randn(a.shape, generator=g, dtype=a.dtype),
    )
    xt_a, xt_b = q_sample(SCHEDULE, a, t, eps_a), q_sample(SCHEDULE, b, t, eps_b)
    if sampler == "ddim":
        alone = final_sample(
            ddim_trajectory_from(
                eps_model, SCHEDULE, xt_b, t, g, ddim_steps_for(t), clip_denoised=True
            )
        )
        torch.testing.assert_close(out[2], alone, rtol=1e-12, atol=1e-12)
    else:  # the shared z: the chain of row 0 sees exactly the draws a lone chain of x_t^a would
        alone = final_sample(
            ddpm_trajectory_from(eps_model, SCHEDULE, xt_a, t, g, clip_denoised=True)
        )
        torch.testing.assert_close(out[0], alone, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(out[1], out[0])


def test_every_lam_sees_the_same_noise():
    a, b = endpoints()
    row = interpolate_via_noise(
        eps_model,
        SCHEDULE,
        a,
        b,
        60,
        [0.0, 0.3, 1.0],
        torch.Generator().manual_seed(1),
        sampler="ddpm",
    )
    alone = interpolate_via_noise(
        eps_model,
        SCHEDULE,
        a,
        b,
        60,
        [0.3],
        torch.Generator().manual_seed(1),
        sampler="ddpm",
    )
    torch.testing.assert_close(row[1], alone[0], rtol=1e-12, atol=1e-12)


def test_step_minus_one_mixes_the_images_themselves():
    a, b = endpoints()
    out = interpolate_via_noise(
        eps_model, SCHEDULE, a, b, -1, [0.0, 0.25, 1.0], torch.Generator(), mix="lerp"
    )
    torch.testing.assert_close(out, torch.stack([a, 0.75 * a + 0.25 * b, b]))


def test_ddim_steps_keep_the_stride_of_fifty_steps_over_a_thousand():
    assert [ddim_steps_for(t) for t in (0, 19, 20, 249, 999)] == [1, 1, 2, 13, 50]


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"t": 100}, r"t must be an int in \[-1, 99\]"),
        ({"t": 5, "mix": "cubic"}, "mix must be one of"),
        ({"t": 5, "sampler": "euler"}, "sampler must be one of"),
        ({"t": 5, "lams": []}, "at least one"),
    ],
)
def test_bad_interpolation_arguments_are_rejected(kwargs, message):
    a, b = endpoints()
    args = {"lams": [0.5], **kwargs}
    with pytest.raises(ValueError, match=message):
        interpolate_via_noise(
            eps_model, SCHEDULE, a, b, generator=torch.Generator(), **args
        )


@pytest.mark.parametrize("sampler", ["ddim", "ddpm"])
def test_decoding_an_interpolation_reads_nothing_on_the_host(sampler, request):
    schedule = NoiseSchedule(make_betas("linear", 100)).to(dtype=torch.float32)
    g = torch.Generator().manual_seed(0)
    x_a, x_b = torch.rand(2, 1, 4, 4, generator=g), torch.rand(2, 1, 4, 4, generator=g)
    request.getfixturevalue("no_host_sync")
    out = interpolate_via_noise(
        lambda xt, t: 0.1 * xt, schedule, x_a, x_b, 5, [0.0, 0.5], g, sampler=sampler
    )
    assert out.shape == (2, 2, 1, 4, 4)
