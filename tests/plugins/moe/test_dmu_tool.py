"""tools/dmu.py end to end on a tiny synthetic world: stopped between stages, it resumes at the next one."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine.paths import load_tool

ROOT = Path(__file__).resolve().parents[3]
CONFIG = ROOT / "configs" / "moe" / "clipmoe_tiny-vit_4x2_1xb32_synthetic.py"
WORLD = dict(
    colours=["red", "blue"],
    shapes=["circle", "square"],
    per_class_train=1,
    per_class_val=1,
    per_class_test=1,
    scenes_train=12,
    scenes_val=2,
    scenes_test=4,
    max_objects=2,
)
SMALL = """
_base_ = [{config!r}]
synthetic_world = {world!r}
model = dict(
    pretrained={weights!r},
    plugins=[dict(type="MoEUpcycle", num_experts=3, top_k=2, vision_layers=1, text_layers=1, trainable="router")],
)
train_dataloader = dict(batch_size=4)
test_dataloader = dict(batch_size=8)
train_cfg = dict(max_iters=2)
dmu = dict(embed_batch_size=8, mlp_stage=dict(train_cfg=dict(max_iters=2)))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""


def _dmu_tool():
    return load_tool("dmu")


def _spy(method, calls: list[str]):
    def wrapper(self, *args):
        calls.append(f"{method.__name__}{args}")
        return method(self, *args)

    return wrapper


@pytest.fixture
def setup(tmp_path: Path, tiny_weights: Path, monkeypatch) -> tuple[Path, Path]:
    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp_path / "cache"))
    config = tmp_path / "dmu_small.py"
    config.write_text(SMALL.format(config=str(CONFIG), world=WORLD, weights=str(tiny_weights)))
    return config, tmp_path / "run"


@pytest.mark.slow
def test_dmu_resumes_at_the_next_unfinished_stage(setup, monkeypatch) -> None:
    config, work_dir = setup
    dmu = _dmu_tool()
    ran: list[str] = []
    original = dmu.DMUPipeline._mlp_stage

    def stopped_at_stage2(self, stage: int):
        if stage == 2:
            raise KeyboardInterrupt  # the run is killed after stage 1 finished
        ran.append(f"stage{stage}")
        return original(self, stage)

    monkeypatch.setattr(dmu.DMUPipeline, "_mlp_stage", stopped_at_stage2)
    args = [str(config), "--work-dir", str(work_dir)]
    with pytest.raises(KeyboardInterrupt):
        dmu.main(args)
    state = json.loads((work_dir / "dmu_state.json").read_text())
    assert list(state["done"]) == ["stage0", "stage1"] and ran == ["stage1"]
    stage1 = Path(state["done"]["stage1"]["adapter"])
    stamp = stage1.stat().st_mtime_ns
    labels = np.load(state["done"]["stage1"]["labels"])
    assert labels.max() < 81 and len(labels) == WORLD["scenes_train"]

    # The second run starts at stage 2: stages 0 and 1 are neither re-run nor rewritten.
    dmu = _dmu_tool()
    monkeypatch.setattr(dmu.DMUPipeline, "_mlp_stage", original)  # the recipe's class outlives the tool's reload
    calls: list[str] = []
    for name in ("_stage0", "_mlp_stage", "_router_stage"):
        monkeypatch.setattr(dmu.DMUPipeline, name, _spy(getattr(dmu.DMUPipeline, name), calls))
    done = dmu.main(args)
    assert calls == ["_mlp_stage(2,)", "_router_stage()"]
    assert list(done) == ["stage0", "stage1", "stage2", "router", "eval", "specialise"]
    assert stage1.stat().st_mtime_ns == stamp
    result = done["eval"]
    assert 0 <= result["i2t_R@1"] <= 100 and result["activated"] < result["total"]

    # Whether the experts specialise, over the training set by its stage-0 clusters: every image token of
    # the 12 training scenes (8 x 8 patches + the class token) is routed once; the stage experts differ.
    experts = json.loads((work_dir / "specialisation.json").read_text())["0"]
    assert [r["method"] for r in experts] == ["DMU MoE"]
    vision = experts[0]["layers"]["vision.3"]
    assert vision["tokens"] == WORLD["scenes_train"] * 65 and sum(vision["cluster_sizes"]) == 2 * 65 * 12
    assert vision["expert_distance"] > 0 and 0 <= vision["nmi"] <= 1 and 0 < vision["token_entropy"] <= 1
    assert "| DMU MoE | text.3 |" in (work_dir / "specialisation.md").read_text()

    # The MoE's expert 1 is stage 1's MLP (the router stage trains the routers only); expert 0 the base's.
    router = torch.load(done["router"]["adapter"], weights_only=True)["state_dict"]
    mlp = torch.load(stage1, weights_only=True)["state_dict"]
    name = "visual.transformer.resblocks.3.mlp"
    torch.testing.assert_close(router[f"{name}.experts.1.c_fc.weight"], mlp[f"{name}.c_fc.weight"], atol=0, rtol=0)
    assert not torch.equal(router[f"{name}.experts.0.c_fc.weight"], mlp[f"{name}.c_fc.weight"])

    # A changed config may not continue another config's run.
    with pytest.raises(SystemExit, match="records a DMU run of a different config"):
        dmu.main([*args, "--cfg-options", "dmu.seed=5"])


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "moe").glob("*.py")), ids=lambda p: p.name)
def test_moe_configs_pass_the_key_checks(path: Path, tmp_path: Path) -> None:
    from mmengine.config import Config

    from clipadapt.engine import check_config

    dmu = _dmu_tool()
    cfg = Config.fromfile(str(path))
    settings = cfg.pop("dmu").to_dict()
    check_config(cfg)
    dmu._check_mlp_stage(cfg, settings, str(path))
    pipeline = dmu.DMUPipeline(cfg, settings, tmp_path)
    assert pipeline.num_experts == 4 and pipeline.moe_cfg["top_k"] == 2
    assert [name for name, _ in pipeline.steps(compare=False)] == [
        "stage0",
        "stage1",
        "stage2",
        "stage3",
        "router",
        "eval",
        "specialise",
    ]


def test_a_dmu_setting_that_does_not_exist_is_named(tmp_path: Path) -> None:
    from mmengine.config import Config

    dmu = _dmu_tool()
    cfg = Config.fromfile(str(CONFIG))
    settings = cfg.pop("dmu").to_dict()
    with pytest.raises(SystemExit, match="dmu.image_cluster: unknown DMU setting"):
        dmu.DMUPipeline(cfg, {**settings, "image_cluster": 4}, tmp_path)
    settings["mlp_stage"]["optim_wrapper"]["optimizer"]["lrr"] = 1.0
    with pytest.raises(SystemExit, match=r"dmu.mlp_stage: optim_wrapper.optimizer.lrr: AdamW has no argument 'lrr'"):
        dmu._check_mlp_stage(cfg, settings, str(CONFIG))


def test_schedulers_without_an_end_anneal_over_the_whole_run() -> None:
    dmu = _dmu_tool()
    schedule = dict(
        train_cfg=dict(by_epoch=False, max_iters=25),
        param_scheduler=[
            dict(type="LinearLR", start_factor=0.1, by_epoch=False, begin=0, end=5),
            dict(type="CosineAnnealingLR", by_epoch=False, begin=0, eta_min_ratio=0.01),
            dict(type="ConstantLR", by_epoch=False, begin=5, end=25),
        ],
    )
    own = dmu.stretch_schedulers(schedule)
    assert [s.get("end") for s in own] == [5, 25, 25]  # the warm-up keeps its length
    longer = dmu.stretch_schedulers(schedule, max_iters=100)  # a baseline's run of 4 stages
    assert [s.get("end") for s in longer] == [5, 100, 100]
    assert "end" not in schedule["param_scheduler"][1]  # the config itself is not changed

    # MMEngine's cosine without an end never decays; stretched, it is at eta_min by the last step.
    from mmengine.optim.scheduler import CosineAnnealingLR

    for schedulers, expect_decay in ((schedule["param_scheduler"], False), (longer, True)):
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        cosine = dict(schedulers[1])
        del cosine["type"]
        scheduler = CosineAnnealingLR(optimizer, **cosine)
        for _ in range(100):
            optimizer.step()
            scheduler.step()
        lr = optimizer.param_groups[0]["lr"]
        assert 0.01 <= lr < 0.011 if expect_decay else lr > 0.99  # eta_min = 0.01 x the base lr


def test_epoch_based_or_explicit_schedules_are_kept() -> None:
    dmu = _dmu_tool()
    by_epoch = dict(train_cfg=dict(by_epoch=True, max_epochs=1), param_scheduler=dict(type="CosineAnnealingLR"))
    assert dmu.stretch_schedulers(by_epoch, 10) == [dict(type="CosineAnnealingLR")]
    explicit = dict(
        train_cfg=dict(by_epoch=False, max_iters=25),
        param_scheduler=[
            dict(type="CosineAnnealingLR", by_epoch=False, T_max=7),
            dict(type="X", by_epoch=False, end=9),
        ],
    )
    assert dmu.stretch_schedulers(explicit, 100) == explicit["param_scheduler"]


def _row(method: str, r1: float, pairs: int = 1000) -> dict:
    metrics = {"i2t_R@1": r1, "t2i_R@1": r1 + 1, "i2t_R@5": r1 + 10, "t2i_R@5": r1 + 11}
    return {"method": method, "split": "test", "pairs": pairs, "steps": 100, "samples": 3200, **metrics}


def test_seed_tables_report_mean_and_sample_std(tmp_path: Path) -> None:
    dmu = _dmu_tool()
    counts = {"activated": 9_427_009, "total": 10_282_177}
    per_seed = {s: [_row("Dense", 10.0 + s) | counts, _row("DMU MoE", 20.0 + 2 * s) | counts] for s in (0, 1, 2)}
    rows = dmu.aggregate(per_seed)
    assert [r["method"] for r in rows] == ["Dense", "DMU MoE"]
    assert rows[0]["i2t_R@1_mean"] == pytest.approx(11.0) and rows[0]["i2t_R@1_std"] == pytest.approx(1.0)
    assert rows[1]["t2i_R@1_mean"] == pytest.approx(23.0) and rows[1]["t2i_R@1_std"] == pytest.approx(2.0)
    assert rows[1]["i2t_R@1_seeds"] == "20.00 22.00 24.00" and rows[1]["seeds"] == "0 1 2"
    dmu.write_seed_table(rows, tmp_path, "val")
    text = (tmp_path / "compare_val.md").read_text()
    assert "val split (1000 image-text pairs): mean ± sample std over seeds 0 1 2" in text
    assert "| DMU MoE | 100 | 3200 | 22.00 ± 2.00 | 23.00 ± 2.00 |" in text and "9.427M | 10.282M |" in text
    assert (tmp_path / "compare_val.csv").read_text().splitlines()[0].startswith("method,split,pairs,seeds,steps")

    # One seed: std 0; seeds whose tables differ (another test-set size) cannot be averaged.
    assert dmu.aggregate({4: per_seed[0]})[0]["i2t_R@1_std"] == 0.0
    with pytest.raises(ValueError, match="differ in methods, budgets or test-set size"):
        dmu.aggregate({0: per_seed[0], 1: [_row("Dense", 1.0, pairs=200) | counts, per_seed[1][1]]})


def test_val_evaluation_shares_the_training_steps(tmp_path: Path) -> None:
    from mmengine.config import Config

    dmu = _dmu_tool()
    cfg = Config.fromfile(str(CONFIG))
    settings = cfg.pop("dmu").to_dict()
    test = [n for n, _ in dmu.DMUPipeline(cfg, settings, tmp_path, "test").steps(compare=True)]
    val = [n for n, _ in dmu.DMUPipeline(cfg, settings, tmp_path, "val").steps(compare=True)]
    trained = ["stage0", "stage1", "stage2", "stage3", "router", "compare_upcycle_experts"]
    assert all(n in test and n in val for n in trained)
    assert "eval" in test and "eval_val" in val and "eval_val" not in test
    assert sorted(set(val) - set(test)) == [
        "compare_base_val",
        "compare_dense_eval_val",
        "compare_upcycle_eval_val",
        "eval_val",
    ]
    with pytest.raises(SystemExit):
        dmu.parse_args([str(CONFIG), "--seeds", "1", "1"])
    with pytest.raises(ValueError, match="eval_split"):
        dmu.DMUPipeline(cfg, settings, tmp_path, "train")
