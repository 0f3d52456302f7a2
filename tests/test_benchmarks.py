"""The benchmark scripts run end to end (tiny settings; their numbers are not checked: speed is not a test)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("script,args,expected", [
    ("train_throughput.py", ["--tiny", "--steps", "4", "--batch-size", "4", "--device", "cpu"], "images/s after warm-up"),
    ("sample_throughput.py", ["--random-init", "--tiny", "--n", "2", "--ddpm-n", "1", "--batch-size", "2", "--device", "cpu"], "DDPM-1000:"),
    ("sample_quality.py", ["--device", "cpu"], "FD-MNIST floor (train vs test)"),
])
def test_benchmark_script_prints_its_numbers_with_the_hardware(script, args, expected):
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / script), *args], capture_output=True, text=True,
                            cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout and "| cpu:" in result.stdout and "torch" in result.stdout


def test_sample_throughput_needs_a_checkpoint_or_random_init():
    result = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "sample_throughput.py")], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 2 and "give a checkpoint or --random-init" in result.stderr
