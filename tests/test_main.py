"""The command line: help, errors on bad arguments, runs, and resume after a kill.

Most tests call `main([...])` in this process; the few end-to-end ones (a killed run that
resumes, the shipped model's first command, the console script) start a subprocess.
"""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from ddpm_lite.__main__ import main
from ddpm_lite.data import SUBSET_DIR

pytestmark = (
    pytest.mark.slow
)  # `make unit` leaves these out: subprocesses, real sampling, the built site

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [
    sys.executable,
    "-m",
    "ddpm_lite",
    "train",
    "--preset",
    "tiny",
    "--quiet",
    "--batch-size",
    "16",
    "--images",
    "256",
    "--data-dir",
    str(SUBSET_DIR),
    "--no-download",
    "--device",
    "cpu",
    "--warmup-steps",
    "2",
]


TRAIN_ARGS = TRAIN[3:]  # the same, for main()


def exits(args, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of main(args), which must exit (help, or an error)."""
    with pytest.raises(SystemExit) as stopped:
        main(args)
    out = capsys.readouterr()
    return stopped.value.code, out.out, out.err


def run(args, **kwargs):
    return subprocess.run(
        [sys.executable, "-m", "ddpm_lite", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        **kwargs,
    )


@pytest.mark.parametrize(
    "command",
    [[], ["train"], ["sample"], ["train-classifier"], ["train-noisy-classifier"]],
)
def test_help_exits_cleanly(command, capsys):
    code, out, _ = exits([*command, "--help"], capsys)
    assert code == 0 and "usage: python -m ddpm_lite" in out


@pytest.mark.parametrize(
    "args,message",
    [
        (
            ["train", "--steps", "0"],
            "argument --steps: must be a positive integer, got 0",
        ),
        (
            ["train", "--schedule", "exp"],
            "schedule must be one of ('linear', 'cosine', 'quadratic', 'sigmoid'), got 'exp'",
        ),
        (
            ["train", "--channel-mults", "1,x"],
            "argument --channel-mults: must be comma-separated ints like 1,2,2",
        ),
        (["train", "--device", "tpu"], "device must be one of ('auto', 'cpu', 'cuda')"),
        (
            ["train", "--base-channels", "20", "--preset", "tiny"],
            "groups=8 must divide every channel count",
        ),
        (
            ["train", "--preset", "huge"],
            "preset must be one of ('tiny', 'cpu', 'gpu'), got 'huge'",
        ),
        (
            ["train", "--precision", "fp16"],
            "precision must be one of ('auto', 'fp32', 'bf16'), got 'fp16'",
        ),
        (["sample"], "one of the arguments checkpoint --pretrained is required"),
        (
            ["sample", "--pretrained", "cifar"],
            "argument --pretrained: must be one of mnist-flow, mnist-meanflow, "
            "mnist-meanflow-distil, mnist-ddpm (with --label for a digit; or "
            "mnist-flow-cond, mnist-ddpm-cond), got 'cifar'",
        ),
        (
            ["sample", "--pretrained", "mnist-flow-cond"],
            "--pretrained mnist-flow-cond needs --label (or use --pretrained "
            "mnist-flow",
        ),
        (
            ["sample", "--pretrained", "mnist-cond"],
            "--pretrained mnist-ddpm-cond needs --label",
        ),
        (
            ["sample", "--pretrained", "mnist-flow", "--sampler", "ddim"],
            "--sampler: sampler 'ddim' cannot use a model trained with objective "
            "'flow'",
        ),
        (
            ["sample", "--pretrained", "mnist-flow", "--eta", "0.5"],
            "--eta is DDIM's; sampler 'heun' is deterministic",
        ),
        (
            ["sample", "--pretrained", "mnist-ddpm", "--steps", "1001"],
            "--steps must be in [1, 1000], got 1001",
        ),
        (
            ["sample", "--pretrained", "mnist-ddpm", "--eta", "-1"],
            "--eta must be in [0, 1] (DDIM's family), got -1.0",
        ),
        (
            ["sample", "--pretrained", "mnist-ddpm", "--eta", "1.5"],
            "--eta must be in [0, 1] (DDIM's family), got 1.5",
        ),
        (
            [
                "sample",
                "--pretrained",
                "mnist-ddpm",
                "--sampler",
                "heun",
                "--eta",
                "0.5",
            ],
            "--eta is DDIM's; sampler 'heun' is deterministic",
        ),
        (
            [
                "sample",
                "--pretrained",
                "mnist-ddpm",
                "--sampler",
                "ddpm",
                "--steps",
                "20",
            ],
            "--steps: the ddpm sampler always takes all T steps",
        ),
        (
            ["sample", "--pretrained", "mnist-ddpm", "--guidance-scale", "3"],
            "--guidance-scale needs --label",
        ),
        (
            ["sample", "/nonexistent/checkpoint"],
            "needs both checkpoint.safetensors and checkpoint.json",
        ),
        (
            ["train-classifier", "--epochs", "0"],
            "argument --epochs: must be a positive integer, got 0",
        ),
        (
            ["sample", "/nonexistent/checkpoint", "--label", "10"],
            "argument --label: must be a digit 0..9 or 'random', got '10'",
        ),
        (
            ["train-noisy-classifier", "--schedule", "exp"],
            "schedule must be one of ('linear', 'cosine', 'quadratic', 'sigmoid')",
        ),
        (
            ["train-noisy-classifier", "--batch-size", "0"],
            "argument --batch-size: must be a positive integer, got 0",
        ),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        (
            [
                "sample",
                "--pretrained",
                "mnist-ddpm",
                "--sampler",
                "dpm-solver++",
                "--steps",
                "300",
            ],
            "--steps: num_steps=300 with spacing 'logsnr' rounds to only",
        ),
        (
            ["sample", "--pretrained", "mnist-ddpm", "--sampler", "euler"],
            "--sampler: sampler 'euler' cannot use a model trained with objective "
            "'eps'",
        ),
        (
            ["train", "--objective", "score"],
            "objective must be one of ('eps', 'x0', 'v', 'flow', 'meanflow'), got "
            "'score'",
        ),
    ],
)
def test_bad_arguments_exit_2_with_a_message(args, message, capsys):
    code, _, err = exits(args, capsys)
    assert code == 2 and message in err, err


@pytest.mark.parametrize(
    "out,message",
    [
        ("missing/x.png", "--out: the directory '{tmp}/missing' does not exist"),
        ("x.txt", "--out must end in an image format, one of .png"),
        ("ro/x.png", "--out: the directory '{tmp}/ro' cannot be written"),
    ],
)
def test_sample_refuses_an_out_it_cannot_write_and_writes_nothing(
    tmp_path, out, message, capsys
):
    (tmp_path / "ro").mkdir(mode=0o555)
    if out.startswith("ro/") and os.access(tmp_path / "ro", os.W_OK):
        pytest.skip("root ignores the directory's permissions")
    args = ["sample", "--pretrained", "mnist-ddpm", "--n", "1", "--steps", "1", "--out"]
    code, _, err = exits([*args, str(tmp_path / out)], capsys)
    assert code == 2 and message.format(tmp=tmp_path) in err, err
    assert len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["ro"]


def test_a_failed_image_write_leaves_no_file(tmp_path, capsys, monkeypatch):
    import matplotlib.pyplot as plt

    def full_disk(path, *args, **kwargs):
        Path(path).write_bytes(b"half")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(plt, "imsave", full_disk)
    args = ["sample", "--pretrained", "mnist-ddpm", "--n", "1", "--steps", "1", "--out"]
    code, _, err = exits([*args, str(tmp_path / "x.png")], capsys)
    assert code == 2 and "--out: cannot write" in err and "No space left" in err
    assert list(tmp_path.iterdir()) == []


def test_train_with_no_intact_checkpoint_to_resume_says_so_in_one_line(
    tmp_path, capsys
):
    args = [*TRAIN_ARGS, "--checkpoint-every", "2", "--out", str(tmp_path)]
    main([*args, "--steps", "2"])
    weights = tmp_path / "checkpoint-0000002.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a copy cut short
    code, _, err = exits([*args, "--steps", "4"], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert "no intact checkpoint" in lines[0] and "checkpoint-0000002" in lines[0]


def test_resume_after_a_kill_repeats_the_loss_trajectory(tmp_path):
    steps = ["--steps", "40", "--checkpoint-every", "5"]
    unbroken = subprocess.run(
        [*TRAIN, *steps, "--out", str(tmp_path / "a")],
        cwd=ROOT,
        capture_output=True,
        timeout=300,
    )
    assert unbroken.returncode == 0, unbroken.stderr

    out = tmp_path / "b"
    process = subprocess.Popen(
        [*TRAIN, *steps, "--out", str(out)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (out / "checkpoint-0000005.json").exists():
        assert process.poll() is None and time.monotonic() < deadline, (
            "training ended before its first checkpoint"
        )
        time.sleep(0.02)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert not (out / "checkpoint-0000040.json").exists(), (
        "the run finished before the kill: the test proves nothing"
    )

    resumed = subprocess.run(
        [*TRAIN, *steps, "--out", str(out)], cwd=ROOT, capture_output=True, timeout=300
    )
    assert resumed.returncode == 0, resumed.stderr
    a = load_file(tmp_path / "a" / "checkpoint-0000040.safetensors")["history.loss"]
    b = load_file(out / "checkpoint-0000040.safetensors")["history.loss"]
    assert len(a) == 40 and a.tolist() == b.tolist()


def read_png(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


def test_train_then_sample_writes_a_png(tmp_path):
    main(
        [*TRAIN_ARGS, "--steps", "2", "--checkpoint-every", "2", "--out", str(tmp_path)]
    )
    grid = tmp_path / "grid.png"
    main(["sample", str(tmp_path), "--n", "5", "--steps", "3", "--out", str(grid)])
    image = read_png(grid)[..., 0]  # RGBA; the grey levels are in every colour channel
    # 5 samples in a 3-wide grid: 2 rows, the sixth cell black
    assert image.shape == (2 * 28, 3 * 28)
    assert image[:28, :28].std() > 0.05 and image[28:, 56:].max() == image.min()
    assert json.loads((tmp_path / "checkpoint-0000002.json").read_text())["step"] == 2


def test_the_cpu_preset_trains_resumes_and_samples(tmp_path):
    cpu = [a if a != "tiny" else "cpu" for a in TRAIN_ARGS]
    main([*cpu, "--steps", "2", "--checkpoint-every", "2", "--out", str(tmp_path)])
    main([*cpu, "--steps", "3", "--checkpoint-every", "1", "--out", str(tmp_path)])
    info = json.loads((tmp_path / "checkpoint-0000003.json").read_text())
    assert info["unet_config"]["base_channels"] == 32
    assert info["train_config"]["lr_schedule"] == "cosine"
    assert info["images_seen"] == 3 * 16
    assert info["command"].startswith("python -m ddpm_lite train --preset cpu")
    losses = load_file(tmp_path / "checkpoint-0000003.safetensors")["history.loss"]
    assert len(losses) == 3
    out = tmp_path / "s.png"
    main(["sample", str(tmp_path), "--n", "4", "--steps", "2", "--out", str(out)])
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_the_readme_first_command_draws_digits_from_the_flow_model(tmp_path):
    from ddpm_lite.classifier import load_classifier, predict

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    first = next(
        line for line in readme.splitlines() if " -m ddpm_lite sample " in line
    )
    args = first.split("#")[0].split()[3:]  # after ".venv/bin/python -m ddpm_lite"
    assert args[:3] == ["sample", "--pretrained", "mnist-flow"], first
    out = tmp_path / "s.png"
    args[args.index("--out") + 1] = str(out)
    result = run(args)
    assert result.returncode == 0, result.stderr
    # the flow model's default: Heun's 10 steps on the straight path, 19 network calls
    assert "wrote 64 samples (heun, 10 steps, 19 network calls)" in result.stdout
    image = read_png(out)[..., 0]  # an 8 x 8 grid; grey levels in [0, 1]
    assert image.shape == (8 * 28, 8 * 28)
    tiles = image.reshape(8, 28, 8, 28).transpose(0, 2, 1, 3).reshape(64, 1, 28, 28)
    with torch.no_grad():
        probs = predict(load_classifier(), torch.from_numpy(tiles).float() * 2 - 1)[1]
    assert probs.max(1).values.mean() > 0.9  # confident digits, not blobs
    assert len(set(probs.argmax(1).tolist())) == 10  # every kind of digit


def test_sample_draws_in_batches_each_with_its_own_labels(tmp_path):
    from ddpm_lite.guidance import random_labels
    from ddpm_lite.pretrained import load_pretrained
    from ddpm_lite.sampling import final_sample
    from ddpm_lite.solvers import sampler_trajectory

    out = tmp_path / "s.png"
    main(["sample", "--pretrained", "mnist-flow", "--label", "random", "--n", "4",
          "--batch-size", "2", "--steps", "2", "--out", str(out)])  # fmt: skip
    image = read_png(out)[..., 0]  # a 2 x 2 grid
    tiles = image.reshape(2, 28, 2, 28).transpose(0, 2, 1, 3).reshape(4, 1, 28, 28)
    # the same run by hand: one generator, two batches in turn, labels sliced in order
    shipped = load_pretrained("mnist-flow")
    labels = random_labels(4, 10, seed=0)
    g = torch.Generator().manual_seed(0)
    batches = []
    for y in labels.split(2):
        run = sampler_trajectory(
            "heun", lambda x, t, y=y: shipped.model(x, t, y), shipped.schedule,
            (2, 1, 28, 28), g, 2, 0.0, True, "flow",
        )  # fmt: skip
        with torch.no_grad():
            batches.append(final_sample(run))
    expected = (torch.cat(batches).clamp(-1, 1) + 1) / 2
    # 8-bit levels through a 256-colour map: within two levels
    assert torch.from_numpy(tiles).sub(expected).abs().max() <= 2 / 255


@pytest.mark.parametrize("old,new", [("mnist", "mnist-ddpm"), ("mnist-cond", None)])
def test_the_older_names_still_load_the_ddpm_model_and_name_the_new_ones(
    old, new, tmp_path
):
    out = tmp_path / "s.png"
    label = ["--label", "3"] if new is None else []
    result = run(["sample", "--pretrained", old, *label, "--n", "1", "--steps", "2",
                  "--out", str(out)])  # fmt: skip
    assert result.returncode == 0, result.stderr
    notice = f"ddpm_lite: {old!r} is the older name of '{new or 'mnist-ddpm-cond'}'"
    assert notice in result.stderr
    assert "the book's best model is 'mnist-flow'" in result.stderr
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_class_conditional_train_then_guided_sample(tmp_path):
    steps = ["--steps", "2", "--checkpoint-every", "2"]
    main([*TRAIN_ARGS, "--class-conditional", *steps, "--out", str(tmp_path)])
    out = tmp_path / "sevens.png"
    guided = ["--label", "7", "--guidance-scale", "3"]
    main(
        [
            "sample",
            str(tmp_path),
            "--n",
            "4",
            "--steps",
            "3",
            *guided,
            "--out",
            str(out),
        ]
    )
    assert out.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("objective", ["v", "flow"])
def test_train_each_objective_then_sample_with_its_sampler(objective, tmp_path, capsys):
    steps = ["--steps", "2", "--checkpoint-every", "2"]
    main([*TRAIN_ARGS, *steps, "--objective", objective, "--out", str(tmp_path)])
    sidecar = json.loads((tmp_path / "checkpoint-0000002.json").read_text())
    assert sidecar["train_config"]["objective"] == objective
    grid = tmp_path / "grid.png"
    main(["sample", str(tmp_path), "--n", "4", "--steps", "3", "--out", str(grid)])
    used = "heun" if objective == "flow" else "ddim"  # each objective's default
    assert f"({used}, 3 steps" in capsys.readouterr().out
    assert read_png(grid).shape[:2] == (56, 56)
    other = "ddim" if objective == "flow" else "euler"
    code, _, err = exits(["sample", str(tmp_path), "--sampler", other], capsys)
    assert code == 2 and f"objective {objective!r}" in err and repr(other) in err
    onnx = ["export-onnx", str(tmp_path), "--out", str(tmp_path / "m.onnx")]
    if objective == "flow":  # the browser samples flow models too
        main(onnx)
        record = json.loads((tmp_path / "m.json").read_text())
        assert (record["objective"], record["output"]) == ("flow", "nu")
        assert (tmp_path / "m.onnx").stat().st_size > 0
        return
    code, _, err = exits(onnx, capsys)
    assert code == 2 and f"this checkpoint's objective is {objective!r}" in err


def test_meanflow_warm_starts_from_a_flow_run_and_samples_in_one_call(tmp_path, capsys):
    steps = ["--steps", "2", "--checkpoint-every", "2", "--class-conditional"]
    flow, meanflow = tmp_path / "flow", tmp_path / "meanflow"
    main([*TRAIN_ARGS, *steps, "--objective", "flow", "--out", str(flow)])
    main([*TRAIN_ARGS, *steps, "--objective", "meanflow", "--flow-fraction", "0.5",
          "--init-from", str(flow / "checkpoint-0000002"), "--out", str(meanflow)])  # fmt: skip
    sidecar = json.loads((meanflow / "checkpoint-0000002.json").read_text())
    assert sidecar["train_config"]["objective"] == "meanflow"
    assert sidecar["train_config"]["flow_fraction"] == 0.5
    assert sidecar["unet_config"]["time_gap"] is True
    assert sidecar["init_from"].startswith(str(flow / "checkpoint-0000002"))
    assert "sha256" in sidecar["init_from"]
    grid = tmp_path / "one.png"
    main(["sample", str(meanflow), "--n", "4", "--label", "3", "--out", str(grid)])
    assert "(flow-map, 1 step, 1 network call)" in capsys.readouterr().out
    assert read_png(grid).shape[:2] == (56, 56)
    main(["sample", str(meanflow), "--n", "4", "--steps", "2", "--out", str(grid)])
    assert "(flow-map, 2 steps, 2 network calls)" in capsys.readouterr().out
    code, _, err = exits(["sample", str(meanflow), "--label", "3",
                          "--guidance-scale", "2", "--out", str(grid)], capsys)  # fmt: skip
    assert code == 2 and "w = 1 only" in err
    code, _, err = exits(["sample", str(meanflow), "--sampler", "heun"], capsys)
    assert code == 2 and "objective 'meanflow'" in err
    # distillation: the flow run's velocity in the target, named in the sidecar
    distil = tmp_path / "distil"
    main([*TRAIN_ARGS, *steps, "--objective", "meanflow", "--teacher",
          str(flow / "checkpoint-0000002"), "--out", str(distil)])  # fmt: skip
    sidecar = json.loads((distil / "checkpoint-0000002.json").read_text())
    assert sidecar["teacher"].startswith(str(flow / "checkpoint-0000002"))
    assert "sha256" in sidecar["teacher"] and sidecar["init_from"] is None
    code, _, err = exits([*TRAIN_ARGS, *steps, "--objective", "meanflow", "--teacher",
                          str(meanflow / "checkpoint-0000002"), "--out",
                          str(tmp_path / "no")], capsys)  # fmt: skip
    assert code == 2 and "is not a flow model" in err


def test_flow_fraction_without_meanflow_is_an_error(capsys):
    code, _, err = exits([*TRAIN_ARGS, "--flow-fraction", "0.5"], capsys)
    assert code == 2 and "--flow-fraction is for --objective meanflow" in err
    code, _, err = exits([*TRAIN_ARGS, "--teacher", "mnist-flow"], capsys)
    assert code == 2 and "--teacher is for --objective meanflow" in err


def test_label_on_an_unconditional_checkpoint_is_an_error(tmp_path, capsys):
    main(
        [*TRAIN_ARGS, "--steps", "2", "--checkpoint-every", "2", "--out", str(tmp_path)]
    )
    code, _, err = exits(["sample", str(tmp_path), "--label", "3"], capsys)
    assert code == 2 and "--label needs a class-conditional model" in err


CLASSIFIER_DATA = ["--data-dir", str(SUBSET_DIR), "--no-download", "--device", "cpu"]


def test_train_noisy_classifier_writes_a_checkpoint_with_accuracy_by_t(tmp_path):
    out = tmp_path / "noisy"
    size = ["--steps", "3", "--batch-size", "8"]
    main(["train-noisy-classifier", *size, *CLASSIFIER_DATA, "--out", str(out)])
    info = json.loads((tmp_path / "noisy.json").read_text())
    accuracy = info["metrics"]["test_accuracy_at_t"]
    assert set(accuracy) == {"0", "250", "500", "750", "999"} and info["steps"] == 3


def test_the_classifier_sidecar_averages_the_losses_it_has(tmp_path, monkeypatch):
    # One epoch of the shipped subset is 47 steps: the mean of the last (up to) 100
    # losses is the mean of those 47, not their sum over 100.
    import ddpm_lite.classifier as classifier
    from ddpm_lite.fit import FitResult

    losses = [float(k % 7) for k in range(47)]
    model = classifier.MNISTClassifier().eval()
    monkeypatch.setattr(
        classifier, "train_classifier", lambda *args: FitResult(model, losses, 1.0)
    )
    out = tmp_path / "c"
    main(["train-classifier", "--epochs", "1", *CLASSIFIER_DATA, "--out", str(out)])
    metrics = json.loads((tmp_path / "c.json").read_text())["metrics"]
    assert metrics["final_loss_mean_last_100"] == pytest.approx(sum(losses) / 47)


def test_the_console_script_is_the_same_command():
    script = Path(sys.executable).with_name("ddpm-lite")
    if not script.is_file():
        pytest.skip(f"{script} is not installed (pip install -e . installs it)")
    result = subprocess.run(
        [str(script), "sample", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0 and "--pretrained" in result.stdout


@pytest.mark.parametrize("sampler", ["dpm-solver++", "heun"])
def test_the_fast_solvers_sample_digits_from_the_command_line(sampler, tmp_path):
    out = tmp_path / "s.png"
    main(["sample", "--pretrained", "mnist-ddpm", "--sampler", sampler, "--steps", "6",
          "--n", "4", "--out", str(out)])  # fmt: skip
    digit = read_png(out)[:28, :28, 0]
    assert (digit > 0.9).mean() > 0.03 and (digit < 0.1).mean() > 0.5
