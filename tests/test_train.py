import json
import math
from dataclasses import replace

import pytest
import torch

from ddpm_lite.checkpoint import CheckpointError
from ddpm_lite.data import load_mnist, to_model_range
from ddpm_lite.presets import PRESETS
from ddpm_lite.schedules import NoiseSchedule, make_betas
from ddpm_lite.toy import ToyEpsMLP, exact_eps_model, gaussian_mixture_1d, two_moons
from ddpm_lite.train import (
    TrainConfig,
    TrainState,
    draw_batch,
    ema_decay_at,
    lr_factor,
    prune_checkpoints,
    train,
    train_step,
    training_loss,
)
from ddpm_lite.trained import load_model
from ddpm_lite.unet import UNetConfig


def test_exact_model_loss_is_the_mean_conditional_variance_of_eps():
    # For x0 ~ N(m, s^2) the best eps_theta is E[eps | x_t], and L_simple at the optimum is
    # E_t Var(eps | x_t) = E_t [1 - (1 - ab) / (ab s^2 + 1 - ab)]: an independent closed form.
    m, s = 0.5, 0.3
    schedule = NoiseSchedule(make_betas("linear", 200))
    data = gaussian_mixture_1d([1.0], [m], [s])
    g = torch.Generator().manual_seed(0)
    ab = schedule.alpha_bars
    expected = (1 - (1 - ab) / (ab * s**2 + 1 - ab)).mean().item()
    losses = torch.tensor(
        [
            training_loss(
                exact_eps_model(data, ab), schedule, data.sample(2000, g), g
            ).item()
            for _ in range(50)
        ]
    )
    # 50 batches of 2000: the batch means vary by their own SE, estimated from the batches
    assert abs(losses.mean().item() - expected) < 5 * losses.std().item() / math.sqrt(
        len(losses)
    )


def test_same_generator_state_gives_the_same_loss():
    schedule = NoiseSchedule(make_betas("linear", 50)).to(dtype=torch.float32)
    model = ToyEpsMLP(T=50)
    x0 = two_moons(64, torch.Generator().manual_seed(0))
    a = training_loss(model, schedule, x0, torch.Generator().manual_seed(5))
    b = training_loss(model, schedule, x0, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_a_few_steps_reduce_the_loss_on_a_fixed_batch():
    torch.manual_seed(0)
    schedule = NoiseSchedule(make_betas("linear", 50)).to(dtype=torch.float32)
    model = ToyEpsMLP(T=50)
    x0 = two_moons(256, torch.Generator().manual_seed(0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    loss_on_batch = lambda: training_loss(
        model, schedule, x0, torch.Generator().manual_seed(7)
    )  # same t and eps
    before = loss_on_batch().item()
    for _ in range(20):
        optimizer.zero_grad()
        loss_on_batch().backward()
        optimizer.step()
    assert loss_on_batch().item() < 0.7 * before


# --- the loop -------------------------------------------------------------------------------


TINY_UNET = PRESETS["tiny"].unet
# Smaller still, for the tests that need a hundred steps to show an effect (attention kept, to run its path).
MICRO_UNET = UNetConfig(
    base_channels=8,
    channel_mults=(1, 2),
    num_res_blocks=1,
    attention_resolutions=(14,),
    groups=4,
)


@pytest.fixture(scope="module")
def images():
    return to_model_range(load_mnist("train").images[:256])


def tiny_config(steps, **kwargs):
    return TrainConfig(
        steps=steps,
        batch_size=16,
        checkpoint_every=2,
        warmup_steps=2,
        device="cpu",
        **kwargs,
    )


def test_resumed_run_repeats_the_unbroken_loss_trajectory(tmp_path, images):
    unbroken = train(TINY_UNET, tiny_config(6), images, tmp_path / "a", progress=False)
    train(
        TINY_UNET, tiny_config(2), images, tmp_path / "b", progress=False
    )  # stops after the first checkpoint
    resumed = train(TINY_UNET, tiny_config(6), images, tmp_path / "b", progress=False)
    assert resumed.losses == unbroken.losses and len(unbroken.losses) == 6


def test_a_damaged_newest_checkpoint_is_skipped_and_said(tmp_path, images, caplog):
    unbroken = train(TINY_UNET, tiny_config(6), images, tmp_path / "a", progress=False)
    run = tmp_path / "b"
    train(TINY_UNET, tiny_config(4), images, run, progress=False)  # steps 2 and 4
    newest = run / "checkpoint-0000004.safetensors"
    newest.write_bytes(newest.read_bytes()[:1000])  # a copy cut short
    resumed = train(TINY_UNET, tiny_config(6), images, run, progress=False)
    said = caplog.text
    assert "resuming from checkpoint-0000002" in said and "checkpoint-0000004" in said
    assert resumed.losses == unbroken.losses  # steps 3 to 6 again, from step 2


def test_resuming_with_no_intact_checkpoint_names_the_file(tmp_path, images):
    run = tmp_path / "run"
    train(TINY_UNET, tiny_config(2), images, run, progress=False)
    (run / "checkpoint-0000002.json").write_text('{"step": 2, "sha')  # cut short
    with pytest.raises(
        CheckpointError, match="no intact checkpoint.*checkpoint-0000002"
    ):
        train(TINY_UNET, tiny_config(4), images, run, progress=False)


def test_training_lowers_the_loss_on_mnist(tmp_path, images):
    result = train(
        TINY_UNET,
        TrainConfig(
            steps=60,
            batch_size=32,
            lr=2e-3,
            warmup_steps=5,
            checkpoint_every=60,
            device="cpu",
        ),
        images,
        tmp_path,
        progress=False,
    )
    first, last = sum(result.losses[:10]) / 10, sum(result.losses[-10:]) / 10
    assert last < 0.6 * first, (
        first,
        last,
    )  # from ~1 (eps_theta = 0 at init) to well below


def test_sidecar_records_provenance(tmp_path, images):
    result = train(
        TINY_UNET,
        tiny_config(2),
        images,
        tmp_path,
        progress=False,
        data_note="256 test images",
    )
    info = json.loads(result.checkpoint.with_suffix(".json").read_text())
    assert (
        info["step"] == 2
        and info["data"]["images"] == 256
        and info["data"]["note"] == "256 test images"
    )
    assert (
        info["train_config"]["batch_size"] == 16
        and info["unet_config"]["base_channels"] == 16
    )
    assert info["device"].startswith("cpu") and info["code_version"].startswith(
        "ddpm_lite"
    )
    assert set(info) >= {"wall_seconds_this_run", "metrics", "sha256"}


def test_load_model_gives_the_ema_weights(tmp_path, images):
    result = train(TINY_UNET, tiny_config(2), images, tmp_path, progress=False)
    model = load_model(result.checkpoint)
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), result.ema.state_dict().values())
    )


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"steps": 0}, r"steps must be >= 1"),
        ({"lr": 0.0}, r"lr must be > 0"),
        ({"ema_decay": 1.0}, r"ema_decay must be in \[0, 1\)"),
        ({"schedule": "exp"}, r"schedule must be one of"),
        ({"device": "tpu"}, r"device must be one of \('auto', 'cpu', 'cuda'\)"),
        ({"warmup_steps": -1}, r"warmup_steps must be >= 0"),
        ({"p_uncond": 1.5}, r"p_uncond must be in \[0, 1\]"),
        (
            {"lr_schedule": "step"},
            r"lr_schedule must be one of \('constant', 'cosine'\)",
        ),
        ({"precision": "fp16"}, r"precision must be one of \('auto', 'fp32', 'bf16'\)"),
        ({"keep_checkpoints": 0}, r"keep_checkpoints must be >= 1"),
    ],
)
def test_bad_train_config_is_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**kwargs)


# --- class-conditional training (classifier-free guidance) ------------------------------------

TINY_CONDITIONAL = replace(TINY_UNET, num_classes=10)


@pytest.fixture(scope="module")
def labels():
    return load_mnist("train").labels[:256]


def test_conditional_run_resumes_exactly_and_records_the_label_dropout(
    tmp_path, images, labels
):
    unbroken = train(
        TINY_CONDITIONAL,
        tiny_config(4, p_uncond=0.3),
        images,
        tmp_path / "a",
        progress=False,
        labels=labels,
    )
    train(
        TINY_CONDITIONAL,
        tiny_config(2, p_uncond=0.3),
        images,
        tmp_path / "b",
        progress=False,
        labels=labels,
    )
    resumed = train(
        TINY_CONDITIONAL,
        tiny_config(4, p_uncond=0.3),
        images,
        tmp_path / "b",
        progress=False,
        labels=labels,
    )
    assert resumed.losses == unbroken.losses
    info = json.loads(unbroken.checkpoint.with_suffix(".json").read_text())
    assert (
        info["unet_config"]["num_classes"] == 10
        and info["train_config"]["p_uncond"] == 0.3
    )
    assert (
        load_model(unbroken.checkpoint).class_emb.num_embeddings == 11
    )  # ten digits and the "no label" token


def test_conditional_training_uses_the_labels(tmp_path, images, labels):
    # Same seed, same batches, t and eps; only the labels differ, so the losses must differ.
    config = tiny_config(3, p_uncond=0.0)
    a = train(
        TINY_CONDITIONAL, config, images, tmp_path / "a", progress=False, labels=labels
    )
    b = train(
        TINY_CONDITIONAL,
        config,
        images,
        tmp_path / "b",
        progress=False,
        labels=(labels + 1) % 10,
    )
    # The zero-initialized output convolutions block the label's path for two steps (the output, then the
    # residual branches, must first move away from zero); from the third step on the labels matter.
    assert a.losses[:2] == b.losses[:2] and a.losses[2] != b.losses[2]


def test_conditional_unet_needs_labels(tmp_path, images):
    with pytest.raises(
        ValueError, match=r"a class-conditional U-Net needs labels of shape \(256,\)"
    ):
        train(TINY_CONDITIONAL, tiny_config(1), images, tmp_path, progress=False)


def test_unconditional_unet_rejects_labels(tmp_path, images, labels):
    with pytest.raises(
        ValueError, match="labels were given, but unet_config.num_classes is None"
    ):
        train(
            TINY_UNET, tiny_config(1), images, tmp_path, progress=False, labels=labels
        )


def test_full_label_dropout_makes_the_labels_irrelevant(tmp_path, images, labels):
    config = tiny_config(3, p_uncond=1.0)  # every label becomes the "no label" token
    a = train(
        TINY_CONDITIONAL, config, images, tmp_path / "a", progress=False, labels=labels
    )
    b = train(
        TINY_CONDITIONAL,
        config,
        images,
        tmp_path / "b",
        progress=False,
        labels=(labels + 1) % 10,
    )
    assert a.losses == b.losses


# --- EMA warm-up, learning-rate schedule, checkpoint pruning -----------------------------------


def test_ema_warmup_keeps_little_of_the_initial_weights():
    # The initial weights' share after n steps is the product of the decays; without the warm-up,
    # 0.999**1000 = 37 % of the average would still be the untrained network.
    share = math.prod(ema_decay_at(k, 0.999) for k in range(1000))
    assert share < 1e-3 < 0.999**1000
    assert ema_decay_at(0, 0.999) == 0.1 and ema_decay_at(10**6, 0.999) == 0.999


def test_cosine_schedule_warms_up_then_decays_to_zero():
    config = TrainConfig(steps=1000, warmup_steps=100, lr_schedule="cosine")
    assert lr_factor(0, config) == pytest.approx(0.01) and lr_factor(
        99, config
    ) == pytest.approx(1.0)
    assert lr_factor(550, config) == pytest.approx(
        0.5
    )  # halfway through the decay: cos(pi/2)
    assert lr_factor(999, config) == pytest.approx(0.0, abs=1e-4)
    assert lr_factor(500, replace(config, lr_schedule="constant")) == 1.0


def test_a_short_runs_ema_is_no_worse_than_its_raw_weights_on_held_out_data(
    tmp_path, images
):
    result = train(
        MICRO_UNET,
        TrainConfig(
            steps=150,
            batch_size=32,
            lr=2e-3,
            warmup_steps=10,
            ema_decay=0.999,
            checkpoint_every=150,
            device="cpu",
        ),
        images,
        tmp_path,
        progress=False,
    )
    held_out = to_model_range(load_mnist("test").images[:256])
    schedule = NoiseSchedule(make_betas("linear", 1000)).to(dtype=torch.float32)

    def held_out_loss(model):  # the same t and eps for both models: a paired comparison
        with torch.no_grad():
            return training_loss(
                model.eval(), schedule, held_out, torch.Generator().manual_seed(1)
            ).item()

    raw, ema = held_out_loss(result.model), held_out_loss(result.ema)
    # Without the warm-up the EMA after 150 steps is 86 % the zero-output initial network: loss near 1.
    assert ema <= raw * 1.05, (ema, raw)


def test_pruning_keeps_the_newest_checkpoints_and_the_final_one(tmp_path, images):
    train(
        TINY_UNET,
        replace(tiny_config(8), keep_checkpoints=2),
        images,
        tmp_path,
        progress=False,
    )
    assert sorted(p.name for p in tmp_path.glob("*.json")) == [
        "checkpoint-0000006.json",
        "checkpoint-0000008.json",
    ]
    for step in (
        10,
        12,
    ):  # as if resumed with more steps: step 8 was final before, 12 is now
        (tmp_path / f"checkpoint-{step:07d}.json").write_text("{}")
    deleted = prune_checkpoints(tmp_path, 2, keep_step=12)
    assert [s.name for s in deleted] == ["checkpoint-0000006", "checkpoint-0000008"]
    assert not (tmp_path / "checkpoint-0000006.safetensors").exists()


# --- the GPU path, checked on the CPU ---------------------------------------------------------


def test_training_under_bf16_autocast_runs_and_lowers_the_loss(tmp_path, images):
    # CPU autocast runs the U-Net in bfloat16, as CUDA autocast does: the loss must still be float32.
    config = TrainConfig(
        steps=40,
        batch_size=32,
        lr=2e-3,
        warmup_steps=5,
        checkpoint_every=20,
        device="cpu",
        precision="bf16",
    )
    result = train(MICRO_UNET, config, images, tmp_path, progress=False)
    assert len(result.losses) == 40 and all(math.isfinite(x) for x in result.losses)
    assert sum(result.losses[-10:]) < 0.8 * sum(result.losses[:10])
    resumed = train(
        MICRO_UNET, replace(config, steps=50), images, tmp_path, progress=False
    )
    assert resumed.losses[:40] == result.losses


def test_the_sync_detector_catches_a_sync(no_host_sync):
    with pytest.raises(RuntimeError, match="reads a value on the host"):
        bool((torch.zeros(2) < 1).all())


@pytest.mark.parametrize("conditional", [False, True])
def test_a_training_step_reads_nothing_on_the_host(
    images, labels, conditional, request
):
    unet_config = TINY_CONDITIONAL if conditional else TINY_UNET
    config = tiny_config(3)
    state = TrainState.create(unet_config, config, torch.device("cpu"))
    schedule = NoiseSchedule(make_betas("linear", 1000)).to(dtype=torch.float32)
    data_labels = labels if conditional else None
    request.getfixturevalue("no_host_sync")
    for _ in range(2):
        batch = draw_batch(
            images,
            data_labels,
            config,
            state.generator,
            schedule,
            unet_config.num_classes,
        )
        loss = train_step(state, batch, schedule, config)
    assert state.step == 2
    assert loss.shape == ()


MEANFLOW_NET = replace(PRESETS["tiny"].unet, time_gap=True)
MEANFLOW = replace(PRESETS["tiny"].train, objective="meanflow", channels_last=False)


@pytest.mark.parametrize(
    "unet_config,config,message",
    [
        (PRESETS["tiny"].unet, MEANFLOW, "second time input"),
        (MEANFLOW_NET, replace(MEANFLOW, channels_last=True), "channels_last=False"),
        (MEANFLOW_NET, replace(MEANFLOW, compile=True), "torch.compile"),
    ],
)
def test_meanflow_refuses_what_its_jvp_cannot_run_through(
    unet_config, config, message, tmp_path
):
    images = torch.zeros(4, 1, 28, 28)
    with pytest.raises(ValueError, match=message):
        train(unet_config, config, images, tmp_path, progress=False)


def test_a_meanflow_batch_has_ordered_time_pairs():
    config = replace(MEANFLOW, batch_size=512, flow_fraction=0.5)
    g = torch.Generator().manual_seed(0)
    schedule = NoiseSchedule(make_betas("linear", 10))
    batch = draw_batch(torch.zeros(8, 1, 28, 28), None, config, g, schedule, None)
    assert batch.s.shape == batch.t.shape == (512,)
    assert bool((batch.s <= batch.t).all())
    # binomial SE at 512: sqrt(0.25 / 512) = 0.022; 5 SE
    assert abs(float((batch.s == batch.t).float().mean()) - 0.5) < 0.11


def test_warm_start_refuses_weights_of_another_shape(tmp_path):
    from ddpm_lite.train import warm_start
    from ddpm_lite.unet import UNet

    state = TrainState.create(MEANFLOW_NET, MEANFLOW, torch.device("cpu"))
    other = UNet(replace(MEANFLOW_NET, time_gap=False, num_classes=10)).state_dict()
    with pytest.raises(ValueError, match="unexpected"):
        warm_start(state, other)
    warm_start(state, UNet(replace(MEANFLOW_NET, time_gap=False)).state_dict())


def test_a_teacher_gives_meanflow_its_velocity_at_the_batch_s_times_and_labels():
    import copy

    from ddpm_lite.flow_map import meanflow_loss, u_theta

    net = replace(MEANFLOW_NET, num_classes=10)
    config = replace(MEANFLOW, flow_fraction=0.5)
    state = TrainState.create(net, config, torch.device("cpu"))
    before = copy.deepcopy(state.model)
    g = torch.Generator().manual_seed(0)
    schedule = NoiseSchedule(make_betas("linear", 10))
    labels = torch.arange(8) % 10
    images = torch.rand(8, 1, 28, 28) * 2 - 1
    batch = draw_batch(images, labels, config, g, schedule, 10)
    calls = []

    def teacher(x, r, y):
        calls.append((r, y))
        return 0.5 * x  # any velocity other than eps - x0

    loss = train_step(state, batch, schedule, config, teacher=teacher)
    assert len(calls) == 1
    assert torch.equal(calls[0][0], batch.t) and torch.equal(calls[0][1], batch.y)
    expected = meanflow_loss(
        lambda x, s, r: u_theta(before, x, s, r, batch.y),
        batch.x0, batch.eps, batch.s, batch.t, teacher=lambda x, r: 0.5 * x,
    )  # fmt: skip
    assert torch.allclose(loss, expected, rtol=1e-5)


def test_a_teacher_is_refused_without_meanflow(tmp_path):
    config = replace(PRESETS["tiny"].train, objective="flow")
    with pytest.raises(ValueError, match="a teacher is for objective 'meanflow'"):
        train(PRESETS["tiny"].unet, config, torch.zeros(4, 1, 28, 28), tmp_path,
              progress=False, teacher=torch.nn.Identity())  # fmt: skip
