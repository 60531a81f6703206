"""The optimizer sees trainable parameters only."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import clipadapt.engine  # noqa: F401
from clipadapt.registry import MODELS, OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.norm = nn.LayerNorm(4)
        self.head = nn.Linear(4, 2)


def build(model, paramwise_cfg=None):
    cfg = dict(optimizer=dict(type="AdamW", lr=0.1, weight_decay=0.5))
    constructor = dict(type="TrainableOptimWrapperConstructor", optim_wrapper_cfg=cfg, paramwise_cfg=paramwise_cfg)
    return OPTIM_WRAPPER_CONSTRUCTORS.build(constructor)(model)


def _ids(wrapper):
    return {id(p) for g in wrapper.optimizer.param_groups for p in g["params"]}


def test_only_trainable_parameters_with_and_without_paramwise_cfg():
    model = Toy()
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert _ids(build(model)) == trainable
    wrapper = build(model, paramwise_cfg=dict(norm_decay_mult=0.0, custom_keys={"head.bias": dict(lr_mult=10.0)}))
    assert _ids(wrapper) == trainable
    groups = {id(g["params"][0]): g for g in wrapper.optimizer.param_groups}
    assert groups[id(model.norm.weight)]["weight_decay"] == 0.0
    assert groups[id(model.head.bias)]["lr"] == pytest.approx(1.0)


def test_frozen_parameters_hold_no_optimizer_state():
    model = Toy()
    wrapper = build(model)
    model.head(model.norm(model.frozen(torch.randn(3, 4)))).sum().backward()
    wrapper.step()
    assert all(id(p) not in {id(q) for q in wrapper.optimizer.state} for p in model.frozen.parameters())
    assert len(wrapper.optimizer.state) == 4


def test_plugin_model_trains_prompts_only():
    model = MODELS.build(dict(type="PromptClassifier", model_name="tiny-vit", plugins=[dict(type="VPT", num_tokens=2)]))
    wrapper = build(model)
    assert _ids(wrapper) == {id(model.clip.plugins["vpt"].prompts)}


def test_no_trainable_parameter_is_an_error():
    model = Toy().requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameter"):
        build(model)


def test_autocast_wrapper_runs_bf16_on_cpu():
    model = nn.Linear(4, 4)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    wrapper = OPTIM_WRAPPERS.build(dict(type="AutocastOptimWrapper", optimizer=optimizer))
    with wrapper.optim_context(model):
        out = model(torch.randn(2, 4))
    assert out.dtype == torch.bfloat16
