"""tools/install_mmdet.py: the C++20 patch of mmcv's setup.py, the wheel cache, and the installed result."""

from __future__ import annotations

import sys

import pytest

from tests.helpers import load_tool

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
