"""``synthetic://`` resolves each world to its own folder: a non-default world never overwrites the default one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mmengine.config import Config

from clipadapt.datasets.synthetic import WorldConfig, ensure_synthetic_world, load_manifest
from clipadapt.engine.prepare import data_dir, prepare_config, world_dir

# Two small worlds that differ only in the size of the test split (the MoE config's use case).
SMALL = dict(
    seed=3,
    image_size=16,
    scene_size=32,
    colours=["red", "blue"],
    shapes=["circle", "square"],
    domains=["plain"],
    scene_domains=["plain"],
    per_class_train=1,
    per_class_val=0,
    per_class_test=0,
    scenes_train=2,
    scenes_val=1,
    scenes_test=2,
    max_objects=2,
)
BIGGER_TEST = dict(SMALL, scenes_test=5)


@pytest.fixture
def dirs(tmp_path: Path, monkeypatch) -> Path:
    """``$CLIPADAPT_DATA`` in a temporary folder; returns it (nothing generated yet)."""
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("CLIPADAPT_DATA", str(tmp_path / "synthetic"))
    return tmp_path / "synthetic"


def _prepare(world: dict) -> Config:
    cfg = Config(dict(synthetic_world=world, root="synthetic://", csv="synthetic://captions_test.csv"))
    return prepare_config(cfg, check=False)


def _digest(world: dict) -> str:
    params = WorldConfig(**world).to_dict()
    return hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:8]


def test_the_default_world_lives_in_data_dir(dirs: Path) -> None:
    assert data_dir() == dirs
    defaults = WorldConfig().to_dict()
    assert world_dir(None) == world_dir({}) == world_dir(defaults) == dirs
    assert world_dir({"seed": 0, "scenes_test": 200}) == dirs  # values equal to the defaults


def test_other_worlds_get_a_sibling_folder_keyed_by_their_parameters(dirs: Path) -> None:
    small, bigger = world_dir(SMALL), world_dir(BIGGER_TEST)
    assert small == dirs.with_name(f"synthetic-{_digest(SMALL)}")
    assert bigger == dirs.with_name(f"synthetic-{_digest(BIGGER_TEST)}")
    assert len({small, bigger, dirs}) == 3
    # The key is of the canonical parameters: key order and tuples versus lists do not matter.
    reordered = {k: tuple(v) if isinstance(v, list) else v for k, v in reversed(list(SMALL.items()))}
    assert world_dir(reordered) == small
    assert world_dir(dict(SMALL, seed=4)) != small


def test_worlds_never_overwrite_each_other(dirs: Path) -> None:
    # The default folder holds a world (here a small stand-in); a config asking for another world
    # must leave it alone.
    ensure_synthetic_world(dirs, workers=1, progress=False, **dict(SMALL, seed=9))
    before = (dirs / "manifest.json").read_bytes()
    cfg = _prepare(BIGGER_TEST)
    assert Path(cfg.root) == world_dir(BIGGER_TEST) != dirs
    assert Path(cfg.csv) == Path(cfg.root) / "captions_test.csv" and Path(cfg.csv).is_file()
    assert load_manifest(cfg.root)["params"] == WorldConfig(**BIGGER_TEST).to_dict()
    assert (dirs / "manifest.json").read_bytes() == before
    first = load_manifest(cfg.root)

    # A second world gets its own folder; the first is neither regenerated nor changed.
    other = _prepare(SMALL)
    assert Path(other.root) not in (Path(cfg.root), dirs)
    assert load_manifest(other.root)["counts"]["scenes"]["test"]["images"] == 2
    assert load_manifest(cfg.root) == first and load_manifest(cfg.root)["counts"]["scenes"]["test"]["images"] == 5
    assert (dirs / "manifest.json").read_bytes() == before


def test_a_data_dir_that_already_holds_the_world_is_reused(dirs: Path) -> None:
    # $CLIPADAPT_DATA pointing at a world generated for exactly these parameters is used as it is.
    ensure_synthetic_world(dirs, workers=1, progress=False, **SMALL)
    stamp = (dirs / "manifest.json").stat().st_mtime_ns
    assert world_dir(SMALL) == dirs
    assert Path(_prepare(SMALL).root) == dirs
    assert (dirs / "manifest.json").stat().st_mtime_ns == stamp
    assert not list(dirs.parent.glob("synthetic-*"))


def test_unknown_world_parameters_are_named(dirs: Path) -> None:
    with pytest.raises(TypeError, match=r"unknown synthetic_world parameters \['scenes'\]"):
        world_dir({"scenes": 5})
