"""The comparison tables of the DMU recipe: one run's (``compare.csv`` / ``.md``), and the mean and
standard deviation over seeds."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["METRICS", "SPECIALISATION_STATS", "aggregate", "write_seed_table", "write_specialisation", "write_table"]

METRICS = ("i2t_R@1", "t2i_R@1", "i2t_R@5", "t2i_R@5")
COLUMNS = ("method", "split", "pairs", "steps", "samples", *METRICS, "activated", "total")
HEADER = ("Method", "steps", "samples", "I->T R@1", "T->I R@1", "I->T R@5", "T->I R@5", "activated/token", "total")


def _table_name(split: str) -> str:
    return "compare" if split == "test" else f"compare_{split}"


def _markdown(title: str, cells: list[list[str]], header: tuple[str, ...] = HEADER) -> str:
    lines = [title, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    return "\n".join(lines) + "\n"


def _params(row: dict[str, Any]) -> list[str]:
    return [f"{row['activated'] / 1e6:.3f}M", f"{row['total'] / 1e6:.3f}M"]


def write_table(rows: list[dict[str, Any]], out: Path, split: str = "test") -> None:
    """``compare.csv`` and ``compare.md`` (``compare_<split>.*`` for a split other than test) in ``out``;
    the Markdown is printed too."""
    name = _table_name(split)
    with open(out / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    pairs = sorted({r.get("pairs") for r in rows}, key=str)
    cells = [
        [r["method"], str(r["steps"]), str(r["samples"]), *(f"{r[m]:.2f}" for m in METRICS), *_params(r)] for r in rows
    ]
    text = _markdown(f"Retrieval on the {split} split ({'/'.join(map(str, pairs))} image-text pairs).", cells)
    (out / f"{name}.md").write_text(text)
    print(text, flush=True)


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value)."""
    array = np.array(values, dtype=np.float64)
    return float(array.mean()), float(array.std(ddof=1)) if len(array) > 1 else 0.0


def aggregate(per_seed: dict[int, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per method: the mean and sample standard deviation (ddof=1; 0 for one seed) of each metric.

    Raises:
        ValueError: the seeds' tables do not list the same methods, budgets and test-set size.
    """
    seeds = sorted(per_seed)
    keys = {s: [(r["method"], r["steps"], r["samples"], r.get("pairs")) for r in per_seed[s]] for s in seeds}
    if any(k != keys[seeds[0]] for k in keys.values()):
        raise ValueError(f"the seeds' comparisons differ in methods, budgets or test-set size: {keys}")
    out = []
    for i, first in enumerate(per_seed[seeds[0]]):
        row = {k: first.get(k) for k in ("method", "split", "pairs", "steps", "samples", "activated", "total")}
        row["seeds"] = " ".join(map(str, seeds))
        for metric in METRICS:
            values = [per_seed[s][i][metric] for s in seeds]
            row[f"{metric}_mean"], row[f"{metric}_std"] = _mean_std(values)
            row[f"{metric}_seeds"] = " ".join(f"{v:.2f}" for v in values)
        out.append(row)
    return out


def write_seed_table(rows: list[dict[str, Any]], out: Path, split: str = "test") -> None:
    """``compare[_<split>].csv`` / ``.md`` of :func:`aggregate`'s rows (mean +- std over the seeds)."""
    name = _table_name(split)
    stats = [f"{m}_{s}" for m in METRICS for s in ("mean", "std", "seeds")]
    fields = ("method", "split", "pairs", "seeds", "steps", "samples", *stats, "activated", "total")
    with open(out / f"{name}.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    cells = [
        [
            r["method"],
            str(r["steps"]),
            str(r["samples"]),
            *(f"{r[f'{m}_mean']:.2f} ± {r[f'{m}_std']:.2f}" for m in METRICS),
            *_params(r),
        ]
        for r in rows
    ]
    seeds = rows[0]["seeds"] if rows else ""
    title = (
        f"Retrieval on the {split} split ({rows[0]['pairs'] if rows else '?'} image-text pairs): "
        f"mean ± sample std over seeds {seeds}."
    )
    text = _markdown(title, cells)
    (out / f"{name}.md").write_text(text)
    print(text, flush=True)


SPECIALISATION_STATS = ("token_entropy", "usage_entropy", "nmi", "expert_distance")
SPECIALISATION_HEADER = (
    "Method", "layer", "router entropy", "load entropy", "NMI(cluster; 1st expert)", "expert distance"
)  # fmt: skip


def write_specialisation(per_seed: dict[int, list[dict[str, Any]]], out: Path) -> list[dict[str, Any]]:
    """``specialisation.json`` (every seed's statistics, usage matrices included) and ``specialisation.md``
    (mean ± sample std over the seeds of each method and layer) in ``out``; the rows of the table.

    ``per_seed``: ``{seed: [{"method": ..., "layers": {layer: statistics}}, ...]}`` (the ``specialise``
    steps of the DMU recipe, :func:`clipadapt_plugins.moe.specialisation.specialisation`).
    """
    seeds = sorted(per_seed)
    (out / "specialisation.json").write_text(json.dumps({str(s): per_seed[s] for s in seeds}, indent=1))
    rows = []
    for i, first in enumerate(per_seed[seeds[0]]):
        for layer in first["layers"]:
            row: dict[str, Any] = {"method": first["method"], "layer": layer, "seeds": seeds}
            for stat in SPECIALISATION_STATS:
                row[stat] = _mean_std([per_seed[s][i]["layers"][layer][stat] for s in seeds])
            rows.append(row)
    title = (
        f"Expert specialisation over the training set, by its stage-0 clusters: mean ± sample std over seeds "
        f"{' '.join(map(str, seeds))}. Entropies are over log E (1 = uniform); NMI 0 = the first expert "
        "ignores the cluster, 1 = the cluster decides it; expert distance = mean pairwise ||w_i - w_j|| "
        "/ mean ||w_i||."
    )
    cells = [
        [row["method"], row["layer"], *(f"{row[s][0]:.3f} ± {row[s][1]:.3f}" for s in SPECIALISATION_STATS)]
        for row in rows
    ]
    text = _markdown(title, cells, SPECIALISATION_HEADER)
    (out / "specialisation.md").write_text(text)
    print(text, flush=True)
    return rows
