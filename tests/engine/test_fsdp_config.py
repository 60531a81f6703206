"""The sharding switch: ``model_wrapper_cfg = dict(type="FullyShardedWrapper")`` selects the sharded runner,
and the wrapper shards the residual blocks, keeps scalars and frozen weights whole, and refuses bad setups.

In one process (a gloo group of one, FSDP2 on CPU); the two-rank runs are tests/tools/test_fsdp_*.py.
"""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from mmengine.config import Config
from torch.distributed.tensor import DTensor

from clipadapt.engine import use_cpu_ddp
from clipadapt.engine.config_check import check_config
from clipadapt.engine.sharding import FullyShardedWrapper, ShardedRunner, use_sharding
from clipadapt.registry import MODELS

WRAPPER = dict(type="FullyShardedWrapper", mixed_precision="bf16")


def test_the_switch_selects_the_sharded_runner():
    cfg = Config(dict(model_wrapper_cfg=dict(WRAPPER), launcher="pytorch", train_dataloader=dict()))
    assert use_sharding(cfg) and cfg.runner_type == "ShardedRunner"
    evaluation = Config(dict(model_wrapper_cfg=dict(WRAPPER), launcher="pytorch"))  # tools/test.py: no training
    assert not use_sharding(evaluation) and evaluation.model_wrapper_cfg is None and "runner_type" not in evaluation
    assert not use_sharding(Config(dict(model_wrapper_cfg=dict(type="CPUDistributedDataParallel"))))
    with pytest.raises(ValueError, match="ShardedRunner"):
        use_sharding(Config(dict(model_wrapper_cfg=dict(WRAPPER), runner_type="FlexibleRunner", train_dataloader={})))


def test_a_single_process_run_ignores_the_switch():
    cfg = Config(dict(model_wrapper_cfg=dict(WRAPPER), launcher="none"))
    use_cpu_ddp(cfg)
    assert "runner_type" not in cfg  # one process: the plain Runner, which does not wrap at all


def test_the_config_check_accepts_the_switch():
    cfg = Config(dict(model_wrapper_cfg=dict(WRAPPER), runner_type="ShardedRunner"))
    check_config(cfg)


@pytest.fixture
def group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield
    dist.destroy_process_group()


def _model(**kwargs):
    torch.manual_seed(0)
    return MODELS.build(
        dict(
            type="ImageTextContrastive",
            model_name="tiny-vit",
            long_caption_weight=0.0,
            data_preprocessor=dict(type="ClipDataPreprocessor"),
            **kwargs,
        )
    )


def test_blocks_are_sharded_scalars_and_frozen_weights_stay_whole(group):
    model = _model()
    model.clip.visual.conv1.requires_grad_(False)  # a frozen part, as a plugin would leave the base
    wrapper = FullyShardedWrapper(model, mixed_precision="bf16")
    block = model.clip.visual.transformer.resblocks[0]
    assert isinstance(block.mlp.c_fc.weight, DTensor) and block.mlp.c_fc.weight.dtype == torch.float32
    assert not isinstance(model.clip.logit_scale, DTensor) and any(
        p is model.clip.logit_scale for p in wrapper.replicated
    )
    frozen = model.clip.visual.conv1.weight
    assert not isinstance(frozen, DTensor) and frozen.dtype == torch.bfloat16  # no fp32 master copy needed
    assert all(p is not frozen for p in wrapper.replicated)  # frozen: no gradient to average


def test_a_training_step_through_the_wrapper(group):
    from mmengine.optim import OptimWrapper

    model = _model(grad_checkpointing=True)
    wrapper = FullyShardedWrapper(model)
    # Gradient clipping over sharded (DTensor) and whole (logit_scale) gradients together.
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=0.1), clip_grad=dict(max_norm=1.0))
    data = dict(
        inputs=torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8),
        data_samples=dict(caption=["a red circle", "a blue square"]),
    )
    before = model.clip.logit_scale.detach().clone()
    log = wrapper.train_step(data, optim)
    assert torch.isfinite(log["loss"]) and not torch.equal(model.clip.logit_scale.detach(), before)


def test_refusals(group):
    with pytest.raises(ValueError, match="nothing to shard"):
        FullyShardedWrapper(_model(), shard_modules=("NoSuchBlock",))
    with pytest.raises(ValueError, match="mixed_precision"):
        FullyShardedWrapper(_model(), mixed_precision="int8")
    with pytest.raises(ValueError, match="root_modules"):
        FullyShardedWrapper(_model(), root_modules=["clip.visual.transformer.resblocks.99"])


def test_the_wrapper_needs_a_process_group():
    with pytest.raises(RuntimeError, match="launcher"):
        FullyShardedWrapper(_model())
    assert issubclass(ShardedRunner, __import__("mmengine").runner.Runner)
