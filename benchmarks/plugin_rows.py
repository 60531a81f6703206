"""Rows of the adaptation plugins beyond prompt learning: Long-CLIP, region pooling, CLIP-MoE.

Each function takes the run's :class:`~benchmarks.rows.Bench` (model name, device, dtype,
timing settings) and returns one row dict, with the same keys as the core rows.
"""

from __future__ import annotations

import statistics
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from .rows import Bench
from .timing import throughput_fields

# A long caption of the kind Long-CLIP trains on (ShareGPT4V-style, ~150 words, ~200 tokens).
LONG_CAPTION = (
    "The image shows a quiet street corner in an old town on a late summer afternoon. On the left a narrow "
    "three storey building with a pale yellow facade and green wooden shutters rises above a small bakery "
    "whose window displays loaves of bread, croissants and a tray of fruit tarts. A striped red and white "
    "awning shades the entrance, where two metal chairs and a round table stand on the cobblestones. In the "
    "centre of the scene a woman in a blue linen dress and a straw hat walks a small brown dog on a leash, "
    "while a cyclist in a grey jacket passes behind her carrying a paper bag. On the right a lamp post with "
    "a black iron lantern leans slightly, and a poster for a summer concert is glued to its base. The sky "
    "is clear and pale blue, and long shadows fall across the street from the left."
)


def build_long_clip(bench: Bench) -> tuple[Any, Any, torch.Tensor]:
    """clipadapt with ``LongCLIP`` on the bench's weights, open_clip at 248 positions with the same weights, tokens.

    The tokens are 28 class prompts and 4 long captions (~200 tokens) at context 248. Both models are in eval.
    """
    import open_clip

    import clipadapt
    from clipadapt_plugins.longclip import LongCLIP

    with tempfile.TemporaryDirectory() as tmp:  # the plugin stretches the positions of the loaded base weights
        path = Path(tmp) / "base.pt"
        torch.save(bench.reference.state_dict(), path)
        ours = clipadapt.create_model(bench.args.model, pretrained=str(path), plugins=[LongCLIP()], device=bench.device)
    ours.eval()
    # open_clip at 248 positions with the same (stretched) weights: the exported model.
    cfg = clipadapt.open_clip_model_config(ours)
    theirs = open_clip.model.CLIP(**{k: v for k, v in cfg.items() if k != "name"}).to(bench.device).eval()
    theirs.load_state_dict(clipadapt.to_open_clip_state_dict(ours))
    captions = bench.prompts[:28] + [LONG_CAPTION] * 4
    tokens = clipadapt.get_tokenizer(model=ours)(captions).to(bench.device)
    return ours, theirs, tokens


def long_text_row(bench: Bench) -> dict[str, Any]:
    """Text encoding at context 248 (Long-CLIP): 28 short + 4 long captions, ours with and without truncation."""
    ours, theirs, tokens = build_long_clip(bench)

    def run(fn: Callable[[torch.Tensor], torch.Tensor]) -> Callable[[], Any]:
        def call() -> Any:
            with torch.inference_mode(), bench.autocast():
                return fn(tokens)

        return call

    def untruncated(text: torch.Tensor) -> torch.Tensor:
        ours.text.dynamic_truncation = False
        try:
            return ours.encode_text(text)
        finally:
            ours.text.dynamic_truncation = True

    fns = {"clipadapt": run(ours.encode_text), "open_clip": run(theirs.encode_text), "no_truncation": run(untruncated)}
    out, first_s = bench.first_calls(fns)
    samples = bench.time(fns, first_s)
    row = bench.common("long_text_forward") | {
        "unit": "texts/s",
        "batch": tokens.shape[0],
        "context_length": tokens.shape[1],
        "long_captions": 4,
        "clipadapt_tokens": int(ours.text.eot_index(tokens).max()) + 1,
    }
    row |= throughput_fields(samples["clipadapt"], samples["open_clip"], tokens.shape[0])
    row["clipadapt_no_truncation"] = statistics.median(tokens.shape[0] / s for s in samples["no_truncation"].seconds)
    row["parity_max_abs_diff"] = max(
        (out["clipadapt"].float() - out["open_clip"].float()).abs().max().item(),
        (out["no_truncation"].float() - out["open_clip"].float()).abs().max().item(),
    )
    return row


def region_pooling_row(bench: Bench, images: int = 16, boxes_per_image: int = 64) -> dict[str, Any]:
    """Box pooling of ``boxes_per_image`` boxes on each of ``images`` dense maps: one RoIAlign vs a per-box loop."""
    from torchvision.ops import roi_align

    from clipadapt.models.dense import pool_boxes

    size, grid, dim = bench.clip.image_size, bench.cfg.vision.grid_size, bench.cfg.embed_dim
    gen = torch.Generator().manual_seed(bench.args.seed + 5)
    dense = torch.randn(images, dim, grid, grid, generator=gen).to(bench.device, bench.dtype)
    corners = torch.rand(images, boxes_per_image, 2, 2, generator=gen) * size
    boxes = [torch.cat([c.min(dim=1).values, c.max(dim=1).values + 1.0], dim=1).to(bench.device) for c in corners]

    def batched() -> torch.Tensor:
        with torch.inference_mode():
            return pool_boxes(dense, boxes, size)

    def per_box() -> torch.Tensor:  # the loop that a batched call replaces
        with torch.inference_mode():
            out = []
            for i, image_boxes in enumerate(boxes):
                for box in image_boxes:
                    out.append(
                        roi_align(dense[i : i + 1], [box[None]], 1, spatial_scale=grid / size, aligned=True).flatten(1)
                    )
            return torch.cat(out)

    fns = {"clipadapt": batched, "open_clip": per_box}
    out, first_s = bench.first_calls(fns)
    samples = bench.time(fns, first_s)
    total = images * boxes_per_image
    row = bench.common("region_pooling") | {
        "unit": "boxes/s",
        "batch": images,
        "boxes_per_image": boxes_per_image,
        "baseline_kind": "per-box torchvision.ops.roi_align loop",
    }
    row |= throughput_fields(samples["clipadapt"], samples["open_clip"], total)
    row["parity_max_abs_diff"] = (out["clipadapt"].float() - out["open_clip"].float()).abs().max().item()
    return row


def moe_block_row(bench: Bench, num_experts: int = 4, top_k: int = 2) -> dict[str, Any]:
    """One upcycled MoE MLP (E experts, top-k) against ``top_k`` dense MLP calls on the same tokens.

    Forward and backward on the image tokens of the benchmark batch (ViT-B/16: 8 x 197 tokens); with
    top-2 routing every token passes through two experts, so two dense calls are the compute floor.
    ``ratio`` = dense time / MoE time (the issue's goal: MoE at most 1.25x the dense cost, ratio >= 0.8).
    """
    from clipadapt_plugins.moe.layer import SparseMoE

    block = bench.clip.visual.transformer.resblocks[-1]
    width = bench.cfg.vision.width
    mlp = block.mlp.to(bench.device)
    moe = SparseMoE(mlp, width, num_experts, top_k).to(bench.device)
    moe.requires_grad_(True)
    dense = [_copy_trainable(mlp) for _ in range(top_k)]
    gen = torch.Generator().manual_seed(bench.args.seed + 7)
    tokens = bench.images.shape[0] * (bench.cfg.vision.grid_size**2 + 1)
    x = torch.randn(1, tokens, width, generator=gen).to(bench.device)

    def moe_step() -> torch.Tensor:
        x.grad = None
        with bench.autocast():
            y = moe(x.requires_grad_(True))
        y.float().sum().backward()
        return y.detach()

    def dense_step() -> torch.Tensor:
        x.grad = None
        with bench.autocast():
            y = sum(m(x.requires_grad_(True)) for m in dense)
        y.float().sum().backward()
        return y.detach()

    fns = {"clipadapt": moe_step, "open_clip": dense_step}
    _, first_s = bench.first_calls(fns)
    samples = bench.time(fns, first_s)
    row = bench.common("moe_block") | {
        "unit": "tokens/s",
        "tokens": tokens,
        "width": width,
        "num_experts": num_experts,
        "top_k": top_k,
        "baseline_kind": f"{top_k} dense MLP calls",
        "setup": "forward + backward of the MLP sublayer only",
    }
    row |= throughput_fields(samples["clipadapt"], samples["open_clip"], tokens)
    # Identical experts and weights summing to 1: the MoE equals one dense MLP on every token.
    with torch.no_grad():
        row["parity_max_abs_diff"] = (moe(x) - mlp(x)).abs().max().item()
    return row


def _copy_trainable(module: torch.nn.Module) -> torch.nn.Module:
    import copy

    return copy.deepcopy(module).requires_grad_(True)
