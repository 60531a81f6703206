"""A sharded run on two gloo ranks, killed with SIGKILL, resumes with ``--resume`` and ends bit-identical.

The prompt-learning config of tests/tools/test_kill_resume.py (VPT on a random-init tiny CLIP, shuffled
data, random flips, SGD with momentum), sharded with ``FullyShardedWrapper``: the frozen base CLIP stays
whole on each rank, the prompts are sharded, and the checkpoints hold the adapter only. The whole
process group (torchrun and both ranks) is killed at a random moment after the first checkpoint; the
resumed run must end with the weights, momentum and every logged loss of the uninterrupted sharded run,
bit for bit (the same arithmetic in the same order on CPU).
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch

from clipadapt.datasets.synthetic import ensure_synthetic_world
from tests.helpers import free_port
from tests.tools.test_fsdp_contrastive import dist_env, dist_train, load
from tests.tools.test_kill_resume import SMALL, WORLD

ROOT = Path(__file__).resolve().parents[2]
CONFIG = SMALL + '\nmodel_wrapper_cfg = dict(type="FullyShardedWrapper")\n'
ITERS = 4  # 16 shots, 2 ranks x 4 per step: 2 iterations per epoch, 2 epochs
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("fsdp_resume")]  # one worker runs the reference once


def assert_same_run(resumed: dict, reference: dict) -> None:
    """Weights, momentum and every logged loss bit for bit (tests/tools/test_kill_resume.py, 2 ranks)."""
    assert resumed["meta"]["epoch"] == reference["meta"]["epoch"] == 2
    assert resumed["meta"]["iter"] == reference["meta"]["iter"] == ITERS
    assert sorted(resumed["state_dict"]) == sorted(reference["state_dict"])
    for key, value in reference["state_dict"].items():
        assert torch.equal(resumed["state_dict"][key], value), key
    momentum = [s["momentum_buffer"] for c in (resumed, reference) for s in c["optimizer"]["state"].values()]
    assert len(momentum) == 2 and torch.equal(momentum[0], momentum[1])
    losses = [c["message_hub"]["log_scalars"]["train/loss"]._log_history.tolist() for c in (resumed, reference)]
    assert len(losses[1]) == ITERS and losses[0] == losses[1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("fsdp_resume")
    world = ensure_synthetic_world(root / "world", progress=False, workers=1, **WORLD)
    env = dist_env(root, world)
    work_dir, log = dist_train(root, "reference", CONFIG, env)
    return root, env, load(work_dir / "epoch_2.pth"), log


def test_checkpoints_are_whole_and_hold_the_adapter_only(setup):
    _, _, reference, log = setup
    assert "FullyShardedWrapper" in log
    state = reference["state_dict"]
    assert state and all(key.startswith("clip.plugins.") for key in state), sorted(state)[:5]
    assert reference["meta"]["clipadapt"]["plugins"][0]["type"] == "VPT"
    assert all(not isinstance(v, torch.distributed.tensor.DTensor) for v in state.values())
    prompts = [v for k, v in state.items() if k.endswith("prompts") or "prompt" in k]
    assert prompts and all(v.dtype == torch.float32 for v in prompts)


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``: torchrun starts each rank in a session of its own, out of its group."""
    children = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # the process ended meanwhile
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_kill_at_a_random_moment_then_resume(setup):
    root, env, reference, _ = setup
    config, work_dir = root / "killed.py", root / "killed"
    config.write_text(CONFIG)
    cmd = ["bash", str(ROOT / "tools" / "dist_train.sh"), str(config), "2", "--work-dir", str(work_dir)]
    port = dict(MASTER_PORT=str(free_port()))
    with open(root / "killed.log", "w") as handle:
        proc = subprocess.Popen(cmd, env=env | port, stdout=handle, stderr=subprocess.STDOUT)
    pointer, start = work_dir / "last_checkpoint", time.monotonic()
    while not pointer.is_file():
        assert proc.poll() is None, (root / "killed.log").read_text()[-3000:]
        assert time.monotonic() - start < 300, "the first checkpoint never came"
        time.sleep(0.02)
    time.sleep(random.Random().uniform(0.0, 1.5))  # anywhere in epoch 2, its validation or its checkpoint
    pids = [*descendants(proc.pid), proc.pid]
    for pid in pids:  # the ranks, then torchrun: a machine lost at once
        os.kill(pid, signal.SIGKILL)
    proc.wait(timeout=30)
    while any(alive(pid) for pid in pids):  # no rank writes on after the pointer is read
        assert time.monotonic() - start < 400, "a killed rank lives on"
        time.sleep(0.05)
    latest = load(Path(pointer.read_text().strip()))
    assert latest["meta"]["epoch"] in (1, 2)

    _, log = dist_train(root, "killed", CONFIG, env, "--resume")
    if latest["meta"]["epoch"] == 1:
        assert "resumed epoch: 1, iter: 2" in log, log[-3000:]
    assert_same_run(load(work_dir / "epoch_2.pth"), reference)


def test_a_sharded_checkpoint_resumes_under_ddp(setup):
    """The checkpoints are whole: DDP continues a sharded run from its epoch 2, prompts and momentum."""
    root, env, reference, _ = setup
    text = SMALL + "train_cfg = dict(max_epochs=3, val_interval=1)\n"
    resume = ("--resume", str(root / "reference" / "epoch_2.pth"))
    work_dir, log = dist_train(root, "ddp_from_sharded", text, env, *resume)
    assert "resumed epoch: 2, iter: 4" in log and "FullyShardedWrapper" not in log, log[-3000:]
    final = load(work_dir / "epoch_3.pth")
    assert final["meta"]["epoch"] == 3 and sorted(final["state_dict"]) == sorted(reference["state_dict"])
    assert any(not torch.equal(final["state_dict"][k], v) for k, v in reference["state_dict"].items())
