"""An endless stream of image-caption pairs drawn from a world's vocabulary, for pretraining.

The on-disk world holds a fixed number of images. A CLIP trained from scratch needs many more to learn
shape, so pretraining draws its images as it reads them: item ``i`` of the stream is a pure function
of ``(world seed, stream seed, i)``, never equal to an on-disk image (its random keys differ), and
costs about a millisecond to draw.

The stream is laid out in blocks of ``objects_per_block`` single-object images followed by
``scenes_per_block`` scenes. Single objects visit the classes in a shuffled order, one cycle after
another, so a block (one batch, when the batch size equals the block size and the sampler does not
shuffle) holds distinct classes: no two of its object captions are equal, and the contrastive loss
has no false negatives among them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from .draw import apply_light, draw_background, render
from .scene import sample_scene, sample_single, short_caption
from .vocab import WorldConfig
from .writers import _rng

__all__ = ["StreamItem", "stream_item"]


@dataclass
class StreamItem:
    """One drawn pair: the image, its caption, and what it shows."""

    image: Image.Image
    caption: str
    kind: str  # "object" or "scene"
    domain: str


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _class_order(cfg: WorldConfig, seed: int, cycle: int) -> np.ndarray:
    return _rng(cfg.seed, "stream-order", seed, cycle).permutation(len(cfg.class_pairs))


def stream_item(
    cfg: WorldConfig, index: int, seed: int = 0, objects_per_block: int = 64, scenes_per_block: int = 0
) -> StreamItem:
    """Item ``index`` of the stream of world ``cfg`` (see the module docstring for the layout).

    Args:
        cfg: The world: classes, scene domains (the only backgrounds drawn), image and scene sizes.
        index: Position in the stream (>= 0).
        seed: Stream seed: another seed gives another stream over the same world.
        objects_per_block: Single-object images at the start of each block.
        scenes_per_block: Scenes at the end of each block.
    """
    if index < 0 or objects_per_block < 0 or scenes_per_block < 0 or objects_per_block + scenes_per_block == 0:
        raise ValueError(f"bad stream index {index} or block ({objects_per_block} objects, {scenes_per_block} scenes)")
    block, pos = divmod(index, objects_per_block + scenes_per_block)
    rng = _rng(cfg.seed, "stream", seed, index)
    domains = cfg.scene_domains
    domain = domains[int(rng.integers(len(domains)))]
    if pos < objects_per_block:
        k = block * objects_per_block + pos
        cycle, slot = divmod(k, len(cfg.class_pairs))
        colour, shape = cfg.class_pairs[int(_class_order(cfg, seed, cycle)[slot])]
        obj = sample_single(colour, shape, cfg.image_size, rng, cfg.object_jitter)
        image, _ = render(draw_background(domain, cfg.image_size, rng), [obj.drawn], rng)
        caption = f"{_article(colour)} {colour} {shape}"
        return StreamItem(apply_light(domain, image), caption, "object", domain)
    num = int(rng.integers(cfg.min_objects, min(cfg.max_objects, len(cfg.class_pairs)) + 1))
    objects = sample_scene(list(cfg.class_pairs), cfg.scene_size, num, rng)
    image, boxes = render(draw_background(domain, cfg.scene_size, rng), [o.drawn for o in objects], rng)
    objects = [o for o, box in zip(objects, boxes, strict=True) if box[2] > 0 and box[3] > 0]  # the visible ones
    return StreamItem(apply_light(domain, image), short_caption(objects, rng), "scene", domain)
