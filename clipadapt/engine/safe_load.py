"""Resuming MMEngine runs with ``torch.load(weights_only=True)``, without turning the safety off.

Since torch 2.6, ``torch.load`` defaults to ``weights_only=True``: only tensors, containers and
allow-listed globals can be unpickled. An MMEngine checkpoint also holds the message hub (its
``HistoryBuffer`` logs, numpy arrays inside) and numpy scalars, so ``Runner(resume=True)`` fails
with ``UnpicklingError``. :func:`enable_safe_resume` fixes both sides:

- saving: ``HistoryBuffer.__getstate__`` pickles its class-level table of statistics *functions*,
  which protocol 2 writes as ``getattr(HistoryBuffer, 'min')``. Allow-listing ``getattr`` would let a
  crafted file call any attribute of any allowed object (``ndarray.tofile``: a file write), so
  instead a ``copyreg`` reducer pickles a buffer as ``HistoryBuffer(log_history, count_history,
  max_length)``: one allowed class called with arrays. (Statistics methods are class-level and are
  registered again by the code that defines them.)
- loading: the classes those checkpoints need are allow-listed, found by trying (see
  ``tests/engine/test_safe_load.py``): ``HistoryBuffer``, numpy's ``ndarray`` / ``dtype`` and the
  reconstruct / scalar functions that rebuild arrays and scalars, and numpy's numeric dtype
  classes (never ``ObjectDType``: object arrays stay refused).

It also replaces MMEngine's loader of local checkpoints (``CheckpointLoader`` scheme ``''``: what
``load_from``, ``--resume`` and ``tools/test.py CKPT`` go through), which calls ``torch.load`` without
``weights_only`` and so depends on torch's default (and on ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``). Ours
is :func:`clipadapt.models.checkpoint_io.read_checkpoint`, the reader every clipadapt load goes
through: ``weights_only=True`` explicitly, TorchScript archives read without running code, and a
one-line error naming the file (:class:`CheckpointReadError`; :class:`UnsafeCheckpointError` for a
refused global) instead of torch's advice to turn the safety off.

Call it before a runner saves or loads (``tools/train.py`` and ``tools/test.py`` do).
"""

from __future__ import annotations

import copyreg
import os.path as osp
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer
from mmengine.runner import CheckpointLoader

from clipadapt.models.checkpoint_io import CheckpointReadError, UnsafeCheckpointError, read_checkpoint

__all__ = [
    "SAFE_GLOBALS",
    "CheckpointReadError",
    "UnsafeCheckpointError",
    "enable_safe_resume",
    "load_local_checkpoint",
]


def _numpy_globals() -> list[Any]:
    """numpy objects that pickled arrays, dtypes and scalars refer to, under the names of numpy 1 and 2."""
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:  # pragma: no cover - numpy 1
        from numpy.core import multiarray  # type: ignore[no-redef]
    out: list[Any] = [np.ndarray, np.dtype]
    for fn in (multiarray._reconstruct, multiarray.scalar):
        # Files written under numpy 1 name the module numpy.core.multiarray, under numpy 2 numpy._core.multiarray.
        out += [(fn, f"numpy.core.multiarray.{fn.__name__}"), (fn, f"numpy._core.multiarray.{fn.__name__}")]
    numeric = (
        np.bool_,
        np.int8,
        np.int16,
        np.int32,
        np.int64,
        np.uint8,
        np.uint16,
        np.uint32,
        np.uint64,
        np.float16,
        np.float32,
        np.float64,
        np.longdouble,
    )
    out += sorted({type(np.dtype(t)) for t in numeric}, key=lambda c: c.__name__)  # numpy.dtypes.Float64DType, ...
    return out


SAFE_GLOBALS: list[Any] = [HistoryBuffer, *_numpy_globals()]


def _reduce_history_buffer(buffer: HistoryBuffer) -> tuple[Any, tuple[Any, ...]]:
    log, count = buffer._log_history, buffer._count_history
    return HistoryBuffer, (log, count, buffer.max_length)


def load_local_checkpoint(filename: str, map_location: Any = None) -> Any:
    """MMEngine's local checkpoint loader, through clipadapt's one reader (``weights_only=True`` always).

    Raises:
        FileNotFoundError: no such file.
        CheckpointReadError: the file is empty, truncated or not a checkpoint (one line naming it).
        UnsafeCheckpointError: the file needs a global outside the allow-list (nothing of it ran).
    """
    return read_checkpoint(osp.expanduser(filename), map_location=map_location)


def enable_safe_resume() -> None:
    """Make MMEngine checkpoints save and load under ``torch.load(weights_only=True)``; idempotent."""
    copyreg.pickle(HistoryBuffer, _reduce_history_buffer)
    torch.serialization.add_safe_globals(SAFE_GLOBALS)
    CheckpointLoader.register_scheme(prefixes="", loader=load_local_checkpoint, force=True)
