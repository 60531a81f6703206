"""Knowledge-preserved stretching equals the original's loop and its closed form; the frozen prefix trains like
the original's frozen table plus trainable copy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn.utils import parametrize

from clipadapt_plugins.longclip import FrozenPrefix, stretch_positions, stretched_length


def original_loop(pre: np.ndarray) -> np.ndarray:
    """``model/longclip.py::load_from_clip`` of beichenzbc/Long-CLIP, transcribed line by line (77 -> 248)."""
    keep = 20
    new = np.zeros((4 * pre.shape[0] - 3 * keep, pre.shape[1]), dtype=pre.dtype)
    for i in range(keep):
        new[i] = pre[i]
    for i in range(pre.shape[0] - 1 - keep):
        new[4 * i + keep] = pre[i + keep]
        new[4 * i + 1 + keep] = 3 * pre[i + keep] / 4 + 1 * pre[i + 1 + keep] / 4
        new[4 * i + 2 + keep] = 2 * pre[i + keep] / 4 + 2 * pre[i + 1 + keep] / 4
        new[4 * i + 3 + keep] = 1 * pre[i + keep] / 4 + 3 * pre[i + 1 + keep] / 4
    n = pre.shape[0]
    new[4 * n - 3 * keep - 4] = pre[n - 1] + 0 * (pre[n - 1] - pre[n - 2]) / 4
    new[4 * n - 3 * keep - 3] = pre[n - 1] + 1 * (pre[n - 1] - pre[n - 2]) / 4
    new[4 * n - 3 * keep - 2] = pre[n - 1] + 2 * (pre[n - 1] - pre[n - 2]) / 4
    new[4 * n - 3 * keep - 1] = pre[n - 1] + 3 * (pre[n - 1] - pre[n - 2]) / 4
    return new


def closed_form(pre: np.ndarray, keep: int, ratio: float, length: int) -> np.ndarray:
    """x(p) = p below keep, keep + (p - keep) / ratio above; linear between rows, extended past the last row."""
    source = pre.shape[0]
    p = np.arange(length, dtype=np.float64)
    x = np.where(p < keep, p, keep + (p - keep) / ratio)
    inside = np.stack(
        [np.interp(np.minimum(x, source - 1), np.arange(source), pre[:, d]) for d in range(pre.shape[1])], 1
    )
    slope = pre[source - 1] - pre[source - 2]
    return inside + np.maximum(x - (source - 1), 0)[:, None] * slope[None, :]


def test_77_to_248_equals_the_original_loop() -> None:
    torch.manual_seed(0)
    pre = torch.randn(77, 512)
    new = stretch_positions(pre, keep=20, ratio=4)
    assert new.shape == (248, 512) and new.dtype == pre.dtype
    assert torch.equal(new[:20], pre[:20])  # kept rows, bit for bit
    assert torch.equal(new[20:244:4], pre[20:76])  # new[20 + 4i] = pre[20 + i]
    assert torch.equal(new[244], pre[76])
    reference = torch.from_numpy(original_loop(pre.double().numpy()))
    torch.testing.assert_close(new.double(), reference, rtol=0, atol=1e-6)  # fp32 rounding of the fp64 loop
    assert not torch.equal(new[21], pre[21])  # the rest really moved


@pytest.mark.parametrize(
    ("source", "keep", "ratio", "width"),
    [(77, 20, 4, 8), (77, 10, 2, 16), (32, 5, 3, 4), (16, 0, 2, 8), (76, 20, 2.5, 8), (40, 39, 4, 8), (77, 20, 1, 8)],
)
def test_generalised_stretch_equals_the_closed_form(source: int, keep: int, ratio: float, width: int) -> None:
    torch.manual_seed(source + keep)
    pre = torch.randn(source, width)
    length = stretched_length(source, keep, ratio)
    new = stretch_positions(pre, keep=keep, ratio=ratio)
    assert new.shape == (length, width)
    assert torch.equal(new[:keep], pre[:keep])
    anchors = [
        p for p in range(keep, length) if float((p - keep) / ratio).is_integer() and keep + (p - keep) / ratio < source
    ]
    assert torch.equal(new[anchors], pre[[keep + int((p - keep) / ratio) for p in anchors]])
    torch.testing.assert_close(new.double(), torch.from_numpy(closed_form(pre.double().numpy(), keep, ratio, length)))
    if ratio == 1:
        assert torch.equal(new, pre)


def test_explicit_length_extrapolates_along_the_last_segment() -> None:
    pre = torch.randn(10, 3)
    new = stretch_positions(pre, keep=2, ratio=2, length=30)  # default would be 18 rows
    torch.testing.assert_close(new.double(), torch.from_numpy(closed_form(pre.double().numpy(), 2, 2, 30)))


def test_fp16_keeps_its_dtype_and_exact_rows() -> None:
    pre = torch.randn(77, 32).half()
    new = stretch_positions(pre)
    assert new.dtype == torch.float16 and torch.equal(new[:20], pre[:20]) and torch.equal(new[244], pre[76])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(keep=77), r"keep must be in \[0, 76\]"),
        (dict(ratio=0.5), "ratio must be >= 1"),
        (dict(ratio=4, length=50), "shorter than the 77 source positions"),
        (dict(keep=20, ratio=2.3), "not a whole number; pass context_length"),
    ],
)
def test_invalid_stretch_is_refused(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        stretch_positions(torch.randn(77, 4), **kwargs)


def test_frozen_prefix_trains_like_the_original_frozen_table_plus_trainable_copy() -> None:
    """AdamW with weight decay: the same effective table as ``pe * mask1 + pe_res * mask2`` step after step."""
    torch.manual_seed(0)
    keep, table = 5, torch.randn(24, 6)
    weights = torch.randn(24, 6)

    def loss_of(effective: torch.Tensor) -> torch.Tensor:
        return ((effective * weights).sum(dim=1) ** 2).sum()

    ours = torch.nn.Module()
    ours.pe = torch.nn.Parameter(table.clone())
    parametrize.register_parametrization(ours, "pe", FrozenPrefix(table[:keep]), unsafe=True)
    frozen = table.clone()  # the original: a frozen table and a trainable full copy, mixed by masks
    residual = torch.nn.Parameter(table.clone())
    mask = (torch.arange(24) < keep).float()[:, None]
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-2, weight_decay=0.1)
    opt_ref = torch.optim.AdamW([residual], lr=1e-2, weight_decay=0.1)
    for _ in range(5):
        for opt, effective in ((opt_ours, lambda: ours.pe), (opt_ref, lambda: frozen * mask + residual * (1 - mask))):
            opt.zero_grad()
            loss_of(effective()).backward()
            opt.step()
    reference = frozen * mask + residual.detach() * (1 - mask)
    assert torch.equal(ours.pe[:keep], table[:keep])
    torch.testing.assert_close(ours.pe.detach(), reference, rtol=0, atol=1e-6)
    assert not torch.allclose(ours.pe[keep:], table[keep:])


def test_frozen_prefix_refuses_new_values_for_the_frozen_rows() -> None:
    module = torch.nn.Module()
    module.pe = torch.nn.Parameter(torch.randn(8, 2))
    parametrize.register_parametrization(module, "pe", FrozenPrefix(module.pe.detach()[:3]), unsafe=True)
    with pytest.raises(ValueError, match="first 3 positions are frozen"):
        module.pe = torch.zeros(8, 2)
