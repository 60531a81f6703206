"""FusedAttention against the plain reference computation, masks, precision and compile."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from clipadapt.models.attention import FusedAttention, reference_attention


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("length", [1, 7, 50])
def test_fused_equals_reference_path(causal: bool, length: int) -> None:
    torch.manual_seed(0)
    attn = FusedAttention(64, 4, causal=causal)
    x = torch.randn(3, length, 64)
    fused = attn(x)
    attn.fused_attn = False
    torch.testing.assert_close(fused, attn(x), atol=1e-6, rtol=1e-5)


def test_reference_matches_multihead_attention() -> None:
    """The reference path is the definition: nn.MultiheadAttention with the same weights agrees."""
    torch.manual_seed(0)
    mha = torch.nn.MultiheadAttention(32, 4, batch_first=True)
    attn = FusedAttention(32, 4, causal=True)
    attn.qkv.weight.data.copy_(mha.in_proj_weight)
    attn.qkv.bias.data.copy_(mha.in_proj_bias)
    attn.out_proj.load_state_dict(mha.out_proj.state_dict())
    attn.fused_attn = False
    x = torch.randn(2, 9, 32)
    mask = torch.full((9, 9), float("-inf")).triu(1)
    expected = mha(x, x, x, attn_mask=mask, need_weights=False)[0]
    torch.testing.assert_close(attn(x), expected, atol=1e-6, rtol=1e-5)


def test_causal_attention_builds_no_mask(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = []
    original = F.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append((len(args), kwargs.get("attn_mask"), kwargs.get("is_causal")))
        return original(*args, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    FusedAttention(32, 2, causal=True)(torch.randn(2, 5, 32))
    FusedAttention(32, 2, causal=False)(torch.randn(2, 5, 32))
    assert seen == [(3, None, True), (3, None, False)]


def test_causal_prefix_is_independent_of_suffix() -> None:
    torch.manual_seed(0)
    attn = FusedAttention(32, 2, causal=True)
    x = torch.randn(1, 10, 32)
    y = x.clone()
    y[:, 6:] = torch.randn(1, 4, 32)
    torch.testing.assert_close(attn(x)[:, :6], attn(y)[:, :6])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_low_precision_autocast_close_to_fp32(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    attn = FusedAttention(64, 4, causal=True)
    x = torch.randn(2, 16, 64)
    expected = attn(x)
    with torch.autocast("cpu", dtype=dtype):
        out = attn(x)
    assert out.dtype == dtype
    torch.testing.assert_close(out.float(), expected, atol=3e-2, rtol=3e-2)


def test_value_path_is_attention_without_query_key() -> None:
    """With one token, softmax over one key is 1: attention equals the value path."""
    torch.manual_seed(0)
    attn = FusedAttention(32, 4)
    x = torch.randn(5, 1, 32)
    torch.testing.assert_close(attn.value_path(x), attn(x), atol=1e-6, rtol=1e-5)


def test_reference_attention_matches_manual_softmax() -> None:
    q, k, v = torch.randn(3, 1, 1, 3, 2).unbind(0)
    scores = (q @ k.transpose(-1, -2)) / 2**0.5
    scores[..., 0, 1:] = float("-inf")
    scores[..., 1, 2] = float("-inf")
    torch.testing.assert_close(reference_attention(q, k, v, causal=True), scores.softmax(-1) @ v)
