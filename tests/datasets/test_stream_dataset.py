"""SyntheticStreamDataset: pairs drawn as they are read, deterministic per index, blocks of distinct classes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from clipadapt.datasets import SyntheticStreamDataset
from clipadapt.datasets.synthetic import WorldConfig
from clipadapt.datasets.synthetic.stream import stream_item


def _stream(root: Path, **kwargs) -> SyntheticStreamDataset:
    args = dict(num_samples=24, objects_per_block=4, scenes_per_block=2, pipeline=[dict(type="Resize", size=32)])
    return SyntheticStreamDataset(str(root), **{**args, **kwargs})


def test_samples_are_a_function_of_their_index(tiny_world: Path) -> None:
    a, b = _stream(tiny_world), _stream(tiny_world)
    for i in (0, 5, 17):  # any order of reading gives the same sample
        assert torch.equal(a[i]["inputs"], b[i]["inputs"])
        assert a[i]["data_samples"] == b[i]["data_samples"] == {"caption": a[i]["data_samples"]["caption"], "index": i}
    assert a[0]["inputs"].dtype == torch.uint8 and a[0]["inputs"].shape == (3, 32, 32)
    assert not torch.equal(a[0]["inputs"], _stream(tiny_world, seed=1)[0]["inputs"])  # another stream
    assert len(a) == 24


def test_blocks_hold_distinct_classes_then_scenes(tiny_world: Path, tiny_params: dict) -> None:
    ds = _stream(tiny_world)
    names = set(tiny_params["class_names"])
    for block in range(4):
        captions = [ds[block * 6 + j]["data_samples"]["caption"] for j in range(6)]
        objects = [c.split(" ", 1)[1] for c in captions[:4]]
        assert sorted(objects) == sorted(names)  # 4 classes: one block visits each once
        assert all(" and " in c or ", " in c for c in captions[4:])  # scenes have 3-4 objects here


def test_only_scene_domains_are_drawn(tiny_params: dict) -> None:
    cfg = WorldConfig(**{k: v for k, v in tiny_params.items() if k != "class_names"})
    domains = {stream_item(cfg, i, 0, 4, 2).domain for i in range(60)}
    assert domains == set(cfg.scene_domains)  # "dark" is a classification domain only
    assert stream_item(cfg, 3, 0, 4, 2).kind == "object" and stream_item(cfg, 4, 0, 4, 2).kind == "scene"


def test_bad_arguments(tiny_world: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="num_samples"):
        _stream(tiny_world, num_samples=0)
    with pytest.raises(ValueError, match="a block needs"):
        _stream(tiny_world, objects_per_block=0, scenes_per_block=0)
    with pytest.raises(FileNotFoundError, match="manifest"):
        _stream(tmp_path)
