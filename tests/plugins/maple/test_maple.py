"""MaPLe's token layout, parameter count and build-time errors."""

from __future__ import annotations

import pytest
import torch

import clipadapt
from clipadapt.plugins import PluginCompatibilityError
from tests.plugins.probe import Probe


def _run(depth: int, n_ctx: int = 2):
    probe = Probe()
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="MaPLe", n_ctx=n_ctx, depth=depth), probe]).eval()
    maple = model.plugins["maple"]
    templates = model.class_prompt_templates(["unused {}"])
    tokens = clipadapt.get_tokenizer(model=model)([t.format(c) for t in templates for c in ("red circle", "star")])
    with torch.no_grad():
        model.encode_text(tokens)
        model.encode_image(torch.randn(2, 3, 64, 64))
    return model, maple, probe, tokens


@pytest.mark.parametrize("depth", [1, 3, 4])
def test_token_layout_injected_before_depth_carried_after(depth: int) -> None:
    model, maple, probe, tokens = _run(depth)
    text_blocks = model.text.transformer.resblocks
    vision_blocks = model.visual.transformer.resblocks
    for i, (t, v) in enumerate(zip(probe.inputs["text"], probe.inputs["vision"])):
        assert v.shape[1] == 1 + 64 + 2
        if i == 0:
            torch.testing.assert_close(t[:, 1:3], maple.ctx.expand(2, -1, -1) + model.text.positional_embedding[1:3])
            torch.testing.assert_close(v[:, -2:], model.visual.ln_pre(maple.proj(maple.ctx)).expand(2, -1, -1))
        elif i < depth:
            deep = maple.compound_prompts_text[i - 1]
            torch.testing.assert_close(t[:, 1:3], deep.expand(2, -1, -1))
            torch.testing.assert_close(v[:, -2:], maple.compound_prompt_projections[i - 1](deep).expand(2, -1, -1))
        else:  # carried forward from the previous block's output
            with torch.no_grad():
                prev_t = text_blocks[i - 1](probe.inputs["text"][i - 1])
                prev_v = vision_blocks[i - 1](probe.inputs["vision"][i - 1])
            torch.testing.assert_close(t[:, 1:3], prev_t[:, 1:3], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(v[:, -2:], prev_v[:, -2:], atol=1e-6, rtol=1e-5)
    # "of a {class}." stays frozen text: position 3 of block 0's input is the embedding of "of"
    of_embedding = model.text.token_embedding(tokens[:, 3]) + model.text.positional_embedding[3]
    torch.testing.assert_close(probe.inputs["text"][0][:, 3], of_embedding)


def test_template_and_context_initialisation() -> None:
    model, maple, _, _ = _run(depth=2)
    assert maple.text_template == "a photo of a {}."
    words = clipadapt.get_tokenizer(model=model)(["a photo"])[0, 1:3]
    torch.testing.assert_close(maple.ctx, model.text.token_embedding(words))


def test_only_the_prompt_learner_trains_and_counts_like_the_paper() -> None:
    model = clipadapt.create_model("ViT-B-16", plugins=[dict(type="MaPLe")])
    trainable = {n: p.numel() for n, p in model.named_parameters() if p.requires_grad}
    assert all(n.startswith("plugins.maple.") for n in trainable)
    assert sum(trainable.values()) == 3_555_072  # the paper's 3.55M for ViT-B/16, n_ctx=2, J=9


def test_vit_l_widths_work() -> None:
    model = clipadapt.create_model("ViT-L-14", plugins=[dict(type="MaPLe", depth=2)])
    assert model.plugins["maple"].proj.weight.shape == (1024, 768)


def test_gradients_reach_every_prompt_parameter() -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="MaPLe", depth=3)])
    tokens = clipadapt.get_tokenizer(model=model)(["a photo of a red circle."])
    out = model(torch.randn(2, 3, 64, 64), tokens)
    (out["image_features"] @ out["text_features"].T).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.any())]
    assert not missing


def test_n_ctx_longer_than_template() -> None:
    with pytest.raises(ValueError, match=r"n_ctx=5 is longer than the 4 tokens .*'a photo of a'"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="MaPLe", n_ctx=5, depth=2)])


def test_depth_larger_than_the_towers() -> None:
    with pytest.raises(PluginCompatibilityError, match=r"MaPLe depth=9 exceeds .*4 text blocks, 4 vision blocks"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="MaPLe", depth=9)])


def test_random_context_uses_placeholders() -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="MaPLe", n_ctx=3, depth=1, ctx_init=None)])
    assert model.plugins["maple"].text_template == "X X X {}."
