"""RegionAlign: region features from the value-path dense map, FG-CLIP 2's dense head, what trains, configs."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from mmengine.config import Config

import clipadapt
from clipadapt.engine.config_check import check_config
from clipadapt.models.dense import encode_regions, forward_dense, roi_region_features
from clipadapt.plugins import PluginCompatibilityError

CONFIGS = Path(__file__).resolve().parents[3] / "configs"
BOXES = [torch.tensor([[0.0, 0.0, 24.0, 40.0], [30.0, 10.0, 64.0, 64.0]]), torch.tensor([[8.0, 16.0, 48.0, 56.0]])]


def _model(**kwargs) -> clipadapt.CLIP:
    torch.manual_seed(0)
    return clipadapt.create_model("tiny-vit", plugins=[dict(type="RegionAlign", **kwargs)]).eval()


def _images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64)


def test_untrained_dense_head_gives_the_base_region_features() -> None:
    model = _model(dense_head=True)
    with torch.no_grad():
        got = encode_regions(model, _images(), BOXES)
        base = roi_region_features(model, forward_dense(model, _images()), BOXES, value_path=True)
    torch.testing.assert_close(got, base, atol=0, rtol=0)
    assert model.plugins["region_align"].dense_proj is not model.visual.proj


def test_value_path_switch_changes_the_features_and_not_the_global_ones() -> None:
    plain, value = _model(value_path=False), _model(value_path=True)
    with torch.no_grad():
        a, b = encode_regions(plain, _images(), BOXES), encode_regions(value, _images(), BOXES)
        torch.testing.assert_close(plain.encode_image(_images()), value.encode_image(_images()))
    assert (a - b).abs().max() > 1e-3


def test_trainable_selects_base_parameters() -> None:
    everything = _model()
    assert all(p.requires_grad for p in everything.parameters())
    head_only = _model(trainable="none", dense_head=True)
    assert [n for n, p in head_only.named_parameters() if p.requires_grad] == [
        "plugins.region_align.dense_proj",
        "plugins.region_align.dense_norm.weight",
        "plugins.region_align.dense_norm.bias",
    ]
    last = _model(trainable=["visual.transformer.resblocks.3.", "visual.proj"])
    trained = {n for n, p in last.named_parameters() if p.requires_grad}
    assert "visual.proj" in trained and not any(n.startswith(("text.", "visual.conv1")) for n in trained)
    with pytest.raises(PluginCompatibilityError, match="trains nothing"):
        _model(trainable="none")
    with pytest.raises(ValueError, match=r"trainable prefixes \['visual.blocks'\] match no parameter"):
        _model(trainable=["visual.blocks"])


def test_gradients_reach_the_dense_head_through_region_features() -> None:
    model = _model(trainable="none", dense_head=True).train()
    encode_regions(model, _images(), BOXES).sum().backward()
    plugin = model.plugins["region_align"]
    assert plugin.dense_proj.grad is not None and plugin.dense_proj.grad.abs().sum() > 0


@pytest.mark.parametrize(
    "name",
    [
        "fgclip/fgclip2_tiny-vit_1xb32_synthetic-regions.py",
        "fgclip/fgclip2_vit-b-16_8xb512_regions.py",
        "cloc/cloc_tiny-vit_1xb32_synthetic-regions.py",
        "cloc/cloc_vit-b-16_64xb512_regions.py",
    ],
)
def test_region_configs_pass_the_key_check(name: str) -> None:
    cfg = Config.fromfile(str(CONFIGS / name))
    check_config(cfg)
    assert cfg.model.type == "RegionTextAlignment"
