"""Memory per GPU of full fine-tuning under DDP and under sharding, computed from the model's own parameters.

``python -m clipadapt.engine.scale`` prints the table of docs/distributed.md. The model is built on the
meta device (no weights, no memory), its parameters counted per sharding unit (each ``ResidualBlock``,
and the root: embeddings, projections, norms), and the bytes per rank follow from how each path holds them:

- DDP: every rank holds fp32 parameters, fp32 gradients and AdamW's two fp32 moments: ``16 P`` bytes.
- Sharded (:class:`clipadapt.engine.sharding.FullyShardedWrapper`): ``16 P / world`` of shards, plus
  what is gathered whole for compute: the root unit for the whole step and two blocks at a time (the
  one computing, the one prefetched), in the compute dtype (bf16 with ``mixed_precision="bf16"``).
- The contrastive loss at a global batch ``N``: ``clip_loss`` on gathered features keeps two ``N x N``
  fp32 matrices for backward (the log-softmax of each direction; measured by the ``dist_loss`` benchmark
  row), and builds the ``N x N`` logits besides; the large-batch loss keeps two ``N / world x N`` ones;
  its chunked variant keeps none and holds one ``chunk x N`` block of logits and log-softmax at a time.

Activations are left out: they depend on the batch, the resolution and activation checkpointing, not on
the parallelism.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

import torch

__all__ = ["ModelCount", "count_parameters", "loss_bytes", "state_bytes"]

GIB = 2**30


@dataclass(frozen=True)
class ModelCount:
    """Parameter counts of one model, per sharding unit."""

    name: str
    total: int
    root: int  # parameters outside the residual blocks (gathered whole for the step)
    largest_block: int
    blocks: int


def count_parameters(model_name: str, unit: str = "ResidualBlock") -> ModelCount:
    """Count ``model_name``'s parameters, built on the meta device (nothing allocated)."""
    import clipadapt

    with torch.device("meta"):
        model = clipadapt.create_model(model_name)
    units = [m for m in model.modules() if type(m).__name__ == unit]
    sizes = [sum(p.numel() for p in m.parameters()) for m in units]
    total = sum(p.numel() for p in model.parameters())
    return ModelCount(model_name, total, total - sum(sizes), max(sizes), len(units))


def state_bytes(count: ModelCount, world: int, sharded: bool, compute_bytes: int = 2) -> float:
    """Bytes per rank of parameters, gradients and AdamW state (plus the gathered units when sharded)."""
    if not sharded:
        return 16.0 * count.total
    return 16.0 * count.total / world + compute_bytes * (count.root + 2 * count.largest_block)


def loss_bytes(global_batch: int, world: int, kind: str, chunk: int = 256) -> float:
    """Bytes per rank that the contrastive loss keeps for backward (``full``, ``local``: features aside)
    or holds at once (``chunked``)."""
    if kind == "full":
        return 2.0 * 4 * global_batch * global_batch
    if kind == "local":
        return 2.0 * 4 * (global_batch / world) * global_batch
    if kind == "chunked":
        return 2.0 * 4 * min(chunk, global_batch / world) * global_batch
    raise ValueError(f"kind must be 'full', 'local' or 'chunked', got {kind!r}")


def table(models: list[str], worlds: list[int], per_rank_batch: int) -> str:
    """The markdown table of docs/distributed.md."""
    lines = [
        "| model | params | ranks | DDP state | sharded state (bf16 compute) | global batch | "
        "`clip_loss` | large-batch loss | chunked (256 rows) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name in models:
        count = count_parameters(name)
        for world in worlds:
            batch = per_rank_batch * world
            ddp, sharded = (state_bytes(count, world, s) / GIB for s in (False, True))
            full, local, chunked = (loss_bytes(batch, world, k) / GIB for k in ("full", "local", "chunked"))
            lines.append(
                f"| {name} | {count.total / 1e6:.1f} M | {world} | {ddp:.2f} GiB | {sharded:.2f} GiB | {batch:,} | "
                f"{full:.2f} GiB | {local:.3f} GiB | {chunked:.3f} GiB |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="ViT-B-16,ViT-L-14")
    parser.add_argument("--worlds", default="8,64", help="numbers of ranks (GPUs)")
    parser.add_argument("--per-rank-batch", type=int, default=512, help="pairs per rank (FG-CLIP 2: 512)")
    args = parser.parse_args(argv)
    worlds = [int(w) for w in args.worlds.split(",")]
    print(table(args.models.split(","), worlds, args.per_rank_batch))


if __name__ == "__main__":
    main()
