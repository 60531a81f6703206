"""tools/train.py and tools/test.py end to end on a tiny synthetic world and a random-init tiny CLIP.

One real training run in a subprocess (2 epochs of VPT), a resumed run from its first checkpoint that
must end where the uninterrupted run ended, the evaluation of the adapter checkpoint, and the errors a
user meets first: a config key that does not exist, an empty data set, a missing image.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine import enable_safe_resume
from clipadapt.engine.paths import load_tool
from tests.helpers import SMALL_WORLD, run_distributed

ROOT = Path(__file__).resolve().parents[2]
VPT_CONFIG = ROOT / "configs" / "vpt" / "vpt_tiny-vit_1xb32_synthetic-dark-16shot.py"
WORLD = dict(SMALL_WORLD, scenes_train=4)
SMALL = f"""
_base_ = [{str(VPT_CONFIG)!r}]
synthetic_world = {WORLD!r}
model = dict(pretrained=None, plugins=[dict(type="VPT", num_tokens=2)])
train_dataloader = dict(batch_size=4, dataset=dict(num_shots=4, pipeline=[dict(type="LoadImage")]))
val_dataloader = dict(batch_size=8)
test_dataloader = dict(batch_size=8)
train_cfg = dict(max_epochs=2, val_interval=1)
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=1, max_keep_ckpts=-1, save_best=None))
visualizer = dict(vis_backends=[dict(type="LocalVisBackend")])
"""


def _tool(name: str):
    return load_tool(name)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train_test")
    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **WORLD)
    config = root / "vpt_small.py"
    config.write_text(SMALL)
    env = dict(os.environ, CLIPADAPT_DATA=str(world), CLIPADAPT_CACHE=str(root / "cache"), OMP_NUM_THREADS="1")
    return root, config, env


def _train(config: Path, work_dir: Path, env: dict, *extra: str) -> str:
    cmd = [sys.executable, str(ROOT / "tools" / "train.py"), str(config), "--work-dir", str(work_dir), *extra]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def trained(setup):
    root, config, env = setup
    log = _train(config, root / "run", env)
    return root / "run", log


def _state(path: Path) -> dict:
    # weights_only works on the runner's own checkpoints once clipadapt.engine.enable_safe_resume ran
    enable_safe_resume()
    return torch.load(path, map_location="cpu", weights_only=True)


def test_train_saves_adapter_only_checkpoints(trained):
    work_dir, log = trained
    assert "Epoch(train) [2][4/4]" in log  # 4 classes x 4 shots / batch 4 = 4 iterations per epoch
    ckpt = work_dir / "epoch_2.pth"
    state = _state(ckpt)
    assert sorted(state["state_dict"]) == ["clip.plugins.vpt.prompts"]
    assert state["meta"]["clipadapt"]["plugins"] == [{"type": "VPT", "num_tokens": 2}]
    assert ckpt.stat().st_size < 100_000  # the random-init tiny CLIP alone is ~36 MB
    assert list(work_dir.glob("*/vis_data/scalars.json"))


def test_resume_continues_the_same_run(trained, setup):
    work_dir, _ = trained
    root, config, env = setup
    log = _train(config, root / "resumed", env, "--resume", str(work_dir / "epoch_1.pth"))
    assert "resumed epoch: 1, iter: 4" in log
    assert "Epoch(train) [2][4/4]" in log and "Epoch(train) [1]" not in log
    a, b = _state(work_dir / "epoch_2.pth"), _state(root / "resumed" / "epoch_2.pth")
    assert b["meta"]["iter"] == a["meta"]["iter"] == 8
    # Same data order, same optimizer and scheduler state: the resumed run ends where the first did.
    torch.testing.assert_close(b["state_dict"]["clip.plugins.vpt.prompts"], a["state_dict"]["clip.plugins.vpt.prompts"])
    losses_a = a["message_hub"]["log_scalars"]["train/loss"]._log_history
    losses_b = b["message_hub"]["log_scalars"]["train/loss"]._log_history
    assert len(losses_b) == len(losses_a) == 8  # the resumed run carries on the logged history
    assert losses_b[-4:] == pytest.approx(losses_a[-4:], rel=1e-4)


def test_test_tool_loads_the_adapter_onto_the_base(trained, setup, monkeypatch):
    work_dir, _ = trained
    root, config, env = setup
    for key in ("CLIPADAPT_DATA", "CLIPADAPT_CACHE"):
        monkeypatch.setenv(key, env[key])
    out = root / "metrics.json"
    metrics = _tool("test").main(
        [str(config), str(work_dir / "epoch_2.pth"), "--work-dir", str(root / "eval"), "--out", str(out)]
    )
    assert 0.0 <= metrics["accuracy/top1"] <= 100.0
    assert json.loads(out.read_text())["accuracy/top1"] == pytest.approx(metrics["accuracy/top1"])
    zero_shot = _tool("test").main([str(config), "--work-dir", str(root / "eval0")])  # no checkpoint: as built
    assert "accuracy/top1" in zero_shot


def test_unknown_config_key_is_named(setup, monkeypatch):
    root, config, env = setup
    monkeypatch.setenv("CLIPADAPT_DATA", env["CLIPADAPT_DATA"])
    with pytest.raises(
        SystemExit, match=r"model\.templtes: PromptClassifier has no argument 'templtes'; did you mean 'templates'"
    ):
        _tool("train").main([str(config), "--work-dir", str(root / "bad"), "--cfg-options", "model.templtes=x"])
    with pytest.raises(SystemExit, match=r"unknown top-level config key 'max_epochs'"):
        _tool("train").main([str(config), "--work-dir", str(root / "bad"), "--cfg-options", "max_epochs=3"])


def _split(root: Path, name: str, train: list) -> Path:
    path = root / name
    test = [["images/plain/red_circle/00000.png", 0, "red circle"]]
    path.write_text(json.dumps({"train": train, "val": test, "test": test}))
    return path


def test_empty_dataset_is_an_error(setup, monkeypatch):
    root, config, env = setup
    monkeypatch.setenv("CLIPADAPT_DATA", env["CLIPADAPT_DATA"])
    split = _split(root, "empty_split.json", [])
    options = [f"train_dataloader.dataset.split_file={split}", "train_dataloader.dataset.num_shots=0"]
    with pytest.raises(ValueError, match=r"split 'train' of .*empty_split\.json is empty"):
        _tool("train").main([str(config), "--work-dir", str(root / "empty"), "--cfg-options", *options])


def test_missing_image_is_named(setup, monkeypatch):
    root, config, env = setup
    monkeypatch.setenv("CLIPADAPT_DATA", env["CLIPADAPT_DATA"])
    split = _split(root, "missing_split.json", [["images/plain/red_circle/99999.png", 0, "red circle"]])
    options = [f"train_dataloader.dataset.split_file={split}", "train_dataloader.dataset.num_shots=0"]
    with pytest.raises(FileNotFoundError, match=r"image file not found: .*red_circle/99999\.png"):
        _tool("train").main([str(config), "--work-dir", str(root / "missing"), "--cfg-options", *options])


def test_ddp_on_cpu_gathers_features_across_ranks(setup):
    """Two gloo processes through tools/dist_train.sh; the contrastive loss sees both ranks' batches."""
    root, _, env = setup
    config = root / "clip_small.py"
    clip_config = ROOT / "configs" / "clip" / "clip_tiny-vit_1xb64_synthetic.py"
    config.write_text(
        f"_base_ = [{str(clip_config)!r}]\nsynthetic_world = {WORLD!r}\n"
        "train_dataloader = dict(batch_size=4)\n"
        "val_dataloader = dict(batch_size=4)\ntrain_cfg = dict(max_epochs=1, val_interval=1)\n"
        "default_hooks = dict(logger=dict(interval=1))\n"
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])\n"
        "param_scheduler = [dict(type='ConstantLR', factor=1.0, by_epoch=False, begin=0, end=1)]\n"
    )
    cmd = ["bash", str(ROOT / "tools" / "dist_train.sh"), str(config), "2", "--work-dir", str(root / "ddp")]
    log = run_distributed(cmd, dict(env, PYTHON=sys.executable))
    first = next(line for line in log.splitlines() if "Epoch(train) [1][1/" in line)
    loss = float(first.split("loss_contrastive:")[1].split()[0])
    # Random init: logits are nearly uniform, so the loss is about ln(batch). Gathered: ln(2 x 4), not ln(4).
    assert abs(loss - math.log(8)) < 0.4, first


# Runs tools/train.py's main() on a rank, then counts the DDP wrappers still alive, before any garbage collection.
PROBE = """
import gc, os, sys
import torch
from clipadapt.engine.paths import load_tool

gc.disable()  # only what main() freed itself counts
load_tool("train").main(sys.argv[1:])
alive = sum(isinstance(o, torch.nn.parallel.DistributedDataParallel) for o in gc.get_objects())
print(f"rank {os.environ['RANK']}: DDP wrappers alive after main(): {alive}", flush=True)
"""


def test_a_distributed_run_frees_its_process_group_before_the_interpreter_exits(setup, tmp_path):
    """main() frees the runner and the gloo group itself: left to interpreter shutdown, gloo's threads abort a rank.

    The runner lives in reference cycles, and its DDP wrapper's reducer holds the gloo backend; without a
    collection inside main() both outlive it, and a rank could die with "terminate called without an
    active exception" after a run that succeeded.
    """
    _, config, env = setup
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", str(probe)]  # torchrun picks a port
    log = run_distributed([*cmd, str(config), "--launcher", "pytorch", "--work-dir", str(tmp_path / "w")], env)
    assert "Epoch(train) [2][2/2]" in log  # 16 shots, 2 ranks x 4 per step
    for rank in (0, 1):
        assert f"rank {rank}: DDP wrappers alive after main(): 0" in log, log[-3000:]


def test_same_config_and_seed_train_bit_identically_on_cpu(trained, setup):
    """Determinism: a second run of the same config and seed ends with the very same weights and losses."""
    work_dir, _ = trained
    root, config, env = setup
    _train(config, root / "again", env)
    a, b = _state(work_dir / "epoch_2.pth"), _state(root / "again" / "epoch_2.pth")
    assert torch.equal(a["state_dict"]["clip.plugins.vpt.prompts"], b["state_dict"]["clip.plugins.vpt.prompts"])
    losses = [s["message_hub"]["log_scalars"]["train/loss"]._log_history for s in (a, b)]
    assert losses[0].tolist() == losses[1].tolist()  # every logged loss, not just the end point
