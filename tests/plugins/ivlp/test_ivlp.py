"""IVLP's token layout, what trains, its errors, and PromptSRC's losses against their definitions."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

import clipadapt
import clipadapt_plugins.ivlp  # noqa: F401  (registers IVLP)
from clipadapt.plugins import PluginCompatibilityError
from clipadapt_plugins.ivlp import IVLP, TEMPLATES, PromptSRCConfig, promptsrc_losses
from tests.plugins.probe import Probe

NAMES = ["red circle", "star"]


def _tokens(model: clipadapt.CLIP, names=NAMES) -> torch.Tensor:
    (template,) = model.class_prompt_templates(["unused {}"])
    return clipadapt.get_tokenizer(model=model)([template.format(n) for n in names])


@pytest.mark.parametrize(("depth_text", "depth_vision"), [(1, 4), (3, 2), (4, 1)])
def test_token_layout_injected_before_depth_carried_after(depth_text: int, depth_vision: int) -> None:
    probe = Probe()
    args = dict(type="IVLP", n_ctx_text=4, n_ctx_vision=3, depth_text=depth_text, depth_vision=depth_vision)
    model = clipadapt.create_model("tiny-vit", plugins=[args, probe]).eval()
    ivlp = model.plugins["ivlp"]
    assert ivlp.text_template == "a photo of a {}."
    tokens = _tokens(model)
    with torch.no_grad():
        model.encode_text(tokens)
        model.encode_image(torch.randn(2, 3, 64, 64))
    text_blocks, vision_blocks = model.text.transformer.resblocks, model.visual.transformer.resblocks
    for i, (t, v) in enumerate(zip(probe.inputs["text"], probe.inputs["vision"])):
        assert v.shape[1] == 1 + 64 + 3
        if i == 0:
            torch.testing.assert_close(t[:, 1:5], ivlp.ctx.expand(2, -1, -1) + model.text.positional_embedding[1:5])
            torch.testing.assert_close(v[:, -3:], model.visual.ln_pre(ivlp.vision_ctx).expand(2, -1, -1))
        with torch.no_grad():  # the previous block's output, for the carried positions
            prev_t = text_blocks[i - 1](probe.inputs["text"][i - 1]) if i else None
            prev_v = vision_blocks[i - 1](probe.inputs["vision"][i - 1]) if i else None
        if 0 < i < depth_text:
            torch.testing.assert_close(t[:, 1:5], ivlp.deep_text[i - 1].expand(2, -1, -1))
        elif i:
            torch.testing.assert_close(t[:, 1:5], prev_t[:, 1:5], atol=1e-6, rtol=1e-5)
        if 0 < i < depth_vision:
            torch.testing.assert_close(v[:, -3:], ivlp.deep_vision[i - 1].expand(2, -1, -1))
        elif i:
            torch.testing.assert_close(v[:, -3:], prev_v[:, -3:], atol=1e-6, rtol=1e-5)
        if i:  # every other token is the previous block's output
            torch.testing.assert_close(t[:, 5:], prev_t[:, 5:], atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(v[:, :-3], prev_v[:, :-3], atol=1e-6, rtol=1e-5)
    # the class name follows the context: position 5 of block 0 is the embedding of "red" / "star"
    name_embedding = model.text.token_embedding(tokens[:, 5]) + model.text.positional_embedding[5]
    torch.testing.assert_close(probe.inputs["text"][0][:, 5], name_embedding)


def test_context_initialisation_and_frozen_words() -> None:
    probe = Probe()
    model = clipadapt.create_model(
        "tiny-vit", plugins=[dict(type="IVLP", n_ctx_text=2, depth_text=1, depth_vision=1), probe]
    ).eval()
    ivlp = model.plugins["ivlp"]
    tokens = _tokens(model)
    words = tokens[0, 1:3]
    torch.testing.assert_close(ivlp.ctx, model.text.token_embedding(words))
    with torch.no_grad():
        model.encode_text(tokens)
    frozen = model.text.token_embedding(tokens[:, 3:5]) + model.text.positional_embedding[3:5]  # "of a"
    torch.testing.assert_close(probe.inputs["text"][0][:, 3:5], frozen)
    random = clipadapt.create_model(
        "tiny-vit", plugins=[dict(type="IVLP", n_ctx_text=4, ctx_init=None, depth_text=2, depth_vision=0)]
    )
    assert random.plugins["ivlp"].text_template == "X X X X {}."


def test_only_the_prompts_train_and_all_receive_gradients() -> None:
    plugin = dict(type="IVLP", n_ctx_text=4, n_ctx_vision=4, depth_text=3, depth_vision=4)  # PromptSRC's 4 + 4
    model = clipadapt.create_model("tiny-vit", plugins=[plugin])
    trainable = {n: tuple(p.shape) for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        "plugins.ivlp.ctx": (4, 128),
        "plugins.ivlp.deep_text": (2, 4, 128),
        "plugins.ivlp.vision_ctx": (4, 192),
        "plugins.ivlp.deep_vision": (3, 4, 192),
    }
    out = model(torch.randn(2, 3, 64, 64), _tokens(model))
    (out["image_features"] @ out["text_features"].T).sum().backward()
    for name, p in model.named_parameters():
        if p.requires_grad:  # every layer of every deep prompt
            assert p.grad.flatten(1 if p.dim() == 3 else 0).abs().sum(-1).gt(0).all(), name


def test_vision_depth_zero_leaves_the_image_tower_alone() -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="IVLP", depth_text=2, depth_vision=0)]).eval()
    assert model.plugins["ivlp"].vision_ctx is None and model.visual.embed_hooks == []
    images = torch.randn(1, 3, 64, 64)
    with torch.no_grad(), model.plugins_disabled():
        base = model.encode_image(images)
    torch.testing.assert_close(model.encode_image(images), base, atol=0, rtol=0)


def test_defaults_are_the_maple_repositorys_ivlp() -> None:
    # multimodal-prompt-learning train.py: N_CTX_VISION = N_CTX_TEXT = 2, PROMPT_DEPTH_* = 9, "a photo of a"
    plugin = IVLP()
    assert (plugin.n_ctx_text, plugin.n_ctx_vision, plugin.depth_text, plugin.depth_vision) == (2, 2, 9, 9)
    assert plugin.ctx_init == "a photo of a"


def test_errors() -> None:
    with pytest.raises(ValueError, match=r"n_ctx=5 is longer than the 4 tokens .*'a photo of a'"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="IVLP", n_ctx_text=5, depth_text=2, depth_vision=2)])
    with pytest.raises(PluginCompatibilityError, match=r"IVLP depth_text=9 exceeds the 4 blocks of the text tower"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="IVLP", depth_vision=2)])
    with pytest.raises(PluginCompatibilityError, match=r"depth_vision=5 exceeds the 4 blocks of the vision tower"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="IVLP", depth_text=2, depth_vision=5)])
    with pytest.raises(ValueError, match="depth_text must be >= 1"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="IVLP", depth_text=0)])
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="IVLP", n_ctx_text=4, depth_text=2, depth_vision=2)])
    with pytest.raises(ValueError, match=r"tokens 1\.\.4 .* row\(s\) \[0\] end at or before token 4"):
        model.encode_text(clipadapt.get_tokenizer(model=model)(["a red circle", "a small blue star"]))


# --------------------------------------------------------------------------------------- PromptSRC
def test_promptsrc_losses_match_their_definitions_on_fixed_tensors() -> None:
    g = torch.Generator().manual_seed(0)
    text, frozen_text = torch.randn(3, 8, generator=g), torch.randn(3, 8, generator=g)
    image, frozen_image = torch.randn(2, 8, generator=g), torch.randn(2, 8, generator=g)
    logits, scale = 10 * torch.randn(2, 3, generator=g), torch.tensor(20.0)
    cfg = PromptSRCConfig(text_weight=3.0, image_weight=2.0, kl_weight=0.5)
    got = promptsrc_losses(cfg, text, frozen_text, image, frozen_image, logits, scale)

    def unit(x):
        return x / x.norm(dim=-1, keepdim=True)

    teacher_logits = scale * unit(frozen_image) @ unit(frozen_text).T
    p_teacher, p_student = teacher_logits.softmax(-1), logits.softmax(-1)
    kl = (p_teacher * (p_teacher.log() - p_student.log())).sum() / logits.numel()  # KL(zero-shot || prompted)
    torch.testing.assert_close(got["loss_scl_text"], 3.0 * (unit(text) - unit(frozen_text)).abs().mean())
    torch.testing.assert_close(got["loss_scl_image"], 2.0 * (unit(image) - unit(frozen_image)).abs().mean())
    torch.testing.assert_close(got["loss_scl_kl"], 0.5 * kl)


def test_ivlp_promptsrc_losses_use_the_frozen_clip(tmp_path: Path) -> None:
    templates = ["a photo of a {}.", "a drawing of the {}.", "art of a {}."]
    plugin = dict(type="IVLP", depth_text=2, depth_vision=2, promptsrc=dict(templates=templates))
    model = clipadapt.create_model("tiny-vit", plugins=[plugin])
    ivlp = model.plugins["ivlp"]
    names = ["red_circle", "star", "blue square"]
    images = torch.randn(2, 3, 64, 64)
    image_features, text_features = model.encode_image(images), model.encode_text(_tokens(model, names))
    scale = model.logit_scale.exp()
    logits = scale * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    outputs = dict(
        images=images, image_features=image_features, text_features=text_features, logits=logits,
        labels=torch.tensor([0, 2]), classnames=names, logit_scale=scale,
    )  # fmt: skip
    got = ivlp.losses(outputs)

    base = clipadapt.create_model("tiny-vit").eval()  # the base CLIP alone, with the same weights
    base.load_state_dict({k: v for k, v in model.state_dict().items() if not k.startswith("plugins.")})
    tokenizer = clipadapt.get_tokenizer(model=base)
    with torch.no_grad():
        clean = [n.replace("_", " ") for n in names]
        frozen_text = torch.stack([base.encode_text(tokenizer([t.format(n) for n in clean])) for t in templates])
        frozen_image = base.encode_image(images)
    expected = promptsrc_losses(
        PromptSRCConfig(), text_features, frozen_text.mean(0), image_features, frozen_image, logits, scale
    )
    assert set(got) == {"loss_scl_text", "loss_scl_image", "loss_scl_kl"}
    for name in got:
        torch.testing.assert_close(got[name], expected[name])
    assert got["loss_scl_text"] > 0 and got["loss_scl_image"] > 0 and got["loss_scl_kl"] > 0

    cached = ivlp.teacher.text_features(model, names)
    assert len(ivlp.teacher._text_cache) == 1 and cached is ivlp.teacher._text_cache[tuple(names)]
    sum(got.values()).backward()
    assert all(p.grad is not None for p in ivlp.parameters())

    restored = clipadapt.load_adapter(clipadapt.save_adapter(model, tmp_path / "ivlp.pt"))
    assert restored.plugins["ivlp"].promptsrc == ivlp.promptsrc


def test_promptsrc_options() -> None:
    assert PromptSRCConfig.build(None) is None and PromptSRCConfig.build(False) is None
    cfg = PromptSRCConfig.build(True)
    assert (cfg.text_weight, cfg.image_weight, cfg.kl_weight) == (25.0, 10.0, 1.0)
    assert len(cfg.templates) == 60 == len(set(TEMPLATES)) and cfg.templates[0] == "a photo of a {}."
    with pytest.raises(TypeError, match=r"unknown PromptSRC options \['txt_weight'\]"):
        PromptSRCConfig.build(dict(txt_weight=1.0))
    with pytest.raises(ValueError, match="exactly one"):
        PromptSRCConfig(templates=["no placeholder"])
    off = clipadapt.create_model("tiny-vit", plugins=[dict(type="IVLP", depth_text=2, depth_vision=2)])
    assert off.plugins["ivlp"].losses({}) == {}
    on = clipadapt.create_model("tiny-vit", plugins=[dict(type="IVLP", depth_text=2, depth_vision=2, promptsrc=True)])
    with pytest.raises(KeyError, match=r"missing \['images', 'logits', 'classnames'\]"):
        on.plugins["ivlp"].losses(dict(image_features=0, text_features=0, logit_scale=0))
