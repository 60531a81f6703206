"""Each FG-CLIP / FG-CLIP 2 loss equals its definition, written out with plain Python math on fixed tensors."""

from __future__ import annotations

import math

import pytest
import torch

from clipadapt.tasks.region_losses import (
    batch_hard_loss,
    cmr_loss,
    cmr_margin,
    hard_batch_columns,
    hard_negative_loss,
    region_contrastive_loss,
    tic_loss,
)

# Three unit vectors in 2-D, and three others: fixed "features".
R = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
T = torch.tensor([[0.8, 0.6], [0.0, 1.0], [-0.6, 0.8]])


def _dot(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True))


def _ce(logits: list[float], target: int) -> float:
    """-log softmax(logits)[target], written out."""
    return -logits[target] + math.log(sum(math.exp(v) for v in logits))


def test_region_contrastive_is_the_symmetric_cross_entropy() -> None:
    scale = 2.0
    r, t = R.tolist(), T.tolist()
    rows = [_ce([scale * _dot(r[i], t[j]) for j in range(3)], i) for i in range(3)]
    cols = [_ce([scale * _dot(r[j], t[i]) for j in range(3)], i) for i in range(3)]
    want = (sum(rows) / 3 + sum(cols) / 3) / 2
    got = region_contrastive_loss(R, T, torch.tensor(scale))
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_region_contrastive_ignores_the_masked_negatives_only() -> None:
    scale = 3.0
    ignore = torch.tensor([[True, True, False], [False, False, False], [False, False, False]])  # (0,0) is kept
    r, t = R.tolist(), T.tolist()
    rows = [_ce([scale * _dot(r[i], t[j]) for j in range(3) if not (ignore[i, j] and i != j)], i) for i in range(3)]
    # Row 0 keeps columns 0 and 2: the target stays at position 0.
    cols = []
    for i in range(3):
        kept = [j for j in range(3) if not (ignore[j, i] and i != j)]
        cols.append(_ce([scale * _dot(r[j], t[i]) for j in kept], kept.index(i)))
    want = (sum(rows) / 3 + sum(cols) / 3) / 2
    got = region_contrastive_loss(R, T, torch.tensor(scale), ignore=ignore)
    assert got.item() == pytest.approx(want, rel=1e-6)


def test_hard_negative_loss_is_the_k_way_cross_entropy_with_padding_masked() -> None:
    scale = 5.0
    candidates = torch.stack([T, T.flip(0), T.roll(1, 0)], dim=0)  # [3 regions, 3 candidates, 2]
    valid = torch.tensor([[True, True, True], [True, False, True], [True, False, False]])  # row 2: no negative
    r, c = R.tolist(), candidates.tolist()
    per_row = [_ce([scale * _dot(r[i], c[i][k]) for k in range(3) if valid[i, k]], 0) for i in range(2)]
    got = hard_negative_loss(R, candidates, valid, torch.tensor(scale))
    assert got.item() == pytest.approx(sum(per_row) / 2, rel=1e-6)
    none = hard_negative_loss(R, candidates, torch.tensor([[True, False, False]] * 3), torch.tensor(scale))
    assert none.item() == 0.0


def test_batch_hard_loss_scores_every_text_of_the_batch() -> None:
    scale = 4.0
    texts = torch.cat([T, torch.tensor([[1.0, 0.0]])])  # 4 distinct texts
    targets = torch.tensor([3, 0, 1])
    r, t = R.tolist(), texts.tolist()
    want = sum(_ce([scale * _dot(r[i], t[j]) for j in range(4)], int(targets[i])) for i in range(3)) / 3
    assert batch_hard_loss(R, texts, targets, torch.tensor(scale)).item() == pytest.approx(want, rel=1e-6)


def test_batch_hard_loss_adds_the_phrase_to_region_direction() -> None:
    scale = 4.0
    r, p = R.tolist(), T.tolist()  # phrase i belongs to region i
    forward = sum(_ce([scale * _dot(r[i], p[j]) for j in range(3)], i) for i in range(3)) / 3
    backward = sum(_ce([scale * _dot(p[i], r[j]) for j in range(3)], i) for i in range(3)) / 3
    got = batch_hard_loss(R, T, torch.arange(3), torch.tensor(scale), phrases=T)
    assert got.item() == pytest.approx((forward + backward) / 2, rel=1e-6)


def test_hard_batch_columns_are_the_hard_boxes_phrases_then_all_their_negatives() -> None:
    # 3 boxes; box 1 has no negative; box 2's negatives repeat box 0's (duplicates kept)
    candidates = torch.arange(3 * 3 * 2, dtype=torch.float32).view(3, 3, 2)
    candidates[2, 1:] = candidates[0, 1:]
    valid = torch.tensor([[True, True, True], [True, False, False], [True, True, False]])
    rows, texts, targets = hard_batch_columns(candidates, valid)
    assert rows.tolist() == [True, False, True] and targets.tolist() == [0, 1]
    want = torch.stack([candidates[0, 0], candidates[2, 0], candidates[0, 1], candidates[0, 2], candidates[2, 1]])
    assert torch.equal(texts, want)


def test_cmr_margin_is_over_boxes_with_negatives_and_can_be_given() -> None:
    positive = torch.tensor([3.0, 1.0, 7.0])
    negatives = torch.tensor([[2.0, 0.5], [1.5, 9.0], [0.0, 0.0]])
    valid = torch.tensor([[True, True], [True, False], [False, False]])  # box 2 has no negative
    assert cmr_margin(positive, negatives, valid).item() == pytest.approx(2 - 4 / 3, rel=1e-6)
    # a given margin (FG-CLIP 2: the previous step's) replaces this batch's
    pairs = [(3.0, 2.0), (3.0, 0.5), (1.0, 1.5)]
    want = sum(max(0.0, 0.25 + neg - pos) for pos, neg in pairs) / 3
    assert cmr_loss(positive, negatives, valid, tau=0.25).item() == pytest.approx(want, rel=1e-6)


def test_cmr_hinge_uses_the_mean_margin_clamped() -> None:
    positive = torch.tensor([3.0, 1.0])
    negatives = torch.tensor([[2.0, 0.5], [1.5, 9.0]])
    valid = torch.tensor([[True, True], [True, False]])
    tau = (3.0 + 1.0) / 2 - (2.0 + 0.5 + 1.5) / 3  # 2 - 4/3
    pairs = [(3.0, 2.0), (3.0, 0.5), (1.0, 1.5)]
    want = sum(max(0.0, tau + neg - pos) for pos, neg in pairs) / 3
    assert cmr_loss(positive, negatives, valid).item() == pytest.approx(want, rel=1e-6)
    # A margin below zero is clamped to 0: then only violated pairs count.
    flipped = cmr_loss(torch.tensor([0.0]), torch.tensor([[1.0]]), torch.tensor([[True]]))
    assert flipped.item() == pytest.approx(1.0)


def test_tic_drops_self_and_near_duplicates_then_logsumexp_of_the_top_k() -> None:
    texts = torch.nn.functional.normalize(
        torch.tensor([[1.0, 0.0, 0.0], [0.999, 0.02, 0.0], [0.5, 0.5, 0.7], [0.0, 0.2, 1.0], [-1.0, 0.3, 0.1]]), dim=1
    )
    t = texts.tolist()
    k = 2
    want = 0.0
    for i in range(5):
        row = []
        for j in range(5):
            s = _dot(t[i], t[j])
            row.append(0.0 if i == j or s > 0.95 else s)
        top = sorted(row, reverse=True)[:k]
        want += math.log(sum(math.exp(v) for v in top))
    assert tic_loss(texts, topk=k, duplicate_threshold=0.95).item() == pytest.approx(want / 5, rel=1e-6)
    # Rows 0 and 1 are near-duplicates: their similarity never enters the loss.
    assert _dot(t[0], t[1]) > 0.95
    # More neighbours than phrases: every other phrase counts.
    assert tic_loss(texts, topk=10).item() == pytest.approx(tic_loss(texts, topk=4).item())
