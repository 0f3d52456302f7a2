"""ddpm_lite.objectives: the eps / x0 / v / flow targets, their conversions, the loss
family, the straight path, and a model trained for each objective end to end."""

import json
import math
from dataclasses import replace

import pytest
import torch

from ddpm_lite.diffusion import eps_from_x0, forward_marginal, loss_simple, x0_from_eps
from ddpm_lite.flow_map import AverageVelocityNet
from ddpm_lite.objectives import (
    OBJECTIVES,
    TARGET_OBJECTIVES,
    EpsFromPrediction,
    StraightVelocity,
    VelocityModel,
    loss_weight,
    path_coefficients,
    prediction_model,
    target,
    vp_to_straight,
    x0_eps_from_prediction,
)
from ddpm_lite.presets import get_preset
from ddpm_lite.sampling import (
    ddim_timesteps,
    ddim_trajectory,
    ddim_trajectory_from,
    final_sample,
)
from ddpm_lite.schedules import NoiseSchedule, gather, make_betas
from ddpm_lite.solvers import (
    check_sampler,
    flow_trajectory_from,
    heun_update,
    sampler_trajectory,
    straight_times,
)
from ddpm_lite.toy import exact_eps_model, exact_velocity_model, gaussian_mixture_1d
from ddpm_lite.train import (
    TrainConfig,
    TrainState,
    draw_batch,
    save_state,
    simple_loss_at,
    train_step,
)
from ddpm_lite.trained import load_trained, objective_of

SCHEDULE = NoiseSchedule(make_betas("linear", 1000)).to("cpu", torch.float64)


def batch(objective, n=64, seed=0):
    """x0, eps, t and the path's (a, b) in float64."""
    g = torch.Generator().manual_seed(seed)
    x0 = torch.randn(n, 1, 4, 4, generator=g, dtype=torch.float64)
    eps = torch.randn(x0.shape, generator=g, dtype=torch.float64)
    if objective == "flow":
        t = torch.rand(n, generator=g, dtype=torch.float64)
    else:
        t = torch.randint(0, 1000, (n,), generator=g)
    return x0, eps, t, *path_coefficients(objective, SCHEDULE, t, x0)


def test_the_targets_are_the_table_written_out():
    """Independent of target_coefficients: the round trip below would pass any table."""
    x0, eps, t, a, b = batch("eps")
    assert torch.equal(target("eps", x0, eps, a, b), eps)
    assert torch.equal(target("x0", x0, eps, a, b), x0)
    assert torch.equal(target("v", x0, eps, a, b), a * eps - b * x0)
    x0, eps, r, a, b = batch("flow")
    assert torch.equal(target("flow", x0, eps, a, b), eps - x0)


@pytest.mark.parametrize("objective", TARGET_OBJECTIVES)
def test_each_target_gives_x0_and_eps_back(objective):
    x0, eps, t, a, b = batch(objective)
    xt = a * x0 + b * eps
    x0_back, eps_back = x0_eps_from_prediction(
        objective, target(objective, x0, eps, a, b), xt, a, b
    )
    # x0 from eps at t = 0 divides by sqrt(alpha_bar_0) ~ 1 but eps's error by b ~ 0.01
    assert torch.allclose(x0_back, x0, rtol=0, atol=1e-12)
    assert torch.allclose(eps_back, eps, rtol=0, atol=1e-12)


def test_the_inverse_is_the_diffusion_kernels_for_eps_and_x0():
    x0, eps, t, a, b = batch("eps")
    alpha_bar = gather(SCHEDULE.alpha_bars, t, x0)
    xt = forward_marginal(x0, eps, alpha_bar)
    assert torch.allclose(xt, a * x0 + b * eps, rtol=0, atol=0)
    got_x0, _ = x0_eps_from_prediction("eps", eps, xt, a, b)
    assert torch.allclose(got_x0, x0_from_eps(xt, eps, alpha_bar), rtol=0, atol=1e-14)
    _, got_eps = x0_eps_from_prediction("x0", x0, xt, a, b)
    assert torch.allclose(got_eps, eps_from_x0(xt, x0, alpha_bar), rtol=0, atol=1e-13)


def test_v_and_flow_are_velocities_along_their_paths():
    """v = d x / d phi with (a, b) = (cos phi, sin phi); flow = d x / d t on the
    straight path: both against a central difference."""
    x0, eps, *_ = batch("eps")
    phi, h = torch.tensor(0.7, dtype=torch.float64), 1e-6
    along = lambda p: torch.cos(p) * x0 + torch.sin(p) * eps  # noqa: E731
    numeric = (along(phi + h) - along(phi - h)) / (2 * h)
    v = target("v", x0, eps, torch.cos(phi), torch.sin(phi))
    assert torch.allclose(v, numeric, rtol=0, atol=1e-8)
    straight = lambda t: (1 - t) * x0 + t * eps  # noqa: E731
    numeric = (straight(0.3 + h) - straight(0.3 - h)) / (2 * h)
    assert torch.allclose(target("flow", x0, eps, 0.7, 0.3), numeric, atol=1e-8)


@pytest.mark.parametrize("objective", ["x0", "v", "score", "flow"])
def test_each_loss_is_the_eps_loss_reweighted_by_the_snr(objective):
    """One wrong prediction, read as each target: the squared errors differ by
    loss_weight(SNR) exactly (float64)."""
    x0, eps, t, a, b = batch("eps")
    xt = a * x0 + b * eps
    g = torch.Generator().manual_seed(1)
    eps_hat = eps + 0.3 * torch.randn(eps.shape, generator=g, dtype=eps.dtype)
    x0_hat, _ = x0_eps_from_prediction("eps", eps_hat, xt, a, b)
    if objective == "score":  # the score of q(x_t | x0) is -eps / b
        error = (-eps / b + eps_hat / b) ** 2
    elif objective == "flow":  # on the straight path the map carries x_t to
        y, t_straight = vp_to_straight(xt, a**2)
        error = target("flow", x0, eps, 1, 1) - target("flow", x0_hat, eps_hat, 1, 1)
        error = error**2
        assert torch.allclose(y, (1 - t_straight) * x0 + t_straight * eps, atol=1e-14)
    else:
        error = (
            target(objective, x0, eps, a, b) - target(objective, x0_hat, eps_hat, a, b)
        ) ** 2
    snr = (a / b) ** 2
    expected = loss_weight(objective, snr) * (eps - eps_hat) ** 2
    assert torch.allclose(error, expected, rtol=1e-9, atol=0)


def test_loss_weight_names_the_objectives_it_knows():
    with pytest.raises(ValueError, match="objective must be one of .*'score'"):
        loss_weight("velocity", torch.ones(1))


def test_the_marginal_velocity_on_a_mixture_is_the_posterior_mean_by_monte_carlo():
    """u(x, t) = E[eps - x0 | x_t = x], against self-normalised importance sampling:
    x0_i from the data, weights N(x; (1 - t) x0_i, t^2), eps_i fixed by x and x0_i."""
    mixture = gaussian_mixture_1d([0.3, 0.7], [-2.0, 1.0], [0.5, 0.3])
    u = exact_velocity_model(mixture)
    x0 = mixture.sample(400_000, torch.Generator().manual_seed(0))[:, 0]
    for time in (0.2, 0.5, 0.9):
        x = torch.tensor([[-1.5], [0.0], [0.8]], dtype=torch.float64)
        exact = u(x, torch.full((3,), time, dtype=torch.float64))[:, 0]
        log_w = -0.5 * ((x - (1 - time) * x0[None]) / time) ** 2  # (3, N)
        w = torch.softmax(log_w, dim=1)
        eps = (x - (1 - time) * x0[None]) / time
        monte_carlo = (w * (eps - x0[None])).sum(1)
        assert torch.allclose(exact, monte_carlo, atol=0.02), (time, exact, monte_carlo)


def test_the_velocity_at_t_1_is_x_minus_the_data_mean():
    mixture = gaussian_mixture_1d([0.3, 0.7], [-2.0, 1.0], [0.5, 0.3])
    x = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    got = exact_velocity_model(mixture)(x, torch.ones(7, dtype=torch.float64))
    assert torch.allclose(got, x - (0.3 * -2.0 + 0.7 * 1.0), atol=1e-12)


def test_ddim_is_euler_on_the_rescaled_straight_path():
    """DDIM (eta = 0) on the exact eps of a mixture, and Euler's method in (y, t') =
    vp_to_straight(x_t) with the velocity eps_hat - x0_hat of the same predictions:
    the same states to round-off."""
    mixture = gaussian_mixture_1d([0.3, 0.7], [-2.0, 1.0], [0.5, 0.3])
    eps_model = exact_eps_model(mixture, SCHEDULE.alpha_bars)
    g = torch.Generator().manual_seed(0)
    run = ddim_trajectory(eps_model, SCHEDULE, (256, 1), g, 10, dtype=torch.float64)
    states = list(run)
    alpha_bars = torch.cat([SCHEDULE.alpha_bars, torch.ones(1, dtype=torch.float64)])
    y, t_now = vp_to_straight(states[0].xt, alpha_bars[states[0].t])
    for state, nxt in zip(states, states[1:]):
        ab = alpha_bars[state.t]
        a, b = ab.sqrt(), (1 - ab).sqrt()
        eps_hat = eps_model(state.xt, torch.full((256,), state.t))
        x0_hat, _ = x0_eps_from_prediction("eps", eps_hat, state.xt, a, b)
        velocity = target("flow", x0_hat, eps_hat, 1, 1)
        _, t_next = vp_to_straight(y, alpha_bars[nxt.t])
        y = heun_update(y, float(t_now), float(t_next), velocity, None)
        t_now = t_next
        expected, _ = vp_to_straight(nxt.xt, alpha_bars[nxt.t])
        assert torch.allclose(y, expected, rtol=0, atol=1e-11), nxt.t


@pytest.mark.parametrize("clip", [False, True])
def test_an_eps_model_read_on_the_straight_path_samples_as_ddim(clip):
    """The package's path of the controlled comparison: StraightVelocity and Euler on
    straight_times of DDIM's steps give DDIM's samples (clipped or not), rescaled."""
    mixture = gaussian_mixture_1d([0.3, 0.7], [-0.5, 0.6], [0.2, 0.1])
    eps_model = exact_eps_model(mixture, SCHEDULE.alpha_bars)
    xT = torch.randn(256, 1, generator=torch.Generator().manual_seed(1)).double()
    ddim = final_sample(ddim_trajectory_from(eps_model, SCHEDULE, xT, 999, None, 10,
                                             clip_denoised=clip))  # fmt: skip
    times = straight_times(SCHEDULE, ddim_timesteps(1000, 10))
    y, _ = vp_to_straight(xT, SCHEDULE.alpha_bars[-1])
    velocity = StraightVelocity(eps_model, SCHEDULE)
    euler = final_sample(flow_trajectory_from(velocity, y, times[0], 0, "euler", clip,
                                              times))  # fmt: skip
    assert torch.allclose(euler, ddim, rtol=0, atol=1e-11)
    # with a 10 % error in the eps-model's time, the two part ways
    off = StraightVelocity(lambda x, t: eps_model(x, (t * 0.9).long()), SCHEDULE)
    wrong = final_sample(
        flow_trajectory_from(off, y, times[0], 0, "euler", clip, times)
    )
    assert (wrong - ddim).abs().max() > 1e-3


def test_the_straight_view_refuses_a_time_that_is_no_code_index():
    velocity = StraightVelocity(lambda x, t: x, SCHEDULE)
    r_10 = straight_times(SCHEDULE, [10])[0]
    assert velocity.code_index(torch.tensor([r_10])).item() == 10
    with pytest.raises(ValueError, match="r must be the straight-path time r_t"):
        velocity(torch.zeros(1, 1), torch.tensor([r_10 + 1e-3]))


def test_the_eps_view_of_x0_and_v_networks_is_the_conversion():
    x0, eps, t, a, b = batch("eps", n=8)
    xt = a * x0 + b * eps
    for objective in ("x0", "v"):
        net = lambda x, s, o=objective: target(o, x0, eps, a, b)  # noqa: E731
        view = EpsFromPrediction(net, objective, SCHEDULE)
        assert torch.allclose(view(xt, t), eps, rtol=0, atol=1e-12)
    with pytest.raises(ValueError, match="objective must be one of .*'v'"):
        EpsFromPrediction(net, "flow", SCHEDULE)


def tiny_run(objective, tmp_path):
    preset = get_preset("tiny")
    meanflow = objective == "meanflow"  # a second time; GroupNorm's JVP: contiguous
    config = TrainConfig(
        steps=2, batch_size=8, lr=1e-3, warmup_steps=0, objective=objective,
        channels_last=not meanflow,
    )  # fmt: skip
    unet_config = replace(preset.unet, time_gap=meanflow)
    state = TrainState.create(unet_config, config, torch.device("cpu"))
    schedule = NoiseSchedule(make_betas("linear", config.T)).to("cpu", torch.float32)
    data = torch.rand(16, 1, 28, 28) * 2 - 1
    before = [p.detach().clone() for p in state.model.parameters()]
    loss = train_step(
        state, draw_batch(data, None, config, state.generator, schedule, None),
        schedule, config,
    )  # fmt: skip
    moved = any(not torch.equal(p, q) for p, q in zip(before, state.model.parameters()))
    state.losses.append(float(loss))
    stem = save_state(tmp_path, state, unet_config, config, {"command": "test"})
    return float(loss), moved, stem


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_one_step_per_objective_then_a_sampler_run_from_its_checkpoint(
    objective, tmp_path
):
    loss, moved, stem = tiny_run(objective, tmp_path)
    assert math.isfinite(loss) and moved
    model, schedule, info = load_trained(stem)
    assert objective_of(info) == objective
    kind = {
        "eps": type(model).__name__ == "UNet",
        "flow": isinstance(model, VelocityModel),
        "meanflow": isinstance(model, AverageVelocityNet),
    }
    assert kind.get(objective, isinstance(model, EpsFromPrediction))
    sampler = {"flow": "heun", "meanflow": "flow-map"}.get(objective, "ddim")
    run = sampler_trajectory(
        sampler, model, schedule, (3, 1, 28, 28), torch.Generator().manual_seed(0), 3,
        clip_denoised=True, objective=objective,
    )  # fmt: skip
    with torch.no_grad():
        sample = final_sample(run)
    assert sample.shape == (3, 1, 28, 28) and bool(sample.isfinite().all())


def test_the_eps_loss_is_l_simple_bit_for_bit():
    x0, eps, t, *_ = batch("eps")
    net = lambda xt, s: xt * 0.5 + s[:, None, None, None] * 1e-3  # noqa: E731
    xt = forward_marginal(x0, eps, gather(SCHEDULE.alpha_bars, t, x0))
    expected = loss_simple(eps, net(xt, t)).mean()
    assert torch.equal(simple_loss_at(net, SCHEDULE, x0, t, eps), expected)


def test_an_unknown_objective_is_named():
    with pytest.raises(
        ValueError,
        match=r"objective must be one of \('eps', 'x0', 'v', 'flow', 'meanflow'\)",
    ):
        TrainConfig(objective="score")
    with pytest.raises(ValueError, match="objective must be one of"):
        prediction_model(torch.nn.Identity(), "velocity", SCHEDULE)


def test_older_checkpoints_are_eps_and_a_bad_sidecar_objective_is_named(tmp_path):
    _, _, stem = tiny_run("eps", tmp_path)
    sidecar = stem.with_suffix(".json")
    info = json.loads(sidecar.read_text())
    del info["train_config"]["objective"]
    assert objective_of(info) == "eps"
    info["train_config"]["objective"] = "velocity"
    with pytest.raises(ValueError, match="train_config.objective must be one of"):
        objective_of(info)


def test_a_sampler_an_objective_cannot_use_names_both():
    with pytest.raises(
        ValueError, match="'ddim' cannot use .* objective 'flow'.*'heun'"
    ):
        check_sampler("ddim", "flow")
    with pytest.raises(ValueError, match="'euler' cannot use .* objective 'v'"):
        check_sampler("euler", "v")
    assert check_sampler("dpm-solver++", "x0") == "dpm-solver++"
