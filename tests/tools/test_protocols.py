"""tools/base2novel.py: the base-to-novel and transfer protocols end to end, and their tables.

Runs in-process on a tiny synthetic world (2 colours x 2 shapes) with a random-init tiny CLIP: what is
checked is the protocol (which classes each run sees, what is averaged, what is written), not accuracy.
"""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine.paths import load_tool
from clipadapt.evaluation import harmonic_mean

ROOT = Path(__file__).resolve().parents[2]
WORLD = dict(
    colours=["red", "blue"],
    shapes=["circle", "square"],
    domains=["plain", "warm"],
    per_class_train=2,
    per_class_val=1,
    per_class_test=3,
    scenes_train=0,
    scenes_val=0,
    scenes_test=0,
)
SMALL = """
_base_ = [{base!r}]
synthetic_world = {world!r}
model = dict(pretrained=None, plugins=[dict(type="MaPLe", n_ctx=2, depth=2)])
train_dataloader = dict(batch_size=2, dataset=dict(num_shots=2))
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=1, val_interval=1)
param_scheduler = [dict(type="ConstantLR", factor=1.0, by_epoch=False, begin=0, end=1)]
default_hooks = dict(logger=dict(interval=1))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""
pytestmark = pytest.mark.slow


def _tool():
    return load_tool("base2novel")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("protocols")
    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **WORLD)
    configs = {}
    for name, base in (
        ("maple_b2n", "configs/maple/maple_tiny-vit_1xb4_synthetic-warm-b2n.py"),
        ("maple_xd", "configs/maple/maple_tiny-vit_1xb4_synthetic-warm-xd.py"),
        ("zeroshot", "configs/zeroshot/zeroshot_tiny-vit_synthetic-warm.py"),
    ):
        configs[name] = root / f"{name}.py"
        configs[name].write_text(SMALL.format(base=str(ROOT / base), world=WORLD))
    configs["plain"] = root / "plain.py"
    plain = ROOT / "configs/_base_/datasets/synthetic_fewshot_plain.py"
    configs["plain"].write_text(f"_base_ = [{str(plain)!r}]\nsynthetic_world = {WORLD!r}\n")
    return root, world, configs


@pytest.fixture(autouse=True)
def _env(setup, monkeypatch):
    root, world, _ = setup
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(root / "cache"))


def _csv(path: Path) -> list[dict]:
    with open(path) as handle:
        return list(csv.DictReader(handle))


def test_base_to_novel_table(setup):
    root, _, configs = setup
    out = root / "b2n"
    argv = [str(configs["maple_b2n"]), "--zero-shot", str(configs["zeroshot"]), "--seeds", "1", "2"]
    means = _tool().main([*argv, "--work-dir", str(out)])
    assert [m["method"] for m in means] == ["zeroshot", "maple_b2n"]
    assert [m["seeds"] for m in means] == [1, 2]  # zero-shot has no seed to vary
    rows = _csv(out / "results.csv")
    runs = [r for r in rows if r["seed"] != "mean"]
    assert [(r["method"], r["seed"]) for r in runs] == [("zeroshot", "1"), ("maple_b2n", "1"), ("maple_b2n", "2")]
    for r in runs:
        # 2 base and 2 novel classes, 3 test images each: accuracies are multiples of 1/6.
        for key in ("base", "novel"):
            assert round(float(r[key]) * 6 / 100, 6).is_integer(), r
        assert float(r["hm"]) == pytest.approx(harmonic_mean(float(r["base"]), float(r["novel"])))
    maple = means[1]
    assert maple["base"] == pytest.approx((float(runs[1]["base"]) + float(runs[2]["base"])) / 2)
    assert maple["hm"] == pytest.approx(harmonic_mean(maple["base"], maple["novel"]))  # HM of the means
    assert "| maple_b2n |" in (out / "results.md").read_text()
    assert (out / "results.png").stat().st_size > 1000
    # each seed trained on the base classes only: its checkpoint's classifier never saw a novel name
    assert (out / "maple_b2n" / "seed2" / "epoch_1.pth").is_file()


def test_transfer_table(setup):
    root, _, configs = setup
    out = root / "xd"
    argv = [str(configs["maple_xd"]), "--protocol", "transfer", "--zero-shot", str(configs["zeroshot"])]
    means = _tool().main([*argv, "--target", str(configs["plain"]), "--seeds", "1", "--work-dir", str(out)])
    header = list(_csv(out / "results.csv")[0])
    assert header == ["method", "seed", "source", "plain", "targets_mean"]
    for m in means:
        for key in ("source", "plain"):  # 4 classes x 3 test images
            assert round(m[key] * 12 / 100, 6).is_integer(), m
        assert m["targets_mean"] == pytest.approx(m["plain"])
    assert (out / "results.png").is_file()


def test_transfer_needs_a_target_and_base2novel_refuses_one():
    tool = _tool()
    with pytest.raises(SystemExit):
        tool.parse_args(["a.py", "--protocol", "transfer"])
    with pytest.raises(SystemExit):
        tool.parse_args(["a.py", "--target", "b.py"])
