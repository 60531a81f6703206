"""What the DMU recipe measures of a trained model: embeddings of a data set, and a retrieval row with the
model's parameter counts (``plugins/moe/recipe.py`` calls these; the routing statistics are
``specialisation.py``'s)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch

from .plugin import parameter_counts

__all__ = ["predict", "retrieval_row"]


@torch.no_grad()
def predict(task: Any, loader: Iterable[Any], desc: str) -> list[dict[str, Any]]:
    """The task's predictions (``mode="predict"``) over ``loader``, in its order, with a progress bar."""
    from tqdm import tqdm

    task.eval()
    preds = []
    for batch in tqdm(loader, desc=desc, leave=False, dynamic_ncols=True):
        preds += task(**task.data_preprocessor(batch, False), mode="predict")
    return preds


def retrieval_row(
    task: Any, loader: Iterable[Any], metric: Any, name: str, split: str, steps: int | None, batch_size: int
) -> dict[str, Any]:
    """One row of the comparison: ``metric``'s retrieval scores of ``task`` on ``loader`` (the ``split``
    split), the training budget (``steps`` of ``batch_size``), and the parameters activated per token and
    in total. The row is printed too."""
    preds = predict(task, loader, f"{name}: {split}")
    metric.process({}, preds)
    metrics = metric.compute_metrics(metric.results)
    counts = parameter_counts(task.clip)
    samples = steps * batch_size if steps is not None else None
    row = {"method": name, "split": split, "pairs": len(preds), "steps": steps, "samples": samples}
    row |= {**metrics, **counts}
    print(
        f"{name} ({split}, {len(preds)} pairs): image->text R@1 {metrics['i2t_R@1']:.2f}, "
        f"text->image R@1 {metrics['t2i_R@1']:.2f} | "
        f"activated parameters per token {counts['activated']:,}, total parameters {counts['total']:,}",
        flush=True,
    )
    return row
