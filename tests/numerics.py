"""Tolerances that follow from float32 arithmetic, for tests that compare two runs of the same training.

Two runs that differ only in how their sums are split (one process against two DDP ranks, one thread
against several) compute every sum in another order. Reordering a sum of ``n`` float32 terms changes it
by at most about ``n * eps`` of the sum of the terms' magnitudes (Higham, *Accuracy and Stability of
Numerical Algorithms*, recursive summation, gamma_n). Each SGD step carries such an error into the
update, and to first order the errors of ``steps`` updates add. So the runs' weights may differ by
``steps * n * eps`` of how far the weights moved, and by no more unless something else differs. A real
bug (a gradient not averaged over ranks, a rank's samples missing, another sampling order) moves the
weights by a sizeable fraction of their displacement, hundreds of times more.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
EPS32 = torch.finfo(torch.float32).eps


def longest_sum(model: str, batch: int) -> int:
    """The most terms any sum of a training step of clipadapt's ``model`` config adds, for ``batch`` samples.

    The MLP's second GEMM adds ``4 * width`` products; a weight gradient adds one product per token of
    the batch (``batch * tokens``).
    """
    cfg = json.loads((ROOT / "clipadapt" / "model_configs" / f"{model}.json").read_text())
    vision, text = cfg["vision_cfg"], cfg["text_cfg"]
    mlp = 4 * max(vision["width"], text["width"])
    patches = (vision["image_size"] // vision["patch_size"]) ** 2 + 1
    return max(mlp, batch * max(patches, text.get("context_length", 77)))


def reordering_tolerance(steps: int, terms: int) -> float:
    """Relative bound on the difference of two trainings that differ in the order of their sums only."""
    return steps * terms * EPS32


def assert_same_training(
    got: dict[str, torch.Tensor],
    want: dict[str, torch.Tensor],
    start: dict[str, torch.Tensor],
    steps: int,
    terms: int,
) -> float:
    """Each tensor of ``got`` equals ``want`` within :func:`reordering_tolerance` of how far it moved.

    The displacement is the tensor's largest move from ``start``, but at least a ``1 / steps`` share of
    the largest move in the model: a tensor whose gradient terms cancel moves little while its rounding
    error scales with the terms, and the other tensors' errors reach it through the forward pass.
    Returns the largest difference seen, as a fraction of the tolerance (0.12 and 0.03 in the two DDP
    tests on a two-core x86 machine).
    """
    tolerance = reordering_tolerance(steps, terms)
    moves = {key: float((want[key] - start[key]).abs().max()) for key in want}
    overall = max(moves.values())
    assert overall > 0, "nothing trained: the comparison would mean nothing"
    worst = 0.0
    for key in want:
        moved = max(moves[key], overall / steps)
        diff = float((got[key] - want[key]).abs().max())
        worst = max(worst, diff / (tolerance * moved))
        assert diff <= tolerance * moved, (
            f"{key}: the runs differ by {diff:.3g}, more than float reordering explains "
            f"({steps} steps x {terms} terms x eps = {tolerance:.2g} of the {moved:.3g} the weights moved)"
        )
    return worst
