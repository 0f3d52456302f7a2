import dataclasses
import json

import pytest
import torch

from ddpm_lite.checkpoint import (
    CheckpointError,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)


def test_round_trip_keeps_tensors_and_info(tmp_path):
    tensors = {
        "a": torch.arange(6.0).reshape(2, 3),
        "b": torch.tensor([1, 2], dtype=torch.int64),
    }
    save_checkpoint(tmp_path / "ck", tensors, {"step": 7})
    loaded, info = load_checkpoint(tmp_path / "ck")
    assert info["step"] == 7 and len(info["sha256"]) == 64
    assert all(torch.equal(loaded[k], v) for k, v in tensors.items())


def test_tampered_tensors_fail_the_checksum(tmp_path):
    save_checkpoint(tmp_path / "ck", {"a": torch.zeros(100)}, {})
    path = tmp_path / "ck.safetensors"
    raw = bytearray(path.read_bytes())
    raw[-1] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="does not match the sidecar"):
        load_checkpoint(tmp_path / "ck")


def test_checkpoint_without_sidecar_is_incomplete(tmp_path):
    save_checkpoint(tmp_path / "checkpoint-0000001", {"a": torch.zeros(1)}, {})
    save_checkpoint(tmp_path / "checkpoint-0000002", {"a": torch.zeros(1)}, {})
    (
        tmp_path / "checkpoint-0000002.json"
    ).unlink()  # as if killed between the two writes
    assert latest_checkpoint(tmp_path).name == "checkpoint-0000001"
    with pytest.raises(CheckpointError, match="needs both"):
        load_checkpoint(tmp_path / "checkpoint-0000002")


def test_files_are_safetensors_and_json_not_pickle(tmp_path):
    save_checkpoint(tmp_path / "ck", {"a": torch.zeros(3)}, {"note": "x"})
    header_length = int.from_bytes(
        (tmp_path / "ck.safetensors").read_bytes()[:8], "little"
    )
    header = json.loads(
        (tmp_path / "ck.safetensors").read_bytes()[8 : 8 + header_length]
    )
    assert header["a"]["shape"] == [3]
    assert json.loads((tmp_path / "ck.json").read_text())["note"] == "x"
    assert not list(tmp_path.glob("*.part"))


def test_a_dotted_stem_keeps_its_name(tmp_path):
    # Path.with_suffix would turn "model.v2" into "model.safetensors" and collide with "model.v3".
    save_checkpoint(tmp_path / "model.v2", {"a": torch.zeros(2)}, {"step": 2})
    save_checkpoint(tmp_path / "model.v3", {"a": torch.ones(2)}, {"step": 3})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.v2.json",
        "model.v2.safetensors",
        "model.v3.json",
        "model.v3.safetensors",
    ]
    assert load_checkpoint(tmp_path / "model.v2")[1]["step"] == 2


def test_save_module_and_load_module_rebuild_the_model_from_its_config(tmp_path):
    from ddpm_lite.checkpoint import load_module, save_module
    from ddpm_lite.noisy_classifier import NoisyClassifier, NoisyClassifierConfig

    torch.manual_seed(0)
    config = NoisyClassifierConfig(channels=(8, 16), emb_dim=16)
    model = NoisyClassifier(config)
    save_module(tmp_path / "nc", model, "noisy_classifier_config", {"note": "x"})
    loaded, info = load_module(
        tmp_path / "nc",
        NoisyClassifier,
        NoisyClassifierConfig,
        "noisy_classifier_config",
    )
    assert loaded.config == config and info["note"] == "x" and not loaded.training
    x, t = torch.randn(3, 1, 28, 28), torch.tensor([0, 500, 999])
    assert torch.equal(loaded(x, t), model.eval()(x, t))
    with pytest.raises(CheckpointError, match="no 'unet_config'"):
        load_module(
            tmp_path / "nc", NoisyClassifier, NoisyClassifierConfig, "unet_config"
        )


def test_load_module_takes_the_prefixed_weights_of_a_training_checkpoint(tmp_path):
    from ddpm_lite.checkpoint import load_module
    from ddpm_lite.noisy_classifier import NoisyClassifier, NoisyClassifierConfig

    config = NoisyClassifierConfig(channels=(8, 16), emb_dim=16)
    raw, ema = NoisyClassifier(config), NoisyClassifier(config)
    tensors = {
        **{f"model.{k}": v for k, v in raw.state_dict().items()},
        **{f"ema.{k}": v for k, v in ema.state_dict().items()},
        "optimizer.0.exp_avg": torch.zeros(3),
    }
    save_checkpoint(
        tmp_path / "ck",
        tensors,
        {"noisy_classifier_config": dataclasses.asdict(config)},
    )
    loaded, _ = load_module(
        tmp_path / "ck",
        NoisyClassifier,
        NoisyClassifierConfig,
        "noisy_classifier_config",
        prefix="ema.",
    )
    assert all(
        torch.equal(a, b)
        for a, b in zip(loaded.state_dict().values(), ema.state_dict().values())
    )
