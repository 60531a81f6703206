"""Weights from local files, both ways, and every way a checkpoint can be wrong."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import open_clip
import pytest
import torch
from safetensors.torch import save_file

import clipadapt
from clipadapt.models.checkpoint import CheckpointMismatchError
from tests.conftest import OWN_CONFIGS, open_clip_model, save_state


def _features(model, size: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(3)
    images = torch.randn(2, 3, size, size)
    tokens = open_clip.tokenize(["a blue star", "two green rings on a dark background"])
    with torch.no_grad():
        return model.encode_image(images), model.encode_text(tokens)


def test_round_trip_into_open_clip_unchanged(tiny_pair) -> None:
    reference, ours, _ = tiny_pair
    state = clipadapt.to_open_clip_state_dict(ours)
    assert set(state) == set(reference.state_dict())
    fresh = open_clip.model.CLIP(**clipadapt.open_clip_model_config(ours)).eval()
    fresh.load_state_dict(state, strict=True)
    for a, b in zip(_features(fresh), _features(ours)):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_round_trip_through_open_clip_create_model(tmp_path: Path) -> None:
    reference = open_clip_model("ViT-B-32")
    model = clipadapt.create_model("ViT-B-32", pretrained=save_state(reference, tmp_path / "b32.pt"))
    exported = tmp_path / "exported.pt"
    torch.save(clipadapt.to_open_clip_state_dict(model), exported)
    reloaded = open_clip.create_model("ViT-B-32", pretrained=str(exported)).eval()
    for a, b in zip(_features(reloaded, 224), _features(reference, 224)):
        assert torch.equal(a, b)


def test_safetensors_and_wrapped_state_dicts_load(tiny_pair, tmp_path: Path) -> None:
    reference, ours, _ = tiny_pair
    expected = _features(ours)
    state = reference.state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "w.safetensors")
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}, "epoch": 3}, tmp_path / "ddp.pt")
    for name in ("w.safetensors", "ddp.pt"):
        model = clipadapt.create_model("tiny-vit", pretrained=tmp_path / name).eval()
        for a, b in zip(_features(model), expected):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


class _OpenAIArchive(torch.nn.Module):
    """Holds an open_clip model under OpenAI's names, as the TorchScript archives do."""

    def __init__(self, clip: torch.nn.Module) -> None:
        super().__init__()
        for name, child in clip.named_children():
            self.add_module(name, child)
        for name, param in clip.named_parameters(recurse=False):
            self.register_parameter(name, param)
        self.register_buffer("input_resolution", torch.tensor(64))
        self.register_buffer("context_length", torch.tensor(77))
        self.register_buffer("vocab_size", torch.tensor(49408))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.logit_scale


def test_openai_torchscript_archive_and_state_dict(tmp_path: Path) -> None:
    reference = open_clip_model("tiny-vit-quickgelu")
    archive = torch.jit.script(_OpenAIArchive(reference))
    archive.save(str(tmp_path / "openai.pt"))
    torch.save(archive.state_dict(), tmp_path / "openai_state.pt")
    expected = _features(reference)
    for name in ("openai.pt", "openai_state.pt"):
        model = clipadapt.create_model("tiny-vit-quickgelu", pretrained=tmp_path / name).eval()
        for a, b in zip(_features(model), expected):
            torch.testing.assert_close(a, b, atol=1e-5, rtol=0)


def test_base_weights_are_referenced_by_path_and_hash(tiny_pair) -> None:
    _, ours, path = tiny_pair
    assert ours.base_weights["path"] == str(path.resolve())
    assert len(ours.base_weights["sha256"]) == 64


# ---------------------------------------------------------------------------------- bad input
def test_missing_checkpoint_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="nowhere.pt"):
        clipadapt.create_model("tiny-vit", pretrained=tmp_path / "nowhere.pt")


def test_checkpoint_of_another_architecture_names_keys_and_shapes(tmp_path: Path) -> None:
    cfg = json.loads((OWN_CONFIGS / "tiny-vit.json").read_text())
    cfg["vision_cfg"]["layers"] = 3
    cfg["text_cfg"]["width"] = 64
    cfg["text_cfg"]["heads"] = 1
    other = open_clip.model.CLIP(**cfg)
    path = save_state(other, tmp_path / "other.pt")
    with pytest.raises(CheckpointMismatchError) as info:
        clipadapt.create_model("tiny-vit", pretrained=path)
    message = str(info.value)
    assert "other.pt" in message
    assert "text.token_embedding.weight: checkpoint (49408, 64) vs model (49408, 128)" in message
    assert "missing keys" in message and "visual.transformer.resblocks.3" in message


def test_unexpected_keys_are_named(tiny_pair, tmp_path: Path) -> None:
    reference, _, _ = tiny_pair
    state = reference.state_dict()
    state["visual.extra_head.weight"] = torch.zeros(3)
    with pytest.raises(CheckpointMismatchError, match="unexpected keys .*visual.extra_head.weight"):
        clipadapt.create_model("tiny-vit", pretrained=save_state_dict(state, tmp_path / "x.pt"))


def save_state_dict(state: dict, path: Path) -> Path:
    torch.save(state, path)
    return path


class _Exploit:
    def __reduce__(self):
        return (Path("/tmp/clipadapt-pwned").touch, ())


def test_malicious_pickle_is_refused_and_nothing_runs(tmp_path: Path) -> None:
    marker = Path("/tmp/clipadapt-pwned")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pt"
    with open(path, "wb") as handle:
        pickle.dump({"visual.proj": _Exploit()}, handle)
    with pytest.raises(ValueError, match="weights_only=True"):
        clipadapt.create_model("tiny-vit", pretrained=path)
    assert not marker.exists()


def test_not_a_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "notes.pt"
    path.write_text("hello")
    with pytest.raises(ValueError, match="notes.pt"):
        clipadapt.create_model("tiny-vit", pretrained=path)


def test_torchscript_reader_equals_torch_jit_load_on_a_traced_fp16_archive(tmp_path: Path) -> None:
    """OpenAI's releases are traced fp16 archives: the code-free reader gives jit.load's state dict exactly."""
    import warnings

    from clipadapt.models.checkpoint_io import read_checkpoint

    reference = open_clip_model("tiny-vit-quickgelu")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated; tracer warnings
        traced = torch.jit.trace(_OpenAIArchive(reference).half().eval(), torch.zeros(2, dtype=torch.half))
        traced.save(str(tmp_path / "traced.pt"))
        expected = torch.jit.load(str(tmp_path / "traced.pt")).state_dict()
    state = read_checkpoint(tmp_path / "traced.pt")
    assert set(state) == set(expected)
    for key, value in expected.items():
        assert state[key].dtype == value.dtype and torch.equal(state[key], value), key
