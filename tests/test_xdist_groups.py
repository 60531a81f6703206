"""`make test` runs on two workers with ``--dist loadgroup``: the tests of one ``xdist_group`` run on one worker.

The expensive module fixtures (the sharded and DDP training runs of tests/tools/test_fsdp_*.py, the tiny
CLIP's floor) rely on it to run once. pytest-xdist tags each node id with its group (``...@group``) and
schedules by the tag; pytest 9.2 stopped reading the attribute that xdist 3.8 writes, so the tags vanished,
the groups were split over both workers and every such fixture ran twice (setup.cfg pins pytest below it).
This runs a small suite the way `make test` does and checks both the tags and where the group ran.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

GROUPED = """
import os
import pytest

pytestmark = pytest.mark.xdist_group("fixture_once")


@pytest.mark.parametrize("i", range(6))
def test_grouped(request, i):
    with open(os.environ["RECORD"], "a") as handle:
        handle.write(f"{os.environ['PYTEST_XDIST_WORKER']} {request.node.nodeid}\\n")
"""

FREE = """
import time
import pytest


@pytest.mark.parametrize("i", range(12))
def test_free(i):
    time.sleep(0.05)
"""


def test_a_group_runs_on_one_worker_under_loadgroup(tmp_path: Path) -> None:
    (tmp_path / "pytest.ini").write_text("[pytest]\n")  # not this project's setup.cfg
    (tmp_path / "test_grouped.py").write_text(GROUPED)
    (tmp_path / "test_free.py").write_text(FREE)
    record = tmp_path / "record.txt"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")} | {"RECORD": str(record)}
    cmd = [sys.executable, "-m", "pytest", "-n", "2", "--dist", "loadgroup", "-q", "-p", "no:cacheprovider"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line.split(" ", 1) for line in record.read_text().splitlines()]
    assert len(rows) == 6
    assert all(nodeid.endswith("@fixture_once") for _, nodeid in rows), rows  # xdist could tag the ids
    assert len({worker for worker, _ in rows}) == 1, rows  # and scheduled the group as one unit
