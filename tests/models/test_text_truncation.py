"""Exact dynamic truncation: the text tower runs only to the longest EOT of the batch."""

from __future__ import annotations

import torch

import clipadapt
from clipadapt.models import TowerContext
from clipadapt.plugins import Plugin


class LengthRecorder(Plugin):
    prefix = "recorder"
    hook_towers = {"block": ("text",)}

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        self.lengths.append(x.shape[1])
        return x


def test_truncated_features_equal_full_length(tiny_pair) -> None:
    _, model, _ = tiny_pair
    tokens = clipadapt.get_tokenizer(model=model)(["a red circle.", "a photo of a small striped blue star."])
    with torch.no_grad():
        truncated = model.encode_text(tokens)
        model.text.dynamic_truncation = False
        full = model.encode_text(tokens)
    # identical up to fp32 summation order (kernels block differently for other lengths)
    torch.testing.assert_close(truncated, full, atol=1e-5, rtol=0)


def test_tower_runs_to_longest_eot_only() -> None:
    recorder = LengthRecorder()
    model = clipadapt.create_model("tiny-vit", plugins=[recorder]).eval()
    tokens = clipadapt.get_tokenizer(model=model)(["red", "a photo of a red circle"])
    longest = int(tokens.argmax(-1).max()) + 1
    with torch.no_grad():
        model.encode_text(tokens)
    assert longest < 12
    assert recorder.lengths == [longest] * model.text.transformer.layers
    recorder.lengths.clear()
    model.text.dynamic_truncation = False
    with torch.no_grad():
        model.encode_text(tokens)
    assert recorder.lengths == [77] * model.text.transformer.layers


def test_tokens_output_keeps_full_length(tiny_pair) -> None:
    _, model, _ = tiny_pair
    tokens = clipadapt.get_tokenizer(model=model)(["red"])
    with torch.no_grad():
        out = model.forward_text(tokens, output_tokens=True)
    assert out.tokens.shape == (1, 77, 128)
    assert out.eot_index.tolist() == [2]
