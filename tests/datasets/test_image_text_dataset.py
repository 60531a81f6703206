"""ImageTextDataset: open_clip-style CSV with long captions, and its errors."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from mmengine.dataset import default_collate

from clipadapt.datasets import ImageTextDataset


def test_reads_captions(tiny_world: Path) -> None:
    ds = ImageTextDataset(str(tiny_world), "captions_train.csv", long_caption_key="long_title")
    with open(tiny_world / "captions_train.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(ds) == len(rows)
    sample = ds[2]
    assert sample["inputs"].dtype == torch.uint8 and sample["inputs"].shape == (3, 64, 64)
    assert sample["data_samples"] == {"caption": rows[2]["title"], "long_caption": rows[2]["long_title"], "index": 2}
    batch = default_collate([ds[i] for i in range(4)])
    assert batch["inputs"].shape == (4, 3, 64, 64)
    assert batch["data_samples"]["caption"] == [r["title"] for r in rows[:4]]
    assert batch["data_samples"]["index"].tolist() == [0, 1, 2, 3]
    short = ImageTextDataset(str(tiny_world), "captions_val.csv")
    assert set(short[0]["data_samples"]) == {"caption", "index"}


def test_paths_relative_to_csv_folder_and_separator(tmp_path: Path, tiny_world: Path) -> None:
    with open(tiny_world / "captions_val.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    with open(tmp_path / "pairs.tsv", "w", newline="") as fh:
        writer = csv.writer(fh, delimiter="\t")
        writer.writerow(["image", "text"])
        writer.writerows([[str(tiny_world / r["filepath"]), r["title"]] for r in rows])  # absolute paths
    ds = ImageTextDataset("", str(tmp_path / "pairs.tsv"), img_key="image", caption_key="text", sep="\t")
    assert len(ds) == len(rows) and ds[0]["data_samples"]["caption"] == rows[0]["title"]
    # Relative paths with no data_root resolve against the CSV's folder.
    ds = ImageTextDataset("", str(tiny_world / "captions_val.csv"))
    assert ds.get_data_info(0)["img_path"] == str(tiny_world / rows[0]["filepath"])


def test_missing_csv(tiny_world: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"CSV file not found: .*captions_nope.csv"):
        ImageTextDataset(str(tiny_world), "captions_nope.csv")


def test_missing_columns(tmp_path: Path, tiny_world: Path) -> None:
    with pytest.raises(KeyError, match=r"captions_train.csv lacks the column\(s\) \['long'\]"):
        ImageTextDataset(str(tiny_world), "captions_train.csv", long_caption_key="long")
    (tmp_path / "c.csv").write_text("filepath;title\na.png;a cat\n")
    with pytest.raises(KeyError, match=r"c.csv lacks the column\(s\) \['filepath', 'title'\]"):
        ImageTextDataset(str(tmp_path), "c.csv")  # wrong separator: one column named 'filepath;title'


def test_empty_and_incomplete_rows(tmp_path: Path) -> None:
    (tmp_path / "empty.csv").write_text("filepath,title\n")
    with pytest.raises(ValueError, match=r"empty.csv has a header but no rows"):
        ImageTextDataset(str(tmp_path), "empty.csv")
    (tmp_path / "hole.csv").write_text("filepath,title\na.png,a cat\nb.png,\n")
    with pytest.raises(ValueError, match=r"hole.csv, line 3: empty or missing \['title'\]"):
        ImageTextDataset(str(tmp_path), "hole.csv")


def test_missing_and_corrupt_images(tmp_path: Path) -> None:
    (tmp_path / "c.csv").write_text("filepath,title\nmissing.png,a cat\nbroken.png,a dog\n")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    ds = ImageTextDataset(str(tmp_path), "c.csv")
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*missing.png"):
        ds[0]
    with pytest.raises(OSError, match=r"cannot read image .*broken.png"):
        ds[1]
