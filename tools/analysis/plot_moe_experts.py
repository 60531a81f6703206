"""Expert usage per data cluster of the CLIP-MoE runs, as a PNG (docs/plugins/moe.md).

    python tools/analysis/plot_moe_experts.py work_dirs/clipmoe/specialisation.json --out experts.png

The JSON is what ``tools/dmu.py`` writes (``{seed: [{"method", "layers": {layer: statistics}}]}``,
statistics of ``clipadapt_plugins.moe.specialisation``). One row of heat maps per method, one column per
MoE layer: each map is clusters x experts, a cell the share of the cluster's routing slots that go to the
expert (rows sum to one). A router that ignores the data shows the same row for every cluster.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def read_seed(path: Path, seed: str | None) -> tuple[str, list[dict[str, Any]]]:
    """The records of ``seed`` (default: the first in the file)."""
    data = json.loads(path.read_text())
    if not data:
        raise ValueError(f"{path} holds no seed")
    if seed is None:
        seed = next(iter(data))
    if seed not in data:
        raise ValueError(f"{path} has no seed {seed!r} (seeds: {', '.join(data)})")
    return seed, data[seed]


def plot(records: list[dict[str, Any]], out: Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    if not records:
        raise ValueError("no MoE record to plot")
    layers = list(records[0]["layers"])
    # One colour scale for every panel: a share of 1/E everywhere is routing that ignores the cluster.
    top = max(max(map(max, r["layers"][layer]["cluster_usage"])) for r in records for layer in layers)
    fig, axes = plt.subplots(len(records), len(layers), figsize=(2.6 * len(layers), 2.4 * len(records)), squeeze=False)
    for row, record in enumerate(records):
        for col, layer in enumerate(layers):
            stats = record["layers"][layer]
            usage = np.asarray(stats["cluster_usage"])
            ax = axes[row][col]
            image = ax.imshow(usage, vmin=0, vmax=top, cmap="viridis", aspect="auto")
            ax.set_title(f"{layer}: NMI {stats['nmi']:.2f}, dist {stats['expert_distance']:.2f}", fontsize=8)
            ax.set_xticks(range(usage.shape[1]))
            ax.set_yticks(range(usage.shape[0]))
            ax.tick_params(labelsize=6)
            if col == 0:
                ax.set_ylabel(f"{record['method']}\ncluster", fontsize=8)
            if row == len(records) - 1:
                ax.set_xlabel("expert", fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.colorbar(image, ax=axes, shrink=0.5, label="share of the cluster's routing slots")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: Sequence[str] | None = None) -> Path:
    parser = argparse.ArgumentParser(description="Heat maps of expert usage per cluster (tools/dmu.py's JSON)")
    parser.add_argument("json", type=Path, help="specialisation.json of tools/dmu.py")
    parser.add_argument("--seed", help="which seed's run to draw (default: the first)")
    parser.add_argument("--out", type=Path, default=Path("moe_experts.png"))
    args = parser.parse_args(argv)
    seed, records = read_seed(args.json, args.seed)
    out = plot(records, args.out, title=f"Share of each cluster's routing slots per expert (seed {seed})")
    print(f"wrote {out}")
    return out


if __name__ == "__main__":
    main()
