"""tools/train.py and tools/test.py run the open-vocabulary detection config end to end.

A small synthetic world (colour categories red and green are base, blue is novel) and a random-weight
tiny CLIP: the run must train on base classes only, switch to the full vocabulary for testing, and
report MMDetection's OV-COCO metric for base and novel classes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from clipadapt.datasets.synthetic import ensure_synthetic_world

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "configs" / "ovd" / "ovrcnn_tiny-vit_1xb8_synthetic-colour.py"
WORLD = dict(
    colours=["red", "green", "blue"],
    shapes=["circle", "square"],
    per_class_train=1,
    per_class_val=1,
    per_class_test=1,
    scenes_train=8,
    scenes_val=2,
    scenes_test=4,
    max_objects=3,
)
SMALL = f"""
_base_ = [{str(CONFIG)!r}]
synthetic_world = {WORLD!r}
_clip = dict(model_name="tiny-vit", pretrained=None)
_size = 96
model = dict(
    backbone=dict(clip=_clip),
    roi_head=dict(
        bbox_head=dict(num_classes=2, cls_predictor_cfg=dict(clip=_clip)),
        region_scorer=dict(clip=_clip),
    ),
)
_test = dict(metainfo=dict(classes=("red", "green", "blue"), base_classes=("red", "green"), novel_classes=("blue",)))
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(metainfo=dict(classes=("red", "green"))))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False, dataset=_test)
test_dataloader = val_dataloader
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(logger=dict(interval=1), visualization=dict(type="DetVisualizationHook"))
_vis_backends = [dict(type="LocalVisBackend")]
visualizer = dict(vis_backends=_vis_backends)
"""


@pytest.mark.slow
def test_train_then_test_report_base_and_novel_ap50(tmp_path):
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    config = tmp_path / "ovd_small.py"
    config.write_text(SMALL)
    env = dict(os.environ, CLIPADAPT_DATA=str(world), CLIPADAPT_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    work = tmp_path / "run"
    train = [sys.executable, str(ROOT / "tools" / "train.py"), str(config), "--work-dir", str(work)]
    done = subprocess.run(train, env=env, capture_output=True, text=True, timeout=600)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "Epoch(train) [1][2/2]" in log  # 8 scenes with a base-colour object, batch 4
    assert "train vocabulary: 2 classes ['red', 'green'], novel []" in log
    assert "val vocabulary: 3 classes ['red', 'green', 'blue'], novel ['blue']" in log
    assert "coco/novel_ap50" in log
    out = tmp_path / "metrics.json"
    test = [sys.executable, str(ROOT / "tools" / "test.py"), str(config), str(work / "epoch_1.pth"),
            "--work-dir", str(tmp_path / "eval"), "--out", str(out)]  # fmt: skip
    done = subprocess.run(test, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    assert "test vocabulary: 3 classes" in done.stdout + done.stderr
    metrics = json.loads(out.read_text())
    for key in ("coco/base_ap50", "coco/novel_ap50"):
        assert 0.0 <= metrics[key] <= 1.0, metrics
