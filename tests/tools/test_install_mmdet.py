"""tools/install_mmdet.py and tools/bootstrap.py: the C++20 patch of mmcv's setup.py, the wheel cache, steps
that show their elapsed time and keep pip's output in a log, and the installed result."""

from __future__ import annotations

import sys

import pytest

from clipadapt.engine.paths import load_tool

SETUP_PY = """
extra_compile_args = {'cxx': ['-std=c++14']}
if platform.system() != 'Windows':
    extra_compile_args['cxx'] = ['-std=c++17']
    extra_compile_args['nvcc'] = ['-std=c++17', '-O3']
"""


def test_the_cxx_standard_is_raised_to_cxx20(tmp_path):
    tool = load_tool("install_mmdet")
    setup = tmp_path / "setup.py"
    setup.write_text(SETUP_PY)
    assert tool.patch_cxx_standard(setup) == 3
    text = setup.read_text()
    assert "-std=c++14" not in text and "-std=c++17" not in text and text.count("-std=c++20") == 3
    assert tool.patch_cxx_standard(setup) == 0  # already patched: nothing to do, no error
    setup.write_text("extra_compile_args = {}\n")
    with pytest.raises(RuntimeError, match="no -std=c\\+\\+14/17 flag"):
        tool.patch_cxx_standard(setup)


def test_wheels_are_cached_per_torch_and_python(monkeypatch, tmp_path):
    tool = load_tool("install_mmdet")
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp_path))
    import torch

    folder = tool.wheel_dir()
    tag = f"cp{sys.version_info.major}{sys.version_info.minor}"
    assert folder == tmp_path / "wheels" / f"torch-{torch.__version__.split('+')[0]}-{tag}"


def test_a_step_prints_a_few_lines_and_keeps_its_output_in_the_log(tmp_path, capsys):
    bootstrap = load_tool("bootstrap")
    log = tmp_path / "install.log"
    noisy = [sys.executable, "-c", "import time; print('Collecting torch'); time.sleep(0.5)"]
    bootstrap.run_logged(noisy, "installing the core", log, every=0.1)
    out = capsys.readouterr().out
    assert out.startswith("==> installing the core\n") and "    ... 0 s" in out and "    done in " in out
    assert "Collecting torch" not in out and "Collecting torch" in log.read_text()


def test_a_failed_step_names_the_log_and_shows_its_end(tmp_path):
    bootstrap = load_tool("bootstrap")
    log = tmp_path / "install.log"
    failing = [
        sys.executable,
        "-c",
        "import sys; print('ERROR: No matching distribution found for torch==9'); sys.exit(1)",
    ]
    with pytest.raises(SystemExit) as raised:
        bootstrap.run_logged(failing, "installing the core", log)
    message = str(raised.value)
    assert "failed after" in message and "(exit 1): installing the core" in message
    assert "No matching distribution found for torch==9" in message and message.endswith(f"full log: {log}")


def test_the_build_ticker_counts_ninja_steps(tmp_path):
    bootstrap = load_tool("bootstrap")
    log = tmp_path / "install.log"
    assert bootstrap.ninja_progress(log) == ""  # no log yet
    log.write_bytes(b"running build_ext\n  [1/130] c++ -c a.cpp\n  [12/130] c++ -c b.cpp\n")
    assert bootstrap.ninja_progress(log) == "compiled 12/130"
    assert bootstrap.ninja_progress(log, offset=log.stat().st_size) == ""  # an earlier step's lines do not count
    assert bootstrap.duration(42) == "42 s" and bootstrap.duration(185) == "3 min 05 s"


def test_the_hot_modules_leave_bytecode_even_where_python_writes_none(tmp_path, monkeypatch):
    """With PYTHONDONTWRITEBYTECODE set (many CI images), only this step leaves bytecode for later processes."""
    bootstrap = load_tool("bootstrap")
    for package in ("hot", "pulled_in", "cold"):
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("import pulled_in\n" if package == "hot" else "X = 1\n")
    monkeypatch.setattr(bootstrap, "HOT_MODULES", ["hot"])
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    bootstrap.byte_compile(tmp_path / "install.log")
    for package, compiled in (("hot", True), ("pulled_in", True), ("cold", False)):
        assert (tmp_path / package / "__pycache__").is_dir() == compiled, package


def test_mmcv_with_compiled_ops_and_mmdet_are_installed():
    """What `make test` must leave behind: mmcv's compiled ops run, at the pinned versions."""
    import mmcv
    import mmdet
    import torch
    from mmcv.ops import nms

    assert (mmcv.__version__, mmdet.__version__) == ("2.1.0", "3.3.0")
    boxes = torch.tensor([[0.0, 0.0, 10.0, 10.0], [1.0, 1.0, 10.0, 10.0], [20.0, 20.0, 30.0, 30.0]])
    _, keep = nms(boxes, torch.tensor([0.9, 0.8, 0.7]), iou_threshold=0.5)
    assert keep.tolist() == [0, 2]
