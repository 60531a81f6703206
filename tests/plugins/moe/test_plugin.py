"""MoEUpcycle and MLPFineTune on the tiny CLIP: exactness at upcycling, padding, trainability, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import clipadapt
from clipadapt.plugins import Plugin, PluginCompatibilityError, build_plugin
from clipadapt_plugins.moe import ROUTER_AUX_KEY, SparseMoE, load_balancing_loss, parameter_counts

TEXTS = ["a red circle", "a small blue star to the left of a large green square", "a cyan ring"]


def _inputs(model: clipadapt.CLIP) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    images = torch.randn(3, 3, model.image_size, model.image_size)
    return images, clipadapt.get_tokenizer(model=model)(TEXTS)


def _moe(weights, **kwargs) -> clipadapt.CLIP:
    return clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="MoEUpcycle", **kwargs)]).eval()


@pytest.mark.parametrize("top_k", [1, 2])
def test_identical_experts_give_the_dense_outputs_for_any_router(tiny_base, tiny_weights, top_k: int) -> None:
    base, weights = tiny_base, tiny_weights
    model = _moe(weights, top_k=top_k)
    images, tokens = _inputs(model)
    with torch.no_grad():
        want = base(images, tokens)
        for seed in range(2):
            torch.manual_seed(seed)
            for layer in model.plugins["moe"].layers["vision"].values():
                nn.init.normal_(layer.gate.weight, std=5.0)
            for layer in model.plugins["moe"].layers["text"].values():
                nn.init.normal_(layer.gate.weight, std=5.0)
            got = model(images, tokens)
            torch.testing.assert_close(got["image_features"], want["image_features"], atol=1e-5, rtol=1e-5)
            torch.testing.assert_close(got["text_features"], want["text_features"], atol=1e-5, rtol=1e-5)


def test_every_chosen_mlp_is_upcycled_with_copies_named_as_clip_moe(tiny_base, tiny_weights) -> None:
    base, weights = tiny_base, tiny_weights
    model = _moe(weights, num_experts=3, vision_layers=2, text_layers=[0, 3])
    assert model.plugins["moe"].module_names() == [
        "visual.transformer.resblocks.2.mlp",
        "visual.transformer.resblocks.3.mlp",
        "text.transformer.resblocks.0.mlp",
        "text.transformer.resblocks.3.mlp",
    ]
    assert isinstance(model.visual.transformer.resblocks[1].mlp, nn.Module)
    assert not isinstance(model.visual.transformer.resblocks[1].mlp, SparseMoE)
    state = model.state_dict()
    dense = base.state_dict()
    for j in range(3):
        key = f"text.transformer.resblocks.3.mlp.experts.{j}.c_fc.weight"
        assert torch.equal(state[key], dense["text.transformer.resblocks.3.mlp.c_fc.weight"])
    assert state["visual.transformer.resblocks.2.mlp.gate.weight"].shape == (3, model.visual.width)


def test_padding_after_eot_is_neither_routed_nor_counted(tiny_weights) -> None:
    weights = tiny_weights
    model = _moe(weights, text_layers=None, vision_layers=0)
    _, tokens = _inputs(model)
    eot = tokens.argmax(dim=-1)
    routed = int((eot + 1).sum())
    expert_rows = [0]

    def count(module, args):
        expert_rows[0] += args[0].shape[0]

    for layer in model.plugins["moe"].layers["text"].values():
        for expert in layer.experts:
            expert.register_forward_pre_hook(count)
    with torch.no_grad():
        short = model.forward_text(tokens)  # truncated to the longest EOT: the short texts still pad
        full = model.forward_text(tokens, output_tokens=True)  # no truncation: 77 positions per text
    records, full_records = short.aux[ROUTER_AUX_KEY], full.aux[ROUTER_AUX_KEY]
    assert len(records) == model.text.transformer.layers
    assert tokens.shape[1] * 3 > routed and int(eot.max() + 1) * 3 > routed  # there is padding to leave out
    assert all(r.logits.shape[0] == routed for r in records + full_records)
    assert expert_rows[0] == 2 * routed * 2 * len(records)  # top-2, two forward passes
    # The balance loss sees the same tokens, however much padding the batch carries.
    plugin = model.plugins["moe"]
    loss_short = plugin.losses({"text_output": short})["loss_moe_balance"]
    loss_full = plugin.losses({"text_output": full})["loss_moe_balance"]
    torch.testing.assert_close(loss_short, loss_full)
    by_hand = load_balancing_loss(torch.cat([r.logits for r in records]), 2)
    torch.testing.assert_close(loss_short, 0.01 * 0.5 * by_hand)  # the original's L_text / 2
    torch.testing.assert_close(short.pooled, full.pooled, atol=1e-5, rtol=1e-5)


def test_balance_loss_reaches_the_router_through_the_contrastive_task(tiny_weights) -> None:
    from clipadapt.tasks import ImageTextContrastive

    weights = tiny_weights
    task = ImageTextContrastive(
        "tiny-vit",
        pretrained=str(weights),
        plugins=[dict(type="MoEUpcycle", balance_weight=0.5, vision_layers=1, text_layers=1)],
    )
    images, _ = _inputs(task.clip)
    losses = task(images, {"caption": TEXTS}, mode="loss")
    assert set(losses) == {"loss_contrastive", "loss_moe_balance"}
    # vision + text / 2 (the original's weights), each term >= about top_k
    assert float(losses["loss_moe_balance"].detach()) > 0.5 * 2 * 1.5 * 0.999
    losses["loss_moe_balance"].backward()
    gates = [p for n, p in task.clip.named_parameters() if n.endswith(".gate.weight")]
    assert len(gates) == 2 and all(g.grad is not None and g.grad.abs().sum() > 0 for g in gates)


LAST = "visual.transformer.resblocks.3.mlp"
EXPERT_PARAMS = {
    f"{LAST}.experts.{j}.{p}" for j in range(4) for p in ("c_fc.weight", "c_fc.bias", "c_proj.weight", "c_proj.bias")
}


@pytest.mark.parametrize(
    ("trainable", "expected"),
    [("router", {f"{LAST}.gate.weight"}), ("experts", EXPERT_PARAMS), ("all", EXPERT_PARAMS | {f"{LAST}.gate.weight"})],
)
def test_trainable_parameters_follow_the_setting(tiny_weights, trainable: str, expected: set[str]) -> None:
    weights = tiny_weights
    model = _moe(weights, trainable=trainable, vision_layers=1, text_layers=0)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == expected


def test_parameter_counts_leave_out_the_idle_experts(tiny_base, tiny_weights) -> None:
    base, weights = tiny_base, tiny_weights
    dense = parameter_counts(base)
    assert dense["activated"] == dense["total"] == sum(p.numel() for p in base.parameters())
    model = _moe(weights, num_experts=4, top_k=2, vision_layers=2, text_layers=1)
    counts = parameter_counts(model)
    per_mlp = {"vision": sum(p.numel() for p in base.visual.transformer.resblocks[0].mlp.parameters())}
    per_mlp["text"] = sum(p.numel() for p in base.text.transformer.resblocks[0].mlp.parameters())
    gates = 4 * (2 * base.visual.width + base.text.width)
    mlps = 2 * per_mlp["vision"] + per_mlp["text"]
    assert counts["total"] == dense["total"] + 3 * mlps + gates
    assert counts["activated"] == dense["total"] + 1 * mlps + gates  # top-2: one more MLP per token and layer


def test_bad_sizes_are_refused_with_clear_errors(tiny_weights) -> None:
    with pytest.raises(ValueError, match=r"MoEUpcycle top_k=5 must be in \[1, num_experts=4\]"):
        build_plugin(dict(type="MoEUpcycle", top_k=5))
    with pytest.raises(ValueError, match="MoEUpcycle needs num_experts >= 2"):
        build_plugin(dict(type="MoEUpcycle", num_experts=1, top_k=1))
    with pytest.raises(ValueError, match="trainable must be one of"):
        build_plugin(dict(type="MoEUpcycle", trainable="gate"))
    with pytest.raises(PluginCompatibilityError, match=r"vision_layers=9 must be in \[0, 4\]"):
        _moe(tiny_weights, vision_layers=9)
    with pytest.raises(PluginCompatibilityError, match=r"text_layers \[4\] are outside the 4 blocks"):
        _moe(tiny_weights, text_layers=[1, 4])
    with pytest.raises(PluginCompatibilityError, match="select no block"):
        _moe(tiny_weights, vision_layers=0, text_layers=0)


class _ReplaceLastMLP(Plugin):
    prefix = "other"

    def attach(self, clip: clipadapt.CLIP) -> None:
        self.replace_module(clip, "text.transformer.resblocks.3.mlp", nn.Identity())


def test_moe_on_a_block_another_plugin_replaced_is_refused(tiny_weights) -> None:
    weights = tiny_weights
    with pytest.raises(PluginCompatibilityError, match=r"resblocks.3.mlp'.*plugin 'other' already replaced it"):
        clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[_ReplaceLastMLP(), dict(type="MoEUpcycle")])


def test_mlp_finetune_trains_exactly_the_chosen_mlps_and_exports(tiny_base, tiny_weights) -> None:
    weights = tiny_weights
    model = clipadapt.create_model(
        "tiny-vit", pretrained=weights, plugins=[dict(type="MLPFineTune", vision_layers=[1], text_layers=2)]
    )
    trainable = {n.rsplit(".", 2)[0] for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == {
        "visual.transformer.resblocks.1.mlp",
        "text.transformer.resblocks.2.mlp",
        "text.transformer.resblocks.3.mlp",
    }
    state = clipadapt.to_open_clip_state_dict(model)  # still an open_clip CLIP
    assert set(state) == set(clipadapt.to_open_clip_state_dict(tiny_base))
