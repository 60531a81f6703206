"""Long-text evaluation in one evaluator: long- and short-caption retrieval, and zero-shot retention.

Long-CLIP is judged on three things at once (Zhang et al. 2024, Tables 1-3): retrieval with long
captions (ShareGPT4V-1k, Urban-1k), retrieval with short captions (COCO, Flickr30k), and how much
zero-shot classification it keeps (ImageNet). :class:`LongTextRetrieval` reports all three from one
validation or test pass: the retrieval parts from the task's predictions, the zero-shot part by
running the model on a classification data set at the end of the pass, next to the base model the
adapted one was built from. The model reaches the metric through :class:`MetricModelHook`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine import dist
from mmengine.dataset import default_collate
from mmengine.hooks import Hook

from clipadapt.registry import DATASETS, HOOKS, METRICS
from clipadapt.tasks.zero_shot import resolve_templates, zero_shot_classifier
from clipadapt.wrappers import unwrap_model

from .retrieval import RetrievalRecall

__all__ = ["LongTextRetrieval", "MetricModelHook", "zero_shot_hits"]


def zero_shot_hits(
    task: Any,
    dataset: Any,
    templates: Sequence[str],
    batch_size: int = 128,
    indices: Sequence[int] | None = None,
) -> tuple[int, int]:
    """Correct top-1 zero-shot predictions and the number of images, over ``indices`` of ``dataset``.

    Class features are CLIP's ensemble (normalised text features of every template, averaged and
    normalised again), in the templates the attached plugins require if any.

    Args:
        task: A clipadapt task: ``.clip``, ``.tokenizer`` and ``.data_preprocessor``.
        dataset: A classification data set with ``metainfo['classes']`` and ``data_samples['label']``.
        templates: Prompt templates with one ``{}``.
        batch_size: Prompts or images per forward.
        indices: The samples to score; None = all of them.
    """
    classes = list((getattr(dataset, "metainfo", None) or {}).get("classes") or [])
    if not classes:
        raise ValueError(f"the zero-shot data set {type(dataset).__name__} has no metainfo['classes']")
    clip = task.clip
    class_features = zero_shot_classifier(clip, task.tokenizer, classes, templates, batch_size)  # [C, D]
    indices = list(range(len(dataset))) if indices is None else list(indices)
    correct = 0
    for start in range(0, len(indices), batch_size):
        batch = task.data_preprocessor(
            default_collate([dataset[i] for i in indices[start : start + batch_size]]), False
        )
        samples = batch["data_samples"]
        labels = torch.as_tensor(samples["label"] if "label" in samples else samples["gt_label"]).view(-1)
        image = clip.encode_image(batch["inputs"], normalize=True)
        pred = (image.float() @ class_features.float().t()).argmax(dim=-1).cpu()
        correct += int((pred == labels.cpu()).sum())
    return correct, len(indices)


@METRICS.register_module()
class LongTextRetrieval(RetrievalRecall):
    """Long-caption and short-caption retrieval R@K in both directions, plus zero-shot retention.

    Expects :class:`ImageTextContrastive` predictions with ``image_feature``, ``text_feature`` (short
    captions) and ``long_text_feature`` (a data set with long captions, and a task that encodes them:
    ``long_caption_weight > 0`` or ``contrastive_loss=False``). Reports, as :class:`RetrievalRecall`
    computes them (rows sharing an ``img_path`` are captions of one image):

    - ``long_i2t_R@K``, ``long_t2i_R@K``, ``long_mean_R``: long captions;
    - ``short_i2t_R@K``, ``short_t2i_R@K``, ``short_mean_R``: short captions;
    - with ``zero_shot``: ``zeroshot_top1`` of the evaluated model, ``zeroshot_base_top1`` of the base
      CLIP it was built from (the same config and base weights, no plugins; computed once), and
      ``zeroshot_change`` (points; negative is a drop). The zero-shot images are split over the ranks.

    Every key is reported as ``<prefix>/<key>`` (``longtext/long_i2t_R@1``).

    Args:
        ks: The ``K`` to report.
        zero_shot: ``dict(dataset=<classification data set config>, templates='synthetic',
            batch_size=128, compare_base=True)``, or None. Needs :class:`MetricModelHook` in
            ``custom_hooks``.
        collect_device: ``'cpu'`` or ``'gpu'``.
        prefix: Default ``'longtext'``.
    """

    default_prefix = "longtext"

    def __init__(
        self,
        ks: Sequence[int] = (1, 5, 10),
        zero_shot: dict[str, Any] | None = None,
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(ks=ks, text_key="long_text_feature", collect_device=collect_device, prefix=prefix)
        self.zero_shot = self._check_zero_shot(zero_shot)
        self._zero_shot_dataset: Any = None
        self._model: Any = None
        self._base_top1: float | None = None

    @staticmethod
    def _check_zero_shot(cfg: dict[str, Any] | None) -> dict[str, Any] | None:
        if cfg is None:
            return None
        known = {"dataset", "templates", "batch_size", "compare_base"}
        unknown = sorted(set(cfg) - known)
        if unknown or "dataset" not in cfg:
            raise ValueError(
                f"LongTextRetrieval zero_shot takes the keys {sorted(known)} ('dataset' required); got {sorted(cfg)}"
            )
        out = {"templates": "synthetic", "batch_size": 128, "compare_base": True, **cfg}
        out["templates"] = resolve_templates(out["templates"])
        return out

    def bind_model(self, model: Any) -> None:
        """The task to run for zero-shot classification (:class:`MetricModelHook` calls this)."""
        self._model = unwrap_model(model)

    # --------------------------------------------------------------------------- retrieval
    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        for sample in data_samples:
            missing = [k for k in ("image_feature", "text_feature", "long_text_feature") if k not in sample]
            if missing:
                raise KeyError(
                    f"LongTextRetrieval: the predictions carry no {missing} (keys: {sorted(sample)}); give the data "
                    "set long captions (ImageTextDataset(long_caption_key=...)) and make the task encode them "
                    "(long_caption_weight > 0 or contrastive_loss=False)"
                )
            path = sample.get("img_path")
            self.results.append((sample["image_feature"], sample["text_feature"], sample["long_text_feature"], path))

    def compute_metrics(self, results: list) -> dict[str, float]:
        long = super().compute_metrics([(image, long, path) for image, _, long, path in results])
        short = super().compute_metrics([(image, short, path) for image, short, _, path in results])
        return {**{f"long_{k}": v for k, v in long.items()}, **{f"short_{k}": v for k, v in short.items()}}

    # --------------------------------------------------------------------------- zero-shot
    def evaluate(self, size: int) -> dict[str, float]:
        metrics = super().evaluate(size)
        if self.zero_shot is not None:
            prefix = f"{self.prefix}/" if self.prefix else ""
            metrics.update({prefix + k: v for k, v in self._zero_shot_metrics().items()})
        return metrics

    def _zero_shot_cfg(self) -> dict[str, Any]:
        assert self.zero_shot is not None, "LongTextRetrieval: zero_shot is not configured"
        return self.zero_shot

    def _dataset(self) -> Any:
        if self._zero_shot_dataset is None:
            cfg = self._zero_shot_cfg()["dataset"]
            self._zero_shot_dataset = DATASETS.build(cfg) if isinstance(cfg, dict) else cfg
        return self._zero_shot_dataset

    def _top1(self, task: Any) -> float:
        """Zero-shot top-1 (percent) of ``task``, the images split over the ranks and the counts summed."""
        dataset = self._dataset()
        rank, world = dist.get_rank(), dist.get_world_size()
        was_training = task.training
        task.eval()
        with torch.no_grad():
            correct, total = zero_shot_hits(
                task,
                dataset,
                self._zero_shot_cfg()["templates"],
                self._zero_shot_cfg()["batch_size"],
                range(rank, len(dataset), world),
            )
        task.train(was_training)
        counts = torch.tensor([correct, total], dtype=torch.float64, device=task.clip.logit_scale.device)
        dist.all_reduce(counts)
        return 100.0 * float(counts[0]) / max(float(counts[1]), 1.0)

    def _base_task(self, task: Any) -> Any:
        """The evaluated task's base CLIP: same model config and base weights, no plugins."""
        from clipadapt.factory import create_model, get_tokenizer

        clip = task.clip
        weights = (clip.base_weights or {}).get("path")
        base = create_model(clip.cfg.source | {"name": clip.cfg.name}, pretrained=weights).eval()
        base.to(clip.logit_scale.device)
        return _BaseTask(base, get_tokenizer(model=base), task.data_preprocessor)

    def _zero_shot_metrics(self) -> dict[str, float]:
        if self._model is None:
            raise RuntimeError(
                "LongTextRetrieval zero_shot runs the model: "
                "add custom_hooks=[dict(type='MetricModelHook')] to the config"
            )
        out = {"zeroshot_top1": self._top1(self._model)}
        if self._zero_shot_cfg()["compare_base"]:
            if self._base_top1 is None:
                self._base_top1 = self._top1(self._base_task(self._model))
            out["zeroshot_base_top1"] = self._base_top1
            out["zeroshot_change"] = out["zeroshot_top1"] - self._base_top1
        return out


class _BaseTask(torch.nn.Module):
    """What :func:`zero_shot_hits` needs of a task, around a bare CLIP."""

    def __init__(self, clip: Any, tokenizer: Any, data_preprocessor: Any) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self._preprocessor = [data_preprocessor]  # shared with the evaluated task, not a submodule

    def data_preprocessor(self, data: dict, training: bool = False) -> dict:
        return self._preprocessor[0](data, training)


@HOOKS.register_module()
class MetricModelHook(Hook):
    """Hands the runner's model to the metrics that run it (``bind_model``) before each validation and test.

    MMEngine metrics see predictions only; :class:`LongTextRetrieval` also classifies a zero-shot data set
    with the model at the end of the pass.
    """

    priority = "LOW"

    def _bind(self, runner: Any, loop_name: str) -> None:
        loop = getattr(runner, loop_name)
        for metric in getattr(loop.evaluator, "metrics", []):
            if hasattr(metric, "bind_model"):
                metric.bind_model(runner.model)

    def before_val(self, runner: Any) -> None:
        self._bind(runner, "val_loop")

    def before_test(self, runner: Any) -> None:
        self._bind(runner, "test_loop")
