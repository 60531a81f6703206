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


class _Task(torch.nn.Module):
    """A task holding a CLIP (two linear layers stand in for it) and nothing else."""

    def __init__(self):
        super().__init__()
        self.clip = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))


def _fit_runner(caplog_logger):
    return SimpleNamespace(model=_Task(), logger=caplog_logger, _load_from="other_task.pth")


def test_keys_of_another_task_or_plugin_are_left_out_with_a_warning(caplog):
    """An FG-CLIP 2 checkpoint (region logit scales, a dense head plugin) evaluated by a zero-shot config."""
    from clipadapt.engine.hooks import _check_fit

    state = {f"clip.{k}": v.clone() for k, v in _Task().clip.state_dict().items()}
    state |= {"region_logit_scale": torch.ones(()), "clip.plugins.region_align.dense_proj": torch.ones(4, 4)}
    logger = logging.getLogger("test_check_fit")
    with caplog.at_level(logging.WARNING, logger="test_check_fit"):
        _check_fit(_fit_runner(logger), {"state_dict": state})
    assert "2 checkpoint keys of another task or plugin are not loaded" in caplog.text
    assert "region_logit_scale" in caplog.text and "clip.plugins.region_align.dense_proj" in caplog.text
    assert sorted(state) == sorted(f"clip.{k}" for k in _Task().clip.state_dict())  # what loads is the CLIP


def test_an_unknown_layer_of_the_clip_is_still_refused():
    """A deeper CLIP (an extra block) is another architecture: refused, naming the key."""
    import pytest

    from clipadapt.engine.hooks import _check_fit
    from clipadapt.models.checkpoint import CheckpointMismatchError

    state = {f"clip.{k}": v.clone() for k, v in _Task().clip.state_dict().items()}
    state["clip.2.weight"] = torch.ones(2, 2)
    with pytest.raises(CheckpointMismatchError, match=r"other_task\.pth does not fit .*'clip\.2\.weight'"):
        _check_fit(_fit_runner(logging.getLogger("test_check_fit")), {"state_dict": state})
