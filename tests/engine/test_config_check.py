"""Unknown config keys give errors that name the key, where it is, and the closest known key."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from mmengine.config import Config

import clipadapt.engine  # noqa: F401
from clipadapt.engine import ConfigKeyError, check_config, find_config


@pytest.fixture
def cfg():
    return Config.fromfile(str(find_config("vpt/vpt_tiny-vit_1xb32_synthetic-dark-16shot.py")))


CONFIGS = Path(__file__).resolve().parents[2] / "configs"


@pytest.mark.parametrize(
    "name", sorted(p.relative_to(CONFIGS).as_posix() for p in CONFIGS.rglob("*.py") if "_base_" not in p.parts)
)
def test_every_shipped_config_passes(name):
    """Every method config parses and every key in it is one that something reads (recipes included)."""
    check_config(Config.fromfile(str(CONFIGS / name)))


def test_unknown_top_level_key(cfg):
    cfg.max_epoch = 5
    with pytest.raises(ConfigKeyError, match=r"'max_epoch'.*did you mean 'train_cfg'|'max_epoch'"):
        check_config(cfg)
    cfg.pop("max_epoch")
    cfg.train_dataloaders = {}
    with pytest.raises(
        ConfigKeyError, match=r"unknown top-level config key 'train_dataloaders'; did you mean 'train_dataloader'"
    ):
        check_config(cfg)


def test_private_helpers_are_allowed(cfg):
    cfg._my_helper = 3
    check_config(cfg)


def test_unknown_model_argument(cfg):
    cfg.model.templtes = "simple"
    with pytest.raises(
        ConfigKeyError, match=r"model\.templtes: PromptClassifier has no argument 'templtes'; did you mean 'templates'"
    ):
        check_config(cfg)


def test_unknown_plugin_argument(cfg):
    cfg.model.plugins = [dict(type="VPT", num_token=4)]
    with pytest.raises(
        ConfigKeyError,
        match=r"model\.plugins\[0\]\.num_token: VPT has no argument 'num_token'; did you mean 'num_tokens'",
    ):
        check_config(cfg)


def test_unknown_types_dataset_and_transform_arguments(cfg):
    bad = copy.deepcopy(cfg)
    bad.model.type = "PromptClassifer"
    with pytest.raises(
        ConfigKeyError, match=r"model\.type: unknown model type 'PromptClassifer'; did you mean 'PromptClassifier'"
    ):
        check_config(bad)
    bad = copy.deepcopy(cfg)
    bad.train_dataloader.dataset.num_shot = 4
    with pytest.raises(ConfigKeyError, match=r"train_dataloader\.dataset\.num_shot: FewShotDataset .*'num_shots'"):
        check_config(bad)
    bad = copy.deepcopy(cfg)
    bad.train_dataloader.dataset.pipeline[1]["probability"] = 0.5
    with pytest.raises(ConfigKeyError, match=r"train_dataloader\.dataset\.pipeline\[1\]\.probability"):
        check_config(bad)
    bad = copy.deepcopy(cfg)
    bad.train_dataloader.batchsize = 4
    with pytest.raises(ConfigKeyError, match=r"train_dataloader\.batchsize.*'batch_size'"):
        check_config(bad)


def test_optimizer_scheduler_hook_and_metric_arguments(cfg):
    for path, key in [
        (("optim_wrapper", "optimizer"), "learning_rate"),
        (("param_scheduler", 1), "tmax"),
        (("default_hooks", "class_names"), "intervl"),
        (("val_evaluator",), "top_k"),
        (("train_cfg",), "max_epoch"),
    ]:
        bad = copy.deepcopy(cfg)
        node = bad
        for part in path:
            node = node[part]
        node[key] = 1
        with pytest.raises(ConfigKeyError, match=key):
            check_config(bad)
