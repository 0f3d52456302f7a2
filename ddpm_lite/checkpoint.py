"""Checkpoints: tensors in safetensors (no pickle), everything else in a JSON sidecar.

`<name>.safetensors` holds flat, named tensors; `<name>.json` holds the configuration,
the step, provenance, metrics, the optimizer's non-tensor state and the SHA-256 of the
tensor file. Both are written to temporary files and renamed into place, the sidecar
last, so a checkpoint with a sidecar is complete. Loading checks the SHA-256 first.

Every model in the package (U-Net, classifiers) is saved and loaded by one pair,
`save_module` / `load_module`: the weights, and the model's config dataclass under a key
of the sidecar, from which `load_module` rebuilds the model before loading the weights.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from .files import atomic_write, file_hash


class CheckpointError(ValueError):
    """A checkpoint that is missing, incomplete or does not match its checksum."""


def checkpoint_files(path_stem: str | Path) -> tuple[Path, Path]:
    """(tensors, sidecar) paths of a stem.

    The suffixes are appended, so a dotted stem ("model.v2") keeps its name.
    """
    path_stem = Path(path_stem)
    return (
        path_stem.parent / f"{path_stem.name}.safetensors",
        path_stem.parent / f"{path_stem.name}.json",
    )


def sha256_of(path: Path) -> str:
    return file_hash(path, "sha256")


def save_checkpoint(
    path_stem: Path, tensors: dict[str, Tensor], info: dict[str, Any]
) -> Path:
    """Write path_stem.safetensors, then path_stem.json with info and its SHA-256."""
    path_stem = Path(path_stem)
    path_stem.parent.mkdir(parents=True, exist_ok=True)
    weights, sidecar_path = checkpoint_files(path_stem)
    contiguous = {k: v.detach().contiguous().cpu() for k, v in tensors.items()}
    atomic_write(weights, lambda tmp: save_file(contiguous, tmp))
    sidecar = {**info, "sha256": sha256_of(weights), "tensors": weights.name}
    atomic_write(
        sidecar_path, lambda tmp: Path(tmp).write_text(json.dumps(sidecar, indent=2))
    )
    return weights


def load_checkpoint(
    path_stem: Path, device: str | torch.device = "cpu"
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """(tensors, info) of a complete checkpoint whose tensors match their SHA-256."""
    path_stem = Path(path_stem)
    weights, sidecar = checkpoint_files(path_stem)
    if not sidecar.is_file() or not weights.is_file():
        raise CheckpointError(
            f"{path_stem}: needs both {weights.name} and {sidecar.name}"
        )
    info = json.loads(sidecar.read_text())
    actual = sha256_of(weights)
    if actual != info.get("sha256"):
        raise CheckpointError(
            f"{weights}: SHA-256 {actual} does not match "
            f"the sidecar's {info.get('sha256')}"
        )
    return load_file(weights, device=str(device)), info


def config_from_json(config_cls: type, values: dict[str, Any]) -> Any:
    """A frozen config dataclass from its JSON form in a sidecar.

    JSON has no tuples: lists become tuples.
    """
    return config_cls(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}
    )


def complete_checkpoints(directory: Path, prefix: str = "checkpoint-") -> list[Path]:
    """The stems of directory's checkpoints that have both files, oldest first."""
    return sorted(
        p.with_suffix("")
        for p in Path(directory).glob(f"{prefix}*.json")
        if checkpoint_files(p.with_suffix(""))[0].is_file()
    )


def latest_checkpoint(directory: Path, prefix: str = "checkpoint-") -> Path | None:
    """The stem of the highest-step complete checkpoint in directory, or None."""
    stems = complete_checkpoints(directory, prefix)
    return stems[-1] if stems else None


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint stem as given, or for a run directory the stem of its newest one."""
    path = Path(path)
    if not path.is_dir():
        return path
    stem = latest_checkpoint(path)
    if stem is None:
        raise CheckpointError(f"no complete checkpoint in {path}")
    return stem


def save_module(
    path_stem: str | Path, module: nn.Module, config_key: str, info: dict[str, Any]
) -> Path:
    """Save a model whose `config` attribute is a dataclass.

    Its weights, and that config under info[config_key].
    """
    return save_checkpoint(
        Path(path_stem),
        module.state_dict(),
        {config_key: asdict(module.config), **info},
    )


def load_module(
    path_stem: str | Path,
    module_cls: type,
    config_cls: type,
    config_key: str,
    device: str | torch.device = "cpu",
    prefix: str = "",
) -> tuple[nn.Module, dict[str, Any]]:
    """(model in eval mode on device, sidecar) of a checkpoint.

    The model is built from the sidecar's info[config_key], then given, as float32, the
    checksum-verified weights whose names start with `prefix` (a training checkpoint's
    "model." or "ema.", see train.TrainState; "" for a file of one model's weights).
    """
    tensors, info = load_checkpoint(Path(path_stem), device)
    if config_key not in info:
        raise CheckpointError(
            f"{path_stem}: the sidecar has no {config_key!r}; "
            f"is it a {module_cls.__name__} checkpoint?"
        )
    module = module_cls(config_from_json(config_cls, info[config_key])).to(device)
    weights = {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
    module.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in weights.items()}
    )
    return module.eval(), info
