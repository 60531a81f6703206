"""Contrastive training under DDP: two CPU processes (gloo) equal one process with the same global batch.

ImageTextContrastive gathers the image and text features of every rank, so each rank computes the
InfoNCE of the whole global batch (the same loss value as one process). Its gradient flows only
through the rank's own features; DDP then averages the ranks' gradients. The tiny CLIP trains from a
random init with SGD at a constant learning rate (no clipping, no random augmentation) on 2 ranks x 4
captioned scenes and on 1 process x 8: every weight must agree after a few steps. Plain SGD makes the
test sensitive to the scale of the gradient as well as its direction (AdamW would hide a constant
factor such as 1 / world_size).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine import enable_safe_resume

ROOT = Path(__file__).resolve().parents[2]
CLIP_CONFIG = ROOT / "configs" / "clip" / "clip_tiny-vit_1xb64_synthetic.py"
WORLD = dict(
    colours=["red", "blue"],
    shapes=["circle", "square"],
    domains=["warm"],
    per_class_train=1,
    per_class_val=1,
    per_class_test=1,
    scenes_train=8,
    scenes_val=4,
    scenes_test=4,
)
CONFIG = """
_base_ = [{base!r}]
synthetic_world = {world!r}
_pipeline = [dict(type="LoadImage"), dict(type="Resize", size=64)]
train_dataloader = dict(
    batch_size={batch},
    dataset=dict(_delete_=True, type="ImageTextDataset", data_root="synthetic://", csv_file="captions_train.csv",
                 pipeline=_pipeline),
)
optim_wrapper = dict(
    _delete_=True,
    type="OptimWrapper",
    constructor="TrainableOptimWrapperConstructor",
    optimizer=dict(type="SGD", lr=0.5, momentum=0.0, weight_decay=0.0),
)
param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False, begin=0, end=1)]
train_cfg = dict(max_epochs=3, val_interval=10)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=3, save_last=True))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""
pytestmark = pytest.mark.slow


def _weights(path: Path) -> dict[str, torch.Tensor]:
    enable_safe_resume()
    return torch.load(path, map_location="cpu", weights_only=True)["state_dict"]


def _initial_weights(config: Path) -> dict[str, torch.Tensor]:
    """The tiny CLIP as built from the same seed, before any step."""
    from mmengine.config import Config
    from mmengine.runner import set_random_seed

    from clipadapt.registry import MODELS

    cfg = Config.fromfile(str(config))
    set_random_seed(0)
    return {k: v.clone() for k, v in MODELS.build(cfg.model).state_dict().items()}


def test_two_ranks_equal_one_process_with_the_same_global_batch(tmp_path):
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    env = dict(os.environ, CLIPADAPT_DATA=str(world), CLIPADAPT_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")
    runs = {}
    for name, batch, procs in (("single", 8, 1), ("ddp", 4, 2)):
        config = tmp_path / f"{name}.py"
        config.write_text(CONFIG.format(base=str(CLIP_CONFIG), world=WORLD, batch=batch))
        work_dir = tmp_path / name
        if procs == 1:
            cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(config), "--work-dir", str(work_dir)]
        else:
            cmd = ["bash", str(ROOT / "tools" / "dist_train.sh"), str(config), str(procs), "--work-dir", str(work_dir)]
        run_env = dict(env, PYTHON=sys.executable, MASTER_PORT=str(28600 + os.getpid() % 1000))
        done = subprocess.run(cmd, env=run_env, capture_output=True, text=True, timeout=600)
        log = done.stdout + done.stderr
        assert done.returncode == 0, log[-4000:]
        # 8 scenes: 1 iteration per epoch at a global batch of 8.
        assert "Epoch(train) [3][1/1]" in log, log[-3000:]
        assert ("Distributed training: True" in log) == (procs > 1)
        runs[name] = _weights(work_dir / "epoch_3.pth")
    single, ddp = runs["single"], runs["ddp"]
    assert sorted(single) == sorted(ddp) and single
    start = _initial_weights(tmp_path / "single.py")
    moved = [k for k in single if not torch.equal(single[k], start[k])]
    assert len(moved) > len(single) // 2, "most weights must train for the comparison to mean something"
    for key in single:
        torch.testing.assert_close(ddp[key], single[key], rtol=1e-4, atol=1e-5, msg=key)
