"""The ``dist_`` rows of ``tools/benchmark.py``: sharded against DDP training, and the large-batch loss.

``dist_sharding``
    Full fine-tuning of ``ImageTextContrastive`` (the benchmark's model, random init, AdamW) for a few
    steps on 2 CPU processes over gloo, once under DDP (``CPUDistributedDataParallel``) and once under
    ``FullyShardedWrapper`` (FSDP2 per residual block), each through the wrappers' ``train_step``.
    Per rank: the bytes of parameters, gradients and AdamW state the rank holds (counted from its
    tensors: its shards under FSDP), the process's peak RSS, and training steps/s. ``ratio`` =
    DDP's state bytes / the sharded run's (goal: about the world size). ``slowdown`` = sharded step
    time / DDP step time: gloo all-gathers every block's weights over TCP, twice per step.
``dist_loss``
    The contrastive loss of a global batch of ``--dist-global-batch`` (4,096) pairs of the model's
    embedding width, as one of 2 ranks computes it: ``clip_loss`` on the gathered ``N x N`` logits
    (what ``gather_features`` does) against the large-batch loss (the rank's ``N / 2`` rows) and its
    chunked variant (256 rows at a time). MiB that autograd keeps for backward (measured; the input features
    excluded) and the size of one logits matrix per rank (computed); ``ratio`` = full / local saved
    MiB. Single process: the rank's share needs no communication (``local_clip_loss_sum``).
"""

from __future__ import annotations

import os
import resource
import socket
import statistics
import time
from typing import Any

import torch
import torch.multiprocessing as mp
import torch.nn.functional as F

from .timing import saved_for_backward_mib

__all__ = ["dist_loss_row", "dist_sharding_row"]

WORLD = 2
CHUNK = 256


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _held_bytes(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict[str, int]:
    """Bytes of the parameters, their gradients (one per trainable parameter) and optimizer state on this rank."""
    from torch.distributed.tensor import DTensor

    def local(t: torch.Tensor) -> torch.Tensor:
        return t.to_local() if isinstance(t, DTensor) else t

    params = [local(p) for p in model.parameters()]
    trainable = [local(p) for p in model.parameters() if p.requires_grad]
    state = [local(v) for s in optimizer.state.values() for v in s.values() if isinstance(v, torch.Tensor)]
    return {
        "params": sum(t.numel() * t.element_size() for t in params),
        "grads": sum(t.numel() * t.element_size() for t in trainable),
        "optimizer": sum(t.numel() * t.element_size() for t in state),
    }


def _train_worker(rank: int, port: int, mode: str, model_name: str, batch: int, steps: int, out: Any) -> None:
    import torch.distributed as dist
    from mmengine.optim import OptimWrapper

    from clipadapt.engine import CPUDistributedDataParallel
    from clipadapt.engine.sharding import FullyShardedWrapper
    from clipadapt.registry import MODELS

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=WORLD)
    torch.set_num_threads(1)
    try:
        torch.manual_seed(0)
        model = MODELS.build(
            dict(
                type="ImageTextContrastive",
                model_name=model_name,
                long_caption_weight=0.0,
                data_preprocessor=dict(type="ClipDataPreprocessor"),
            )
        )
        if mode == "ddp":
            wrapper = CPUDistributedDataParallel(module=model, broadcast_buffers=False)
        else:
            wrapper = FullyShardedWrapper(model)
        params = [p for p in wrapper.module.parameters() if p.requires_grad]
        optim = OptimWrapper(torch.optim.AdamW(params, lr=1e-5))
        size = model.clip.image_size
        gen = torch.Generator().manual_seed(rank)
        data = dict(
            inputs=torch.randint(0, 256, (batch, 3, size, size), generator=gen, dtype=torch.uint8),
            data_samples=dict(caption=[f"a photo of object number {rank * batch + i}" for i in range(batch)]),
        )
        times = []
        for _ in range(steps + 1):  # the first step allocates the AdamW state: not timed
            start = time.perf_counter()
            wrapper.train_step(data, optim)
            times.append(time.perf_counter() - start)
        out[(mode, rank)] = dict(
            step_s=statistics.median(times[1:]),
            peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
            **_held_bytes(wrapper.module, optim.optimizer),
        )
    finally:
        dist.destroy_process_group()


def dist_sharding_row(bench: Any) -> dict[str, Any]:
    """``dist_sharding``: memory per rank and steps/s, FSDP2 against DDP, 2 gloo ranks (see the module)."""
    args = bench.args
    batch, steps = getattr(args, "dist_batch", 2), getattr(args, "dist_steps", 2)
    with mp.Manager() as manager:
        out = manager.dict()
        for mode in ("ddp", "sharded"):
            mp.spawn(_train_worker, args=(_free_port(), mode, args.model, batch, steps, out), nprocs=WORLD)
        got = dict(out)
    mib = 2**20
    row: dict[str, Any] = dict(name="dist_sharding", unit="state MiB per rank (params+grads+AdamW)", world=WORLD)
    for mode in ("ddp", "sharded"):
        ranks = [got[(mode, r)] for r in range(WORLD)]
        row[f"{mode}_params_mib"] = max(r["params"] for r in ranks) / mib
        row[f"{mode}_grads_mib"] = max(r["grads"] for r in ranks) / mib
        row[f"{mode}_optimizer_mib"] = max(r["optimizer"] for r in ranks) / mib
        row[f"{mode}_state_mib"] = max(r["params"] + r["grads"] + r["optimizer"] for r in ranks) / mib
        row[f"{mode}_peak_rss_mib"] = max(r["peak_rss"] for r in ranks) / mib
        row[f"{mode}_step_s"] = max(r["step_s"] for r in ranks)
        row[f"{mode}_samples_per_s"] = WORLD * batch / row[f"{mode}_step_s"]
    row.update(
        clipadapt=row["sharded_state_mib"],
        baseline=row["ddp_state_mib"],
        ratio=row["ddp_state_mib"] / row["sharded_state_mib"],
        slowdown=row["sharded_step_s"] / row["ddp_step_s"],
        batch_per_rank=batch,
        steps=steps,
    )
    return row


def dist_loss_row(bench: Any) -> dict[str, Any]:
    """``dist_loss``: memory of the contrastive loss at a global batch of 4,096 on one of 2 ranks (see the module)."""
    from clipadapt.tasks import clip_loss
    from clipadapt.tasks.losses_distributed import local_clip_loss_sum

    total = getattr(bench.args, "dist_global_batch", 4096)
    dim = bench.cfg.embed_dim
    gen = torch.Generator().manual_seed(0)
    images = F.normalize(torch.randn(total, dim, generator=gen), dim=-1).requires_grad_(True)
    texts = F.normalize(torch.randn(total, dim, generator=gen), dim=-1).requires_grad_(True)
    scale = torch.tensor(100.0, requires_grad=True)
    own = total // WORLD

    def full() -> tuple[torch.Tensor, None]:
        return clip_loss(images, texts, scale), None

    def local(chunk: int | None) -> tuple[torch.Tensor, None]:
        share = local_clip_loss_sum(images[:own], texts[:own], images, texts, 0, scale, chunk_size=chunk)
        return share / (2 * total), None

    resident = [images, texts, scale]
    saved = {
        "full": saved_for_backward_mib(full, resident),
        "local": saved_for_backward_mib(lambda: local(None), resident),
        "chunked": saved_for_backward_mib(lambda: local(CHUNK), resident),
    }
    logits = {"full": total * total * 4 / 2**20, "local": own * total * 4 / 2**20, "chunked": CHUNK * total * 4 / 2**20}
    return dict(
        name="dist_loss",
        unit="MiB saved for backward per rank",
        global_batch=total,
        world=WORLD,
        embed_dim=dim,
        clipadapt=saved["local"],
        baseline=saved["full"],
        ratio=saved["full"] / saved["local"],
        chunked_saved_mib=saved["chunked"],
        chunk_rows=CHUNK,
        **{f"{k}_logits_mib": v for k, v in logits.items()},
    )
