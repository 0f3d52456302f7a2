import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ddpm_lite.schedules import SCHEDULE_KINDS, NoiseSchedule, make_betas


def alpha_bar_by_loop(betas):
    """Independent reference: the running product, one Python float at a time."""
    out, prod = [], 1.0
    for b in betas.tolist():
        prod *= 1.0 - b
        out.append(prod)
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("kind", SCHEDULE_KINDS)
def test_alpha_bar_matches_float64_loop(kind):
    s = NoiseSchedule(make_betas(kind, 1000))
    # Both are float64 products of the same 1000 factors; rounding differs by ~1000 ulp
    # at most.
    torch.testing.assert_close(
        s.alpha_bars, alpha_bar_by_loop(s.betas), rtol=1e-12, atol=0
    )


def test_alpha_bar_prev_is_one_at_t0():
    s = NoiseSchedule(make_betas("linear", 10))
    assert s.alpha_bars_prev[0] == 1.0
    torch.testing.assert_close(s.alpha_bars_prev[1:], s.alpha_bars[:-1], rtol=0, atol=0)


def test_posterior_variance_is_zero_at_t0_and_log_is_clipped_to_t1():
    # Pins the 0-based convention: code t = 0 is the paper's step 1, whose previous
    # state is x0.
    s = NoiseSchedule(make_betas("linear", 10))
    assert s.posterior_variance[0] == 0.0
    assert s.posterior_log_variance_clipped[0] == pytest.approx(
        math.log(s.posterior_variance[1].item())
    )
    assert torch.isfinite(s.posterior_log_variance_clipped).all()


def test_linear_endpoints_are_ho_et_al_defaults():
    b = make_betas("linear", 1000)
    assert b.dtype == torch.float64 and b.shape == (1000,)
    assert b[0].item() == pytest.approx(1e-4) and b[-1].item() == pytest.approx(0.02)


def test_quadratic_is_square_of_linear_in_sqrt_beta():
    b = make_betas("quadratic", 5, beta_start=0.01, beta_end=0.09)
    torch.testing.assert_close(
        b.sqrt(), torch.linspace(0.1, 0.3, 5, dtype=torch.float64)
    )


def test_cosine_alpha_bar_follows_squared_cosine_until_clipping():
    T, s_ = 1000, 0.008
    s = NoiseSchedule(make_betas("cosine", T))
    f = lambda u: math.cos((u / T + s_) / (1 + s_) * math.pi / 2) ** 2
    expected = torch.tensor([f(t + 1) / f(0) for t in range(T)], dtype=torch.float64)
    unclipped = s.betas < 0.999
    torch.testing.assert_close(
        s.alpha_bars[unclipped], expected[unclipped], rtol=1e-9, atol=1e-15
    )
    assert (~unclipped).sum() <= 1  # only the very last step hits max_beta


def test_snr_is_alpha_bar_over_one_minus_alpha_bar():
    s = NoiseSchedule(make_betas("sigmoid", 100))
    alpha_bar, expected = 1.0, []
    for beta in (
        s.betas.tolist()
    ):  # an independent float64 loop, not the schedule's own alpha_bars
        alpha_bar *= 1 - beta
        expected.append(alpha_bar / (1 - alpha_bar))
    torch.testing.assert_close(
        s.snr, torch.tensor(expected, dtype=torch.float64), rtol=1e-12, atol=0
    )


linear_params = st.tuples(
    st.floats(1e-6, 0.1), st.floats(1e-6, 0.1), st.integers(1, 2000)
).map(lambda p: (min(p[0], p[1]), max(p[0], p[1]), p[2]))


@settings(max_examples=60, deadline=None)
@given(linear_params, st.sampled_from([k for k in SCHEDULE_KINDS if k != "cosine"]))
def test_alpha_bar_in_unit_interval_and_decreasing(params, kind):
    beta_start, beta_end, T = params
    s = NoiseSchedule(make_betas(kind, T, beta_start=beta_start, beta_end=beta_end))
    assert ((s.alpha_bars > 0) & (s.alpha_bars < 1)).all()
    assert (s.alpha_bars[1:] < s.alpha_bars[:-1]).all()
    assert (s.snr[1:] < s.snr[:-1]).all()


@settings(max_examples=60, deadline=None)
@given(linear_params, st.sampled_from(SCHEDULE_KINDS))
def test_beta_tilde_at_most_beta(params, kind):
    beta_start, beta_end, T = params
    extra = {} if kind == "cosine" else {"beta_start": beta_start, "beta_end": beta_end}
    s = NoiseSchedule(make_betas(kind, T, **extra))
    assert (s.posterior_variance <= s.betas * (1 + 1e-12)).all()


@settings(max_examples=60, deadline=None)
@given(linear_params)
def test_posterior_coefficient_identities(params):
    beta_start, beta_end, T = params
    s = NoiseSchedule(make_betas("linear", T, beta_start=beta_start, beta_end=beta_end))
    # Noise-free x_t = sqrt(alpha_bar) x0 must map to sqrt(alpha_bar_prev) x0:
    lhs = s.posterior_mean_coef1 + s.posterior_mean_coef2 * s.alpha_bars.sqrt()
    torch.testing.assert_close(lhs, s.alpha_bars_prev.sqrt(), rtol=1e-9, atol=1e-12)
    # Precisions add: 1 / beta_tilde = alpha / beta + 1 / (1 - alpha_bar_prev), t >= 1.
    if T > 1:
        rhs = s.alphas[1:] / s.betas[1:] + 1 / (1 - s.alpha_bars_prev[1:])
        torch.testing.assert_close(1 / s.posterior_variance[1:], rhs, rtol=1e-7, atol=0)


def test_to_moves_every_tensor_and_keeps_float64_values():
    s = NoiseSchedule(make_betas("linear", 1000))
    s32 = s.to(dtype=torch.float32)
    assert s32.alpha_bars.dtype == torch.float32 and s32.snr.dtype == torch.float32
    torch.testing.assert_close(s32.alpha_bars, s.alpha_bars.float(), rtol=0, atol=0)
    assert s.alpha_bars.dtype == torch.float64  # the original is untouched
    assert s32.T == 1000


def test_schedule_is_frozen():
    s = NoiseSchedule(make_betas("linear", 10))
    with pytest.raises(AttributeError):
        s.betas = torch.zeros(3)


@pytest.mark.parametrize("T", [0, -5])
def test_T_below_one_is_rejected(T):
    with pytest.raises(ValueError, match=r"T must be >= 1"):
        make_betas("linear", T)


def test_T_must_be_an_int():
    with pytest.raises(TypeError, match="T must be an int"):
        make_betas("linear", 10.0)


def test_unknown_kind_lists_the_valid_ones():
    with pytest.raises(
        ValueError,
        match=r"kind must be one of .*'linear'.*'cosine'.*'quadratic'.*'sigmoid'",
    ):
        make_betas("exponential", 10)


@pytest.mark.parametrize(
    "name,value",
    [
        ("beta_start", 0.0),
        ("beta_end", 1.0),
        ("beta_start", -0.1),
        ("beta_end", float("nan")),
    ],
)
def test_beta_outside_unit_interval_is_rejected(name, value):
    params = {"beta_start": 1e-4, "beta_end": 0.02, name: value}
    with pytest.raises(
        ValueError, match=rf"{name} must be in the open interval \(0, 1\)"
    ):
        make_betas("linear", 10, **params)


def test_beta_start_above_beta_end_is_rejected():
    with pytest.raises(ValueError, match="beta_start must be <= beta_end"):
        make_betas("linear", 10, beta_start=0.02, beta_end=1e-4)


def test_unknown_parameter_is_named():
    with pytest.raises(
        TypeError, match=r"unknown parameter\(s\) \['beta_end'\] for kind 'cosine'"
    ):
        make_betas("cosine", 10, beta_end=0.02)


@pytest.mark.parametrize(
    "bad",
    [
        torch.tensor([0.1, 1.0]),
        torch.tensor([0.1, float("nan")]),
        torch.tensor([0.0, 0.1]),
    ],
)
def test_schedule_rejects_betas_outside_unit_interval(bad):
    with pytest.raises(
        ValueError, match=r"every beta must be in the open interval \(0, 1\)"
    ):
        NoiseSchedule(bad)


def test_schedule_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"betas must have shape \(T,\)"):
        NoiseSchedule(torch.full((2, 3), 0.1))


def test_schedule_rejects_alpha_bar_underflow():
    # 0.5 ** 1075 is below the smallest float64 subnormal: found by hypothesis.
    with pytest.raises(
        ValueError, match=r"alpha_bar underflows to 0 in float64 at t=107[34]"
    ):
        NoiseSchedule(torch.full((1100,), 0.5, dtype=torch.float64))
