"""FewShotDataset: CoOp split files, k-shot sampling, base/novel relabelling, errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from mmengine.dataset import default_collate

from clipadapt.datasets import FewShotDataset
from clipadapt.registry import DATASETS

SPLIT = "split_synthetic_dark.json"


def _paths(ds: FewShotDataset) -> list[str]:
    return [ds.get_data_info(i)["img_path"] for i in range(len(ds))]


def _labels(ds: FewShotDataset) -> list[int]:
    return [ds.get_data_info(i)["label"] for i in range(len(ds))]


def _dataset(*args, **kwargs) -> FewShotDataset:
    # serialize_data=False skips mmengine's gc.collect() (about 0.3 s a dataset); test_reads_the_world
    # covers the default, serialised path.
    return FewShotDataset(*args, serialize_data=False, **kwargs)


def test_reads_the_world(tiny_world: Path, tiny_params: dict) -> None:
    ds = FewShotDataset(str(tiny_world), SPLIT, split="train")
    assert len(ds) == 4 * len(tiny_params["class_names"])
    assert ds.metainfo["classes"] == tiny_params["class_names"]
    sample = ds[0]
    assert sample["inputs"].dtype == torch.uint8 and sample["inputs"].shape == (3, 32, 32)
    assert type(sample["inputs"]) is torch.Tensor
    assert set(sample["data_samples"]) == {"label", "img_path"}
    name = ds.metainfo["classes"][sample["data_samples"]["label"]]
    assert f"/{name.replace(' ', '_')}/" in sample["data_samples"]["img_path"]
    batch = default_collate([ds[i] for i in range(3)])
    assert batch["inputs"].shape == (3, 3, 32, 32) and batch["data_samples"]["label"].shape == (3,)


def test_registry_and_pipeline(tiny_world: Path) -> None:
    pipeline = [dict(type="LoadImage"), dict(type="Resize", size=48), dict(type="CenterCrop", size=40)]
    ds = DATASETS.build(
        dict(type="FewShotDataset", data_root=str(tiny_world), split_file=SPLIT, split="test", pipeline=pipeline)
    )
    assert ds[0]["inputs"].shape == (3, 40, 40) and ds[0]["inputs"].dtype == torch.uint8


def test_k_shot_reproducible_by_seed(tiny_world: Path) -> None:
    a = _dataset(str(tiny_world), SPLIT, num_shots=2, seed=1)
    b = _dataset(str(tiny_world), SPLIT, num_shots=2, seed=1)
    c = _dataset(str(tiny_world), SPLIT, num_shots=2, seed=2)
    assert _paths(a) == _paths(b)
    assert _paths(a) != _paths(c)
    assert len(a) == 8 and sorted(_labels(a)) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert len(set(_paths(a))) == 8  # without replacement
    assert len(_dataset(str(tiny_world), SPLIT, num_shots=None)) == 16
    assert len(_dataset(str(tiny_world), SPLIT, num_shots=-1)) == 16  # CoOp's "all"


def test_base_novel_relabelling(tiny_world: Path, tiny_params: dict) -> None:
    names = tiny_params["class_names"]
    full = _dataset(str(tiny_world), SPLIT, split="test")
    base = _dataset(str(tiny_world), SPLIT, split="test", subsample="base")
    novel = _dataset(str(tiny_world), SPLIT, split="test", subsample="novel")
    assert base.metainfo["classes"] == names[:2] and novel.metainfo["classes"] == names[2:]
    assert sorted(set(_labels(base))) == [0, 1] and sorted(set(_labels(novel))) == [0, 1]
    assert len(base) + len(novel) == len(full)
    for ds in (base, novel):
        for info in (ds.get_data_info(i) for i in range(len(ds))):
            assert info["classname"] == ds.metainfo["classes"][info["label"]]
    assert _dataset(str(tiny_world), SPLIT, split="test", subsample="new").metainfo["classes"] == names[2:]
    # k-shot sampling happens before the subset, as in CoOp: base classes keep the same shots.
    shots_all = _dataset(str(tiny_world), SPLIT, num_shots=2, seed=3)
    shots_base = _dataset(str(tiny_world), SPLIT, num_shots=2, seed=3, subsample="base")
    assert _paths(shots_base) == [p for p, y in zip(_paths(shots_all), _labels(shots_all), strict=True) if y < 2]


def test_odd_number_of_classes(tmp_path: Path) -> None:
    entries = [[f"x{i}.png", i, f"class {i}"] for i in range(5)]
    (tmp_path / "split.json").write_text(json.dumps({"train": entries, "val": [], "test": entries}))
    base = _dataset(str(tmp_path), "split.json", split="test", subsample="base")
    novel = _dataset(str(tmp_path), "split.json", split="test", subsample="novel")
    assert base.metainfo["classes"] == ["class 0", "class 1", "class 2"]  # ceil(5 / 2) base classes
    assert novel.metainfo["classes"] == ["class 3", "class 4"] and _labels(novel) == [0, 1]


def test_more_shots_than_images(tiny_world: Path) -> None:
    with pytest.warns(UserWarning, match=r"fewer than num_shots=6"):
        ds = _dataset(str(tiny_world), SPLIT, num_shots=6)
    assert len(ds) == 16  # kept whole, as Dassl with repeat=False
    with pytest.warns(UserWarning, match=r"with replacement"):
        ds = _dataset(str(tiny_world), SPLIT, num_shots=6, repeat=True, seed=5)
    assert len(ds) == 24 and len(set(_paths(ds))) <= 16


def test_missing_split_file(tiny_world: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"split file not found: .*nope.json"):
        _dataset(str(tiny_world), "nope.json")


def test_split_file_lacking_keys(tmp_path: Path) -> None:
    (tmp_path / "split.json").write_text(json.dumps({"train": [["a.png", 0, "a"]]}))
    with pytest.raises(KeyError, match=r"split.json lacks the required key\(s\) \['val'\]"):
        _dataset(str(tmp_path), "split.json", split="val")
    (tmp_path / "bad.json").write_text(json.dumps({"train": [["a.png", "0", "a"]]}))
    with pytest.raises(ValueError, match=r"bad.json: train\[0\].*is not \[relpath, label, classname\]"):
        _dataset(str(tmp_path), "bad.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match=r"broken.json is not valid JSON"):
        _dataset(str(tmp_path), "broken.json")


def test_empty_after_filtering(tmp_path: Path) -> None:
    train = [["a.png", 0, "a"], ["b.png", 1, "b"]]
    (tmp_path / "split.json").write_text(json.dumps({"train": train, "val": [["a.png", 0, "a"]], "test": []}))
    with pytest.raises(ValueError, match=r"no samples left in split 'val'.*subsample='novel'"):
        _dataset(str(tmp_path), "split.json", split="val", subsample="novel")
    with pytest.raises(ValueError, match=r"split 'test' of .*split.json is empty"):
        _dataset(str(tmp_path), "split.json", split="test")


def test_missing_and_corrupt_images(tmp_path: Path, tiny_world: Path) -> None:
    root = tmp_path / "world"
    shutil.copytree(tiny_world, root)
    ds = _dataset(str(root), SPLIT, split="val")
    missing, truncated = ds.get_data_info(0)["img_path"], ds.get_data_info(1)["img_path"]
    Path(missing).unlink()
    data = Path(truncated).read_bytes()
    Path(truncated).write_bytes(data[: len(data) // 2])
    with pytest.raises(FileNotFoundError, match=re.escape(f"image file not found: {missing}")):
        ds[0]
    with pytest.raises(OSError, match=re.escape(f"cannot read image {truncated}")):
        ds[1]
    Path(missing).write_bytes(b"not a png")
    with pytest.raises(OSError, match=re.escape(f"cannot read image {missing}")):
        ds[0]


def test_invalid_arguments(tiny_world: Path) -> None:
    with pytest.raises(ValueError, match=r"split must be one of"):
        _dataset(str(tiny_world), SPLIT, split="training")
    with pytest.raises(ValueError, match=r"subsample must be one of"):
        _dataset(str(tiny_world), SPLIT, subsample="seen")
    with pytest.raises(KeyError, match=r"start it with dict\(type='LoadImage'\)"):
        _dataset(str(tiny_world), SPLIT, pipeline=[])[0]
