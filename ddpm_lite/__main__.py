"""python -m ddpm_lite train | sample | train-classifier | train-noisy-classifier |
export-onnx: flags -> dataclasses -> calls. No logic of its own."""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
from functools import partial
from pathlib import Path

import torch

from .objectives import OBJECTIVES
from .schedules import SCHEDULE_KINDS
from .solvers import SAMPLERS

# A flow model's default: Heun's 10 steps on the straight path, 19 network calls
FLOW_DEFAULT_STEPS = 10
DEFAULT_DATA = Path(
    os.environ.get(
        "DDPM_LITE_MNIST_DIR", Path.home() / ".cache" / "ddpm_lite" / "mnist"
    )
)


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {value}")
    return value


def _pretrained_name(text: str) -> str:
    """A shipped model's name; an older name is taken with a notice naming the new."""
    from .pretrained import OLD_NAMES, PRETRAINED

    if text in OLD_NAMES:
        logging.getLogger("ddpm_lite").warning(
            "%r is the older name of %r (the DDPM eps-model); the book's best model "
            "is 'mnist-flow'",
            text,
            OLD_NAMES[text],
        )
        return OLD_NAMES[text]
    if text not in PRETRAINED:
        plain = ", ".join(p for p in PRETRAINED if "-cond" not in p)
        cond = ", ".join(p for p in PRETRAINED if "-cond" in p)
        raise argparse.ArgumentTypeError(
            f"must be one of {plain} (with --label for a digit; or {cond}), "
            f"got {text!r}"
        )
    return text


def _label(text: str) -> int | str:
    """A digit 0..9, or "random"."""
    if text == "random" or text in {str(d) for d in range(10)}:
        return text if text == "random" else int(text)
    raise argparse.ArgumentTypeError(f"must be a digit 0..9 or 'random', got {text!r}")


def _mults(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be comma-separated ints like 1,2,2, got {text!r}"
        ) from None


def _add_data_arguments(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--data-dir",
        type=Path,
        default=DEFAULT_DATA,
        help=f"MNIST IDX files (default: $DDPM_LITE_MNIST_DIR or {DEFAULT_DATA})",
    )
    command.add_argument(
        "--no-download",
        action="store_true",
        help="never download; use the shipped subset if files are missing",
    )


def _classifier_command(
    commands, name: str, help: str, default_out: str, run
) -> argparse.ArgumentParser:
    """A subcommand that trains a classifier checkpoint.

    Its arguments: --out, the data arguments, --seed and --device.
    """
    command = commands.add_parser(name, help=help)
    command.add_argument(
        "--out",
        type=Path,
        default=Path(default_out),
        help=f"checkpoint path without suffix (default: {default_out})",
    )
    _add_data_arguments(command)
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--device", default="auto", help="auto, cpu or cuda")
    command.set_defaults(run=run, subparser=command)
    return command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ddpm_lite",
        description="Train and sample the book's MNIST diffusion model.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    train = commands.add_parser(
        "train", help="train eps_theta on MNIST (resumes from --out by default)"
    )
    train.add_argument(
        "--out",
        type=Path,
        default=Path("runs/mnist"),
        help="checkpoint directory (default: runs/mnist)",
    )
    _add_data_arguments(train)
    train.add_argument(
        "--images", type=_positive_int, help="use only the first N training images"
    )
    train.add_argument(
        "--preset",
        default="cpu",
        help="tiny, cpu or gpu: the model and recipe (default cpu); "
        "the flags below override single settings",
    )
    train.add_argument("--steps", type=_positive_int)
    train.add_argument("--batch-size", type=_positive_int)
    train.add_argument("--lr", type=float)
    train.add_argument("--lr-schedule", help="constant or cosine (after the warmup)")
    train.add_argument("--warmup-steps", type=int)
    train.add_argument("--ema-decay", type=float)
    train.add_argument("--checkpoint-every", type=_positive_int)
    train.add_argument(
        "--keep-checkpoints",
        type=_positive_int,
        help="keep the newest N checkpoints, plus the final one (default 3)",
    )
    train.add_argument(
        "--schedule", help="the beta schedule: one of " + ", ".join(SCHEDULE_KINDS)
    )
    train.add_argument(
        "--objective",
        help="what the network predicts: "
        + ", ".join(OBJECTIVES)
        + " (flow: flow matching's velocity on the straight path; meanflow: the "
        "average velocity of one-step sampling, a U-Net with a second time; "
        "default eps)",
    )
    train.add_argument(
        "--flow-fraction",
        type=float,
        help="meanflow: the share of time pairs with s = r (default 0.75)",
    )
    train.add_argument(
        "--weight-power",
        type=float,
        help="meanflow: p of the adaptive loss weight 1 / (error + 1e-3)^p "
        "(default 0: plain squared error)",
    )
    train.add_argument(
        "--init-from",
        metavar="CHECKPOINT|NAME",
        help="start from these weights when --out has no checkpoint: a checkpoint "
        "(its EMA weights) or a shipped model's name (meanflow from mnist-flow)",
    )
    train.add_argument(
        "--teacher",
        metavar="CHECKPOINT|NAME",
        help="meanflow: distil this flow model (a checkpoint or a shipped model's "
        "name, e.g. mnist-flow): its velocity replaces the conditional one in "
        "the target; give it again when resuming",
    )
    train.add_argument("--seed", type=int)
    train.add_argument("--device", help="auto, cpu or cuda")
    train.add_argument(
        "--precision",
        help="auto (bf16 autocast on CUDA, float32 on the CPU), fp32 or bf16",
    )
    train.add_argument("--compile", action="store_true", help="torch.compile the model")
    train.add_argument(
        "--no-resume",
        action="store_true",
        help="start afresh even if --out has checkpoints",
    )
    train.add_argument("--base-channels", type=_positive_int)
    train.add_argument("--channel-mults", type=_mults)
    train.add_argument("--dropout", type=float)
    train.add_argument(
        "--class-conditional",
        action="store_true",
        help="condition on the digit label, with label dropout, "
        "for classifier-free guidance",
    )
    train.add_argument(
        "--p-uncond", type=float, help="label dropout probability (default 0.1)"
    )
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.set_defaults(
        run=run_train, subparser=train
    )  # errors then show this subcommand's usage

    sample = commands.add_parser(
        "sample", help="sample a grid of digits from a shipped model or a checkpoint"
    )
    source = sample.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "checkpoint",
        type=Path,
        nargs="?",
        help="checkpoint path without suffix, or a directory (newest checkpoint)",
    )
    source.add_argument(
        "--pretrained",
        type=_pretrained_name,
        metavar="NAME",
        help="a model shipped with ddpm_lite: mnist-flow (flow matching, the book's "
        "best), mnist-meanflow or mnist-meanflow-distil (one network call) or "
        "mnist-ddpm (DDPM's eps-model); with --label each samples that "
        "digit (mnist-flow-cond and mnist-ddpm-cond need --label; mnist and "
        "mnist-cond are the older names of mnist-ddpm and mnist-ddpm-cond)",
    )
    sample.add_argument("--out", type=Path, default=Path("samples.png"))
    sample.add_argument("--n", type=_positive_int, default=64)
    sample.add_argument(
        "--sampler",
        choices=SAMPLERS,
        help="ddim (the default), dpm-solver++ (2M on log-SNR steps), heun (Karras et "
        "al.'s steps) or ddpm (the T-step ancestral sampler); a flow-matching model "
        "(train --objective flow): heun (its default) or euler on the straight path; "
        "a meanflow model: flow-map (steps of its average velocity)",
    )
    sample.add_argument(
        "--steps",
        type=_positive_int,
        help="solver steps (default 50; 10 for a flow model, 19 calls with heun; 1 for "
        "a meanflow model): the network is called that many times for ddim, "
        "dpm-solver++, euler and flow-map (--steps 1: one network call), "
        "2 * steps - 1 times for heun; ddpm always takes T",
    )
    sample.add_argument(
        "--eta",
        type=float,
        help="DDIM's eta (default 0): 0 deterministic, 1 ancestral-like; ddim only",
    )
    sample.add_argument(
        "--no-clip",
        action="store_true",
        help="do not clip x0_pred to [-1, 1] at each step",
    )
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument(
        "--label",
        type=_label,
        metavar="{0..9,random}",
        help="class-conditional models: sample this digit (classifier-free guidance), "
        "or with random, each sample a digit drawn uniformly at random",
    )
    sample.add_argument(
        "--guidance-scale",
        type=float,
        help="with --label: w in eps_uncond + w (eps_cond - eps_uncond) (default 1, "
        "the conditional model)",
    )
    sample.add_argument(
        "--batch-size",
        type=_positive_int,
        default=100,
        help="images drawn at once (default 100); the images depend on --seed and on "
        "this, since each batch draws its noise in turn",
    )
    sample.add_argument("--device", default="auto")
    sample.set_defaults(run=run_sample, subparser=sample)

    classify = _classifier_command(
        commands,
        "train-classifier",
        "train the MNIST classifier behind FD-MNIST and MNIST-IS",
        "runs/mnist_classifier",
        run_train_classifier,
    )
    classify.add_argument("--epochs", type=_positive_int, default=6)

    noisy = _classifier_command(
        commands,
        "train-noisy-classifier",
        "train p_phi(y | x_t, t), the classifier of classifier guidance",
        "runs/noisy_classifier",
        run_train_noisy_classifier,
    )
    noisy.add_argument("--steps", type=_positive_int, default=3000)
    noisy.add_argument("--batch-size", type=_positive_int, default=256)
    noisy.add_argument(
        "--schedule",
        default="linear",
        help="the forward process of the model it will guide",
    )
    export = commands.add_parser(
        "export-onnx",
        help="write a model as ONNX (onnxruntime, in Python or a browser): an "
        "eps-model, a flow model or a meanflow model",
    )
    source = export.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "checkpoint",
        nargs="?",
        type=Path,
        help="a checkpoint stem or a run directory (its newest)",
    )
    source.add_argument(
        "--pretrained",
        type=_pretrained_name,
        metavar="NAME",
        help="a model shipped with ddpm_lite: mnist-flow, mnist-meanflow, "
        "mnist-meanflow-distil or mnist-ddpm",
    )
    export.add_argument("--out", type=Path, default=Path("unet.onnx"))
    export.add_argument(
        "--half-weights",
        action="store_true",
        help="store large weights in float16 (compute stays float32)",
    )
    export.set_defaults(run=run_export, subparser=export)
    return parser


def _load_split(args: argparse.Namespace, parser: argparse.ArgumentParser, split: str):
    from .data import load_mnist

    try:
        if args.no_download and not args.data_dir.is_dir():
            return load_mnist(split)  # the shipped subset, with its notice
        return load_mnist(split, root=args.data_dir, download=not args.no_download)
    except (OSError, ValueError) as err:
        parser.error(f"--data-dir: {err}")


def _source_model(source: str, flag: str, parser: argparse.ArgumentParser):
    """(model, a note naming it and its weights' SHA-256) of a checkpoint or a shipped
    model's name, given to --init-from or --teacher."""
    from .checkpoint import CheckpointError, checkpoint_files, sha256_of
    from .pretrained import PRETRAINED, pretrained_path
    from .trained import load_trained

    stem = pretrained_path(source) if source in PRETRAINED else Path(source)
    try:
        model = load_trained(stem).model
    except (CheckpointError, FileNotFoundError, ValueError) as err:
        _fail(parser, f"{flag}: cannot load {source!r}: {err}")
    digest = sha256_of(checkpoint_files(stem)[0])
    return model, f"{source} (EMA weights, sha256 {digest})"


def _init_weights(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """(U-Net weights, a note naming them) of --init-from, or (None, "")."""
    if args.init_from is None:
        return None, ""
    model, note = _source_model(args.init_from, "--init-from", parser)
    net = getattr(model, "net", model)  # the U-Net inside a velocity model
    return net.state_dict(), note


def _teacher(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """(velocity model, note) of --teacher, or (None, "")."""
    if args.teacher is None:
        return None, ""
    if args.objective != "meanflow":
        parser.error("--teacher is for --objective meanflow")
    model, note = _source_model(args.teacher, "--teacher", parser)
    if getattr(model, "objective", None) != "flow":
        _fail(
            parser, f"--teacher: {args.teacher!r} is not a flow model (objective flow)"
        )
    return model, note


def _given(args: argparse.Namespace, names: tuple[str, ...]) -> dict:
    return {
        name: getattr(args, name) for name in names if getattr(args, name) is not None
    }


def run_train(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from dataclasses import replace

    from .data import to_model_range
    from .presets import get_preset
    from .train import train

    try:
        preset = get_preset(args.preset)
        unet_config = replace(
            preset.unet,
            **_given(args, ("base_channels", "channel_mults", "dropout")),
            **({"num_classes": 10} if args.class_conditional else {}),
            **({"time_gap": True} if args.objective == "meanflow" else {}),
        )
        config = replace(
            preset.train,
            **_given(
                args,
                (
                    "steps",
                    "batch_size",
                    "lr",
                    "lr_schedule",
                    "warmup_steps",
                    "ema_decay",
                    "checkpoint_every",
                    "keep_checkpoints",
                    "schedule",
                    "seed",
                    "device",
                    "precision",
                    "p_uncond",
                    "objective",
                    "flow_fraction",
                    "weight_power",
                ),
            ),
            **({"compile": True} if args.compile else {}),
            # GroupNorm's forward-mode derivative fails on channels-last tensors
            **({"channels_last": False} if args.objective == "meanflow" else {}),
        )
    except (ValueError, TypeError) as err:
        parser.error(str(err))
    for flag in ("flow_fraction", "weight_power"):
        if getattr(args, flag) is not None and config.objective != "meanflow":
            parser.error(f"--{flag.replace('_', '-')} is for --objective meanflow")
    init, init_note = _init_weights(args, parser)
    teacher, teacher_note = _teacher(args, parser)
    mnist = _load_split(args, parser, "train")
    images = mnist.images[: args.images] if args.images else mnist.images
    labels = mnist.labels[: len(images)] if args.class_conditional else None
    from .checkpoint import CheckpointError

    try:
        result = train(
            unet_config,
            config,
            to_model_range(images),
            args.out,
            resume=not args.no_resume,
            progress=not args.quiet,
            data_note=f"MNIST train, {len(images)} images from {mnist.source}",
            labels=labels,
            command=args.command_line,
            init=init,
            init_note=init_note,
            teacher=teacher,
            teacher_note=teacher_note,
        )
    except CheckpointError as err:  # resuming, with no intact checkpoint in --out
        _fail(parser, str(err))
    print(f"final loss {result.losses[-1]:.4f}; checkpoint {result.checkpoint}")


def _load_model(
    args: argparse.Namespace, parser: argparse.ArgumentParser, device: torch.device
):
    """(model, schedule, sidecar) of --pretrained NAME, or of a checkpoint (a run
    directory: its newest)."""
    from .checkpoint import resolve_checkpoint
    from .pretrained import load_pretrained
    from .trained import load_trained

    try:
        if args.pretrained:
            return load_pretrained(args.pretrained, device)[:3]
        return load_trained(resolve_checkpoint(args.checkpoint), device=device)
    except (ValueError, OSError) as err:
        parser.error(str(err))


def _device(args: argparse.Namespace, parser: argparse.ArgumentParser) -> torch.device:
    from .devices import resolve_device

    try:
        return resolve_device(args.device)
    except ValueError as err:
        parser.error(str(err))


def run_sample(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    import matplotlib.pyplot as plt

    from .data import to_pixels
    from .files import atomic_write
    from .guidance import classifier_free_guidance, random_labels
    from .plotting import tile_digits
    from .sampling import final_sample
    from .solvers import check_sampler, network_calls, sampler_trajectory
    from .trained import objective_of

    _check_out(args.out, parser)  # before minutes of sampling, not after
    device = _device(args, parser)
    model, schedule, info = _load_model(args, parser, device)
    objective = objective_of(info)
    default_sampler = {"flow": "heun", "meanflow": "flow-map"}
    sampler = args.sampler or default_sampler.get(objective, "ddim")
    try:
        check_sampler(sampler, objective)
    except ValueError as err:
        parser.error(f"--sampler: {err}")
    _refuse_unused_flags(args, sampler, parser)
    default_steps = {"flow": FLOW_DEFAULT_STEPS, "meanflow": 1}
    steps = args.steps or default_steps.get(objective, 50)
    eta = 0.0 if args.eta is None else args.eta
    if steps > schedule.T:
        parser.error(f"--steps must be in [1, {schedule.T}], got {steps}")
    if not 0 <= eta <= 1:
        parser.error(f"--eta must be in [0, 1] (DDIM's family), got {eta}")
    labels = None
    if args.label is not None:
        if model.config.num_classes is None:
            parser.error(
                "--label needs a class-conditional model (--pretrained mnist-flow or "
                "mnist-ddpm, or a checkpoint trained with --class-conditional)"
            )
        scale = 1.0 if args.guidance_scale is None else args.guidance_scale
        if not scale >= 0:
            parser.error(f"--guidance-scale must be >= 0, got {scale}")
        if objective == "meanflow" and scale != 1:
            parser.error(
                f"--guidance-scale: a meanflow model samples its label at w = 1 only "
                f"(one call has no second prediction to mix), got {scale}"
            )
        null = model.config.num_classes
        if args.label == "random":
            labels = random_labels(args.n, null, args.seed).to(device)
        else:
            labels = torch.full((args.n,), args.label, dtype=torch.long, device=device)
    elif args.pretrained and args.pretrained.endswith("-cond"):
        parser.error(
            f"--pretrained {args.pretrained} needs --label "
            f"(or use --pretrained {args.pretrained[: -len('-cond')]} for "
            "unconditional samples)"
        )
    g = torch.Generator(device).manual_seed(args.seed)
    c = model.config
    clip = not args.no_clip
    chunks = []
    # --batch-size images at a time: on a CPU a batch of ~100 runs each network call
    # about twice as fast per image as one of 1,000 (README.md, Measured results)
    for start in range(0, args.n, args.batch_size):
        n = min(args.batch_size, args.n - start)
        eps_model = model
        if labels is not None:
            chunk_labels = labels[start : start + n]
            if objective == "meanflow":
                eps_model = partial(model, y=chunk_labels)
            else:
                eps_model = classifier_free_guidance(model, chunk_labels, null, scale)
        shape = (n, c.in_channels, c.image_size, c.image_size)
        run = sampler_trajectory(
            sampler, eps_model, schedule, shape, g, steps, eta, clip, objective
        )
        try:
            with torch.no_grad():
                chunks.append(final_sample(run))
        except ValueError as err:  # e.g. more steps than the solver's spacing has
            parser.error(f"--steps: {err}")
    sample = torch.cat(chunks)
    grid = tile_digits(sample, cols=math.ceil(math.sqrt(args.n)))
    pixels = to_pixels(torch.from_numpy(grid)).numpy()
    image_format = args.out.suffix[1:].lower()
    try:  # all or nothing: a failed write leaves no half-written image
        atomic_write(
            args.out,
            lambda tmp: plt.imsave(
                tmp, pixels, cmap="gray", vmin=0, vmax=255, format=image_format
            ),
        )
    except OSError as err:
        _fail(parser, f"--out: cannot write {args.out}: {err.strerror or err}")
    calls = network_calls(sampler, steps, schedule.T)
    how = (
        sampler if sampler == "ddpm" else f"{sampler}, {steps} step{'s' * (steps > 1)}"
    )
    calls = f"{calls} network call{'s' * (calls > 1)}"
    print(f"wrote {args.n} samples ({how}, {calls}) to {args.out}")


def _refuse_unused_flags(args, sampler: str, parser: argparse.ArgumentParser) -> None:
    """A flag the chosen sampler or model would ignore is an error, not a no-op."""
    if args.eta is not None and sampler != "ddim":
        parser.error(f"--eta is DDIM's; sampler {sampler!r} is deterministic")
    if args.steps is not None and sampler == "ddpm":
        parser.error("--steps: the ddpm sampler always takes all T steps")
    if args.guidance_scale is not None and args.label is None:
        parser.error("--guidance-scale needs --label (classifier-free guidance)")


def _fail(parser: argparse.ArgumentParser, message: str) -> None:
    """Exit 2 with one line, no usage: for faults of the run, not of the syntax."""
    parser.exit(2, f"{parser.prog}: error: {message}\n")


IMAGE_FORMATS = (
    "png",
    "jpg",
    "jpeg",
    "tiff",
    "webp",
    "bmp",
    "gif",
    "pdf",
    "svg",
)  # imsave


def _check_out(out: Path, parser: argparse.ArgumentParser) -> None:
    """--out must name an image file in a directory that exists and can be written."""
    if out.suffix[1:].lower() not in IMAGE_FORMATS:
        _fail(
            parser,
            f"--out must end in an image format, one of .{', .'.join(IMAGE_FORMATS)}; "
            f"got {str(out)!r}",
        )
    folder = out.parent
    if not folder.is_dir():
        _fail(parser, f"--out: the directory {str(folder)!r} does not exist")
    if not os.access(folder, os.W_OK):
        _fail(parser, f"--out: the directory {str(folder)!r} cannot be written")


def _classifier_data(args: argparse.Namespace, parser: argparse.ArgumentParser):
    """(train split, test split, the sidecar's data record) of a classifier command."""
    train_set = _load_split(args, parser, "train")
    test_set = _load_split(args, parser, "test")
    data = {
        split: f"{len(part.labels)} images from {part.source}"
        for split, part in (("train", train_set), ("test", test_set))
    }
    return train_set, test_set, data


def run_train_classifier(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> None:
    from .classifier import ClassifierConfig, accuracy, train_classifier
    from .data import to_model_range
    from .fit import fit_record, save_fitted

    device = _device(args, parser)
    config = ClassifierConfig(epochs=args.epochs, seed=args.seed)
    train_set, test_set, data = _classifier_data(args, parser)
    images = to_model_range(train_set.images)
    result = train_classifier(config, images, train_set.labels, True, device)
    test_images = to_model_range(test_set.images).to(device)
    test_accuracy = accuracy(result.model, test_images, test_set.labels.to(device))
    metrics = {"test_accuracy": test_accuracy}
    info = fit_record(result, device, data, metrics, args.command_line)
    weights = save_fitted(args.out, result.model, info)
    print(
        f"test accuracy {test_accuracy:.2%} on {len(test_set.labels)} images; "
        f"trained in {result.seconds:.0f} s; wrote {weights}"
    )


def run_train_noisy_classifier(
    args: argparse.Namespace, parser: argparse.ArgumentParser
) -> None:
    from .data import to_model_range
    from .fit import fit_record, save_fitted
    from .noisy_classifier import (
        NoisyClassifierConfig,
        accuracy_at,
        train_noisy_classifier,
    )

    try:
        config = NoisyClassifierConfig(schedule=args.schedule)
    except ValueError as err:
        parser.error(str(err))
    device = _device(args, parser)
    train_set, test_set, data = _classifier_data(args, parser)
    result = train_noisy_classifier(
        config,
        to_model_range(train_set.images),
        train_set.labels,
        steps=args.steps,
        batch_size=args.batch_size,
        seed=args.seed,
        device=device,
        progress=True,
    )
    g = torch.Generator(device).manual_seed(args.seed)
    test_images = to_model_range(test_set.images).to(device)
    test_labels = test_set.labels.to(device)
    accuracy = {
        str(t): accuracy_at(result.model, test_images, test_labels, t, g)
        for t in (0, 250, 500, 750, 999)
    }
    metrics = {"test_accuracy_at_t": accuracy}
    info = fit_record(result, device, data, metrics, args.command_line)
    info.update(steps=args.steps, batch_size=args.batch_size)
    weights = save_fitted(args.out, result.model, info)
    print(
        f"test accuracy by t: {accuracy}; trained in {result.seconds:.0f} s; "
        f"wrote {weights}"
    )


def run_export(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    from .export import export_onnx, write_schedule
    from .trained import objective_of

    model, schedule, info = _load_model(args, parser, torch.device("cpu"))
    objective = objective_of(info)
    if objective not in ("eps", "flow", "meanflow"):
        parser.error(
            "export-onnx exports eps-prediction, flow and meanflow models (the "
            f"browser's samplers); this checkpoint's objective is {objective!r}"
        )
    path = export_onnx(model, args.out, half_weights=args.half_weights)
    sidecar = write_schedule(args.out.with_suffix(".json"), schedule.alpha_bars, model)
    print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB) and {sidecar}")


def main(argv: list[str] | None = None) -> None:
    # The library's notices (e.g. "using the shipped subset") are INFO records: the
    # command line shows them (set up first: parsing an old model name logs one).
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    parser = build_parser()
    args = parser.parse_args(argv)
    words = sys.argv[1:] if argv is None else argv
    args.command_line = " ".join(["python -m ddpm_lite", *words])  # for the sidecars
    args.run(args, args.subparser)


if __name__ == "__main__":
    main()
