"""The block loop with plugin hooks traces under torch.compile without graph breaks."""

from __future__ import annotations

import torch
import torch._dynamo

import clipadapt


def test_vision_tower_with_hooks_has_no_graph_break() -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="VPT", num_tokens=2, depth=3)]).eval()
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model.visual)(torch.randn(2, 3, 64, 64))
    assert explanation.graph_break_count == 0, explanation.break_reasons


def test_text_block_loop_has_no_graph_break() -> None:
    model = clipadapt.create_model("tiny-vit").eval()
    x = torch.randn(2, 9, 128)
    torch._dynamo.reset()
    explanation = torch._dynamo.explain(model.text.transformer)(x)
    assert explanation.graph_break_count == 0, explanation.break_reasons
