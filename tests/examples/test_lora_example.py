"""The out-of-tree example plugin (examples/clipadapt-lora): installed with pip, found through its entry point,
exact against LoRA's definition, and trained by tools/train.py.

The package is built from a copy of its folder and installed into a temporary target directory, not into
the running venv, so the suite's plugin registry stays the same for every other test.
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import clipadapt
from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.plugins import Plugin, PluginCompatibilityError, discovery
from clipadapt.registry import PLUGINS
from tests.helpers import SMALL_WORLD

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "clipadapt-lora"
CONFIG = PACKAGE / "configs" / "lora_tiny-vit_1xb32_synthetic-dark-16shot.py"
WORLD = SMALL_WORLD


def pip_install(package: Path, target: Path) -> None:
    """``pip install --no-deps --no-build-isolation --target`` of a copy of ``package`` (no network, no venv change)."""
    source = target.parent / "source"
    shutil.copytree(package, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    cmd = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
           "--target", str(target), str(source)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Path]:
    """The installed package on ``sys.path``; the plugin is found through the entry point, as in a user's venv."""
    target = tmp_path_factory.mktemp("lora") / "site"
    pip_install(PACKAGE, target)
    assert (target / "clipadapt_lora-0.1.0.dist-info" / "entry_points.txt").read_text().split() == [
        "[clipadapt.plugins]", "lora", "=", "clipadapt_lora"
    ]  # fmt: skip
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    discovery.load_plugin_modules(force=True)  # what clipadapt does on first use: every entry point
    yield target
    sys.path.remove(str(target))
    PLUGINS.module_dict.pop("LoRA", None)
    for name in [m for m in sys.modules if m == "clipadapt_lora" or m.startswith("clipadapt_lora.")]:
        del sys.modules[name]
    discovery.load_plugin_modules(force=True)


def _lora():
    return importlib.import_module("clipadapt_lora")


def _batch(model: clipadapt.CLIP) -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    images = torch.randn(2, 3, model.image_size, model.image_size)
    return images, clipadapt.get_tokenizer(model=model)(["a red circle", "a small blue square on a dark background"])


def _outputs(model: clipadapt.CLIP, images: torch.Tensor, tokens: torch.Tensor) -> list[torch.Tensor]:
    with torch.no_grad():
        out = model.eval()(images, tokens)
    return [out["image_features"], out["text_features"]]


def _randomise_b(model: clipadapt.CLIP) -> None:
    torch.manual_seed(1)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("lora_b"):
                param.normal_(std=0.1)


def test_entry_point_registers_the_plugin_from_the_installed_package(site: Path) -> None:
    assert "LoRA" in clipadapt.registered_plugins()
    cls = PLUGINS.get("LoRA")
    assert Path(sys.modules[cls.__module__].__file__).resolve().is_relative_to(site.resolve())


def test_untrained_lora_is_the_base_clip(site: Path, tiny_pair) -> None:
    _, base, weights = tiny_pair
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="LoRA", rank=4, alpha=8.0)])
    images, tokens = _batch(model)
    for a, b in zip(_outputs(model, images, tokens), _outputs(base, images, tokens)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


def test_layer_is_lora_on_the_target_slices(site: Path) -> None:
    torch.manual_seed(0)
    width, rank, alpha = 16, 3, 6.0
    base = nn.Linear(width, 3 * width)
    layer = _lora().LoRAQKV(base, rank=rank, alpha=alpha, targets=("q", "v"))
    nn.init.normal_(layer.lora_b)
    x = torch.randn(2, 5, width)
    # LoRA's definition, slice by slice: W_t + alpha / r * B_t A_t for the targets, W_k untouched.
    a_q, a_v = layer.lora_a[:rank], layer.lora_a[rank:]
    b_q, b_v = layer.lora_b[0], layer.lora_b[1]
    w_q, w_k, w_v = base.weight.split(width)
    expected = torch.cat([w_q + alpha / rank * b_q @ a_q, w_k, w_v + alpha / rank * b_v @ a_v])
    torch.testing.assert_close(layer.weight, expected)
    torch.testing.assert_close(layer(x), F.linear(x, expected, base.bias), atol=1e-5, rtol=1e-5)
    assert layer.bias is base.bias


def test_value_path_of_dense_features_sees_the_adapted_weight(site: Path, tiny_pair) -> None:
    _, _, weights = tiny_pair
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="LoRA", targets=("v",))])
    _randomise_b(model)
    attn = model.visual.transformer.resblocks[0].attn
    x = torch.randn(2, 5, model.visual.width)
    width = model.visual.width
    v = F.linear(x, attn.qkv.weight[2 * width :], attn.qkv.bias[2 * width :])
    torch.testing.assert_close(attn.value_path(x), attn.out_proj(v))
    assert not torch.allclose(attn.qkv.weight, attn.qkv.base.weight)


def test_only_the_lora_factors_train_and_receive_gradients(site: Path, tiny_pair) -> None:
    _, _, weights = tiny_pair
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="LoRA", blocks=[0, -1])])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    expected = {
        f"{tower}.transformer.resblocks.{i}.attn.qkv.{factor}"
        for tower in ("visual", "text")
        for i in (0, 3)
        for factor in ("lora_a", "lora_b")
    }
    assert trainable == expected
    assert model.plugins["lora"].wrapped == [
        "visual.transformer.resblocks.0.attn.qkv",
        "visual.transformer.resblocks.3.attn.qkv",
        "text.transformer.resblocks.0.attn.qkv",
        "text.transformer.resblocks.3.attn.qkv",
    ]
    _randomise_b(model)  # with B = 0, no gradient would reach A
    images, tokens = _batch(model)
    out = model.train()(images, tokens)
    (out["image_features"] @ out["text_features"].T).sum().backward()
    assert {n for n, p in model.named_parameters() if p.grad is not None} == expected


def test_adapter_round_trip(site: Path, tiny_pair, tmp_path: Path) -> None:
    _, _, weights = tiny_pair
    model = clipadapt.create_model("tiny-vit", pretrained=weights, plugins=[dict(type="LoRA", dropout=0.1)])
    _randomise_b(model)
    path = clipadapt.save_adapter(model, tmp_path / "lora.safetensors")
    restored = clipadapt.load_adapter(path)
    assert restored.plugins["lora"].config() == {"type": "LoRA", "dropout": 0.1}
    images, tokens = _batch(model)
    for a, b in zip(_outputs(model, images, tokens), _outputs(restored, images, tokens)):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


class _ReplaceQKV(Plugin):
    """Another plugin that replaces a projection first."""

    prefix = "other"

    def attach(self, clip: clipadapt.CLIP) -> None:
        self.replace_module(clip, "text.transformer.resblocks.1.attn.qkv", nn.Identity())


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        (dict(rank=0), ValueError, r"LoRA rank must be >= 1, got 0"),
        (dict(targets="qkv"), ValueError, r"LoRA targets must be distinct names from \('q', 'k', 'v'\), got 'qkv'"),
        (dict(towers=("vision", "audio")), ValueError, r"LoRA towers must be distinct names"),
        (dict(dropout=1.0), ValueError, r"LoRA dropout must be in \[0, 1\), got 1.0"),
        (
            dict(blocks=[4]),
            PluginCompatibilityError,
            r"LoRA blocks \[4\] do not exist in the vision tower of 'tiny-vit'",
        ),
        (dict(blocks=[3, -1]), PluginCompatibilityError, r"name the same block twice in the vision tower"),
    ],
)
def test_bad_arguments_name_the_key(site: Path, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        clipadapt.create_model("tiny-vit", plugins=[dict(type="LoRA", **kwargs)])


def test_a_projection_replaced_by_another_plugin_is_refused(site: Path) -> None:
    with pytest.raises(PluginCompatibilityError, match=r"cannot wrap 'text.transformer.resblocks.1.attn.qkv': plugin"):
        clipadapt.create_model("tiny-vit", plugins=[_ReplaceQKV(), dict(type="LoRA")])


@pytest.mark.slow
def test_tools_train_trains_the_installed_plugin(site: Path, tmp_path: Path) -> None:
    """The example's own config through tools/train.py, on a 4-class world and a random tiny CLIP."""
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    config = tmp_path / "lora_small.py"
    config.write_text(
        f"_base_ = [{str(CONFIG)!r}]\nsynthetic_world = {WORLD!r}\n"
        "model = dict(pretrained=None)\n"
        "train_dataloader = dict(batch_size=4, dataset=dict(num_shots=4))\n"
        "train_cfg = dict(max_epochs=1)\n"
        "default_hooks = dict(logger=dict(interval=1), checkpoint=dict(save_best=None))\n"
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               CLIPADAPT_DATA=str(world), CLIPADAPT_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1")  # fmt: skip
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(config), "--work-dir", str(tmp_path / "run")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "optimizer over 15,360 trainable parameters (16 tensors)" in log
    assert "Epoch(train) [1][4/4]" in log  # 4 classes x 4 shots / batch 4

    checkpoint = torch.load(tmp_path / "run" / "epoch_1.pth", map_location="cpu", weights_only=False)
    state = checkpoint["state_dict"]
    factors = {k: v for k, v in state.items() if k.endswith(("lora_a", "lora_b"))}
    assert len(factors) == 16
    assert all(k.startswith(("clip.visual.", "clip.text.")) for k in state)  # the adapter, not the whole CLIP
    assert any(float(v.abs().max()) > 0 for k, v in factors.items() if k.endswith("lora_b"))  # B moved off zero
    assert checkpoint["meta"]["clipadapt"]["plugins"][0]["type"] == "LoRA"
