"""The out-of-tree conditioned prompt example (examples/clipadapt-imageprompt): installed with pip, its plugin and
task found through one entry point (no custom_imports), per-image prompts, and training under tools/train.py.

The package is installed into a temporary target directory, as the LoRA example's test does, so the suite's
registries stay the same for every other test.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

import clipadapt
from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.plugins import PluginCompatibilityError, discovery
from clipadapt.registry import MODELS, PLUGINS
from clipadapt.tasks import PromptClassifier
from tests.examples.test_lora_example import pip_install
from tests.helpers import SMALL_WORLD

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "examples" / "clipadapt-imageprompt"
CONFIG = PACKAGE / "configs" / "patchprompt_tiny-vit_1xb4_synthetic-warm-b2n.py"
NAMES = ["red circle", "blue square", "green star"]


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Iterator[Path]:
    target = tmp_path_factory.mktemp("imageprompt") / "site"
    pip_install(PACKAGE, target)
    entry = (target / "clipadapt_imageprompt-0.1.0.dist-info" / "entry_points.txt").read_text().split()
    assert entry == ["[clipadapt.plugins]", "imageprompt", "=", "clipadapt_imageprompt"]
    sys.path.insert(0, str(target))
    importlib.invalidate_caches()
    discovery.load_plugin_modules(force=True)
    yield target
    sys.path.remove(str(target))
    PLUGINS.module_dict.pop("PatchPrompt", None)
    MODELS.module_dict.pop("PatchConditionedClassifier", None)
    for name in [m for m in sys.modules if m.split(".")[0] == "clipadapt_imageprompt"]:
        del sys.modules[name]
    discovery.load_plugin_modules(force=True)


def _task(**kwargs) -> PromptClassifier:
    torch.manual_seed(0)
    task = MODELS.build(dict(type="PatchConditionedClassifier", model_name="tiny-vit", classnames=NAMES, **kwargs))
    with torch.no_grad():  # move the zero-initialised shift, so that the images condition the prompts
        task.clip.plugins["patchprompt"].shift.weight.normal_(std=0.05)
    return task.eval()


def test_one_entry_point_registers_the_plugin_and_the_task(site: Path) -> None:
    assert "PatchPrompt" in clipadapt.registered_plugins()
    for cls in (PLUGINS.get("PatchPrompt"), MODELS.get("PatchConditionedClassifier")):
        assert Path(sys.modules[cls.__module__].__file__).resolve().is_relative_to(site.resolve())


def test_the_plain_prompt_classifier_refuses_the_plugin_naming_both(site: Path) -> None:
    with pytest.raises(PluginCompatibilityError, match=r"PatchPrompt .*\['patch_mean'\].*task PromptClassifier"):
        PromptClassifier("tiny-vit", plugins=[dict(type="PatchPrompt")], classnames=NAMES)


def test_each_image_gets_its_own_class_features(site: Path) -> None:
    task = _task(plugins=[dict(type="PatchPrompt")], text_batch_size=4)
    torch.manual_seed(1)
    images = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        logits = task(images)
        rows = torch.cat([task(image[None]) for image in images])
        output = task.encode_images(images)
        features = task.text_features_for(output, torch.nn.functional.normalize(output.pooled, dim=-1))
    assert features.shape == (3, len(NAMES), task.clip.embed_dim)
    torch.testing.assert_close(logits, rows, atol=1e-5 * float(logits.abs().max()), rtol=0)
    assert float((features[0] - features[1]).abs().max()) > 1e-4


@pytest.mark.slow
def test_tools_train_trains_the_installed_task_and_its_adapter_reloads(site: Path, tmp_path: Path) -> None:
    """The example's config through tools/train.py: no custom_imports, the project's _base_ through an env var."""
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **SMALL_WORLD)
    config = tmp_path / "patchprompt_small.py"
    config.write_text(
        f"_base_ = [{str(CONFIG)!r}]\nsynthetic_world = {SMALL_WORLD!r}\n"
        "model = dict(pretrained=None)\n"
        "train_dataloader = dict(batch_size=2, dataset=dict(num_shots=2))\n"
        "train_cfg = dict(max_epochs=1, val_interval=1)\n"
        "default_hooks = dict(logger=dict(interval=1))\n"
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
               CLIPADAPT_DATA=str(world), CLIPADAPT_CACHE=str(tmp_path / "cache"), OMP_NUM_THREADS="1",
               CLIPADAPT_CONFIGS=str(ROOT / "configs"))  # fmt: skip
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(config), "--work-dir", str(tmp_path / "run")]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    log = done.stdout + done.stderr
    assert done.returncode == 0, log[-4000:]
    assert "Using env variable `CLIPADAPT_CONFIGS`" in log
    assert "Epoch(train) [1][2/2]" in log  # 2 base classes x 2 shots / batch 2
    assert "accuracy/top1" in log

    checkpoint = tmp_path / "run" / "epoch_1.pth"
    with pytest.raises(ValueError, match=r"is a training checkpoint .* clipadapt.adapter_from_checkpoint"):
        clipadapt.load_adapter(checkpoint)
    adapter = clipadapt.adapter_from_checkpoint(checkpoint)
    meta, state = clipadapt.read_adapter(adapter)
    assert sorted(state) == [
        "plugins.patchprompt.ctx",
        "plugins.patchprompt.deep.0",
        "plugins.patchprompt.shift.bias",
        "plugins.patchprompt.shift.weight",
    ]
    assert float(state["plugins.patchprompt.shift.weight"].abs().max()) > 0  # it trained off zero
    # The task the adapter was trained under, rebuilt as the adapter module's docstring says.
    task = MODELS.build(dict(type="PatchConditionedClassifier", model_name=meta["model"], plugins=meta["plugins"],
                             classnames=NAMES))  # fmt: skip
    clipadapt.load_adapter(adapter, model=task.clip)
    torch.testing.assert_close(task.clip.plugins["patchprompt"].shift.weight, state["plugins.patchprompt.shift.weight"])
