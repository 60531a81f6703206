"""Dense patch features of the ViT and box pooling on them.

Region-text methods (FG-CLIP, FG-CLIP 2, CLIPSelf) and the open-vocabulary detectors of the
MMDetection integration all need a CLIP feature per image *region*, in the joint image-text space:

1. :func:`forward_dense` runs the vision tower once (plugin hooks included) and keeps, beside the
   pooled global feature, the input and the output of the last block;
2. :func:`dense_map` turns the patch tokens into a feature map ``[B, D, h, w]`` on the patch grid:
   ``ln_post`` and ``proj`` applied to every patch token. With ``value_path=True`` the last block is
   re-run without query-key attention (each token keeps its own value: ``x + out_proj(v(ln_1 x))``
   then the MLP), as FG-CLIP's ``forward_without_attn`` and CLIPSelf's ``encode_dense`` do: the
   global attention of the last block mixes every patch into every other, which blurs locality;
3. :func:`pool_boxes` pools the map per box with **one** batched ``torchvision.ops.roi_align`` call
   (output 1x1, ``aligned=True``, adaptive sampling): any number of boxes per image, no Python loop
   over boxes. Boxes are ``x1, y1, x2, y2`` in pixels of the input image.

For boxes on the patch grid, ``pool_boxes`` equals the plain average of the map's cells inside the
box (tested): with ``aligned=True`` the pixel-to-cell shift of -0.5 makes the adaptive sampling
points fall exactly on cell centres.

A plugin that pools regions differently (CLOC's Prompter) implements :class:`RegionPooler`; tasks ask
the attached plugins for one and fall back to :func:`roi_region_features`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from einops import rearrange
from torch import nn
from torchvision.ops import roi_align

from .towers import VisionTower
from .transformer import ResidualBlock

if TYPE_CHECKING:
    from .clip import CLIP

__all__ = [
    "DenseVisionOutput",
    "RegionPooler",
    "boxes_to_rois",
    "dense_map",
    "encode_regions",
    "forward_dense",
    "pool_boxes",
    "roi_region_features",
    "value_path_block",
]

Boxes = Sequence[torch.Tensor] | torch.Tensor  # per image [K_i, 4] xyxy, or rois [K, 5] (image index first)


@dataclass
class DenseVisionOutput:
    """One vision forward, kept for region pooling.

    Attributes:
        pooled: Global image features ``[B, embed_dim]`` (as ``encode_image``, unnormalised).
        penultimate: Tokens entering the last block ``[B, N, width]`` (after its plugin hooks).
        tokens: Tokens leaving the last block ``[B, N, width]``, before ``ln_post``.
        num_patches: Patch tokens at positions ``1 .. 1 + num_patches`` (position 0 is CLS; tokens
            after the patches are plugin prompts).
        grid: ``(h, w)`` of the patch grid.
        image_size: ``(H, W)`` of the input images in pixels.
        aux: The tower's auxiliary outputs (router logits, ...).
    """

    pooled: torch.Tensor
    penultimate: torch.Tensor
    tokens: torch.Tensor
    num_patches: int
    grid: tuple[int, int]
    image_size: tuple[int, int]
    aux: dict[str, Any]

    def patches(self, x: torch.Tensor) -> torch.Tensor:
        """The patch tokens ``[B, h*w, C]`` of a ``[B, N, C]`` token tensor."""
        return x[:, 1 : 1 + self.num_patches]


@runtime_checkable
class RegionPooler(Protocol):
    """What a plugin implements to replace RoIAlign on the dense map as the region feature extractor."""

    def region_features(self, clip: CLIP, vision: DenseVisionOutput, boxes: Sequence[torch.Tensor]) -> torch.Tensor:
        """Region features ``[sum K_i, embed_dim]`` (unnormalised) for boxes ``[K_i, 4]`` xyxy pixels per image."""
        ...


def _visual(model: CLIP | VisionTower) -> VisionTower:
    return model if isinstance(model, VisionTower) else model.visual


@contextlib.contextmanager
def _last_block_io(visual: VisionTower) -> Iterator[list[torch.Tensor]]:
    """Record the input and the output of the last block during one forward (first call only).

    Module hooks instead of a copy of the tower's loop: embed and block hooks, activation
    checkpointing and the size checks stay those of :class:`VisionTower`.
    """
    last = visual.transformer.resblocks[-1]
    seen: list[torch.Tensor] = []

    def before(module: nn.Module, args: tuple) -> None:
        if not seen:
            seen.append(args[0])

    def after(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if len(seen) == 1:
            seen.append(output)

    handles = [last.register_forward_pre_hook(before), last.register_forward_hook(after)]
    try:
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def forward_dense(model: CLIP | VisionTower, images: torch.Tensor) -> DenseVisionOutput:
    """Run the vision tower on ``images [B, 3, H, W]`` and keep what region pooling needs."""
    visual = _visual(model)
    with _last_block_io(visual) as seen:
        output = visual(images)
    if len(seen) != 2:
        raise RuntimeError("the last block of the vision tower did not run; cannot build dense features")
    grid = visual.patch_grid(images.shape[-2:])
    return DenseVisionOutput(
        pooled=output.pooled,
        penultimate=seen[0],
        tokens=seen[1],
        num_patches=grid[0] * grid[1],
        grid=grid,
        image_size=(images.shape[-2], images.shape[-1]),
        aux=output.aux,
    )


def value_path_block(block: ResidualBlock, x: torch.Tensor) -> torch.Tensor:
    """A residual block with query-key attention removed: ``x + out_proj(v(ln_1 x))``, then the MLP.

    Every token is processed on its own, so it can run on the patch tokens only.
    """
    x = x + block.ls_1(block.attn.value_path(block.ln_1(x)))
    return x + block.ls_2(block.mlp(block.ln_2(x)))


def dense_map(
    model: CLIP | VisionTower,
    vision: DenseVisionOutput,
    value_path: bool = True,
    norm: nn.Module | None = None,
    proj: torch.Tensor | None = None,
) -> torch.Tensor:
    """Patch features in the joint space, laid out on the patch grid: ``[B, embed_dim, h, w]``.

    Args:
        model: The CLIP (or its vision tower) that produced ``vision``.
        vision: Output of :func:`forward_dense`.
        value_path: Re-run the last block without query-key attention (FG-CLIP, CLIPSelf); else use
            the last block's own output.
        norm: Norm applied per token; default the tower's ``ln_post`` (FG-CLIP 2 trains a copy).
        proj: Projection ``[width, embed_dim]``; default the tower's ``proj``.
    """
    visual = _visual(model)
    if value_path:
        tokens = value_path_block(visual.transformer.resblocks[-1], vision.patches(vision.penultimate))
    else:
        tokens = vision.patches(vision.tokens)
    norm = visual.ln_post if norm is None else norm
    proj = visual.proj if proj is None else proj
    features = norm(tokens) @ proj  # [B, h*w, D]
    return rearrange(features, "b (h w) d -> b d h w", h=vision.grid[0], w=vision.grid[1])


def boxes_to_rois(boxes: Boxes, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """Per-image boxes ``[K_i, 4]`` as one ``[K, 5]`` tensor ``(image index, x1, y1, x2, y2)``."""
    if isinstance(boxes, torch.Tensor):
        if boxes.dim() != 2 or boxes.shape[1] != 5:
            raise ValueError(f"box rois must be [K, 5] (image index, x1, y1, x2, y2), got {tuple(boxes.shape)}")
        return boxes.to(device=device, dtype=dtype)
    parts = []
    for i, b in enumerate(boxes):
        if b.dim() != 2 or b.shape[1] != 4:
            raise ValueError(f"boxes of image {i} must be [K, 4] (x1, y1, x2, y2), got {tuple(b.shape)}")
        b = b.to(device=device, dtype=dtype)
        parts.append(torch.cat([b.new_full((b.shape[0], 1), i), b], dim=1))
    return torch.cat(parts) if parts else torch.zeros(0, 5, dtype=dtype, device=device)


def pool_boxes(dense: torch.Tensor, boxes: Boxes, image_size: int | Sequence[int]) -> torch.Tensor:
    """Average ``dense [B, D, h, w]`` inside each box with one batched RoIAlign (1x1, aligned=True).

    Args:
        dense: Feature map on the patch grid (:func:`dense_map`).
        boxes: Per image ``[K_i, 4]`` ``x1, y1, x2, y2`` in pixels of the input image (any ``K_i``,
            zero included), or rois ``[K, 5]`` with the image index first.
        image_size: ``H`` (square) or ``(H, W)`` of the input image in pixels.

    Returns:
        ``[sum K_i, D]`` in the order of the boxes.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else tuple(image_size)
    scale = dense.shape[-2] / height
    if abs(dense.shape[-1] / width - scale) > 1e-9:
        raise ValueError(
            f"the dense map {tuple(dense.shape[-2:])} and the image {(height, width)} differ in scale along the "
            "two axes; RoIAlign takes one spatial scale"
        )
    if not isinstance(boxes, torch.Tensor) and len(boxes) != dense.shape[0]:
        raise ValueError(f"{len(boxes)} box sets for {dense.shape[0]} images")
    rois = boxes_to_rois(boxes, dense.dtype, dense.device)
    if rois.shape[0] == 0:
        return dense.new_zeros(0, dense.shape[1])
    pooled = roi_align(dense, rois, output_size=1, spatial_scale=scale, sampling_ratio=-1, aligned=True)
    return pooled.flatten(1)  # [K, D]


def roi_region_features(
    model: CLIP | VisionTower,
    vision: DenseVisionOutput,
    boxes: Boxes,
    value_path: bool = True,
    norm: nn.Module | None = None,
    proj: torch.Tensor | None = None,
) -> torch.Tensor:
    """FG-CLIP's region features: :func:`dense_map` then :func:`pool_boxes`; ``[sum K_i, embed_dim]``."""
    dense = dense_map(model, vision, value_path=value_path, norm=norm, proj=proj)
    return pool_boxes(dense, boxes, vision.image_size)


def encode_regions(
    model: CLIP, images: torch.Tensor, boxes: Boxes, value_path: bool = True, normalize: bool = False
) -> torch.Tensor:
    """Region features of ``boxes`` (xyxy pixels) in ``images``, like ``encode_image`` for regions.

    Uses the region pooler of an attached plugin when there is one (:class:`RegionPooler`), else
    :func:`roi_region_features`.
    """
    vision = forward_dense(model, images)
    poolers = [p for p in model.plugins.values() if isinstance(p, RegionPooler)]
    if len(poolers) > 1:
        raise ValueError(f"several attached plugins pool regions: {[type(p).__name__ for p in poolers]}")
    if poolers:
        if isinstance(boxes, torch.Tensor):
            raise TypeError("a plugin region pooler takes per-image boxes [K_i, 4], not rois [K, 5]")
        features = poolers[0].region_features(model, vision, boxes)
    else:
        features = roi_region_features(model, vision, boxes, value_path=value_path)
    return torch.nn.functional.normalize(features, dim=-1) if normalize else features
