"""Image-caption pairs drawn on the fly from a synthetic world, for pretraining the tiny CLIP."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torchvision import tv_tensors

from clipadapt.registry import DATASETS

from .base import BaseClipDataset, check_file
from .synthetic import MANIFEST, WorldConfig, load_manifest
from .synthetic.stream import stream_item

__all__ = ["SyntheticStreamDataset"]


@DATASETS.register_module()
class SyntheticStreamDataset(BaseClipDataset):
    """``num_samples`` image-caption pairs drawn as they are read, from the world written under ``data_root``.

    The world's manifest supplies the vocabulary: its classes, scene domains (the only backgrounds
    drawn, so held-out domains stay unseen) and image sizes. Sample ``i`` is
    :func:`clipadapt.datasets.synthetic.stream.stream_item` ``(world, i, seed, ...)``: deterministic,
    whatever the worker or the order of reading, and distinct from every image on disk. A sample is
    ``{'inputs': uint8 [3, H, W], 'data_samples': {'caption': str, 'index': int}}``, like
    :class:`ImageTextDataset`'s.

    Keep the batch size equal to ``objects_per_block + scenes_per_block`` and the sampler unshuffled:
    each batch is then one block, whose object captions are all different (see the stream's layout).

    Args:
        data_root: Root of a synthetic world (``synthetic://`` in configs).
        num_samples: Length of the data set (one epoch).
        objects_per_block: Single-object images per block (at most the number of classes keeps
            their captions distinct).
        scenes_per_block: Multi-object scenes per block, captioned like the world's short captions.
        seed: Stream seed.
        pipeline: Transforms applied to the drawn image (``results['img']``); no ``LoadImage``.
        **kwargs: Other ``mmengine.dataset.BaseDataset`` arguments.
    """

    sample_keys: ClassVar[tuple[str, ...]] = ("caption", "index")

    def __init__(
        self,
        data_root: str,
        num_samples: int,
        objects_per_block: int = 48,
        scenes_per_block: int = 16,
        seed: int = 0,
        pipeline: Sequence[dict | Callable] | None = (),
        **kwargs: Any,
    ) -> None:
        if num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {num_samples}")
        if objects_per_block < 0 or scenes_per_block < 0 or objects_per_block + scenes_per_block == 0:
            raise ValueError(f"a block needs objects or scenes, got {objects_per_block} and {scenes_per_block}")
        self.num_samples = num_samples
        self.objects_per_block = objects_per_block
        self.scenes_per_block = scenes_per_block
        self.seed = seed
        self.world: WorldConfig | None = None
        super().__init__(ann_file=MANIFEST, data_root=data_root, pipeline=list(pipeline or []), **kwargs)

    def load_data_list(self) -> list[dict]:
        """Read the world's parameters; the samples are only their indices."""
        check_file(self.ann_file, "synthetic world manifest")
        manifest = load_manifest(os.path.dirname(self.ann_file))
        if manifest is None:
            raise ValueError(f"unreadable synthetic world manifest {self.ann_file}")
        self.world = WorldConfig(**manifest["params"])
        return [{"index": i} for i in range(self.num_samples)]

    def prepare_data(self, idx: int) -> dict | None:
        """Draw sample ``idx``, run the pipeline on it, pack it."""
        info = self.get_data_info(idx)
        if self.world is None:  # lazily initialised data set copied into a worker
            self.load_data_list()
        assert self.world is not None
        item = stream_item(self.world, info["index"], self.seed, self.objects_per_block, self.scenes_per_block)
        img = torch.from_numpy(np.asarray(item.image, dtype=np.uint8).copy()).permute(2, 0, 1)
        results = dict(info, img=tv_tensors.Image(img), caption=item.caption)
        results["ori_shape"] = results["img_shape"] = tuple(img.shape[-2:])
        results = self.pipeline(results)
        return None if results is None else self.pack(results)
