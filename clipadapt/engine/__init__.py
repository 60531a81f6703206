"""Training-side machinery on top of MMEngine: hooks, optimizer constructors, config preparation.

Model code (``clipadapt.models``, the plugin classes) never imports this package; a method's training
recipe may (CLIP-MoE's ``plugins/moe/recipe.py``).

- :mod:`.paths`: the cache, data and config folders, ``cache://`` resolvers, ``load_tool``;
- :func:`train_in_process`: one config trained inside this process (:mod:`.run`);

- :class:`ClassNamesHook`, :class:`AdapterCheckpointHook`, :class:`ProgressBarHook`;
- :class:`TrainableOptimWrapperConstructor` (the optimizer sees trainable parameters only),
  :class:`AutocastOptimWrapper` (bf16 autocast on CPU or GPU);
- :class:`AtomicCheckpointHook`, :class:`RandomStateHook`, :func:`use_reliable_checkpoints`: checkpoints
  that a kill never leaves broken, resumes that continue the same random stream;
- :func:`enable_safe_resume`: resuming under ``torch.load(weights_only=True)``;
- :func:`prepare_config` / :func:`check_config`: readable errors for unknown config keys, and the
  ``cache://`` / ``synthetic://`` paths;
- :func:`ensure_tiny_clip`: the tiny base CLIP pretrained on the synthetic world, cached;
- :class:`FullyShardedWrapper`, :class:`ShardedRunner`: sharded training (FSDP2), selected by
  ``model_wrapper_cfg = dict(type="FullyShardedWrapper")``.
"""

# The tasks and metrics register into MODELS / METRICS; a runner built from here must find them.
from clipadapt import tasks  # noqa: F401
from clipadapt.evaluation import BaseNovelAccuracy, RetrievalRecall, Top1Accuracy  # noqa: F401

from .config_check import ConfigKeyError, check_config
from .distributed import CPUDistributedDataParallel, init_cpu_process_group, use_cpu_ddp
from .hooks import AdapterCheckpointHook, ClassNamesHook, ProgressBarHook
from .optim import AutocastOptimWrapper, TrainableOptimWrapperConstructor
from .paths import cache_dir, data_dir, find_config, register_cache_resolver
from .prepare import prepare_config, resolve_uri, world_dir
from .reliability import AtomicCheckpointHook, AtomicLocalBackend, RandomStateHook, use_reliable_checkpoints
from .run import train_in_process
from .safe_load import SAFE_GLOBALS, UnsafeCheckpointError, enable_safe_resume, load_local_checkpoint
from .sharding import FullyShardedWrapper, ShardedRunner, use_sharding
from .tiny_clip import ensure_tiny_clip, tiny_clip_path

__all__ = [
    "SAFE_GLOBALS",
    "AdapterCheckpointHook",
    "AtomicCheckpointHook",
    "AtomicLocalBackend",
    "AutocastOptimWrapper",
    "CPUDistributedDataParallel",
    "ClassNamesHook",
    "ConfigKeyError",
    "FullyShardedWrapper",
    "ProgressBarHook",
    "RandomStateHook",
    "ShardedRunner",
    "TrainableOptimWrapperConstructor",
    "UnsafeCheckpointError",
    "cache_dir",
    "check_config",
    "data_dir",
    "enable_safe_resume",
    "ensure_tiny_clip",
    "find_config",
    "init_cpu_process_group",
    "load_local_checkpoint",
    "prepare_config",
    "register_cache_resolver",
    "resolve_uri",
    "tiny_clip_path",
    "train_in_process",
    "use_cpu_ddp",
    "use_reliable_checkpoints",
    "use_sharding",
    "world_dir",
]
