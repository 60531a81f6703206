"""Each recipe config builds the activation its weights need (OpenAI's CLIP uses QuickGELU) and resizes bicubic.

Long-CLIP and CLIP-MoE load OpenAI's ViT-B/16 and ViT-L/14; FG-CLIP v1 starts from OpenAI's ViT-B/16
(``openai/clip-vit-base-patch16``, ``hidden_act="quick_gelu"``), and the FG-CLIP 2 recipe applies its
region stage to the same base; the prompt-learning recipes use OpenAI's ViT-B/16. CLOC trains from
scratch (no weights to match).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from mmengine.config import Config

from clipadapt.models.config import load_model_config

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
OPENAI_RECIPES = [
    "longclip/longclip_vit-b-16_16xb128_sharegpt4v.py",
    "longclip/longclip_vit-l-14_16xb128_sharegpt4v.py",
    "moe/clipmoe_vit-b-16_4x2_1xb100_sharegpt4v.py",
    "moe/clipmoe_vit-l-14_4x2_1xb100_sharegpt4v.py",
    "fgclip/fgclip_vit-b-16_8xb512_regions.py",
    "fgclip/fgclip2_vit-b-16_8xb512_regions.py",
    "maple/maple_vit-b-16_1xb4-5e_imagenet-b2n.py",
    "maple/maple_vit-b-16_1xb4-2e_imagenet-xd.py",
    "coop/coop_vit-b-16_1xb32-50e_imagenet-b2n.py",
    "promptsrc/promptsrc_vit-b-16_1xb4-20e_imagenet-b2n.py",
    "ivlp/ivlp_vit-b-16_1xb4-5e_imagenet-b2n.py",
]


def test_every_real_weights_recipe_is_listed():
    listed = {CONFIGS / name for name in OPENAI_RECIPES}
    for path in CONFIGS.rglob("*.py"):
        parts = path.relative_to(CONFIGS).parts
        if parts[0] in ("_base_", "cocoop", "clip", "ovd", "zeroshot", "vpt") or "tiny-vit" in path.name:
            continue
        assert path in listed or "cloc" in parts, f"{path}: add it to OPENAI_RECIPES (or say why not)"


@pytest.mark.parametrize("name", OPENAI_RECIPES)
def test_openai_recipes_build_quickgelu(name):
    model = Config.fromfile(str(CONFIGS / name)).model
    cfg = load_model_config(model.model_name)
    assert cfg.quick_gelu, f"{name}: {model.model_name} builds nn.GELU; OpenAI's weights need QuickGELU"


def test_cloc_trains_from_scratch():
    model = Config.fromfile(str(CONFIGS / "cloc/cloc_vit-b-16_64xb512_regions.py")).model
    assert model.pretrained is None


def _resizes(node):
    if isinstance(node, dict):
        if node.get("type") in ("Resize", "RandomResizedCrop"):
            yield node
        for value in node.values():
            yield from _resizes(value)
    elif isinstance(node, (list, tuple)):
        for value in node:
            yield from _resizes(value)


@pytest.mark.parametrize("name", OPENAI_RECIPES)
def test_openai_recipes_resize_bicubic(name):
    cfg = Config.fromfile(str(CONFIGS / name))
    loaders = [cfg.get(k) for k in ("train_dataloader", "val_dataloader", "test_dataloader") if cfg.get(k)]
    resizes = [r for loader in loaders for r in _resizes(loader.to_dict() if hasattr(loader, "to_dict") else loader)]
    assert resizes and all(r.get("interpolation") == "bicubic" for r in resizes), name
