"""Image-text retrieval recall: R@K image -> text and text -> image, one or several captions per image."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine.evaluator import BaseMetric

from clipadapt.registry import METRICS

__all__ = ["RetrievalRecall", "retrieval_recall"]


def retrieval_recall(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    text_to_image: torch.Tensor,
    ks: Sequence[int] = (1, 5, 10),
) -> dict[str, float]:
    """Recall@K in percent in both directions.

    Args:
        image_features: ``[N_img, D]``, normalised.
        text_features: ``[N_txt, D]``, normalised.
        text_to_image: ``[N_txt]``: the image each text describes (an image may have several texts).
        ks: The ``K`` to report.

    Returns:
        ``i2t_R@K``: images whose best-ranked correct text is within the top K texts; ``t2i_R@K``:
        texts whose image is within the top K images; ``mean_R``: the mean of all of them.
    """
    if image_features.shape[0] == 0 or text_features.shape[0] == 0:
        raise ValueError("retrieval needs at least one image and one text")
    sim = image_features.float() @ text_features.float().t()  # [N_img, N_txt]
    match = torch.zeros_like(sim, dtype=torch.bool)
    match[text_to_image, torch.arange(sim.shape[1])] = True
    if not match.any(dim=1).all():
        raise ValueError("every image needs at least one text")
    # Rank of the best correct text per image: how many texts score above it.
    best_correct = sim.masked_fill(~match, float("-inf")).max(dim=1).values  # [N_img]
    i2t_rank = (sim > best_correct[:, None]).sum(dim=1)
    # Rank of the correct image per text.
    correct = sim[text_to_image, torch.arange(sim.shape[1])]  # [N_txt]
    t2i_rank = (sim > correct[None, :]).sum(dim=0)
    out = {}
    for k in ks:
        out[f"i2t_R@{k}"] = 100.0 * (i2t_rank < k).float().mean().item()
    for k in ks:
        out[f"t2i_R@{k}"] = 100.0 * (t2i_rank < k).float().mean().item()
    out["mean_R"] = sum(out.values()) / len(out)
    return out


@METRICS.register_module()
class RetrievalRecall(BaseMetric):
    """Recall@K of image-text retrieval over the whole evaluation set, as ``retrieval/i2t_R@1``, ...

    Expects predictions with ``image_feature`` and ``text_feature`` (:class:`ImageTextContrastive`'s
    ``predict`` mode). Rows that share an ``img_path`` are several captions of one image (COCO
    style); without ``img_path`` every row is its own image (one-to-one). Ties count against the
    correct item (a strict ``>`` rank).

    Args:
        ks: The ``K`` to report.
        text_key: Which text feature to score: ``'text_feature'`` or ``'long_text_feature'``.
        collect_device: ``'cpu'`` or ``'gpu'``.
        prefix: Default ``'retrieval'``.
    """

    default_prefix = "retrieval"

    def __init__(
        self,
        ks: Sequence[int] = (1, 5, 10),
        text_key: str = "text_feature",
        collect_device: str = "cpu",
        prefix: str | None = None,
    ) -> None:
        super().__init__(collect_device=collect_device, prefix=prefix)
        if not ks or any(k < 1 for k in ks):
            raise ValueError(f"ks must be positive integers, got {ks}")
        self.ks = tuple(ks)
        self.text_key = text_key

    def process(self, data_batch: Any, data_samples: Sequence[dict[str, Any]]) -> None:
        for sample in data_samples:
            if self.text_key not in sample:
                raise KeyError(f"the predictions carry no {self.text_key!r} (keys: {sorted(sample)})")
            self.results.append((sample["image_feature"], sample[self.text_key], sample.get("img_path")))

    def compute_metrics(self, results: list) -> dict[str, float]:
        if not results:
            raise ValueError(f"{type(self).__name__}: no predictions to score (an empty data set?)")
        images: list[Any] = []
        texts: list[Any] = []
        owner: list[int] = []
        seen: dict[Any, int] = {}
        for i, (image, text, path) in enumerate(results):
            key = path if path is not None else i
            if key not in seen:
                seen[key] = len(images)
                images.append(torch.as_tensor(image))
            texts.append(torch.as_tensor(text))
            owner.append(seen[key])
        return retrieval_recall(torch.stack(images), torch.stack(texts), torch.tensor(owner), self.ks)
