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

from pathlib import Path

import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from tests.helpers import checkpoint_state, initial_state, train_single_and_ddp
from tests.numerics import assert_same_training, longest_sum

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


def test_two_ranks_equal_one_process_with_the_same_global_batch(tmp_path):
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    runs = train_single_and_ddp(
        tmp_path, lambda batch: CONFIG.format(base=str(CLIP_CONFIG), world=WORLD, batch=batch), world, global_batch=8
    )
    for _, log in runs.values():
        assert "Epoch(train) [3][1/1]" in log, log[-3000:]  # 8 scenes: 1 iteration per epoch at a global batch of 8
    single, ddp = (checkpoint_state(runs[name][0] / "epoch_3.pth") for name in ("single", "ddp"))
    assert sorted(single) == sorted(ddp) and single
    start = initial_state(tmp_path / "single.py")
    moved = [k for k in single if not torch.equal(single[k], start[k])]
    assert len(moved) > len(single) // 2, "most weights must train for the comparison to mean something"
    # 3 SGD steps at a global batch of 8; the runs differ only in the order of their float sums.
    worst = assert_same_training(ddp, single, start, steps=3, terms=longest_sum("tiny-vit", batch=8))
    print(f"largest DDP - single difference: {worst:.3f} of the reordering tolerance")
