"""CoOp's token layout (end / front / middle, CSC), what trains, and its errors."""

from __future__ import annotations

import pytest
import torch

import clipadapt
import clipadapt_plugins.coop  # noqa: F401  (registers CoOp)
from clipadapt.models import TowerContext
from clipadapt.plugins import Plugin

NAMES = ("red circle", "star")  # 2 tokens and 1 token
# Token positions of the context in the class prompts of NAMES (row 0, row 1), n_ctx=4.
POSITIONS = {
    "end": ([1, 2, 3, 4], [1, 2, 3, 4]),  # X X X X red circle .
    "front": ([3, 4, 5, 6], [2, 3, 4, 5]),  # red circle X X X X .
    "middle": ([1, 2, 5, 6], [1, 2, 4, 5]),  # X X red circle X X .
}


class Probe(Plugin):
    """Attached after CoOp: records the input of text block 0 (embeddings + positions)."""

    prefix = "probe"
    hook_towers = {"block": ("text",)}

    def __init__(self) -> None:
        super().__init__()
        self.inputs: list[torch.Tensor] = []

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        if index == 0:
            self.inputs.append(x.detach().clone())
        return x


def _model(**args) -> tuple[clipadapt.CLIP, Plugin, Probe]:
    probe = Probe()
    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="CoOp", **args), probe]).eval()
    return model, model.plugins["coop"], probe


def _prompts(model: clipadapt.CLIP, names=NAMES) -> torch.Tensor:
    (template,) = model.class_prompt_templates(["unused {}"])
    return clipadapt.get_tokenizer(model=model)([template.format(n) for n in names])


def _assert_layout(model, ctx_per_row, block0, tokens, positions) -> None:
    text = model.text
    with torch.no_grad():
        expected = text.token_embedding(tokens[:, : block0.shape[1]]) + text.positional_embedding[: block0.shape[1]]
    for row, pos in enumerate(positions):
        for k, p in enumerate(pos):
            expected[row, p] = ctx_per_row[row][k] + text.positional_embedding[p]
    torch.testing.assert_close(block0, expected)  # context at the placeholders, every other token untouched


@pytest.mark.parametrize("position", ["end", "front", "middle"])
def test_context_replaces_the_placeholders_in_order(position: str) -> None:
    model, coop, probe = _model(n_ctx=4, class_token_position=position)
    templates = {"end": "X X X X {}.", "front": "{} X X X X.", "middle": "X X {} X X."}
    assert coop.text_template == templates[position]
    tokens = _prompts(model)
    with torch.no_grad():
        model.encode_text(tokens)
    _assert_layout(model, [coop.ctx, coop.ctx], probe.inputs[0], tokens, POSITIONS[position])


def test_middle_puts_the_smaller_half_first() -> None:
    _, coop, _ = _model(n_ctx=3, class_token_position="middle")
    assert coop.text_template == "X {} X X."


@pytest.mark.parametrize("position", ["end", "front"])
def test_class_specific_context_maps_row_i_to_class_i(position: str) -> None:
    model, coop, probe = _model(n_ctx=4, class_token_position=position, csc=True, num_classes=2)
    assert coop.ctx.shape == (2, 4, 128)
    tokens = _prompts(model)
    with torch.no_grad():
        model.encode_text(tokens)
    _assert_layout(model, [coop.ctx[0], coop.ctx[1]], probe.inputs[0], tokens, POSITIONS[position])


def test_class_specific_context_needs_every_class_in_one_batch() -> None:
    model, _, _ = _model(n_ctx=4, csc=True, num_classes=3)
    with pytest.raises(ValueError, match=r"class prompts of all 3 classes, in label order, as one text batch; got 2"):
        model.encode_text(_prompts(model))


def test_context_initialised_from_words_sets_n_ctx() -> None:
    model, coop, _ = _model(ctx_init="a_photo of a")
    assert coop.n_ctx == 4 and coop.text_template == "a photo of a {}."
    words = clipadapt.get_tokenizer(model=model)(["a photo of a"])[0, 1:5]
    torch.testing.assert_close(coop.ctx, model.text.token_embedding(words))
    csc = clipadapt.create_model("tiny-vit", plugins=[dict(type="CoOp", ctx_init="a photo", csc=True, num_classes=3)])
    torch.testing.assert_close(csc.plugins["coop"].ctx, csc.text.token_embedding(words[:2]).expand(3, -1, -1))


def test_defaults_are_coops() -> None:
    _, coop, _ = _model()
    assert coop.n_ctx == 16 and coop.ctx.shape == (16, 128) and coop.text_template == " ".join(["X"] * 16) + " {}."
    assert 0.015 < coop.ctx.std() < 0.025  # N(0, 0.02)


def test_only_the_context_trains_and_receives_gradients() -> None:
    model = clipadapt.create_model(
        "tiny-vit", plugins=[dict(type="CoOp", n_ctx=4, class_token_position="middle", csc=True, num_classes=2)]
    )
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["plugins.coop.ctx"]
    model.encode_text(_prompts(model)).sum().backward()
    assert model.plugins["coop"].ctx.grad.abs().sum(dim=(1, 2)).gt(0).all()  # each class's context


def test_placeholder_count_mismatch_is_an_error() -> None:
    model, _, _ = _model(n_ctx=4, class_token_position="front")
    with pytest.raises(ValueError, match=r"exactly 4 placeholder tokens 'X' .* row\(s\) \[1\] have \[5\]"):
        model.encode_text(_prompts(model, ("star", "x-ray")))
    with pytest.raises(ValueError, match=r"row\(s\) \[0\] have \[0\]"):
        model.encode_text(clipadapt.get_tokenizer(model=model)(["a red circle"]))


def test_end_context_must_not_cover_the_end_of_text() -> None:
    model, _, _ = _model(n_ctx=4)
    with pytest.raises(ValueError, match=r"tokens 1\.\.4 .* row\(s\) \[0\] end at or before token 4"):
        model.encode_text(clipadapt.get_tokenizer(model=model)(["a red circle", "a small blue star"]))


def test_invalid_arguments() -> None:
    with pytest.raises(ValueError, match="class_token_position must be one of"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="CoOp", class_token_position="back")])
    with pytest.raises(ValueError, match="needs num_classes"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="CoOp", csc=True)])
    with pytest.raises(ValueError, match=r"n_ctx=3 does not match the 4 tokens of ctx_init='a photo of a'"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="CoOp", n_ctx=3, ctx_init="a photo of a")])
