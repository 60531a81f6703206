"""``tools/slurm_train.sh`` hands srun the command MMEngine's slurm launcher expects (a fake ``srun`` records it).

No Slurm cluster here: the script is run with an ``srun`` on ``PATH`` that writes its arguments to a file.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "slurm_train.sh"


def _run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "srun"
    out = tmp_path / "srun_args"
    fake.write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {out}\necho "$MASTER_PORT" >> {out}\n')
    fake.chmod(0o755)
    full_env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", **env)
    return subprocess.run(["bash", str(SCRIPT), *args], env=full_env, capture_output=True, text=True, timeout=30)


def test_srun_gets_one_task_per_gpu_and_the_slurm_launcher(tmp_path):
    done = _run(tmp_path, "gpu", "clip_ft", "configs/x.py", "--work-dir", "w", GPUS="16", SRUN_ARGS="--time=1:00:00")
    assert done.returncode == 0, done.stderr
    argv = (tmp_path / "srun_args").read_text().split("\n")
    assert argv[:9] == [
        "-p",
        "gpu",
        "--job-name=clip_ft",
        "--gres=gpu:8",
        "--ntasks=16",
        "--ntasks-per-node=8",
        "--cpus-per-task=5",
        "--kill-on-bad-exit=1",
        "--time=1:00:00",
    ]
    assert argv[9:16] == [
        "python",
        "-u",
        str(ROOT / "tools" / "train.py"),
        "configs/x.py",
        "--launcher",
        "slurm",
        "--work-dir",
    ]
    assert argv[16:18] == ["w", "29500"]  # the train.py options, then MASTER_PORT as srun saw it


def test_fewer_gpus_than_a_node_and_usage(tmp_path):
    assert _run(tmp_path, "gpu", "job", "c.py", GPUS="2").returncode == 0
    assert "--gres=gpu:2" in (tmp_path / "srun_args").read_text().split("\n")
    done = _run(tmp_path, "gpu", "job")
    assert done.returncode == 2 and "usage" in done.stderr
