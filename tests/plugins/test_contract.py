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
    "CoCoOp": {"ctx_init": "a photo"},
    "IVLP": {"n_ctx_text": 2, "n_ctx_vision": 2, "depth_text": 3, "depth_vision": 3},
}


def _batch(model: clipadapt.CLIP) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    images = torch.randn(2, 3, model.image_size, model.image_size)
    return images, clipadapt.get_tokenizer(model=model)(["a red circle", "a small blue star"])


def _conditions(model: clipadapt.CLIP, image_features: torch.Tensor) -> dict[str, dict[str, torch.Tensor]]:
    """What a task passes per tower for the plugins' declared conditions (one image per text here)."""
    known = {"image_features": image_features}
    out: dict[str, dict[str, torch.Tensor]] = {}
    for prefix, needs in model.required_conditions().items():
        for tower, names in needs.items():
            unknown = [n for n in names if n not in known]
            assert not unknown, f"plugin {prefix!r} declares conditions {unknown}: teach this test to provide them"
            out.setdefault(tower, {}).update({n: known[n] for n in names})
    return out


def _encode(model: clipadapt.CLIP, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """``model(images, tokens)``, passing the conditions its plugins declare (text row i under image i)."""
    if not model.required_conditions():
        return model(images, tokens)
    image = model.encode_image(images, normalize=True)
    conditions = _conditions(model, image)
    assert "vision" not in conditions, "no built-in plugin conditions the vision tower; teach this test how"
    text = model.encode_text(tokens, normalize=True, condition=conditions.get("text"))
    return {"image_features": image, "text_features": text, "logit_scale": model.logit_scale.exp()}


@pytest.mark.parametrize("name", registered_plugins())
def test_every_registered_plugin_honours_the_contract(name: str, tiny_pair, tmp_path: Path) -> None:
    _, _, weights = tiny_pair
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type=name, **TINY_ARGS.get(name, {}))])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable, f"{name} trains nothing"
    images, tokens = _batch(model)
    out = _encode(model, images, tokens)
    loss = (out["image_features"] @ out["text_features"].T).sum()
    loss = loss + sum(plugin.losses(out).get("loss", 0) for plugin in model.plugins.values())
    loss.backward()
    with_grad = {n for n, p in model.named_parameters() if p.grad is not None}
    assert with_grad <= trainable and with_grad, f"{name}: gradients reached {sorted(with_grad - trainable)}"

    path = clipadapt.save_adapter(model, tmp_path / "adapter.pt")
    restored = clipadapt.load_adapter(path).eval()
    model.eval()
    with torch.no_grad():
        for a, b in zip(_encode(model, images, tokens).values(), _encode(restored, images, tokens).values()):
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


class Recorder(Plugin):
    """Records the condition each hook of each tower sees."""

    prefix = "recorder"
    hook_towers = {"embed": ("vision", "text"), "block": ("vision", "text")}

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, object]] = []

    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        self.seen.append((context.tower, context.condition))
        return x

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        self.seen.append((context.tower, context.condition))
        return x


def test_a_condition_reaches_every_hook_of_its_call_and_no_other(tiny_pair) -> None:
    _, base, weights = tiny_pair
    plugin = Recorder()
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[plugin]).eval()
    images, tokens = _batch(model)
    text_condition, image_condition = {"anything": torch.randn(2, 3)}, {"other": torch.randn(2)}
    with torch.no_grad():
        text = model.encode_text(tokens, condition=text_condition)
        image = model.encode_image(images, condition=image_condition)
        model.encode_text(tokens)
        model.encode_image(images)
        torch.testing.assert_close(text, base.encode_text(tokens), atol=0, rtol=0)  # a condition alone changes nothing
        torch.testing.assert_close(image, base.encode_image(images), atol=0, rtol=0)
    hooks = 1 + model.text.transformer.layers
    assert [c for _, c in plugin.seen[:hooks]] == [text_condition] * hooks
    assert all(c is text_condition for _, c in plugin.seen[:hooks])
    assert all(c is image_condition for _, c in plugin.seen[hooks : 2 * hooks])
    assert [c for _, c in plugin.seen[2 * hooks :]] == [None] * 2 * hooks  # nothing kept between calls


def test_a_condition_has_one_row_per_input() -> None:
    model = clipadapt.create_model("tiny-vit")
    _, tokens = _batch(model)
    with pytest.raises(ValueError, match=r"condition 'f' of the text tower must be a tensor with one row per input"):
        model.encode_text(tokens, condition={"f": torch.randn(3, 4)})
    with pytest.raises(ValueError, match=r"condition 'f' of the vision tower .* got float"):
        model.encode_image(torch.randn(2, 3, 64, 64), condition={"f": 1.0})


class NeedsPatches(Identity):
    """Declares a condition no task provides."""

    prefix = "needs_patches"
    conditions = {"vision": ("text_features",), "text": ("image_features",)}


def test_a_task_that_cannot_provide_a_condition_refuses_the_plugin_naming_both() -> None:
    from clipadapt.tasks import PromptClassifier

    with pytest.raises(
        PluginCompatibilityError,
        match=r"plugin NeedsPatches \('needs_patches'\) needs the per-call condition\(s\) \['text_features'\] in the "
        r"vision tower, which task PromptClassifier does not provide \(it provides \{'text': \['image_features'\]\}\)",
    ):
        PromptClassifier("tiny-vit", plugins=[NeedsPatches()], classnames=["a", "b"])
