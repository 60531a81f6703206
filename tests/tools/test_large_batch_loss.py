"""``large_batch_clip_loss`` on two gloo ranks equals ``clip_loss`` of the global batch, in value and gradient.

Each rank holds its own rows of one global batch (3 + 5 pairs: uneven), computes logits of its rows
only, and backpropagates. DDP averages the ranks' parameter gradients; here the features stand in for
the parameters: the rows' gradients, gathered and divided by the world size as DDP would, must equal
the gradient of ``clip_loss`` over all 8 pairs in one process, and so must the averaged gradient of the
logit scale. With the ignore mask, label smoothing and the chunked variant too.

Tolerance: both sides compute the same dot products of ``D = 16`` terms and sums of at most
``2 N = 16`` terms per softmax and gradient row, in another order (other matrix shapes, a sum split
over ranks). The float32 rounding of such sums is below ``(D + 2 N) * eps ~ 4e-6`` of the terms'
magnitude (``|logit| <= logit_scale = 10``; gradients of order ``logit_scale / N``), so ``rtol = 1e-5``
and ``atol = 1e-5`` hold with margin, while a missing factor (a gradient not summed over ranks, the world
size applied twice) is off by 50 % or more.
"""

from __future__ import annotations

import os

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F

from clipadapt.tasks import clip_loss
from clipadapt.tasks.losses_distributed import large_batch_clip_loss, local_clip_loss_sum
from tests.helpers import free_port

SIZES = (3, 5)
DIM = 16
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("large_batch_loss")]  # two ranks spawned once, one worker
CASES = {
    "plain": dict(),
    "ignore": dict(ignore=True),
    "smoothing": dict(label_smoothing=0.1),
    "chunked": dict(chunk_size=2),
    "chunked_ignore": dict(chunk_size=2, ignore=True),
}


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    n = sum(SIZES)
    images = F.normalize(torch.randn(n, DIM, generator=gen), dim=-1)
    texts = F.normalize(torch.randn(n, DIM, generator=gen), dim=-1)
    ignore = torch.rand(n, n, generator=gen) < 0.3
    return images, texts, torch.tensor(10.0).log(), ignore


def _reference(case: dict) -> dict[str, torch.Tensor]:
    images, texts, log_scale, ignore = (t.clone().requires_grad_(t.dtype != torch.bool) for t in _batch())
    loss = clip_loss(
        images,
        texts,
        log_scale.exp(),
        ignore=ignore if case.get("ignore") else None,
        label_smoothing=case.get("label_smoothing", 0.0),
    )
    loss.backward()
    return dict(loss=loss.detach(), images=images.grad, texts=texts.grad, log_scale=log_scale.grad)


def _worker(rank: int, port: int, results: dict) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=len(SIZES))
    torch.set_num_threads(1)
    try:
        images, texts, log_scale, ignore = _batch()
        rows = slice(sum(SIZES[:rank]), sum(SIZES[: rank + 1]))
        for name, case in CASES.items():
            own_images = images[rows].clone().requires_grad_(True)
            own_texts = texts[rows].clone().requires_grad_(True)
            scale = log_scale.clone().requires_grad_(True)
            loss = large_batch_clip_loss(
                own_images,
                own_texts,
                scale.exp(),
                ignore=ignore if case.get("ignore") else None,
                label_smoothing=case.get("label_smoothing", 0.0),
                chunk_size=case.get("chunk_size"),
            )
            loss.backward()
            world = dist.get_world_size()
            # As DDP would: the parameters' gradients are averaged over ranks.
            scale_grad = scale.grad.clone()
            dist.all_reduce(scale_grad)
            gathered = {}
            for key, grad in (("images", own_images.grad), ("texts", own_texts.grad)):
                padded = torch.zeros(max(SIZES), DIM)
                padded[: grad.shape[0]] = grad
                full = [torch.zeros(max(SIZES), DIM) for _ in SIZES]
                dist.all_gather(full, padded)
                parts = [f[:n] for f, n in zip(full, SIZES)]
                gathered[key] = torch.cat(parts) / world
            results[(rank, name)] = dict(loss=loss.detach(), log_scale=scale_grad / world, **gathered)
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_ranks() -> dict:
    with mp.Manager() as manager:
        results = manager.dict()
        mp.spawn(_worker, args=(free_port(), results), nprocs=len(SIZES), join=True)
        return dict(results)


@pytest.mark.parametrize("name", sorted(CASES))
def test_two_uneven_ranks_equal_the_full_loss_in_value_and_gradient(two_ranks, name):
    want = _reference(CASES[name])
    for rank in range(len(SIZES)):
        got = two_ranks[(rank, name)]
        torch.testing.assert_close(got["loss"], want["loss"], rtol=1e-5, atol=1e-5)  # the global loss on each rank
        for key in ("images", "texts", "log_scale"):
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-5, msg=f"{name} {key}")


@pytest.mark.parametrize("name", sorted(CASES))
def test_one_process_is_clip_loss(name):
    case = CASES[name]
    images, texts, log_scale, ignore = _batch()
    mask = ignore if case.get("ignore") else None
    smoothing = case.get("label_smoothing", 0.0)
    got = large_batch_clip_loss(images, texts, log_scale.exp(), mask, smoothing, case.get("chunk_size"))
    torch.testing.assert_close(got, clip_loss(images, texts, log_scale.exp(), mask, smoothing), rtol=1e-5, atol=1e-6)


def test_one_rank_share_sums_to_the_full_loss_without_communication():
    """``local_clip_loss_sum`` of each rank's rows, over ``2 N``, adds up to ``clip_loss``."""
    images, texts, log_scale, _ = _batch()
    total, offset = 0.0, 0
    for n in SIZES:
        rows = slice(offset, offset + n)
        total += local_clip_loss_sum(images[rows], texts[rows], images, texts, offset, log_scale.exp())
        offset += n
    torch.testing.assert_close(total / (2 * offset), clip_loss(images, texts, log_scale.exp()), rtol=1e-5, atol=1e-6)


def test_bad_arguments_are_refused():
    images, texts, log_scale, ignore = _batch()
    with pytest.raises(ValueError, match="chunk_size"):
        large_batch_clip_loss(images, texts, log_scale.exp(), chunk_size=0)
    with pytest.raises(ValueError, match="global batch"):
        large_batch_clip_loss(images, texts, log_scale.exp(), ignore=ignore[:2])
