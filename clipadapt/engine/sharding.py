"""Sharded data parallelism through MMEngine's runner: torch FSDP2 ``fully_shard`` per residual block, then the root.

One config switch turns any full fine-tuning config into a sharded run::

    model_wrapper_cfg = dict(type="FullyShardedWrapper", mixed_precision="bf16")

With ``--launcher pytorch`` (``tools/dist_train.sh``) or ``slurm``, :func:`use_sharding` (called by the
tools' config preparation) then selects :class:`ShardedRunner` and adds nothing else. Each rank holds
``1 / world_size`` of every sharded parameter, its gradient and its optimizer state; a block's
parameters are all-gathered just before its forward (and again for its backward) and freed after.

What stays whole on every rank (replicated, as under DDP):

- scalar parameters (``logit_scale``; FSDP2 cannot shard a 0-d tensor): their gradients are averaged
  over ranks here before each optimizer step;
- frozen parameters (``shard_frozen=False``): the frozen base CLIP of a prompt-learning plugin has no
  gradient and no optimizer state, so sharding it would only add an all-gather per block and step.
  Under bf16 mixed precision they are stored in bf16 (they need no fp32 master copy).

Checkpoints are whole, the same files as DDP or one process writes: at each save every rank
all-gathers the shards (``DTensor.full_tensor``) and rank 0 writes, through the atomic checkpoint hook;
on load, each rank keeps its shard of the whole tensors. So a sharded run resumes from a DDP checkpoint
and back, and the adapter-only checkpoints of plugins work unchanged. The price is one whole copy of
the model and optimizer state in rank 0's CPU memory at save time (8 GB for ViT-L/14 with AdamW);
beyond that, use ``torch.distributed.checkpoint`` (not done here).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as torch_dist
from mmengine.optim import OptimWrapper
from mmengine.registry import MODEL_WRAPPERS, RUNNERS
from mmengine.runner import Runner
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

__all__ = ["FullyShardedWrapper", "ShardedRunner", "use_sharding"]

_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


@MODEL_WRAPPERS.register_module()
class FullyShardedWrapper(nn.Module):
    """FSDP2 (``torch.distributed.fsdp.fully_shard``) applied to a clipadapt model, for MMEngine's runner.

    ``fully_shard`` is applied to every module whose class name is in ``shard_modules`` (the residual
    blocks of both towers, plugins' replacements inside them included), then to the model itself (the
    embeddings, projections and whatever else is left). Gradients are averaged over ranks, as DDP does.
    Activation checkpointing composes: ``model = dict(grad_checkpointing=True)``.

    Args:
        module: The model (a ``BaseModel`` with ``train_step``), on its device already.
        shard_modules: Class names of the modules sharded as one unit each.
        mixed_precision: None (fp32), ``'bf16'`` or ``'fp16'``: the dtype of the all-gathered parameters
            and of the forward; parameters, gradients (reduced in fp32) and optimizer state stay fp32.
        reshard_after_forward: Free a block's gathered parameters after its forward (ZeRO-3); False keeps
            them until the backward (ZeRO-2, faster, more memory).
        shard_frozen: Shard parameters with ``requires_grad=False`` too.
        root_modules: Names of modules (``clip.visual.transformer.resblocks.3``) left out of the per-block
            units: their parameters join the root unit, gathered for the whole step. For code that calls
            a block's parts outside the block's ``forward`` (FG-CLIP 2's value path re-runs the last
            vision block's ``ln_1``, ``attn.value_path`` and ``mlp``), which a per-block unit would leave
            sharded.
    """

    def __init__(
        self,
        module: nn.Module,
        shard_modules: tuple[str, ...] | list[str] = ("ResidualBlock",),
        mixed_precision: str | None = None,
        reshard_after_forward: bool = True,
        shard_frozen: bool = False,
        root_modules: tuple[str, ...] | list[str] = (),
    ) -> None:
        super().__init__()
        if not torch_dist.is_initialized():
            raise RuntimeError("FullyShardedWrapper needs a process group: launch with --launcher pytorch or slurm")
        if mixed_precision is not None and mixed_precision not in _DTYPES:
            raise ValueError(f"mixed_precision must be None, 'bf16' or 'fp16', got {mixed_precision!r}")
        self.module: Any = module  # the task (an MMEngine BaseModel): its train/val/test steps are called
        _broadcast_from_rank0(module)  # as DDP does: every rank starts from rank 0's weights
        device = next(module.parameters()).device
        mesh = init_device_mesh(device.type, (torch_dist.get_world_size(),))
        replicated = {p for p in module.parameters() if p.dim() == 0 or (not p.requires_grad and not shard_frozen)}
        if mixed_precision is not None:
            policy = MixedPrecisionPolicy(param_dtype=_DTYPES[mixed_precision], reduce_dtype=torch.float32)
            for param in replicated:
                if not param.requires_grad:
                    param.data = param.data.to(_DTYPES[mixed_precision])
        else:
            policy = MixedPrecisionPolicy()
        options: dict[str, Any] = dict(mesh=mesh, mp_policy=policy, ignored_params=replicated)
        names = dict(module.named_modules())
        unknown = sorted(set(root_modules) - set(names))
        if unknown:
            raise ValueError(f"root_modules {unknown} are not modules of {type(module).__name__}")
        kept = {id(names[n]) for n in root_modules}
        units = [m for m in module.modules() if type(m).__name__ in set(shard_modules) and id(m) not in kept]
        if not units:
            raise ValueError(f"no module of {type(module).__name__} is a {list(shard_modules)}: nothing to shard")
        for unit in units:
            fully_shard(unit, reshard_after_forward=reshard_after_forward, **options)
        fully_shard(module, **options)
        self.replicated = [p for p in module.parameters() if p in replicated and p.requires_grad]

    def train_step(self, data: Any, optim_wrapper: OptimWrapper) -> dict[str, torch.Tensor]:
        """``MMDistributedDataParallel.train_step``, with gradient sync set for accumulation and the
        gradients of the replicated parameters averaged before the step."""
        with optim_wrapper.optim_context(self):
            data = self.module.data_preprocessor(data, training=True)
            losses = self.module._run_forward(data, mode="loss")
        parsed, log_vars = self.module.parse_losses(losses)
        self.module.set_requires_gradient_sync(optim_wrapper.should_sync())
        optim_wrapper.backward(optim_wrapper.scale_loss(parsed))
        if optim_wrapper.should_update():
            self._average_replicated_grads()
            optim_wrapper.step()
            optim_wrapper.zero_grad()
        return log_vars

    def val_step(self, data: Any) -> list:
        return self.module.val_step(data)

    def test_step(self, data: Any) -> list:
        return self.module.test_step(data)

    def _average_replicated_grads(self) -> None:
        if not self.replicated:
            return
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in self.replicated]
        flat = torch.cat([g.reshape(-1).float() for g in grads])
        torch_dist.all_reduce(flat)
        flat /= torch_dist.get_world_size()
        for param, part in zip(self.replicated, flat.split([g.numel() for g in grads])):
            if param.grad is not None:
                param.grad.copy_(part.view_as(param.grad))


def _broadcast_from_rank0(module: nn.Module) -> None:
    for tensor in [*module.parameters(), *module.buffers()]:
        torch_dist.broadcast(tensor.data, src=0)


def _full(value: Any) -> Any:
    """``value`` with every DTensor gathered whole (a collective: every rank must call it, in the same order)."""
    if isinstance(value, DTensor):
        return value.full_tensor().cpu()
    if isinstance(value, dict):
        return type(value)((k, _full(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_full(v) for v in value]
    return value


def _shard_like(value: Any, like: Any) -> Any:
    """A whole tensor cut to this rank's shard of ``like`` (no communication: every rank loaded the file)."""
    if isinstance(like, DTensor) and isinstance(value, torch.Tensor) and not isinstance(value, DTensor):
        value = value.to(device=like.device, dtype=like.dtype)
        return distribute_tensor(value, like.device_mesh, like.placements, src_data_rank=None)
    return value


@RUNNERS.register_module()
class ShardedRunner(Runner):
    """MMEngine's ``Runner`` for a :class:`FullyShardedWrapper` model: whole checkpoints out, shards in.

    ``Runner.save_checkpoint`` runs on rank 0 only; gathering the shards needs every rank, so it is
    done here first (every rank calls ``save_checkpoint`` from the checkpoint hook), and the whole
    state replaces the sharded one before the ``before_save_checkpoint`` hooks see the checkpoint.
    After the ``after_load_checkpoint`` hooks, the whole tensors of a loaded checkpoint (model and
    optimizer) are cut to this rank's shards. Without the wrapper it is the plain ``Runner``.
    """

    _whole: dict[str, Any] | None = None

    def _sharded(self) -> bool:
        return isinstance(self.model, FullyShardedWrapper)

    def save_checkpoint(self, out_dir: str, filename: str, *args: Any, **kwargs: Any) -> None:
        if self._sharded():
            whole = {"state_dict": _full(self.model.module.state_dict())}
            if kwargs.get("save_optimizer", True) and isinstance(self.optim_wrapper, OptimWrapper):
                whole["optimizer"] = _full(self.optim_wrapper.state_dict())
            self._whole = whole
        try:
            super().save_checkpoint(out_dir, filename, *args, **kwargs)  # rank 0 only
        finally:
            self._whole = None

    def call_hook(self, fn_name: str, **kwargs: Any) -> None:
        checkpoint = kwargs.get("checkpoint")
        if fn_name == "before_save_checkpoint" and self._whole is not None:
            assert checkpoint is not None, "MMEngine calls before_save_checkpoint with the checkpoint"
            checkpoint.update({k: v for k, v in self._whole.items() if k in checkpoint})
        super().call_hook(fn_name, **kwargs)
        if fn_name == "after_load_checkpoint" and self._sharded():
            assert checkpoint is not None, "MMEngine calls after_load_checkpoint with the checkpoint"
            self._shard_checkpoint(checkpoint)

    def _shard_checkpoint(self, checkpoint: dict) -> None:
        own = self.model.module.state_dict()
        state = checkpoint.get("state_dict", checkpoint)
        for key in list(state):
            name = key.removeprefix("module.")
            if name in own:
                state[key] = _shard_like(state[key], own[name])
        optimizer = checkpoint.get("optimizer")
        if optimizer is None or not isinstance(self.optim_wrapper, OptimWrapper):
            return
        params = [p for group in self.optim_wrapper.optimizer.param_groups for p in group["params"]]
        for index, values in optimizer.get("state", {}).items():
            if int(index) < len(params):
                like = params[int(index)]
                for key, value in values.items():
                    if torch.is_tensor(value) and value.dim():  # AdamW's 'step' is a scalar: whole
                        values[key] = _shard_like(value, like)

    def _init_model_weights(self) -> None:
        if not self._sharded():
            return super()._init_model_weights()
        model = self.model.module
        if hasattr(model, "init_weights"):
            model.init_weights()  # the wrapper broadcast rank 0's weights before sharding; a shard is not broadcast


def use_sharding(cfg: Any) -> bool:
    """Select :class:`ShardedRunner` when ``cfg.model_wrapper_cfg`` names :class:`FullyShardedWrapper`.

    Returns True if it did. A config that names another ``runner_type`` is refused (the checkpoints
    of a sharded model need this runner). An evaluation-only config (``tools/test.py`` drops the
    training keys) gets the default wrapper back: without gradients and optimizer state, every rank
    holds the whole model, and evaluation loads the same whole checkpoints.
    """
    wrapper = cfg.get("model_wrapper_cfg") or {}
    kind = wrapper.get("type")
    if kind not in ("FullyShardedWrapper", FullyShardedWrapper):
        return False
    if cfg.get("train_dataloader") is None:
        cfg.model_wrapper_cfg = None
        return False
    runner = cfg.get("runner_type")
    if runner not in (None, "ShardedRunner", ShardedRunner):
        raise ValueError(f"model_wrapper_cfg FullyShardedWrapper needs runner_type='ShardedRunner', got {runner!r}")
    cfg.runner_type = "ShardedRunner"
    return True
