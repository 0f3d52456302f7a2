"""Data-parallel training with torchrun on the CPU (gloo): the same steps as one process."""

import json
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ddpm_lite.data import SUBSET_DIR
from ddpm_lite.distributed import SINGLE, World, my_slice, per_rank_batch
from ddpm_lite.trained import load_trained

ROOT = Path(__file__).resolve().parents[1]
# dropout 0: the ranks draw dropout masks for their own slices, one process for the batch
ARGS = [
    "train", "--preset", "tiny", "--quiet", "--images", "256", "--data-dir",
    str(SUBSET_DIR), "--no-download", "--device", "cpu", "--warmup-steps", "2",
    "--dropout", "0", "--batch-size", "16", "--steps", "6", "--checkpoint-every", "3",
]  # fmt: skip


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(args, ranks=2):
    command = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
        "--master_addr=127.0.0.1", f"--master_port={free_port()}", "-m", "ddpm_lite",
        *args,
    ]  # fmt: skip
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env
    )


def single(args):
    command = [sys.executable, "-m", "ddpm_lite", *args]
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        command, capture_output=True, text=True, cwd=ROOT, timeout=600, env=env
    )


def losses(out: Path, step: int) -> list[float]:
    return load_file(out / f"checkpoint-{step:07d}.safetensors")[
        "history.loss"
    ].tolist()


@pytest.mark.slow
def test_two_ranks_take_the_steps_of_one_process_with_the_whole_batch(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    first = single([*ARGS, "--out", str(one)])
    assert first.returncode == 0, first.stderr
    result = torchrun([*ARGS, "--out", str(two)])
    assert result.returncode == 0, result.stderr
    # the same examples, t and eps; gradients averaged by all-reduce instead of one
    # mean: float32 round-off, growing a little with each step
    assert losses(two, 6) == pytest.approx(losses(one, 6), rel=1e-4)
    info = json.loads((two / "checkpoint-0000006.json").read_text())
    assert info["world_size"] == 2 and info["batch_per_rank"] == 8
    assert info["train_config"]["batch_size"] == 16
    # a checkpoint of the two-rank run loads in one process
    model, _, _ = load_trained(two / "checkpoint-0000006")
    reference, _, _ = load_trained(one / "checkpoint-0000006")
    for a, b in zip(model.parameters(), reference.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-3, atol=1e-5)


@pytest.mark.slow
def test_a_two_rank_run_resumes_from_its_checkpoint(tmp_path):
    unbroken, resumed = tmp_path / "a", tmp_path / "b"
    assert torchrun([*ARGS, "--out", str(unbroken)]).returncode == 0
    half = [a if a != "6" else "3" for a in ARGS]  # stopped after the first checkpoint
    assert torchrun([*half, "--out", str(resumed)]).returncode == 0
    assert not (resumed / "checkpoint-0000006.json").exists()
    result = torchrun([*ARGS, "--out", str(resumed)])
    assert result.returncode == 0, result.stderr
    assert losses(resumed, 6) == losses(unbroken, 6)


@pytest.mark.slow
def test_a_batch_the_ranks_cannot_share_is_an_error_and_writes_nothing(tmp_path):
    odd = [a if a != "16" else "15" for a in ARGS]
    result = torchrun([*odd, "--out", str(tmp_path / "c")])
    assert result.returncode != 0
    assert "batch_size=15 must be divisible by the world size 2" in result.stderr
    assert not list(tmp_path.glob("c/checkpoint-*"))


def test_each_rank_takes_its_own_equal_slice():
    batch = torch.arange(8)
    parts = [my_slice(batch, World(rank, 4)) for rank in range(4)]
    assert torch.equal(torch.cat(parts), batch)
    assert per_rank_batch(8, World(0, 4)) == 2 and per_rank_batch(8, SINGLE) == 8
    with pytest.raises(ValueError, match="batch_size=8 must be divisible by the world"):
        per_rank_batch(8, World(0, 3))


@pytest.mark.slow
def test_ranks_with_different_data_are_told_so(tmp_path):
    script = tmp_path / "ranks.py"
    script.write_text(
        "import torch\n"
        "from ddpm_lite.distributed import check_same_data, join_world\n"
        "world = join_world(torch.device('cpu'))\n"
        "check_same_data(torch.zeros(4 + world.rank, 1), world)\n"
    )
    command = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
        "--master_addr=127.0.0.1", f"--master_port={free_port()}", str(script),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode != 0
    assert (
        "different training data (rank 0: 4 images, rank 1: 5 images)" in result.stderr
    )
