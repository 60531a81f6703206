"""Model configs: names, JSON files, and the models clipadapt refuses to misrepresent."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import clipadapt
from clipadapt.models.config import UnsupportedModelError, load_model_config
from tests.conftest import OWN_CONFIGS


def test_open_clip_names_and_own_configs_resolve() -> None:
    cfg = load_model_config("ViT-L-14")
    assert (cfg.vision.width, cfg.vision.layers, cfg.vision.heads, cfg.embed_dim) == (1024, 24, 16, 768)
    assert load_model_config("ViT-B-16-quickgelu").quick_gelu
    assert load_model_config("tiny-vit").vision.image_size == 64


def test_json_config_path(tmp_path: Path) -> None:
    cfg = json.loads((OWN_CONFIGS / "tiny-vit.json").read_text())
    cfg["vision_cfg"]["layers"] = 2
    path = tmp_path / "my-clip.json"
    path.write_text(json.dumps(cfg))
    model = clipadapt.create_model(str(path))
    assert model.visual.transformer.layers == 2 and model.cfg.name == "my-clip"


def test_unknown_model_name_suggests_close_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown model 'ViT-B-61'.*Did you mean .*'ViT-B-16'"):
        clipadapt.create_model("ViT-B-61")


def test_missing_json_config(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="absent.json"):
        clipadapt.create_model(str(tmp_path / "absent.json"))


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("RN50", "ResNet image tower"),
        ("ViT-B-16-SigLIP", "SigLIP|timm"),
        ("coca_ViT-B-32", "CoCa|attentional_pool"),
        ("EVA02-B-16", "timm image tower"),
        ("xlm-roberta-base-ViT-B-32", "Hugging Face text tower"),
    ],
)
def test_unsupported_models_fail_at_build_time(name: str, what: str) -> None:
    with pytest.raises(UnsupportedModelError, match=f"model '{name}' uses .*({what}).*Supported: ViT image towers"):
        clipadapt.create_model(name)


def test_list_models_holds_only_buildable_vits() -> None:
    names = clipadapt.list_models()
    assert {"tiny-vit", "ViT-B-16", "ViT-L-14", "ViT-B-16-quickgelu"} <= set(names)
    assert not {"RN50", "ViT-B-16-SigLIP", "coca_ViT-B-32"} & set(names)
