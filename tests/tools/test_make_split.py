"""tools/make_split.py: CoOp-style split files from an image-folder tree and from FGVC-Aircraft's lists.

The written file is then read by FewShotDataset, as a user would: labels, class names and paths must
be what CoOp's readers give, and the few-shot sampling must work on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipadapt.datasets import FewShotDataset
from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[2]


def _tool():
    return load_tool("make_split")


def _image(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8, 3), 127, dtype=np.uint8)).save(path)


def test_imagenet_layout(tmp_path):
    images = tmp_path / "imagenet" / "images"
    for split, count in (("train", 3), ("val", 2)):
        for wnid in ("n02", "n01"):
            for i in range(count):
                _image(images / split / wnid / f"{wnid}_{i}.JPEG")
    (images / "train" / "n01" / "notes.txt").write_text("not an image")
    classnames = tmp_path / "imagenet" / "classnames.txt"
    classnames.write_text("n02 goldfish\nn01 great white shark\n")  # the file's order sets the labels
    out = tmp_path / "imagenet" / "split_imagenet.json"
    _tool().main(["imagefolder", "--root", str(images), "--train", "train", "--test", "val",
                  "--classnames", str(classnames), "--out", str(out)])  # fmt: skip
    train = FewShotDataset(data_root=str(images), split_file="../split_imagenet.json", split="train", num_shots=2)
    assert train.metainfo["classes"] == ["goldfish", "great white shark"]
    assert len(train) == 4
    sample = train[0]
    assert sample["data_samples"]["label"] == 0 and "/train/n02/" in sample["data_samples"]["img_path"]
    test = FewShotDataset(data_root=str(images), split_file="../split_imagenet.json", split="test")
    val = FewShotDataset(data_root=str(images), split_file="../split_imagenet.json", split="val")
    assert len(test) == len(val) == 4  # CoOp: the validation images are both val and test


def test_class_folders_missing_from_the_class_list_are_named(tmp_path):
    _image(tmp_path / "train" / "cat" / "a.png")
    _image(tmp_path / "test" / "dog" / "b.png")
    with pytest.raises(ValueError, match=r"test has class folders not in the class list: \['dog'\]"):
        _tool().main(["imagefolder", "--root", str(tmp_path), "--train", "train", "--test", "test",
                      "--out", str(tmp_path / "s.json")])  # fmt: skip


def test_fgvc_aircraft_lists(tmp_path):
    data = tmp_path / "fgvc_aircraft"
    (data / "variants.txt").parent.mkdir(parents=True)
    (data / "variants.txt").write_text("707-320\nA300B4\n")
    (data / "images_variant_train.txt").write_text("0001 A300B4\n0002 707-320\n")
    (data / "images_variant_val.txt").write_text("0003 707-320\n")
    (data / "images_variant_test.txt").write_text("0004 A300B4\n")
    for i in range(1, 5):
        _image(data / "images" / f"000{i}.jpg")
    split = _tool().main(["fgvc-aircraft", "--root", str(data), "--out", str(data / "split.json")])
    assert split["train"] == [["0001.jpg", 1, "A300B4"], ["0002.jpg", 0, "707-320"]]
    dataset = FewShotDataset(data_root=str(data / "images"), split_file="../split.json", split="train")
    assert dataset.metainfo["classes"] == ["707-320", "A300B4"]
    (data / "images_variant_test.txt").write_text("0004 B747\n")
    with pytest.raises(ValueError, match=r"images_variant_test.txt:1: variant 'B747' is not in variants.txt"):
        _tool().main(["fgvc-aircraft", "--root", str(data), "--out", str(data / "split.json")])
