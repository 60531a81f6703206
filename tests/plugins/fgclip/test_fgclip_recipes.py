"""FG-CLIP's data rules and presets: the first 4 boxes, "a photo of " before the short caption, v1's loss
weights in the v1 recipe config, FG-CLIP 2's in the task's defaults."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from mmengine.config import Config
from PIL import Image

from clipadapt.datasets import RegionDataset
from clipadapt.tasks.region import DEFAULT_LOSS_WEIGHTS, FGCLIP_V1_LOSS_WEIGHTS

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "fgclip"


def _dataset(root: Path, **kwargs) -> RegionDataset:
    Image.fromarray(torch.zeros(48, 64, 3, dtype=torch.uint8).numpy()).save(root / "a.png")
    anns = [{"id": k, "image_id": 1, "bbox": [k, k, 5, 5], "phrase": f"p{k}"} for k in range(9)]
    image = {"id": 1, "file_name": "a.png", "width": 64, "height": 48, "caption": "red circle"}
    path = root / "regions.json"
    path.write_text(json.dumps({"images": [image], "annotations": anns}))
    return RegionDataset(str(root), str(path), **kwargs)


def test_first_four_boxes_and_the_caption_prefix(tmp_path: Path) -> None:
    dataset = _dataset(tmp_path, max_boxes=4, box_selection="first", caption_prefix="a photo of ")
    for _ in range(3):  # the same boxes every time: bbox_info[:4]
        sample = dataset[0]["data_samples"]
        assert sample["phrases"] == ["p0", "p1", "p2", "p3"]
        assert sample["caption"] == "a photo of red circle"


def test_the_v1_recipe_uses_v1_weights_and_the_v2_recipe_the_defaults() -> None:
    assert dict(region=0.1, hard_negative=0.5, hard_batch=0.0, cmr=0.0, tic=0.0) == FGCLIP_V1_LOSS_WEIGHTS
    v1 = Config.fromfile(str(CONFIGS / "fgclip_vit-b-16_8xb512_regions.py"))
    assert dict(v1.model.loss_weights) == FGCLIP_V1_LOSS_WEIGHTS
    assert [p["type"] for p in v1.model.plugins] == ["LongCLIP", "RegionAlign"] and v1.model.plugins[1]["value_path"]
    v2 = Config.fromfile(str(CONFIGS / "fgclip2_vit-b-16_8xb512_regions.py"))
    assert "loss_weights" not in v2.model  # FG-CLIP 2's: 0.2 region, 0.5 x (3 CE11 + 0.6 batch CE + 0.4 CMR), 0.1 TIC
    fgclip2 = {"global": 1.0, "long": 1.0, "region": 0.2, "tic": 0.1}
    fgclip2 |= {"hard_negative": 0.5 * 3, "hard_batch": 0.5 * 0.6, "cmr": 0.5 * 0.4}
    assert fgclip2 == DEFAULT_LOSS_WEIGHTS
    for cfg in (v1, v2):
        data = cfg.train_dataloader.dataset
        assert (data.max_boxes, data.box_selection, data.caption_prefix) == (4, "first", "a photo of ")
        assert cfg.model.max_logit_scale is None  # FG-CLIP never clamps its logit scales
