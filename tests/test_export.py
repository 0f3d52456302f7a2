"""The ONNX export runs in onnxruntime and agrees with PyTorch."""

import pytest
import torch

from ddpm_lite.export import export_onnx, onnx_eps_model
from ddpm_lite.pretrained import load_pretrained

ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow  # tracing the exporter takes seconds


@pytest.fixture(scope="module")
def shipped():
    return load_pretrained("mnist-ddpm-cond").model


@pytest.fixture(scope="module")
def exported(shipped, tmp_path_factory):
    """The shipped model exported once with float32 weights and once with float16 weights (about 10 s each)."""
    out = tmp_path_factory.mktemp("onnx")
    return {
        half: export_onnx(shipped, out / f"half-{half}.onnx", half_weights=half)
        for half in (False, True)
    }


def run(path, *inputs):
    return onnx_eps_model(path)(*inputs)


@pytest.mark.parametrize("half_weights", [False, True])
def test_the_exported_model_matches_pytorch_at_several_t_and_batch_sizes(
    shipped, exported, half_weights
):
    path = exported[half_weights]
    g = torch.Generator().manual_seed(0)
    for batch in (1, 5):  # the batch dimension is dynamic
        x = torch.randn(batch, 1, 28, 28, generator=g)
        for step in (0, 500, 999):
            t, y = (
                torch.full((batch,), step),
                torch.randint(0, 11, (batch,), generator=g),
            )  # 10 is the "no label" token
            with torch.no_grad():
                expected = shipped(x, t, y)
            error = (run(path, x, t, y) - expected).abs().max().item()
            # float32 throughout: only the order of operations differs (measured ~1e-6). float16 weights: each weight
            # is rounded to 11 significant bits (relative error <= 2^-12); measured <= 8e-4 on eps, whose std is 1.
            assert error < (1e-4 if not half_weights else 5e-3), (batch, step, error)


def test_half_weights_halve_the_file(exported):
    full, half = exported[False].stat().st_size, exported[True].stat().st_size
    assert 0.45 < half / full < 0.6, (half, full)


def test_an_unconditional_unet_has_two_inputs(tmp_path):
    from ddpm_lite.presets import PRESETS
    from ddpm_lite.unet import UNet

    torch.manual_seed(0)
    model = UNet(PRESETS["tiny"].unet)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.05)
    path = export_onnx(model, tmp_path / "tiny.onnx")
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 400, 999])
    runtime = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in runtime.get_inputs()] == ["x_t", "t"]
    with torch.no_grad():
        torch.testing.assert_close(
            run(path, x, t), model.eval()(x, t), rtol=1e-4, atol=1e-4
        )


def test_the_command_writes_the_model_and_the_schedule_the_sampler_uses(tmp_path):
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "ddpm_lite",
            "export-onnx",
            "--pretrained",
            "mnist-ddpm",
            "--half-weights",
            "--out",
            str(tmp_path / "web" / "mnist.onnx"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "wrote" in result.stdout
        and (tmp_path / "web" / "mnist.onnx").stat().st_size > 1_000_000
    )
    record = json.loads((tmp_path / "web" / "mnist.json").read_text())
    schedule = load_pretrained("mnist-ddpm").schedule
    assert (
        record["T"] == 1000
        and record["inputs"] == ["x_t", "t", "y"]
        and record["null_label"] == 10
    )
    assert (
        record["alpha_bars"] == schedule.alpha_bars.tolist()
    )  # exactly the values the Python sampler uses


def test_the_reference_run_records_the_noise_the_sampler_drew(shipped, exported):
    from ddpm_lite.export import reference_run
    from ddpm_lite.guidance import classifier_free_guidance
    from ddpm_lite.noise import RecordedNoise
    from ddpm_lite.pretrained import load_pretrained
    from ddpm_lite.sampling import ddim_trajectory, final_sample

    schedule = load_pretrained("mnist-ddpm-cond").schedule
    onnx_model = onnx_eps_model(exported[False])
    record = reference_run(
        {"torch": shipped, "onnx": onnx_model},
        10,
        (1, 28, 28),
        schedule,
        labels=[3, 7],
        scale=2.0,
        num_steps=4,
        eta=0.5,
        seed=1,
    )
    shape = record["shape"]
    assert record["timesteps"] == [999, 749, 499, 249] and len(record["noise"]) == 4
    # Replay: the recorded x_T and step noise, fed to the sampler, give each recorded sample.
    draws = [torch.tensor(z).reshape(shape) for z in [record["x_T"], *record["noise"]]]
    for name, cond_model in (("torch", shipped), ("onnx", onnx_model)):
        eps_model = classifier_free_guidance(cond_model, torch.tensor([3, 7]), 10, 2.0)
        replay = RecordedNoise(draws)
        with torch.no_grad():
            run = ddim_trajectory(
                eps_model, schedule, shape, replay, 4, 0.5, clip_denoised=True
            )
            sample = final_sample(run)
        assert replay.used == len(draws)
        assert torch.equal(sample.reshape(-1), torch.tensor(record["samples"][name])), (
            name
        )
    # The float32 export follows PyTorch closely through all four steps.
    assert (
        max(
            abs(a - b)
            for a, b in zip(record["samples"]["torch"], record["samples"]["onnx"])
        )
        < 1e-4
    )


def test_the_solver_reference_run_records_only_x_T_and_replays_to_its_samples(
    shipped, exported
):
    from ddpm_lite.export import reference_run
    from ddpm_lite.guidance import classifier_free_guidance
    from ddpm_lite.noise import RecordedNoise
    from ddpm_lite.sampling import final_sample
    from ddpm_lite.solvers import dpm_solver_trajectory, solver_timesteps

    schedule = load_pretrained("mnist-ddpm-cond").schedule
    onnx_model = onnx_eps_model(exported[False])
    case = dict(labels=[3, 7], scale=2.0, num_steps=4, seed=1)
    record = reference_run(
        {"torch": shipped, "onnx": onnx_model},
        10,
        (1, 28, 28),
        schedule,
        **case,
        sampler="dpm-solver++",
    )
    shape = record["shape"]
    assert (record["sampler"], record["order"], record["spacing"]) == (
        "dpm-solver++",
        2,
        "logsnr",
    )
    assert record["eta"] is None and record["noise"] == []  # deterministic: x_T only
    assert record["timesteps"] == solver_timesteps(schedule, 4, "logsnr")
    assert record["timesteps"] == [999, 603, 73, 0]
    # x_T is the seed's first draw, as in the DDIM run with the same seed.
    x_T = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.tensor(record["x_T"]), x_T.reshape(-1))
    for name, cond_model in (("torch", shipped), ("onnx", onnx_model)):
        eps_model = classifier_free_guidance(cond_model, torch.tensor([3, 7]), 10, 2.0)
        replay = RecordedNoise([x_T])
        with torch.no_grad():
            run = dpm_solver_trajectory(
                eps_model, schedule, shape, replay, 4, clip_denoised=True
            )
            sample = final_sample(run)
        assert replay.used == 1
        assert torch.equal(sample.reshape(-1), torch.tensor(record["samples"][name])), (
            name
        )
    solver = dict(case, sampler="dpm-solver++")
    with pytest.raises(ValueError, match="eta"):
        reference_run({"torch": shipped}, 10, (1, 28, 28), schedule, **solver, eta=0.5)
    with pytest.raises(ValueError, match="eta"):
        reference_run({"torch": shipped}, 10, (1, 28, 28), schedule, **case)
    with pytest.raises(ValueError, match="sampler"):
        reference_run(
            {"torch": shipped}, 10, (1, 28, 28), schedule, **case, sampler="dpm"
        )


def test_the_site_files_are_exported_again_only_when_their_stamp_changes(
    tmp_path, monkeypatch
):
    import json

    from tools import site_models

    exports = []
    monkeypatch.setattr(
        site_models,
        "export_onnx",
        lambda model, path, half_weights: exports.append(path),
    )
    monkeypatch.setattr(  # (x, t, y), (x, r, y) or (x, s, r, y)
        site_models, "onnx_eps_model", lambda path: lambda x, *rest: torch.zeros_like(x)
    )
    monkeypatch.setattr(
        site_models,
        "REFERENCE",
        dict(labels=[1], scale=0.0, num_steps=2, eta=0.0, seed=0),
    )
    monkeypatch.setattr(
        site_models,
        "REFERENCE_SOLVER",
        dict(sampler="dpm-solver++", labels=[1], scale=0.0, num_steps=2, seed=0),
    )
    monkeypatch.setattr(
        site_models,
        "REFERENCE_FLOW",
        dict(sampler="heun", labels=[1], scale=0.0, num_steps=2, seed=0),
    )
    assert site_models.export_site_models(tmp_path) and len(exports) == 3
    assert {p.name for p in tmp_path.iterdir()} == {
        "mnist_flow.json",
        "mnist_flow.reference_heun.json",
        "mnist_meanflow.json",
        "mnist_meanflow.reference_flow_map.json",
        "mnist_meanflow.reference_flow_map_2.json",
        "mnist_ddpm.json",
        "mnist_ddpm.reference.json",
        "mnist_ddpm.reference_dpm_solver.json",
        "mnist_test_digits.json",
    }
    flow = json.loads((tmp_path / "mnist_flow.json").read_text())
    assert (flow["objective"], flow["inputs"], flow["output"]) == (
        "flow",
        ["x_r", "r", "y"],
        "nu",
    )
    meanflow = json.loads((tmp_path / "mnist_meanflow.json").read_text())
    assert (meanflow["objective"], meanflow["inputs"], meanflow["output"]) == (
        "meanflow",
        ["x_r", "s", "r", "y"],
        "u",
    )
    two = json.loads(
        (tmp_path / "mnist_meanflow.reference_flow_map_2.json").read_text()
    )
    assert (two["sampler"], two["num_steps"], two["scale"]) == ("flow-map", 2, 1.0)
    solver = json.loads((tmp_path / "mnist_ddpm.reference_dpm_solver.json").read_text())
    assert solver["sampler"] == "dpm-solver++" and solver["tolerance"] == (
        site_models.TOLERANCE
    )
    assert (
        not site_models.export_site_models(tmp_path) and len(exports) == 3
    )  # stamp current: nothing written
    monkeypatch.setattr(
        site_models, "TOLERANCE", {"onnx": 1e-3}
    )  # any input of the stamp: here the reference case
    assert site_models.export_site_models(tmp_path) and len(exports) == 6


def test_the_site_files_stamp_covers_the_flow_map_module(tmp_path, monkeypatch):
    import shutil

    from tools import site_models

    package = tmp_path / "ddpm_lite"
    shutil.copytree(site_models.PACKAGE, package)
    monkeypatch.setattr(site_models, "PACKAGE", package)
    before = site_models.stamp()
    with (package / "flow_map.py").open("a") as f:
        f.write("# the one-step sampler changed\n")
    assert site_models.stamp() != before


@pytest.fixture(scope="module")
def flow_model():
    return load_pretrained("mnist-flow-cond").model


def test_a_flow_model_exports_with_its_time_r_and_matches_pytorch(flow_model, tmp_path):
    path = export_onnx(flow_model, tmp_path / "flow.onnx", half_weights=True)
    runtime = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in runtime.get_inputs()] == ["x_r", "r", "y"]
    assert [o.name for o in runtime.get_outputs()] == ["nu"]
    g = torch.Generator().manual_seed(0)
    x = torch.randn(3, 1, 28, 28, generator=g)
    y = torch.tensor([3, 7, 10])  # 10: the "no label" token
    for r in (1.0, 0.5, 0.05):  # r is float32: the network's time is 1000 r
        time = torch.full((3,), r)
        with torch.no_grad():
            expected = flow_model(x, time, y)
        error = (run(path, x, time, y) - expected).abs().max().item()
        assert error < 5e-3, (r, error)  # float16 weights, as for the eps-model


def test_the_flow_reference_run_records_only_x_1_and_replays_to_its_samples(
    flow_model,
):
    from ddpm_lite.export import reference_run
    from ddpm_lite.guidance import classifier_free_guidance
    from ddpm_lite.noise import RecordedNoise
    from ddpm_lite.sampling import final_sample
    from ddpm_lite.solvers import flow_trajectory

    schedule = load_pretrained("mnist-flow").schedule
    case = dict(labels=[3, 7], scale=2.0, num_steps=3, seed=1, sampler="heun")
    record = reference_run({"torch": flow_model}, 10, (1, 28, 28), schedule, **case)
    assert record["timesteps"] == pytest.approx([1.0, 2 / 3, 1 / 3, 0.0], abs=1e-15)
    assert record["spacing"] == "even r" and record["noise"] == []
    x_1 = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.tensor(record["x_T"]), x_1.reshape(-1))
    velocity = classifier_free_guidance(flow_model, torch.tensor([3, 7]), 10, 2.0)
    with torch.no_grad():
        run = flow_trajectory(velocity, (2, 1, 28, 28), RecordedNoise([x_1]), 3,
                              "heun", clip_denoised=True)  # fmt: skip
        sample = final_sample(run)
    assert torch.equal(sample.reshape(-1), torch.tensor(record["samples"]["torch"]))
    with pytest.raises(ValueError, match="heun has no eta"):
        reference_run({"torch": flow_model}, 10, (1, 28, 28), schedule, **case, eta=0)


def tiny_meanflow_model():
    """A small class-conditional U-Net with a second time (`UNetConfig.time_gap`) as
    u_theta(x, s, r, y), perturbed so that its zero-initialised layers (the gap's too)
    are not zero."""
    from ddpm_lite.flow_map import AverageVelocityNet
    from ddpm_lite.unet import UNet, UNetConfig

    torch.manual_seed(0)
    config = UNetConfig(base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                        attention_resolutions=(14,), groups=4, dropout=0.0,
                        num_classes=10, time_gap=True)  # fmt: skip
    model = AverageVelocityNet(UNet(config)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


@pytest.fixture(scope="module")
def meanflow_model():
    return tiny_meanflow_model()


@pytest.fixture(scope="module")
def meanflow_onnx(meanflow_model, tmp_path_factory):
    return export_onnx(meanflow_model, tmp_path_factory.mktemp("mf") / "u.onnx")


def test_a_meanflow_model_exports_with_its_two_times_and_matches_pytorch(
    meanflow_model, meanflow_onnx
):
    runtime = ort.InferenceSession(
        str(meanflow_onnx), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in runtime.get_inputs()] == ["x_r", "s", "r", "y"]
    assert [o.name for o in runtime.get_outputs()] == ["u"]
    g = torch.Generator().manual_seed(0)
    for batch in (1, 3):  # the batch dimension is dynamic
        x = torch.randn(batch, 1, 28, 28, generator=g)
        y = torch.randint(0, 11, (batch,), generator=g)  # 10: the "no label" token
        for s, r in ((0.0, 1.0), (0.5, 1.0), (0.0, 0.5), (0.3, 0.3)):
            s_, r_ = torch.full((batch,), s), torch.full((batch,), r)
            with torch.no_grad():
                expected = meanflow_model(x, s_, r_, y)
            # float32 throughout: only the order of operations differs (the float32
            # exports above: ~1e-6)
            error = (run(meanflow_onnx, x, s_, r_, y) - expected).abs().max().item()
            assert error < 1e-4, (batch, s, r, error)
    # the file reads s (through the gap r - s), not only r
    x, y = torch.randn(2, 1, 28, 28, generator=g), torch.tensor([3, 7])
    r = torch.ones(2)
    assert not torch.allclose(run(meanflow_onnx, x, 0 * r, r, y),
                              run(meanflow_onnx, x, 0.5 * r, r, y))  # fmt: skip


@pytest.mark.parametrize("num_steps", [1, 2])
def test_the_flow_map_reference_run_records_x_1_and_the_steps_of_u(
    meanflow_model, meanflow_onnx, num_steps
):
    from ddpm_lite.export import reference_run

    u = onnx_eps_model(meanflow_onnx)
    case = dict(labels=[3, 7], scale=1.0, num_steps=num_steps, seed=1)
    record = reference_run({"torch": meanflow_model, "onnx": u}, 10, (1, 28, 28),
                           None, **case, sampler="flow-map")  # fmt: skip
    grid = [1.0, 0.0] if num_steps == 1 else [1.0, 0.5, 0.0]
    assert record["timesteps"] == grid and record["spacing"] == "even r"
    assert record["noise"] == [] and record["clip_denoised"] is False
    x_1 = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    assert torch.equal(torch.tensor(record["x_T"]), x_1.reshape(-1))
    # Each step by hand, x_s = x_r - (r - s) u(x_r, s, r, y), on the grid written out:
    # independent of flow_map_trajectory's loop.
    y, x = torch.tensor([3, 7]), x_1
    with torch.no_grad():
        for r, s in zip(grid, grid[1:]):
            x = x - (r - s) * meanflow_model(x, torch.full((2,), s),
                                             torch.full((2,), r), y)  # fmt: skip
    # the same float32 operations (the grid's times are exact binary fractions, and
    # x + (s - r) u is x - (r - s) u): bit for bit
    sample = torch.tensor(record["samples"]["torch"])
    assert torch.equal(sample, x.reshape(-1))
    onnx = torch.tensor(record["samples"]["onnx"])
    assert (onnx - sample).abs().max() < 1e-4  # float32 export, as above


def test_the_flow_map_reference_run_refuses_guidance_and_eta(meanflow_model):
    from ddpm_lite.export import reference_run

    case = dict(labels=[3, 7], num_steps=1, seed=1, sampler="flow-map")
    with pytest.raises(ValueError, match="w = 1 only"):
        reference_run({"torch": meanflow_model}, 10, (1, 28, 28), None, scale=2.0,
                      **case)  # fmt: skip
    with pytest.raises(ValueError, match="no eta"):
        reference_run({"torch": meanflow_model}, 10, (1, 28, 28), None, scale=1.0,
                      eta=0.0, **case)  # fmt: skip


def test_the_command_exports_a_meanflow_checkpoint(meanflow_model, tmp_path, capsys):
    import json
    from dataclasses import asdict

    from ddpm_lite.__main__ import main
    from ddpm_lite.checkpoint import save_checkpoint

    weights = {f"ema.{k}": v for k, v in meanflow_model.net.state_dict().items()}
    recipe = {"schedule": "linear", "T": 1000, "objective": "meanflow"}
    info = {"unet_config": asdict(meanflow_model.config), "train_config": recipe}
    save_checkpoint(tmp_path / "checkpoint-0000001", weights, info)
    out = tmp_path / "web" / "u.onnx"
    main(["export-onnx", str(tmp_path), "--out", str(out)])
    assert "wrote" in capsys.readouterr().out
    record = json.loads(out.with_suffix(".json").read_text())
    assert (record["objective"], record["inputs"], record["output"]) == (
        "meanflow",
        ["x_r", "s", "r", "y"],
        "u",
    )
    x = torch.randn(2, 1, 28, 28, generator=torch.Generator().manual_seed(0))
    s, r = torch.tensor([0.0, 0.25]), torch.tensor([1.0, 0.75])
    y = torch.tensor([3, 10])  # 10: the "no label" token
    with torch.no_grad():
        expected = meanflow_model(x, s, r, y)
    assert (run(out, x, s, r, y) - expected).abs().max() < 1e-4  # float32, as above
