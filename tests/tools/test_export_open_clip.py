"""tools/export_open_clip.py: a Long-CLIP model written as an open_clip model loads in open_clip with context 248
and gives our features; runner checkpoints export too; models open_clip cannot represent are refused."""

from __future__ import annotations

import json
from pathlib import Path

import open_clip
import pytest
import torch

import clipadapt
import clipadapt_plugins.coop  # noqa: F401  (registers CoOp)
from clipadapt.adapter import adapter_metadata, adapter_state_dict
from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[2]
LONG = " ".join(["A large striped red circle sits in the top left, and a small dotted blue star is below it."] * 5)


def _load_tool():
    return load_tool("export_open_clip")


tool = _load_tool()


def _trained_longclip(weights: Path) -> clipadapt.CLIP:
    """A stretched model whose trainable weights moved, as after training."""
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="LongCLIP")])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.01 * torch.randn(param.shape, generator=generator))
    return model.eval()


def _assert_same_features(model: clipadapt.CLIP, reference: torch.nn.Module, tokenizer) -> None:
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    tokens = tokenizer(["a red circle", LONG])
    assert tokens.shape[1] == 248 and int(tokens.argmax(dim=1).max()) > 77
    with torch.no_grad():
        torch.testing.assert_close(reference.encode_image(images), model.encode_image(images), rtol=0, atol=1e-5)
        torch.testing.assert_close(reference.encode_text(tokens), model.encode_text(tokens), rtol=0, atol=1e-5)


def test_exported_longclip_round_trips_through_open_clip(tiny_pair, tmp_path: Path) -> None:
    _, _, weights = tiny_pair
    model = _trained_longclip(weights)
    adapter = clipadapt.save_adapter(model, tmp_path / "adapter.pt")
    out = tmp_path / "longclip-tiny"
    paths = tool.main([str(adapter), str(out), "--verify"])
    config = json.loads(paths["model_config"].read_text())
    assert config["text_cfg"]["context_length"] == 248
    # 1. the local-dir form: config and weights found by open_clip itself
    reference = open_clip.create_model(f"local-dir:{out}").eval()
    assert reference.context_length == 248 and reference.positional_embedding.shape == (248, 128)
    _assert_same_features(model, reference, open_clip.get_tokenizer(f"local-dir:{out}"))
    # 2. the model JSON registered by name, weights as `pretrained`
    open_clip.add_model_config(paths["model_config"])
    named = open_clip.create_model("longclip-tiny", pretrained=str(paths["weights"])).eval()
    _assert_same_features(model, named, open_clip.get_tokenizer("longclip-tiny"))


def test_runner_checkpoints_export_like_adapters(tiny_pair, tmp_path: Path) -> None:
    _, _, weights = tiny_pair
    model = _trained_longclip(weights)
    checkpoint = {
        "meta": {"clipadapt": adapter_metadata(model), "epoch": 1},
        "state_dict": {f"clip.{k}": v for k, v in adapter_state_dict(model).items()},
        "message_hub": {"log_scalars": {}},
    }
    torch.save(checkpoint, tmp_path / "epoch_1.pth")
    restored = tool.load_adapted_model(tmp_path / "epoch_1.pth")
    assert torch.equal(restored.text.positional_embedding, model.text.positional_embedding)
    tool.export_open_clip(restored, tmp_path / "out")
    reference = open_clip.create_model(f"local-dir:{tmp_path / 'out'}").eval()
    _assert_same_features(model, reference, open_clip.get_tokenizer(f"local-dir:{tmp_path / 'out'}"))


def test_models_open_clip_cannot_represent_are_refused(tiny_pair, tmp_path: Path) -> None:
    _, _, weights = tiny_pair
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="CoOp", n_ctx=2)])
    adapter = clipadapt.save_adapter(model, tmp_path / "coop.pt")
    with pytest.raises(SystemExit, match=r"export failed: the model carries plugins \['coop'\]"):
        tool.main([str(adapter), str(tmp_path / "out")])
    assert not (tmp_path / "out" / tool.WEIGHTS).exists()
