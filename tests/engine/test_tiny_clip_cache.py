"""The cached tiny CLIP is keyed by its recipe: a model of another recipe is never used silently."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from clipadapt.engine import tiny_clip
from clipadapt.engine.tiny_clip import PRETRAIN_CONFIG, ensure_tiny_clip, find_config, recipe_key, tiny_clip_path


def test_the_key_follows_the_recipe(tmp_path: Path) -> None:
    base = find_config(PRETRAIN_CONFIG)
    same = tmp_path / "same.py"
    same.write_text(f"_base_ = [{str(base)!r}]\n")
    longer = tmp_path / "longer.py"
    longer.write_text(f"_base_ = [{str(base)!r}]\ntrain_dataloader = dict(dataset=dict(num_samples=64))\n")
    assert re.fullmatch(r"[0-9a-f]{12}", recipe_key())
    assert recipe_key(same) == recipe_key()  # the merged config, not the file, decides
    assert recipe_key(longer) != recipe_key()


def test_a_model_of_another_recipe_is_rebuilt(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp_path))
    path = tiny_clip_path()
    assert path.parent == tmp_path and path.name == f"tiny-vit-synthetic-{recipe_key()}.pt"
    (tmp_path / "tiny-vit-synthetic.pt").write_bytes(b"an older recipe")
    built = []

    def pretrain(out: Path, config=None, progress: bool = True) -> dict:
        built.append(out)
        out.write_bytes(b"weights")
        return {"seconds": 0.0}

    monkeypatch.setattr(tiny_clip, "pretrain_tiny_clip", pretrain)
    assert ensure_tiny_clip(progress=False) == path and built == [path]
    assert "tiny-vit-synthetic.pt" in capsys.readouterr().err  # named, not used
    assert ensure_tiny_clip(progress=False) == path and built == [path]  # cached now


def test_the_note_records_what_else_decides_the_weights() -> None:
    import numpy
    import torch

    env = tiny_clip.build_environment()
    assert env["torch"] == torch.__version__.split("+")[0] and env["numpy"] == numpy.__version__
    assert env["pillow"] not in ("", "not installed") and env["cpu"]
