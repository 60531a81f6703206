"""One contract test over the registry: every plugin builds, trains, and round-trips its adapter."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import clipadapt
from clipadapt.models import TowerContext
from clipadapt.plugins import Plugin, PluginCompatibilityError, registered_plugins

# Constructor arguments small enough for the tiny model; plugins absent here use their defaults.
TINY_ARGS: dict[str, dict] = {
    "VPT": {"num_tokens": 2, "depth": 2},
    "MaPLe": {"depth": 3},
    "CoOp": {"n_ctx": 2},
    "IVLP": {"n_ctx_text": 2, "n_ctx_vision": 2, "depth_text": 3, "depth_vision": 3},
}


def _batch(model: clipadapt.CLIP) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    images = torch.randn(2, 3, model.image_size, model.image_size)
    return images, clipadapt.get_tokenizer(model=model)(["a red circle", "a small blue star"])


@pytest.mark.parametrize("name", registered_plugins())
def test_every_registered_plugin_honours_the_contract(name: str, tiny_pair, tmp_path: Path) -> None:
    _, _, weights = tiny_pair
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type=name, **TINY_ARGS.get(name, {}))])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, f"{name} trains nothing"
    images, tokens = _batch(model)
    out = model(images, tokens)
    loss = (out["image_features"] @ out["text_features"].T).sum()
    loss = loss + sum(plugin.losses(out).get("loss", 0) for plugin in model.plugins.values())
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad <= trainable and with_grad, f"{name}: gradients reached {sorted(with_grad - trainable)}"

    path = clipadapt.save_adapter(model, tmp_path / "adapter.pt")
    restored = clipadapt.load_adapter(path).eval()
    model.eval()
    with torch.no_grad():
        for a, b in zip(model(images, tokens).values(), restored(images, tokens).values()):
            torch.testing.assert_close(a, b, atol=0, rtol=0)


class Identity(Plugin):
    """Hooks everything and changes nothing."""

    prefix = "identity"
    hook_towers = {"embed": ("vision", "text"), "block": ("vision", "text")}

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, int]] = []

    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        self.calls.append((context.tower, -1))
        return x

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        self.calls.append((context.tower, index))
        return x


def test_identity_hooks_give_base_outputs_and_are_called_in_order(tiny_pair) -> None:
    _, base, weights = tiny_pair
    plugin = Identity()
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[plugin]).eval()
    images, tokens = _batch(model)
    with torch.no_grad():
        for a, b in zip(model(images, tokens).values(), base(images, tokens).values()):
            torch.testing.assert_close(a, b, atol=0, rtol=0)
    layers = range(model.visual.transformer.layers)
    assert plugin.calls == [
        ("vision", -1),
        *[("vision", i) for i in layers],
        ("text", -1),
        *[("text", i) for i in layers],
    ]


def test_base_is_frozen_once_a_plugin_attaches(tiny_pair) -> None:
    _, _, weights = tiny_pair
    plain = clipadapt.create_model("tiny-vit", pretrained=weights)
    assert all(p.requires_grad for p in plain.parameters())
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="VPT")])
    assert [n for n, p in model.named_parameters() if p.requires_grad] == ["plugins.vpt.prompts"]


def test_unknown_plugin_type_lists_registered_ones() -> None:
    with pytest.raises(KeyError, match=r"unknown plugin type 'MaPle'; registered plugins: .*VPT"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="MaPle")])


def test_plugin_arguments_are_checked() -> None:
    with pytest.raises(TypeError, match="VPT"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="VPT", n_tokens=3)])


def test_incompatible_plugin_fails_at_build_time() -> None:
    with pytest.raises(PluginCompatibilityError, match=r"VPT depth=9 exceeds the 4 blocks .*'tiny-vit'"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="VPT", depth=9)])


def test_same_plugin_twice_is_refused() -> None:
    with pytest.raises(PluginCompatibilityError, match="prefix 'vpt'.*already attached"):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="VPT"), dict(type="VPT")])


class MLPSwap(Plugin):
    prefix = "swap"

    def attach(self, clip: clipadapt.CLIP) -> None:
        block = clip.visual.transformer.resblocks[-1]
        self.replace_module(clip, "visual.transformer.resblocks.3.mlp", torch.nn.Sequential(block.mlp))


class OtherSwap(MLPSwap):
    prefix = "other_swap"


def test_two_plugins_replacing_one_module_are_refused() -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[MLPSwap()])
    assert model.changed_modules == {"visual.transformer.resblocks.3.mlp": "swap"}
    with pytest.raises(PluginCompatibilityError, match="plugin 'swap' already replaced it"):
        model.attach(OtherSwap())
    assert "other_swap" not in model.plugins


def test_replacing_a_missing_module_is_refused() -> None:
    class Bad(Plugin):
        def attach(self, clip):
            self.replace_module(clip, "visual.transformer.resblocks.9.mlp", torch.nn.Identity())

    with pytest.raises(PluginCompatibilityError, match="resblocks.9.mlp': no such module"):
        clipadapt.create_model("tiny-vit", plugins=[Bad()])


def test_replaced_modules_travel_in_the_adapter(tmp_path: Path) -> None:
    model = clipadapt.create_model("tiny-vit", plugins=[MLPSwap()])
    state = clipadapt.adapter.adapter_state_dict(model)
    assert any(k.startswith("visual.transformer.resblocks.3.mlp.0.") for k in state)


def test_nested_config_values_are_saved_as_plain_python(tmp_path: Path) -> None:
    """A plugin built from an MMEngine config gets ConfigDicts for nested values; its checkpoint must still
    load with ``weights_only=True`` (PromptSRC's ``promptsrc=dict(...)`` once broke base-to-novel testing)."""
    from mmengine.config import Config

    import clipadapt

    cfg = Config(dict(plugin=dict(type="IVLP", depth_text=2, depth_vision=2, promptsrc=dict(text_weight=5.0))))
    assert type(cfg.plugin.promptsrc).__name__ == "ConfigDict"
    model = clipadapt.create_model("tiny-vit", plugins=[cfg.plugin])
    config = model.plugins["ivlp"].config()
    assert type(config["promptsrc"]) is dict and config["promptsrc"]["text_weight"] == 5.0
    path = clipadapt.save_adapter(model, tmp_path / "ivlp.pt")
    state = torch.load(path, map_location="cpu", weights_only=True)  # no ConfigDict to refuse
    assert state["plugins"][0]["promptsrc"] == {"text_weight": 5.0}
