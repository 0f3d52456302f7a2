"""The benchmark scripts run end to end (tiny settings; their numbers are not checked: speed is not a test)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = (
    pytest.mark.slow
)  # `make unit` leaves these out: subprocesses, real sampling, the built site

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "script,args,expected",
    [
        (
            "train_throughput.py",
            [
                "--preset",
                "tiny",
                "--steps",
                "4",
                "--batch-size",
                "4",
                "--device",
                "cpu",
            ],
            "GFLOP/s achieved",
        ),
        (
            "sample_throughput.py",
            [
                "--random-init",
                "--preset",
                "tiny",
                "--n",
                "2",
                "--ddpm-n",
                "1",
                "--batch-size",
                "2",
                "--device",
                "cpu",
            ],
            "DDPM-1000:",
        ),
        ("sample_quality.py", ["--device", "cpu"], "FD-MNIST floor ("),
        (
            "meanflow_step.py",
            ["--preset", "tiny", "--batch-size", "4", "--steps", "2"],
            "MeanFlow / flow matching:",
        ),
    ],
)
def test_benchmark_script_prints_its_numbers_with_the_hardware(script, args, expected):
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    assert (
        expected in result.stdout
        and "| cpu:" in result.stdout
        and "torch" in result.stdout
    )


def test_sample_throughput_needs_a_checkpoint_or_random_init():
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "sample_throughput.py")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert (
        result.returncode == 2
        and "give one of: a checkpoint, --pretrained or --random-init" in result.stderr
    )


def test_flop_count_matches_a_hand_count_for_a_linear_layer():
    # FlopCounterMode is what train_throughput.py reports against the matmul peak: 2*m*n*k per matmul,
    # forward plus two for backward (inputs and weights).
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    layer, x = (
        torch.nn.Linear(64, 32, bias=False),
        torch.randn(16, 64, requires_grad=True),
    )
    with FlopCounterMode(display=False) as counter:
        layer(x).sum().backward()
    assert counter.get_total_flops() == 3 * 2 * 16 * 64 * 32


DATA_FILES = [
    "sampler_sweep.json",
    "quality_mnist.json",
    "quality_mnist_cond_w1.json",
    "fd_during_training.json",
    "guidance_sweep.json",
    "nll.json",
    "memorization.json",
    "solver_sweep.json",
    "objective_sweep.json",
    "objective_grid.json",
    "solver_spread.json",
    "flow_model.json",
    "one_step.json",
]


@pytest.mark.parametrize("name", DATA_FILES)
def test_every_data_file_is_for_the_shipped_weights_and_says_how_it_was_made(name):
    # The chapters plot these files; retraining the model without rerunning a benchmark fails here.
    import json

    from ddpm_lite.checkpoint import checkpoint_files, sha256_of
    from ddpm_lite.pretrained import pretrained_path

    data = json.loads((ROOT / "benchmarks" / "results" / name).read_text())
    if "models" in data:  # measured on its own models, which ship beside it
        for entry in data["models"].values():
            assert sha256_of(ROOT / entry["file"]) == entry["sha256"], entry
    else:
        assert data["weights_sha256"] == sha256_of(
            checkpoint_files(pretrained_path("mnist-ddpm"))[0]
        ), f"{name} is stale: rerun its command"
    for command in data.get("commands", [data.get("command")]):  # one run, or several
        script = command.split()[1]
        assert command.startswith("python benchmarks/") and (ROOT / script).is_file()
    assert "| cpu:" in data["hardware"] or "| cuda:" in data["hardware"]


def test_every_results_file_is_checked():
    assert sorted(
        p.name for p in (ROOT / "benchmarks" / "results").glob("*.json")
    ) == sorted(DATA_FILES)


def test_the_gpu_suite_runs_every_stage_in_smoke_mode(tmp_path):
    out = tmp_path / "smoke.json"
    script = ROOT / "benchmarks" / "gpu_suite.py"
    result = subprocess.run(
        [sys.executable, str(script), "--smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    record = json.loads(out.read_text())
    assert record["smoke"] and record["throughput"][0]["images_per_s"] > 0
    assert record["time_to_quality"]["points"] and len(record["sampling"]) == 2
    assert "| cpu:" in result.stdout and "images/s" in result.stdout
    table = subprocess.run(
        [sys.executable, str(script), "--table", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert table.returncode == 0 and "samples, dpm-solver++-3" in table.stdout


def test_the_objective_sweep_scores_each_run_and_its_shipped_model(tmp_path):
    runs, models = [], tmp_path / "models"
    for objective in ("eps", "flow"):
        run = tmp_path / objective
        subprocess.run(
            [sys.executable, "-m", "ddpm_lite", "train", "--preset", "tiny",
             "--steps", "2", "--checkpoint-every", "1", "--keep-checkpoints", "5",
             "--batch-size", "4", "--objective", objective, "--no-download",
             "--data-dir", str(tmp_path / "none"), "--quiet", "--out", str(run)],
            check=True, cwd=ROOT, capture_output=True,
        )  # fmt: skip
        subprocess.run(
            [sys.executable, "tools/ship_model.py", str(run / "checkpoint-0000002"),
             "--out", str(models / f"mnist_{objective}"), "--data-dir", "none",
             "--half"],
            check=True, cwd=ROOT, capture_output=True,
        )  # fmt: skip
        runs.append(str(run))
    out = tmp_path / "sweep.json"
    result = subprocess.run(
        [sys.executable, "benchmarks/objective_sweep.py", *runs, "--models",
         str(models), "--n", "4", "--calls", "2", "--batch-size", "4", "--json",
         str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    # two checkpoints per run, then a second seed and Heun at the last
    assert [(p["objective"], p["step"], p["sampler"], p["seed"]) for p in data["points"]] == [
        ("eps", 1, "ddim", 0), ("eps", 2, "ddim", 0), ("eps", 2, "ddim", 10_000),
        ("eps", 2, "heun", 0), ("flow", 1, "euler", 0), ("flow", 2, "euler", 0),
        ("flow", 2, "euler", 10_000), ("flow", 2, "heun", 0),
    ]  # fmt: skip
    assert data["live_check"]["objective"] == "flow" and set(data["models"]) == {
        "eps",
        "flow",
    }


def test_the_growing_sweeps_add_points_to_their_file_and_keep_each_command(tmp_path):
    # solver_spread and objective_grid write after every point; a second run adds to it.
    spread, grid = tmp_path / "spread.json", tmp_path / "grid.json"
    runs = [
        ["solver_spread.py", "--n", "8", "--batch-size", "8", "--calls", "5",
         "--seeds", "0", "--json", str(spread)],
        ["solver_spread.py", "--n", "8", "--batch-size", "8", "--calls", "5",
         "--seeds", "0", "1", "--json", str(spread)],
        ["objective_grid.py", "--models", "benchmarks/results/objectives", "--n", "8",
         "--batch-size", "8", "--calls", "4", "--seeds", "0", "--grids", "straight",
         "--methods", "euler", "--json", str(grid)],
    ]  # fmt: skip
    for args in runs:
        result = subprocess.run(
            [sys.executable, f"benchmarks/{args[0]}", *args[1:]],
            capture_output=True, text=True, cwd=ROOT, timeout=600,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
    spread_data = json.loads(spread.read_text())
    assert len(spread_data["commands"]) == 2 and len(spread_data["points"]) == 12
    assert {p["seed"] for p in spread_data["points"]} == {0, 1}
    grid_data = json.loads(grid.read_text())
    assert [p["objective"] for p in grid_data["points"]] == ["eps", "v", "flow"]
    assert grid_data["live_check"]["n"] == 64


def run_for_json(script: str, args: list[str], out: Path) -> dict:
    """Run benchmarks/<script> with args; the data file it wrote to out."""
    result = subprocess.run(
        [sys.executable, f"benchmarks/{script}", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return json.loads(out.read_text())


def test_the_flow_model_benchmark_scores_each_kind_of_point(tmp_path):
    out = tmp_path / "flow.json"
    args = ["--n", "10", "--sweep-n", "10", "--heun-steps", "1", "--euler-steps", "1",
            "--guided-steps", "1", "--scales", "0", "--json", str(out)]  # fmt: skip
    data = run_for_json("flow_model.py", args, out)
    kinds = [(p["kind"], p["method"], p["calls"], p["scale"]) for p in data["points"]]
    assert kinds == [
        ("unconditional", "heun", 1, None),
        ("unconditional", "euler", 1, None),
        ("guided", "heun", 1, 1.0),
        ("random labels", "heun", 1, 1.0),
        ("guided", "heun", 1, 0.0),
    ]
    assert all(0 <= p["right_digit"] <= 1 for p in data["points"][2:])
    assert data["live_check"]["n"] == 64 and data["live_check"]["fd_mnist"] > 0


def test_the_one_step_benchmark_scores_each_model_at_each_call_count(tmp_path):
    out = tmp_path / "one_step.json"
    args = ["--n", "10", "--calls", "1", "2", "--teacher-steps", "1",
            "--json", str(out)]  # fmt: skip
    data = run_for_json("one_step.py", args, out)
    points = [(p["model"], p["method"], p["calls"]) for p in data["points"]]
    assert points == [
        ("mnist-flow", "heun", 1),
        ("mnist-meanflow", "flow-map", 1),
        ("mnist-meanflow-distil", "flow-map", 1),
        ("mnist-flow", "euler", 1),
        ("mnist-meanflow", "flow-map", 2),
        ("mnist-meanflow-distil", "flow-map", 2),
        ("mnist-flow", "euler", 2),
    ]
    # one call of the two one-step models differs: each point samples its own model
    assert data["points"][1]["fd_mnist"] != data["points"][2]["fd_mnist"]
    assert data["live_check"]["n"] == 64 and data["live_check"]["fd_mnist"] > 0
