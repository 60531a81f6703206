"""Prompt learning under DDP: two CPU processes (gloo) equal one process with the same global batch.

The originals (CoOp, MaPLe, PromptSRC on Dassl) train on one GPU only. Here MaPLe trains through
tools/dist_train.sh on 2 ranks x 2 images and through tools/train.py on 1 process x 4 images, same seed,
same data order (MMEngine's DefaultSampler deals a rank every world_size-th index of one permutation,
so each global batch holds the same images), no random augmentation. DDP averages the ranks' gradients
of their mean losses, which is the gradient of the global mean: the learned prompts must agree.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from tests.helpers import checkpoint_state, initial_state, train_single_and_ddp
from tests.numerics import assert_same_training, longest_sum

ROOT = Path(__file__).resolve().parents[2]
MAPLE = ROOT / "configs" / "maple" / "maple_tiny-vit_1xb4_synthetic-warm-b2n.py"
WORLD = dict(
    colours=["red", "blue"],
    shapes=["circle", "square"],
    domains=["warm"],
    per_class_train=4,
    per_class_val=1,
    per_class_test=1,
    scenes_train=0,
    scenes_val=0,
    scenes_test=0,
)
CONFIG = """
_base_ = [{base!r}]
synthetic_world = {world!r}
model = dict(pretrained=None, plugins=[dict(type="MaPLe", n_ctx=2, depth=3)])
_data = dict(subsample="all", num_shots=4, pipeline=[dict(type="LoadImage")])
train_dataloader = dict(batch_size={batch}, dataset=_data)
val_dataloader = dict(dataset=dict(subsample="all"))
test_dataloader = dict(dataset=dict(subsample="all"))
optim_wrapper = dict(optimizer=dict(lr=0.5))
param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False, begin=0, end=1)]
train_cfg = dict(max_epochs=2, val_interval=10)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2, save_last=True))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""
pytestmark = pytest.mark.slow


def test_two_ranks_equal_one_process_with_the_same_global_batch(tmp_path):
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    runs = train_single_and_ddp(
        tmp_path, lambda batch: CONFIG.format(base=str(MAPLE), world=WORLD, batch=batch), world, global_batch=4
    )
    for _, log in runs.values():
        # 4 classes x 4 shots = 16 images: 4 iterations per epoch at a global batch of 4.
        assert "Epoch(train) [2][4/4]" in log, log[-3000:]
    single, ddp = ({k: v for k, v in checkpoint_state(runs[name][0] / "epoch_2.pth").items() if ".plugins.maple." in k}
                   for name in ("single", "ddp"))  # fmt: skip
    assert sorted(single) == sorted(ddp) and single
    start = initial_state(tmp_path / "single.py")
    for key in single:
        assert not torch.allclose(single[key], start[key]), f"{key} did not train"  # the comparison means something
    # 8 SGD steps at a global batch of 4; the runs differ only in the order of their float sums.
    worst = assert_same_training(ddp, single, start, steps=8, terms=longest_sum("tiny-vit", batch=4))
    print(f"largest DDP - single difference: {worst:.3f} of the reordering tolerance")


def test_the_tolerance_tells_float_reordering_from_a_ddp_bug():
    """8 SGD steps of least squares in float32: one batch of 4 against two halves whose gradients are
    averaged (what DDP does) passes; two halves whose gradients are summed (a missing 1 / world_size) fails."""
    torch.manual_seed(0)
    x, y, start = torch.randn(4, 768), torch.randn(4), {"w": torch.zeros(768)}

    def train(split: bool, average: bool = True) -> dict[str, torch.Tensor]:
        w = start["w"].clone()
        for _ in range(8):
            if split:
                halves = [x[i : i + 2].T @ (x[i : i + 2] @ w - y[i : i + 2]) / 2 for i in (0, 2)]
                grad = (halves[0] + halves[1]) / (2 if average else 1)
            else:
                grad = x.T @ (x @ w - y) / 4
            w = w - 1e-3 * grad
        return {"w": w}

    single = train(split=False)
    assert_same_training(train(split=True), single, start, steps=8, terms=768)
    with pytest.raises(AssertionError, match="more than float reordering explains"):
        assert_same_training(train(split=True, average=False), single, start, steps=8, terms=768)
