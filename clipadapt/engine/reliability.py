"""Checkpoints that survive a kill, and resumed runs that continue the very same random stream.

MMEngine 0.10.7 writes ``epoch_N.pth`` with ``open(path, 'wb')`` (``LocalBackend.put``) and then the
``last_checkpoint`` pointer with ``open(..., 'w')``; a SIGKILL inside either write leaves a truncated
file that ``--resume`` then reads. Its ``CheckpointHook`` also deletes the oldest checkpoint *before*
writing the new one, so with ``max_keep_ckpts=1`` a kill in between leaves the pointer aimed at a
deleted file. Here:

- :class:`AtomicLocalBackend` (MMEngine file backend ``clipadapt_atomic_local``): ``put`` /
  ``put_text`` write a temporary file beside the target and ``os.replace`` it into place
  (:func:`clipadapt.fileio.atomic_write`), so the target is the old file or the new one, never half.
- :class:`AtomicCheckpointHook`: MMEngine's ``CheckpointHook`` saving through that backend, writing
  the pointer atomically too, and pruning old checkpoints only after the new one and the pointer are
  in place.
- :class:`RandomStateHook`: MMEngine restores model, optimizer, schedulers and the sampler's epoch
  on resume, but not the global RNGs that random augmentations draw from (``RandomHorizontalFlip``
  in the main process). The hook stores the RNG states at the end of each training epoch in the
  checkpoint and puts them back at the start of the next epoch -- in the resumed run from the
  checkpoint, in the uninterrupted run from memory (which also undoes the draws validation made in
  between, so both runs see the same stream).

:func:`use_reliable_checkpoints` installs both into a config; ``tools/train.py`` and
``tools/test.py`` call it (through :func:`clipadapt.engine.cli.prepare_run`).
"""

from __future__ import annotations

import os
import os.path as osp
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from mmengine.dist import is_main_process
from mmengine.fileio import LocalBackend, register_backend
from mmengine.hooks import CheckpointHook, Hook

from clipadapt.fileio import atomic_write
from clipadapt.registry import HOOKS

__all__ = [
    "ATOMIC_BACKEND",
    "AtomicCheckpointHook",
    "AtomicLocalBackend",
    "RandomStateHook",
    "use_reliable_checkpoints",
]

ATOMIC_BACKEND = "clipadapt_atomic_local"
POINTER = "last_checkpoint"  # the file MMEngine's find_latest_checkpoint reads


class AtomicLocalBackend(LocalBackend):
    """MMEngine's local file backend, whose writes are atomic (temporary file, then rename)."""

    def put(self, obj: bytes, filepath: str | Path) -> None:
        atomic_write(filepath, lambda tmp: Path(tmp).write_bytes(obj))

    def put_text(self, obj: str, filepath: str | Path, encoding: str = "utf-8") -> None:
        atomic_write(filepath, lambda tmp: Path(tmp).write_text(obj, encoding=encoding))


register_backend(ATOMIC_BACKEND, AtomicLocalBackend, force=True)


@HOOKS.register_module()
class AtomicCheckpointHook(CheckpointHook):
    """``CheckpointHook`` whose checkpoints and ``last_checkpoint`` pointer are written atomically.

    Takes the arguments of MMEngine's ``CheckpointHook``. When neither ``backend_args`` nor
    ``file_client_args`` is given and ``out_dir`` is local, checkpoints go through
    :class:`AtomicLocalBackend`; a remote ``out_dir`` (``s3://``...) keeps its own backend.

    Order of one save: write the new checkpoint, then the pointer to it, then delete the checkpoint
    that ``max_keep_ckpts`` drops. A kill at any moment leaves a pointer to a complete file.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        out_dir = kwargs.get("out_dir") or ""
        if kwargs.get("backend_args") is None and kwargs.get("file_client_args") is None and "://" not in out_dir:
            kwargs["backend_args"] = {"backend": ATOMIC_BACKEND}
        super().__init__(*args, **kwargs)

    def before_train(self, runner: Any) -> None:
        super().before_train(runner)
        if runner.iter == 0:
            return  # a fresh run (or a load_from that is not a resume)
        self.last_ckpt = runner.message_hub.get_info("last_ckpt")  # a best update re-saves it, as before the kill
        if is_main_process():
            self._prune_orphans(runner)
        if self._validation_was_due(runner):
            runner.logger.info(
                "resumed at the end of an epoch whose validation was due: validating it again, so that a kill "
                "during that validation cannot change the best checkpoint"
            )
            runner.val_loop.run()

    def _validation_was_due(self, runner: Any) -> bool:
        """Whether the loop validated (or was validating) right after the checkpoint it resumed from."""
        loop = runner.train_loop
        if runner.val_loop is None or not hasattr(loop, "val_interval"):
            return False
        if hasattr(loop, "_max_epochs"):  # EpochBasedTrainLoop
            if not self.by_epoch:
                return False  # an iteration checkpoint inside an epoch: no validation ran after it
            done, last = loop._epoch, loop._max_epochs
        else:  # IterBasedTrainLoop
            done, last = loop._iter, loop._max_iters
        return done >= loop.val_begin and (done % loop.val_interval == 0 or done == last)

    def _prune_orphans(self, runner: Any) -> None:
        """Remove checkpoints that ``max_keep_ckpts`` dropped but a kill left (killed between the new file
        and the removal of the old one): names of this hook's template, older than the kept ones."""
        if self.max_keep_ckpts <= 0 or not self.keep_ckpt_ids or not isinstance(self.file_backend, LocalBackend):
            return
        pattern = re.compile("^" + re.escape(self.filename_tmpl).replace(r"\{\}", r"(\d+)") + "$")
        newest = max(self.keep_ckpt_ids)
        for name in sorted(os.listdir(self.out_dir)) if osp.isdir(self.out_dir) else []:
            match = pattern.match(name)
            if match and int(match.group(1)) < newest and int(match.group(1)) not in self.keep_ckpt_ids:
                self._remove(int(match.group(1)))
                runner.logger.info(f"removed {name}: max_keep_ckpts={self.max_keep_ckpts} had dropped it before a kill")

    def _save_best_checkpoint(self, runner: Any, metrics: dict) -> None:
        """MMEngine's, with one order reversed: the new best checkpoint is written before the old one is
        removed (MMEngine removes first, so a kill in between left no best checkpoint at all)."""
        backend = self.file_backend
        deferred: list[Any] = []
        backend.remove = backend.rmtree = deferred.append  # instance attributes: collect, remove later
        try:
            super()._save_best_checkpoint(runner, metrics)
        finally:
            del backend.remove, backend.rmtree
        current = {str(getattr(self, "best_ckpt_path", None))}
        current |= {str(p) for p in getattr(self, "best_ckpt_path_dict", {}).values()}
        for path in deferred:
            if str(path) in current:
                continue  # the same name re-saved (the same epoch validated again after a resume)
            if backend.isfile(path):
                backend.remove(path)
            elif backend.isdir(path):
                backend.rmtree(path)

    def _track(self, runner: Any, step: int) -> int | None:
        """Record ``step`` among the kept checkpoints; return the step whose file is to go, if any."""
        if self.max_keep_ckpts <= 0 or (self.keep_ckpt_ids and self.keep_ckpt_ids[-1] == step):
            return None  # keep all, or this step re-saved (a new best score after validation)
        stale = self.keep_ckpt_ids.popleft() if len(self.keep_ckpt_ids) == self.max_keep_ckpts else None
        self.keep_ckpt_ids.append(step)
        runner.message_hub.update_info("keep_ckpt_ids", list(self.keep_ckpt_ids))
        return stale

    def _remove(self, step: int) -> None:
        path = self.file_backend.join_path(self.out_dir, self.filename_tmpl.format(step))
        if self.file_backend.isfile(path):
            self.file_backend.remove(path)
        elif self.file_backend.isdir(path):  # DeepSpeed checkpoints are folders
            self.file_backend.rmtree(path)

    def _save_checkpoint_with_step(self, runner: Any, step: int, meta: dict) -> None:
        stale = self._track(runner, step)
        filename = self.filename_tmpl.format(step)
        self.last_ckpt = self.file_backend.join_path(self.out_dir, filename)
        runner.message_hub.update_info("last_ckpt", self.last_ckpt)
        runner.save_checkpoint(
            self.out_dir,
            filename,
            self.file_client_args,
            save_optimizer=self.save_optimizer,
            save_param_scheduler=self.save_param_scheduler,
            meta=meta,
            by_epoch=self.by_epoch,
            backend_args=self.backend_args,
            **self.args,
        )
        if not is_main_process():  # sharded (model-parallel) saves: only the main process points and prunes
            return
        last = str(self.last_ckpt)
        atomic_write(osp.join(runner.work_dir, POINTER), lambda tmp: Path(tmp).write_text(last))
        if stale is not None:
            self._remove(stale)


def _capture() -> dict[str, Any]:
    version, mt_state, gauss = random.getstate()
    legacy = np.random.get_state()  # the tuple form (a dict only with legacy=False)
    assert isinstance(legacy, tuple)
    name, keys, pos, has_gauss, cached = legacy
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "python": [version, list(mt_state), gauss],
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _restore(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    version, mt_state, gauss = state["python"]
    random.setstate((version, tuple(mt_state), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Carry the global RNG states (torch, numpy, python; CUDA when in use) across epochs and resumes.

    The state at the end of training epoch ``e`` goes into ``checkpoint['meta']['rng_state']`` (plain
    tensors and lists: loadable with ``weights_only=True``) and is put back before epoch ``e + 1``.
    A fresh run's first epoch is left alone; a ``load_from`` that is not a resume restores nothing.
    States are the main process's: under DDP every rank gets rank 0's state back, as every rank
    starts from the same seed (MMEngine's ``diff_rank_seed=False``).
    """

    priority = "VERY_HIGH"  # capture before CheckpointHook (VERY_LOW) saves at the end of an epoch

    def __init__(self) -> None:
        self._state: dict[str, Any] | None = None

    def after_train_epoch(self, runner: Any) -> None:
        self._state = _capture()

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        if self._state is not None:
            checkpoint.setdefault("meta", {})["rng_state"] = self._state

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._state = (checkpoint.get("meta") or {}).get("rng_state")

    def before_train(self, runner: Any) -> None:
        if runner.iter == 0:  # not a resume (a load_from, or nothing): the run starts from its seed
            self._state = None

    def before_train_epoch(self, runner: Any) -> None:
        if self._state is not None:
            _restore(self._state)


def use_reliable_checkpoints(cfg: Any) -> Any:
    """Swap MMEngine's ``CheckpointHook`` in ``cfg.default_hooks`` for :class:`AtomicCheckpointHook` and
    add :class:`RandomStateHook` and :class:`~clipadapt.engine.hooks.FiniteParametersHook` (unless the
    config names its own ``rng_state`` / ``finite_params`` hook)."""
    hooks = cfg.get("default_hooks")
    if hooks is None:
        return cfg
    # Under another default scope (``mmdet``), clipadapt's hooks are named with their scope.
    prefix = "" if cfg.get("default_scope") in (None, HOOKS.scope) else f"{HOOKS.scope}."
    checkpoint = hooks.get("checkpoint")
    if checkpoint is not None and checkpoint.get("type") in ("CheckpointHook", CheckpointHook):
        checkpoint["type"] = f"{prefix}AtomicCheckpointHook"
    hooks.setdefault("rng_state", dict(type=f"{prefix}RandomStateHook"))
    hooks.setdefault("finite_params", dict(type=f"{prefix}FiniteParametersHook"))  # no NaN weights in a checkpoint
    return cfg
