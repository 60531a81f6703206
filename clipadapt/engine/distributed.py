"""DDP without GPUs: MMEngine's ``pytorch`` launcher assumes CUDA; these two pieces let it run on CPU (gloo).

- :func:`init_cpu_process_group`: MMEngine's ``init_dist`` calls ``torch.cuda.set_device``; on a
  machine without GPUs the gloo process group is started here first (from torchrun's environment),
  and the runner then finds it initialised and skips its own.
- :class:`CPUDistributedDataParallel`: MMEngine passes ``device_ids=[LOCAL_RANK]``, which DDP refuses for
  a CPU module; this wrapper drops it for CPU modules.

``tools/train.py`` and ``tools/test.py`` use both when launched with ``--launcher pytorch`` on CPU.
:func:`use_cpu_ddp` also selects the sharded runner when the config asks for sharding
(:mod:`clipadapt.engine.sharding`), on CPU and GPU alike.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from mmengine.model import MMDistributedDataParallel
from mmengine.registry import MODEL_WRAPPERS
from torch import nn

__all__ = ["CPUDistributedDataParallel", "init_cpu_process_group", "use_cpu_ddp"]


# MMEngine's root registry: clipadapt.registry has no MODEL_WRAPPERS child (yet), and the runner
# looks wrappers up there.
@MODEL_WRAPPERS.register_module()
class CPUDistributedDataParallel(MMDistributedDataParallel):
    """``MMDistributedDataParallel`` that accepts MMEngine's ``device_ids`` for a module on the CPU."""

    def __init__(self, module: nn.Module, device_ids: Any = None, **kwargs: Any) -> None:
        on_cpu = all(p.device.type == "cpu" for p in module.parameters())
        super().__init__(module=module, device_ids=None if on_cpu else device_ids, **kwargs)


def init_cpu_process_group(launcher: str) -> bool:
    """Start the gloo process group for ``launcher='pytorch'`` when CUDA is absent; True if it did."""
    if launcher != "pytorch" or torch.cuda.is_available() or dist.is_initialized():
        return False
    dist.init_process_group(backend="gloo")  # RANK, WORLD_SIZE, MASTER_ADDR/PORT from torchrun
    return True


def use_cpu_ddp(cfg: Any) -> None:
    """Prepare ``cfg`` for distributed training: the sharded runner if its wrapper is configured
    (:func:`clipadapt.engine.sharding.use_sharding`); on CPU, the gloo process group and a CPU-friendly
    DDP wrapper."""
    from .sharding import use_sharding

    if cfg.get("launcher", "none") == "none":
        return
    use_sharding(cfg)
    if torch.cuda.is_available():
        return
    init_cpu_process_group(cfg.launcher)
    cfg.env_cfg = dict(cfg.get("env_cfg") or {}, dist_cfg=dict(backend="gloo"))
    if cfg.get("model_wrapper_cfg") is None:
        # MMEngine reads the top-level find_unused_parameters only when it builds the wrapper itself.
        cfg.model_wrapper_cfg = dict(
            type="CPUDistributedDataParallel",
            broadcast_buffers=False,
            find_unused_parameters=bool(cfg.get("find_unused_parameters", False)),
        )
