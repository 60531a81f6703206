"""The LongCLIP plugin on the tiny CLIP: stretched positions, exact base features for short texts, frozen rows,
what trains, the longer context end to end, and its errors."""

from __future__ import annotations

import math

import pytest
import torch

import clipadapt
from clipadapt.models import TowerContext
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt_plugins.longclip import LongCLIP, stretch_positions

SHORT = ["a red circle", "a small blue star and a large green square.", "x"]  # all within 20 tokens
LONG = " ".join(
    ["A large striped red circle sits in the top left, and a small dotted blue star appears below it."] * 5
)  # ~110 tokens


class LengthProbe(Plugin):
    """Records how many tokens the text blocks run on."""

    prefix = "lengthprobe"
    hook_towers = {"block": ("text",)}

    def __init__(self) -> None:
        super().__init__()
        self.lengths: list[int] = []

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if index == 0:
            self.lengths.append(x.shape[1])
        return x


def _stretched(weights, **args) -> clipadapt.CLIP:
    return clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="LongCLIP", **args)]).eval()


def test_attach_stretches_the_positions_and_the_context(tiny_pair) -> None:
    _, base, weights = tiny_pair
    model = _stretched(weights)
    assert model.context_length == 248 and model.cfg.text.context_length == 77
    assert clipadapt.get_tokenizer(model=model)(["a red circle"]).shape == (1, 248)
    expected = stretch_positions(base.text.positional_embedding.detach(), keep=20, ratio=4)
    assert torch.equal(model.text.positional_embedding, expected)
    assert model.logit_scale.item() == pytest.approx(math.log(100))
    trainable = {n: p.shape for n, p in model.named_parameters() if p.requires_grad}
    assert trainable["text.parametrizations.positional_embedding.original"] == (228, 128)
    assert set(trainable) == {n for n, _ in model.named_parameters()}  # the original trains everything else
    assert not any(b.requires_grad for b in model.buffers())


def test_texts_within_keep_give_exactly_the_base_features(tiny_pair) -> None:
    _, base, weights = tiny_pair
    model = _stretched(weights)
    short_base = clipadapt.get_tokenizer(model=base)(SHORT)
    short_ours = clipadapt.get_tokenizer(model=model)(SHORT)
    assert int(short_ours.argmax(dim=1).max()) < 20
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(model.encode_text(short_ours), base.encode_text(short_base))
        assert torch.equal(model.encode_image(images), base.encode_image(images))
        # Without dynamic truncation the whole 248 positions run: equal up to the kernels' rounding.
        full = model.forward_text(short_ours, output_tokens=True).pooled
        torch.testing.assert_close(full, base.encode_text(short_base), rtol=0, atol=1e-5)
        # Past the keep length the stretched positions differ from the base's.
        medium = ["a red circle " * 8]
        assert not torch.allclose(
            model.encode_text(clipadapt.get_tokenizer(model=model)(medium)),
            base.encode_text(clipadapt.get_tokenizer(model=base)(medium)),
        )


def test_long_texts_use_the_new_positions_and_short_ones_stay_cheap(tiny_pair) -> None:
    _, _, weights = tiny_pair
    probe = LengthProbe()
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="LongCLIP"), probe]).eval()
    tokenizer = clipadapt.get_tokenizer(model=model)
    long_tokens = tokenizer([LONG])
    eot = int(long_tokens.argmax())
    assert 77 < eot < 248  # read past the base's 77 tokens
    with torch.no_grad():
        model.encode_text(tokenizer(SHORT))
        features = model.encode_text(long_tokens)
        cut = model.encode_text(tokenizer([LONG[: len(LONG) // 2]]))
    assert probe.lengths[0] == int(tokenizer(SHORT).argmax(dim=1).max()) + 1  # dynamic truncation at 248 too
    assert probe.lengths[1] == eot + 1
    assert torch.isfinite(features).all() and not torch.allclose(features, cut)


def test_frozen_rows_get_no_update_and_the_rest_trains(tiny_pair) -> None:
    _, _, weights = tiny_pair
    model = _stretched(weights).train()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    table = model.text.positional_embedding.detach().clone()
    tokens = clipadapt.get_tokenizer(model=model)([LONG, *SHORT])
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=1e-2)
    for _ in range(3):
        optimizer.zero_grad()
        model.encode_text(tokens, normalize=True).square().sum().backward()
        optimizer.step()
    after = model.text.positional_embedding.detach()
    assert torch.equal(after[:20], table[:20])
    eot = int(tokens.argmax(dim=1).max())
    assert (after[20 : eot + 1] != table[20 : eot + 1]).any(dim=1).all()  # every used stretched row moved
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert (
        "text.parametrizations.positional_embedding.original" in moved
        and "text.transformer.resblocks.0.attn.qkv.weight" in moved
    )


@pytest.mark.parametrize(
    ("trainable", "expected"),
    [
        ("none", {"text.parametrizations.positional_embedding.original"}),
        (
            ["text.ln_final"],
            {"text.parametrizations.positional_embedding.original", "text.ln_final.weight", "text.ln_final.bias"},
        ),
    ],
)
def test_trainable_picks_the_base_parameters_besides_the_positions(tiny_pair, trainable, expected) -> None:
    _, _, weights = tiny_pair
    model = _stretched(weights, trainable=trainable, logit_scale=None)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected
    assert model.logit_scale.item() == pytest.approx(math.log(1 / 0.07))  # kept: logit_scale=None


def test_generalised_keep_and_ratio(tiny_pair) -> None:
    _, base, weights = tiny_pair
    model = _stretched(weights, keep=10, ratio=2)
    assert model.context_length == 10 + 2 * 67
    assert torch.equal(model.text.positional_embedding[:10], base.text.positional_embedding[:10])
    assert torch.equal(model.text.positional_embedding[10::2], base.text.positional_embedding[10:])


class SecondStretch(LongCLIP):
    prefix = "secondstretch"


def test_a_second_stretch_and_an_impossible_keep_are_refused(tiny_pair) -> None:
    _, _, weights = tiny_pair
    model = _stretched(weights)
    with pytest.raises(PluginCompatibilityError, match="already changed by another plugin"):
        model.attach(SecondStretch())
    assert "secondstretch" not in model.plugins
    with pytest.raises(PluginCompatibilityError, match="keep=80 must be below the 77 text positions"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="LongCLIP", keep=80)])


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (dict(short_caption="last"), "short_caption must be one of"),
        (dict(on_invalid_batch="ignore"), "on_invalid_batch must be one of"),
        (dict(ratio=0.5), "ratio must be >= 1"),
        (dict(pcm_components=0), "pcm_components must be >= 1"),
        (dict(trainable="everything"), "trainable='everything' is not one of"),
    ],
)
def test_bad_arguments_are_named(args, match) -> None:
    with pytest.raises(ValueError, match=match):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="LongCLIP", **args)])


def test_adapter_round_trip_keeps_the_trained_positions(tiny_pair, tmp_path) -> None:
    _, _, weights = tiny_pair
    model = _stretched(weights)
    with torch.no_grad():
        model.text.parametrizations.positional_embedding.original.add_(0.5)
    tokens = clipadapt.get_tokenizer(model=model)([LONG, *SHORT])
    restored = clipadapt.load_adapter(clipadapt.save_adapter(model, tmp_path / "adapter.safetensors")).eval()
    assert torch.equal(restored.text.positional_embedding, model.text.positional_embedding)
    with torch.no_grad():
        assert torch.equal(restored.encode_text(tokens), model.encode_text(tokens))
