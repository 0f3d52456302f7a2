"""The benchmark scripts run end to end (tiny settings; their numbers are not checked: speed is not a test)."""
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # `make unit` leaves these out: subprocesses, real sampling, the built site

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script,args,expected", [
    ("train_throughput.py", ["--preset", "tiny", "--steps", "4", "--batch-size", "4", "--device", "cpu"], "GFLOP/s achieved"),
    ("sample_throughput.py", ["--random-init", "--preset", "tiny", "--n", "2", "--ddpm-n", "1", "--batch-size", "2", "--device", "cpu"], "DDPM-1000:"),
    ("sample_quality.py", ["--device", "cpu"], "FD-MNIST floor ("),
])
def test_benchmark_script_prints_its_numbers_with_the_hardware(script, args, expected):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout and "| cpu:" in result.stdout and "torch" in result.stdout


def test_sample_throughput_needs_a_checkpoint_or_random_init():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sample_throughput.py")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "give one of: a checkpoint, --pretrained or --random-init" in result.stderr


def test_flop_count_matches_a_hand_count_for_a_linear_layer():
    # FlopCounterMode is what train_throughput.py reports against the matmul peak: 2*m*n*k per matmul,
    # forward plus two for backward (inputs and weights).
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    layer, x = torch.nn.Linear(64, 32, bias=False), torch.randn(16, 64, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        layer(x).sum().backward()
    assert counter.get_total_flops() == 3 * 2 * 16 * 64 * 32


def test_the_sampler_sweep_data_file_is_for_the_shipped_weights():
    # The sampling chapter plots this file; retraining the model without rerunning the sweep fails here.
    import json

    from ddpm_lite.checkpoint import sha256_of
    from ddpm_lite.pretrained import pretrained_path

    data = json.loads((ROOT / "benchmarks" / "results" / "sampler_sweep.json").read_text())
    assert data["weights_sha256"] == sha256_of(pretrained_path("mnist").with_suffix(".safetensors"))
    assert data["command"].startswith("python benchmarks/sampler_sweep.py") and "| cpu:" in data["hardware"]
