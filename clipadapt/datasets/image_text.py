"""Image-text pairs from a CSV file, in open_clip's convention (``filepath,title`` columns).

An optional long-caption column (``long_title`` in the synthetic world) feeds long-text methods
such as Long-CLIP. Captions stay strings: tokenisation belongs to the model's tokenizer, whose
context length depends on the plugins.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from clipadapt.registry import DATASETS

from .base import BaseClipDataset, check_file, resolve_path

__all__ = ["ImageTextDataset"]


@DATASETS.register_module()
class ImageTextDataset(BaseClipDataset):
    """Image-caption pairs from a CSV with a header row.

    A sample is ``{'inputs': uint8 [3, H, W], 'data_samples': {'caption': str, 'index': int}}``, plus
    ``'long_caption': str`` when ``long_caption_key`` is set. ``index`` is the row's position in the
    CSV (0 = the first row after the header), which retrieval metrics use to pair images and texts.

    Unlike open_clip's ``CsvDataset`` (whose paths are relative to the working directory), relative
    image paths are resolved against ``data_root``, or against the CSV's folder when ``data_root`` is
    empty.

    Args:
        data_root: Root of relative image paths and of a relative ``csv_file``.
        csv_file: The CSV file.
        img_key: Column of image paths (open_clip's ``--csv-img-key``).
        caption_key: Column of captions (open_clip's ``--csv-caption-key``).
        long_caption_key: Column of long captions, or ``None``.
        pipeline: Transform configs or callables; ``None`` gives ``[LoadImage()]``.
        sep: Column separator (open_clip's ``--csv-separator`` defaults to a tab; the synthetic
            world writes commas).
        **kwargs: Other ``mmengine.dataset.BaseDataset`` arguments.
    """

    sample_keys: ClassVar[tuple[str, ...]] = ("caption", "long_caption", "index")

    def __init__(
        self,
        data_root: str,
        csv_file: str,
        img_key: str = "filepath",
        caption_key: str = "title",
        long_caption_key: str | None = None,
        pipeline: Sequence[dict | Callable] | None = None,
        sep: str = ",",
        **kwargs: Any,
    ) -> None:
        self.img_key = img_key
        self.caption_key = caption_key
        self.long_caption_key = long_caption_key
        self.sep = sep
        super().__init__(ann_file=csv_file, data_root=data_root, pipeline=pipeline, **kwargs)

    def load_data_list(self) -> list[dict]:
        """Read the CSV; every row needs an image path and a caption (and a long caption when configured)."""
        path = check_file(self.ann_file, "CSV file")
        image_root = self.data_root or os.path.dirname(os.path.abspath(path))
        keys = [self.img_key, self.caption_key] + ([self.long_caption_key] if self.long_caption_key else [])
        data_list = []
        with open(path, newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh, delimiter=self.sep)
            header = reader.fieldnames or []
            missing = [k for k in keys if k not in header]
            if missing:
                raise KeyError(
                    f"CSV file {path} lacks the column(s) {missing}; its header is {header} (separator {self.sep!r})"
                )
            for index, row in enumerate(reader):
                empty = [k for k in keys if not row.get(k)]
                if empty:
                    raise ValueError(f"CSV file {path}, line {reader.line_num}: empty or missing {empty}")
                info = {
                    "img_path": resolve_path(row[self.img_key], image_root),
                    "caption": row[self.caption_key],
                    "index": index,
                }
                if self.long_caption_key:
                    info["long_caption"] = row[self.long_caption_key]
                data_list.append(info)
        if not data_list:
            raise ValueError(f"CSV file {path} has a header but no rows")
        self._metainfo.update(caption_key=self.caption_key, long_caption_key=self.long_caption_key)
        return data_list
