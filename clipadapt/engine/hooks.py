"""Runner hooks for adaptation: class names from the data, adapter-only checkpoints, a progress bar."""

from __future__ import annotations

from typing import Any

import torch
from mmengine.dist import all_reduce, is_distributed
from mmengine.hooks import Hook

from clipadapt.adapter import adapter_metadata, adapter_state_dict
from clipadapt.registry import HOOKS
from clipadapt.wrappers import unwrap_model

__all__ = ["AdapterCheckpointHook", "ClassNamesHook", "FiniteParametersHook", "PhaseClassesHook", "ProgressBarHook"]

CLIP_PREFIX = "clip."  # where the tasks keep their CLIP


class PhaseClassesHook(Hook):
    """Base of the hooks that give the model the class names of the data set each loop is about to see.

    :meth:`apply` runs before training, validation and testing with that phase's name, and again with
    ``"train"`` after a validation inside training, so that a model trained on base classes is validated on
    novel ones and then trains on the base ones again. ``ClassNamesHook`` (prompt classifiers, region tasks)
    and ``clipadapt.detection.OpenVocabularyHook`` (detector vocabularies) differ only in :meth:`apply`.
    """

    priority = "VERY_HIGH"

    def __init__(self) -> None:
        self._in_training = False

    def apply(self, runner: Any, phase: str) -> None:
        """Give the model the classes of ``phase``'s data set (:meth:`dataset`)."""
        raise NotImplementedError

    @staticmethod
    def dataset(runner: Any, phase: str) -> Any:
        """The data set of ``phase`` (``train``, ``val``, ``test``); None when its loader has none."""
        loader = runner.train_dataloader if phase == "train" else getattr(runner, f"{phase}_loop").dataloader
        return getattr(loader, "dataset", None)

    def before_train(self, runner: Any) -> None:
        self._in_training = True
        self.apply(runner, "train")

    def after_train(self, runner: Any) -> None:
        self._in_training = False

    def before_val(self, runner: Any) -> None:
        self.apply(runner, "val")

    def after_val(self, runner: Any) -> None:
        if self._in_training:  # a validation inside training: back to the training classes
            self.apply(runner, "train")

    def before_test(self, runner: Any) -> None:
        self.apply(runner, "test")


@HOOKS.register_module()
class ClassNamesHook(PhaseClassesHook):
    """Give the model the class names of the data set it is about to see (``dataset.metainfo['classes']``).

    Calls ``model.set_classnames`` with the classes of each loop's data set (:class:`PhaseClassesHook`).
    Models without ``set_classnames`` (contrastive) and data sets without classes are left alone.
    """

    def apply(self, runner: Any, phase: str) -> None:
        model = unwrap_model(runner.model)
        classes = (getattr(self.dataset(runner, phase), "metainfo", None) or {}).get("classes")
        if classes and hasattr(model, "set_classnames"):
            model.set_classnames(list(classes))


@HOOKS.register_module()
class AdapterCheckpointHook(Hook):
    """Checkpoints of an adapted model hold the adapter, not a second copy of the frozen base CLIP.

    When the model's CLIP carries plugins, ``checkpoint['state_dict']`` is pruned before saving to
    the adapter keys (:func:`clipadapt.adapter.adapter_state_dict`: plugin state, trainable
    parameters, replaced modules) and ``checkpoint['meta']['clipadapt']`` records the model config,
    the plugins and the base weights (path and sha256). Optimizer state is small already (only
    trainable parameters have any). A model without plugins (full fine-tuning, pretraining) is saved
    whole.

    On loading (``load_from`` or ``resume``) the missing base keys are filled in from the model's
    current state (the base weights it was built with), so the load is complete and quiet; a base
    file whose hash differs from the recorded one gets a warning. Any checkpoint whose tensors do not
    fit the model (unknown keys, other shapes) is refused with a ``CheckpointMismatchError``.
    """

    priority = "VERY_LOW"

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        model = unwrap_model(runner.model)
        clip = getattr(model, "clip", None)
        if clip is None or not len(clip.plugins):
            return
        keep = {CLIP_PREFIX + k for k in adapter_state_dict(clip)}
        state = checkpoint["state_dict"]
        checkpoint["state_dict"] = type(state)(
            (k, v) for k, v in state.items() if k in keep or not k.startswith(CLIP_PREFIX)
        )
        checkpoint.setdefault("meta", {})["clipadapt"] = adapter_metadata(clip)

    def after_load_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        info = (checkpoint.get("meta") or {}).get("clipadapt")
        if info is not None:
            self._fill_base(runner, checkpoint, info)
        _check_fit(runner, checkpoint)

    def _fill_base(self, runner: Any, checkpoint: dict, info: dict) -> None:
        model = unwrap_model(runner.model)
        clip = getattr(model, "clip", None)
        recorded = (info.get("base") or {}).get("sha256")
        current = clip.base_weights if clip is not None else None
        if recorded and current and current.get("sha256") != recorded:
            runner.logger.warning(
                f"the checkpoint's adapter was trained on base weights {info['base'].get('path')} "
                f"(sha256 {recorded[:12]}...), but the model was built from {current.get('path')} "
                f"(sha256 {current.get('sha256', '')[:12]}...)"
            )
        elif recorded and current is None:
            runner.logger.warning(
                f"the checkpoint's adapter was trained on base weights {info['base'].get('path')}, but the model "
                "was built without pretrained weights (model.pretrained=None)"
            )
        state = checkpoint["state_dict"]
        for key, value in model.state_dict().items():
            if key not in state and key.startswith(CLIP_PREFIX):
                state[key] = value


def _check_fit(runner: Any, checkpoint: dict) -> None:
    """Refuse a checkpoint whose tensors do not fit the model, naming the keys and shapes.

    MMEngine loads ``load_from`` / ``resume`` checkpoints with ``strict=False`` and only logs a warning
    for unknown keys and shape mismatches, so a checkpoint of another architecture (an open_clip
    ViT-B-32 state dict given to a tiny-vit config, say) would be evaluated with the model's own
    weights. Keys the checkpoint lacks are tolerated unless it shares no key at all with the model.

    Keys of another task or of a plugin this model does not carry (outside ``clip.``, or under
    ``clip.plugins.``) are left out with a warning that names them: an FG-CLIP 2 checkpoint, with its
    region logit scales and dense head, evaluated by a zero-shot config. An unknown key of the CLIP
    itself (a layer this model does not have) is refused.
    """
    from clipadapt.models.checkpoint import CheckpointMismatchError

    state = checkpoint.get("state_dict", checkpoint)
    own = unwrap_model(runner.model).state_dict()
    keys = {k.removeprefix("module."): v for k, v in state.items() if hasattr(v, "shape")}
    foreign = sorted(
        k for k in keys if k not in own and (not k.startswith(CLIP_PREFIX) or k.startswith(CLIP_PREFIX + "plugins."))
    )
    if foreign and set(keys) & set(own):
        runner.logger.warning(
            f"{len(foreign)} checkpoint keys of another task or plugin are not loaded: {foreign[:6]}"
            + (" ..." if len(foreign) > 6 else "")
        )
        for key in foreign:
            state.pop(key, None)
            state.pop("module." + key, None)
            keys.pop(key)
    unknown = sorted(k for k in keys if k not in own)
    shapes = sorted(
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in keys.items()
        if k in own and tuple(v.shape) != tuple(own[k].shape)
    )
    if not unknown and not shapes and (keys or not own):
        return
    source = getattr(runner, "_load_from", None) or "the checkpoint"
    parts = []
    if shapes:
        parts.append(f"{len(shapes)} shape mismatches {shapes[:6]}")
    if unknown:
        parts.append(f"{len(unknown)} keys the model does not have {unknown[:6]}")
    if not set(keys) & set(own):
        parts.append(f"no key in common with the model (whose keys look like {sorted(own)[:2]})")
    raise CheckpointMismatchError(
        f"checkpoint {source} does not fit the model {type(unwrap_model(runner.model)).__name__}: " + "; ".join(parts)
    )


def non_finite_parameters(model: Any) -> list[str]:
    """Names of the trainable parameters that hold a NaN or an infinity (one device sync).

    Sharded parameters (FSDP2 DTensors) are checked on this rank's shard; :class:`FiniteParametersHook`
    then agrees across ranks, so that every rank stops together.
    """
    params = [(name, p) for name, p in unwrap_model(model).named_parameters() if p.requires_grad]
    if not params:
        return []
    local = [p.to_local() if hasattr(p, "to_local") else p for _, p in params]
    finite = torch.stack([p.detach().isfinite().all() for p in local]).tolist()
    return [name for (name, _), ok in zip(params, finite) if not ok]


@HOOKS.register_module()
class FiniteParametersHook(Hook):
    """Stop training as soon as a trainable parameter is NaN or infinite, before any checkpoint holds it.

    The task's loss guard refuses a non-finite loss before the update; an update can still overflow with
    a finite loss (a huge learning rate, an exploding gradient). This hook checks the trainable
    parameters after every step, ahead of ``CheckpointHook`` (which saves at ``VERY_LOW`` priority), and
    again before any checkpoint is written, and raises ``FloatingPointError`` naming the parameters.
    """

    priority = "ABOVE_NORMAL"

    def _check(self, runner: Any, when: str, agree: bool) -> None:
        bad = non_finite_parameters(runner.model)
        if agree and is_distributed():  # any rank's bad shard stops every rank (none waits in a collective)
            device = next(unwrap_model(runner.model).parameters()).device  # gloo: CPU, NCCL: the GPU
            count = torch.tensor([float(len(bad))], device=device)
            all_reduce(count, op="sum")
            if count.item() and not bad:
                bad = ["(on another rank)"]
        if bad:
            shown = ", ".join(bad[:6]) + (f" (+{len(bad) - 6} more)" if len(bad) > 6 else "")
            raise FloatingPointError(
                f"non-finite trainable parameters {when} (iteration {runner.iter + 1}): {shown}; no checkpoint "
                "was written with them (lower the learning rate, or clip gradients with optim_wrapper.clip_grad)"
            )

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        self._check(runner, "after the optimizer step", agree=True)  # every rank runs this

    def before_save_checkpoint(self, runner: Any, checkpoint: dict) -> None:
        self._check(runner, "at a checkpoint save", agree=False)  # Runner.save_checkpoint runs on rank 0 only


@HOOKS.register_module()
class ProgressBarHook(Hook):
    """A tqdm bar over the training iterations (for quiet runs, such as building the tiny CLIP).

    Args:
        desc: Text in front of the bar.
    """

    priority = "LOW"

    def __init__(self, desc: str = "training") -> None:
        self.desc = desc
        self._bar: Any = None

    def before_train(self, runner: Any) -> None:
        from tqdm import tqdm

        self._bar = tqdm(total=runner.max_iters, initial=runner.iter, desc=self.desc, unit="it", dynamic_ncols=True)

    def after_train_iter(self, runner: Any, batch_idx: int, data_batch: Any = None, outputs: Any = None) -> None:
        if self._bar is not None:
            loss = (outputs or {}).get("loss")
            if loss is not None:
                self._bar.set_postfix(loss=f"{float(loss.detach()):.3f}", refresh=False)
            self._bar.update(1)

    def after_train(self, runner: Any) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
