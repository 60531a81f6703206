"""The Long-CLIP options that make the original's recipe: logit scale set to 4.6052 and never clamped,
short captions with newlines replaced first, and the frozen stretch without PCM that CLIP-MoE composes."""

from __future__ import annotations

import math

import pytest
import torch

import clipadapt
from clipadapt.tasks import ImageTextContrastive
from clipadapt_plugins.longclip import LongCLIP
from clipadapt_plugins.longclip.plugin import first_sentence


def test_first_sentence_replaces_newlines_before_splitting() -> None:
    # train/sharegpt4v.py: caption.replace("\n", " ") then caption.split(". ")[0]
    caption = "A red circle.\nA blue star. A green square."
    assert first_sentence(caption) == "A red circle"  # the raw caption would give "A red circle.\nA blue star"
    assert first_sentence("A red\ncircle. Then") == "A red circle"


def test_log_logit_scale_sets_the_original_value(tiny_pair) -> None:
    _, _, weights = tiny_pair
    model = clipadapt.create_model(
        "tiny-vit", pretrained=weights, plugins=[dict(type="LongCLIP", logit_scale=None, log_logit_scale=4.6052)]
    )
    assert model.logit_scale.item() == pytest.approx(4.6052, abs=1e-6)
    with pytest.raises(ValueError, match="not both"):
        LongCLIP(logit_scale=100.0, log_logit_scale=4.6052)


@pytest.mark.parametrize("bound, clamped", [(100.0, True), (None, False)])
def test_the_task_clamps_the_logit_scale_only_with_a_bound(tiny_pair, bound, clamped) -> None:
    _, _, weights = tiny_pair
    task = ImageTextContrastive("tiny-vit", pretrained=str(weights), max_logit_scale=bound).train()
    with torch.no_grad():
        task.clip.logit_scale.fill_(5.0)  # above ln 100
    task(torch.randn(2, 3, 64, 64), {"caption": ["a red circle", "a blue star"]}, mode="loss")
    expected = math.log(100.0) if clamped else 5.0
    assert task.clip.logit_scale.item() == pytest.approx(expected, abs=1e-6)


def test_frozen_stretch_without_pcm(tiny_pair) -> None:
    _, _, weights = tiny_pair
    plugin = dict(type="LongCLIP", trainable="none", train_positions=False, pcm=False, logit_scale=None)
    task = ImageTextContrastive("tiny-vit", pretrained=str(weights), plugins=[plugin])
    assert task.clip.context_length == 248
    assert not any(p.requires_grad for p in task.clip.parameters())
    losses = task(torch.randn(2, 3, 64, 64), {"caption": ["a red circle", "a blue star"]}, mode="loss")
    assert set(losses) == {"loss_contrastive"}  # the task's InfoNCE only: no PCM terms, no error
