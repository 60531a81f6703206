"""ClassNamesHook and AdapterCheckpointHook on stub runners."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import torch

import clipadapt.engine  # noqa: F401
from clipadapt.engine import AdapterCheckpointHook, ClassNamesHook
from clipadapt.registry import MODELS


def _loader(classes):
    return SimpleNamespace(dataset=SimpleNamespace(metainfo={"classes": classes}))


class Recorder:
    def __init__(self):
        self.names = None

    def set_classnames(self, names):
        self.names = names


def test_class_names_follow_the_loop():
    model = Recorder()
    runner = SimpleNamespace(
        model=model,
        train_dataloader=_loader(["a", "b"]),
        val_loop=SimpleNamespace(dataloader=_loader(["c", "d", "e"])),
        test_loop=SimpleNamespace(dataloader=_loader(["f"])),
    )
    hook = ClassNamesHook()
    hook.before_train(runner)
    assert model.names == ["a", "b"]
    hook.before_val(runner)
    assert model.names == ["c", "d", "e"]
    hook.after_val(runner)  # validation inside training: training classes again
    assert model.names == ["a", "b"]
    hook.after_train(runner)
    hook.before_val(runner)
    hook.after_val(runner)  # validation alone: left as validated
    assert model.names == ["c", "d", "e"]
    hook.before_test(runner)
    assert model.names == ["f"]


def test_adapter_checkpoint_prunes_and_refills():
    torch.manual_seed(0)
    model = MODELS.build(dict(type="PromptClassifier", model_name="tiny-vit", plugins=[dict(type="VPT", num_tokens=2)]))
    runner = SimpleNamespace(model=model, logger=logging.getLogger("test"))
    full = model.state_dict()
    checkpoint = {"state_dict": dict(full), "meta": {}}
    hook = AdapterCheckpointHook()
    hook.before_save_checkpoint(runner, checkpoint)
    assert list(checkpoint["state_dict"]) == ["clip.plugins.vpt.prompts"]
    assert checkpoint["meta"]["clipadapt"]["plugins"] == [{"type": "VPT", "num_tokens": 2}]
    hook.after_load_checkpoint(runner, checkpoint)  # base keys come back from the model itself
    assert set(checkpoint["state_dict"]) == set(full)
    model.load_state_dict(checkpoint["state_dict"])  # strict: complete


def test_models_without_plugins_are_saved_whole():
    model = MODELS.build(dict(type="ImageTextContrastive", model_name="tiny-vit"))
    checkpoint = {"state_dict": model.state_dict(), "meta": {}}
    AdapterCheckpointHook().before_save_checkpoint(SimpleNamespace(model=model), checkpoint)
    assert len(checkpoint["state_dict"]) == len(model.state_dict()) and "clipadapt" not in checkpoint["meta"]
