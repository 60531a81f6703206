"""The first run: `make quickstart` installs the core only, and tools/quickstart.py needs no MMDetection.

- the quickstart's whole code path on a 4-class world and a random-init tiny CLIP, with mmdet and mmcv
  hidden from imports: its table (top-1, top-5, gain, chance) and next commands are printed, and its
  checkpoint loads onto the model its config builds;
- a detection config without MMDetection stops at once with one line naming `make mmdet`;
- the Makefile's stamps, with a fake Python that records what each target runs: `make quickstart`
  installs the core only, `make test` adds dev, docs and mmdet, whatever runs first, and an edit of
  setup.cfg reinstalls what depends on it.
"""

from __future__ import annotations

import json
import os
import runpy
import shutil
import subprocess
import sys
import time
from pathlib import Path

import open_clip
import pytest
import torch

from clipadapt.engine import tiny_clip_path
from tests.helpers import SMALL_WORLD, checkpoint_state

ROOT = Path(__file__).resolve().parents[2]

# Run first in a subprocess: `import mmdet` / `import mmcv` fail as if not installed, find_spec finds
# neither, and every attempt to import them is recorded in `tried`.
HIDE_MMDET = """
import importlib.abc, importlib.util, sys
HIDDEN = ("mmdet", "mmcv")
tried = []
def _hidden(name):
    return name.split(".")[0] in HIDDEN
class _Hide(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if _hidden(name):
            tried.append(name)
            raise ModuleNotFoundError(f"No module named {name!r} (hidden by the test)", name=name)
        return None
sys.meta_path.insert(0, _Hide())
_find_spec = importlib.util.find_spec
importlib.util.find_spec = lambda name, package=None: None if _hidden(name) else _find_spec(name, package)
"""
RUN_QUICKSTART = (
    HIDE_MMDET
    + """
import json, runpy
main = runpy.run_path(sys.argv[1])["main"]
result = main(json.loads(sys.argv[2]))
loaded = sorted(m for m in sys.modules if _hidden(m))
print("RESULT " + json.dumps({"result": result, "tried": tried, "loaded": loaded}))
"""
)
_OPTION = lambda v: "[" + ",".join(v) + "]" if isinstance(v, list) else v  # noqa: E731
TINY = [f"synthetic_world.{k}={_OPTION(v)}" for k, v in SMALL_WORLD.items()] + [
    "train_dataloader.batch_size=4",
    "train_dataloader.dataset.num_shots=4",
    "val_dataloader.batch_size=8",
    "test_dataloader.batch_size=8",
]


def _env(tmp_path: Path) -> dict[str, str]:
    """Caches in ``tmp_path``; the cached tiny CLIP is a random-init open_clip checkpoint (pretraining: minutes)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    torch.manual_seed(0)
    config = json.loads((ROOT / "clipadapt" / "model_configs" / "tiny-vit.json").read_text())
    # the file name carries the recipe's key (the same whatever the cache folder), so the quickstart finds it
    torch.save(open_clip.model.CLIP(**config).state_dict(), cache / tiny_clip_path().name)
    return dict(os.environ, CLIPADAPT_CACHE=str(cache), CLIPADAPT_DATA=str(tmp_path / "world"), OMP_NUM_THREADS="1")


@pytest.mark.slow
def test_quickstart_prints_its_table_and_a_checkpoint_that_loads_without_mmdet(tmp_path: Path) -> None:
    argv = ["--work-dir", str(tmp_path / "quickstart"), "--epochs", "1", "--cfg-options", *TINY]
    cmd = [sys.executable, "-c", RUN_QUICKSTART, str(ROOT / "tools" / "quickstart.py"), json.dumps(argv)]
    done = subprocess.run(cmd, cwd=tmp_path, env=_env(tmp_path), capture_output=True, text=True, timeout=600)
    out = done.stdout
    assert done.returncode == 0, (out + done.stderr)[-4000:]
    report = json.loads(out.split("RESULT ", 1)[1])
    # MMEngine's optimizer constructor probes `import mmcv` (mmcv_full_available) and takes the answer no;
    # nothing may try MMDetection.
    assert set(report["tried"]) <= {"mmcv"} and report["loaded"] == [], report

    # Whatever DEMO names (the plugin config and the domain), on the 4-class world.
    quickstart = runpy.run_path(str(ROOT / "tools" / "quickstart.py"))
    result, domain = report["result"], quickstart["DEMO"]["domain"]
    classes = result["classes"]
    assert classes in (2, 4)  # all classes, or the base half of a base-to-novel config
    table = out[out.index(f"| synthetic '{domain}' domain, {classes} classes | top-1 | top-5 |") :].splitlines()
    zero, trained = result["zero_shot"], result["trained"]
    assert table[2] == f"| zero-shot tiny CLIP | {zero['accuracy/top1']:.1f} | {zero['accuracy/top5']:.1f} |"
    name, top1, top5 = (cell.strip() for cell in table[3].strip("|").split("|"))
    assert name.startswith("+ ") and name.endswith(", 4 shots per class"), name  # "+ VPT, 4 shots per class"
    assert (top1, top5) == (f"{trained['accuracy/top1']:.1f}", f"{trained['accuracy/top5']:.1f}")
    gain = [trained[k] - zero[k] for k in ("accuracy/top1", "accuracy/top5")]
    assert table[4] == f"| **gain** | **{gain[0]:+.1f}** | **{gain[1]:+.1f}** |"
    assert table[5] == f"| chance | {100 / classes:.1f} | {100 * min(5, classes) / classes:.1f} |"
    next_steps = out[out.index("Next:") :]
    for what, command, _ in quickstart["NEXT"]:
        assert f"{what}:" in next_steps and command in next_steps

    # The checkpoint holds what trained, and it loads onto the model the config builds.
    from mmengine.config import Config

    from clipadapt.registry import MODELS

    state = checkpoint_state(Path(result["checkpoint"]))
    assert state and all(".plugins." in key for key in state), sorted(state)  # the plugin's, nothing else
    cfg = Config.fromfile(str(ROOT / quickstart["DEMO"]["config"]))
    cfg.model.pretrained = None
    model = MODELS.build(cfg.model)
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert unexpected == [] and not set(state) & set(missing)
    for key, value in state.items():
        torch.testing.assert_close(model.state_dict()[key], value, rtol=0, atol=0)


def test_a_detection_config_without_mmdetection_fails_with_one_line_naming_the_installer(tmp_path: Path) -> None:
    config = ROOT / "configs" / "ovd" / "ovrcnn_tiny-vit_1xb8_synthetic-colour.py"
    script = HIDE_MMDET + "import runpy; sys.argv = sys.argv[1:]; runpy.run_path(sys.argv[0], run_name='__main__')"
    cmd = [sys.executable, "-c", script, str(ROOT / "tools" / "train.py"), str(config), "--work-dir", str(tmp_path)]
    env = dict(os.environ, CLIPADAPT_CACHE=str(tmp_path / "cache"), CLIPADAPT_DATA=str(tmp_path / "world"))
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 1 and done.stdout == "", done.stdout + done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "`make mmdet`" in lines[0] and "tools/install_mmdet.py" in lines[0], done.stderr
    assert lines[0].startswith(f"{config} needs MMDetection 3.3.0 and mmcv 2.1.0")
    assert not list(tmp_path.glob("world*")) and not (tmp_path / "cache").exists()  # it stopped before building


FAKE_PYTHON = """#!/usr/bin/env bash
# Records its arguments; `-m venv DIR` makes DIR/bin/python a copy of itself.
echo "$*" >> "$CALLS"
if [ "$1" = "-m" ] && [ "$2" = "venv" ]; then mkdir -p "$3/bin" && cp "$0" "$3/bin/python"; fi
"""


def _make(repo: Path, target: str) -> list[str]:
    calls = repo / "calls.txt"
    calls.write_text("")
    env = dict(os.environ, CALLS=str(calls))
    done = subprocess.run(["make", "-s", target, f"PYTHON={repo / 'python3'}"], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    return [" ".join(line.split()[:2]) for line in calls.read_text().splitlines()]


@pytest.mark.parametrize("first", ["quickstart", "test"])
def test_each_target_installs_what_it_needs_whatever_runs_first(tmp_path: Path, first: str) -> None:
    repo = tmp_path / "repo"
    for name in ["Makefile", "setup.cfg", "pyproject.toml", "tools/bootstrap.py", "tools/install_mmdet.py"]:
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, repo / name)
    (repo / "python3").write_text(FAKE_PYTHON)
    (repo / "python3").chmod(0o755)
    core, dev, docs = (f"tools/bootstrap.py {extra}" for extra in ("core", "dev", "docs"))
    mmdet, quickstart, pytest_run = "tools/install_mmdet.py", "tools/quickstart.py", "-m pytest"
    runs = {"quickstart": [core, quickstart], "test": [core, dev, docs, mmdet, pytest_run]}
    second = "test" if first == "quickstart" else "quickstart"
    assert _make(repo, first) == ["-m venv"] + runs[first]
    assert _make(repo, second) == [c for c in runs[second] if c not in runs[first] or c in (quickstart, pytest_run)]
    assert _make(repo, "quickstart") == [quickstart]  # nothing left to install
    assert mmdet not in _make(repo, "quickstart") and _make(repo, "test") == [pytest_run]
    now = time.time()  # setup.cfg edited after every stamp was made: what depends on it installs again
    for path in [*(repo / ".venv").glob(".stamp-*"), repo / "setup.cfg"]:
        os.utime(path, (now - 10, now - 10) if path.name.startswith(".stamp") else (now - 5, now - 5))
    assert _make(repo, "quickstart") == [core, quickstart]
    assert _make(repo, "test") == [dev, docs, mmdet, pytest_run]
