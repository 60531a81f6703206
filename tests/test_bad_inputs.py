"""The bad-input matrix: each entry point, given a broken input, fails with an error naming the fault.

One table of (entry point, fault, exception type, regex of the message); each row also lists the
output paths that must not exist afterwards (a tool that fails leaves no partial file behind).

Faults already tested next to their loader are not repeated here:

- FewShotDataset: missing split file, split JSON without a key / wrong entry schema / not JSON, empty
  split, missing image, truncated image (tests/datasets/test_few_shot_dataset.py);
- ImageTextDataset: missing CSV, wrong CSV columns, empty CSV, empty cell, missing and broken image
  (tests/datasets/test_image_text_dataset.py);
- RegionDataset: region JSON not JSON / without 'annotations' / missing 'phrase' and other key and
  value faults (tests/datasets/test_region_dataset.py);
- transforms: unknown transform, LoadImage not first (tests/datasets/test_data_transforms.py);
- configs: unknown keys with a suggestion, at every level (tests/engine/test_config_check.py), through
  tools/train.py (tests/tools/test_train_test.py); unknown model names (tests/models/test_config.py);
- plugins: unknown plugin type, a plugin attached twice, two plugins replacing one module, a module
  that does not exist, VPT / MaPLe / IVLP depth beyond the tower's blocks (tests/plugins/test_contract.py,
  tests/plugins/maple/test_maple.py, tests/plugins/ivlp/test_ivlp.py, tests/plugins/longclip/test_plugin.py);
- checkpoints: a missing file, a checkpoint with changed widths and depth, unexpected keys
  (tests/models/test_checkpoint.py); an adapter onto a model with other plugins (tests/plugins/vpt/test_vpt.py);
  a malicious pickle (tests/tools/test_malicious_checkpoint.py); tools/export_open_clip.py on a model
  open_clip cannot represent (tests/tools/test_export_open_clip.py);
- a data-loader worker that fails on a broken image: test_a_worker_crash_names_the_file below;
- broken checkpoints (truncated, zero-byte .pt / .safetensors, wrong format, malicious) on every load path
  (tests/test_checkpoint_faults.py); TorchScript archives that run code (tests/tools/test_torchscript_weights.py);
  resume fallback, the work-dir lock, bad config values, non-finite updates (tests/tools/test_work_dir.py);
  kills during validation, a best-checkpoint write and pruning (tests/tools/test_kill_best.py).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import open_clip
import pytest
import torch

import clipadapt
from clipadapt.datasets.synthetic import ensure_synthetic_world
from clipadapt.engine.paths import load_tool
from clipadapt.models.checkpoint import CheckpointMismatchError, CheckpointReadError

ROOT = Path(__file__).resolve().parents[1]
CLIP_CONFIG = ROOT / "configs" / "clip" / "clip_tiny-vit_1xb64_synthetic.py"
WORLD = dict(
    colours=["red", "blue"],
    shapes=["circle", "square"],
    domains=["warm"],
    per_class_train=1,
    per_class_val=1,
    per_class_test=1,
    scenes_train=2,
    scenes_val=2,
    scenes_test=2,
)


def _tool(name: str):
    return load_tool(name)


def _vit_b32_state_dict(path: Path) -> Path:
    """An open_clip ViT-B-32 state dict (every key and shape) that costs a few kB on disk.

    Built on the meta device, each tensor saved as a zero-stride view of a one-element storage.
    """
    with torch.device("meta"):
        reference = open_clip.model.CLIP(**open_clip.get_model_config("ViT-B-32"))
    state = {
        k: torch.zeros(1).expand(v.shape) if v.dim() else torch.zeros(()) for k, v in reference.state_dict().items()
    }
    torch.save(state, path)
    return path


# Each case builds its input under tmp_path and returns (the call that must fail, paths that must not exist).
Case = Callable[[Path, pytest.MonkeyPatch], tuple[Callable[[], object], list[Path]]]


def _create_model_vit_b32(tmp: Path, _: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    path = _vit_b32_state_dict(tmp / "vit_b32.pt")
    return lambda: clipadapt.create_model("tiny-vit", pretrained=path), []


def _load_adapter_on_vit_b32(tmp: Path, _: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    import clipadapt_plugins.vpt  # noqa: F401  (registers VPT)

    model = clipadapt.create_model("tiny-vit", plugins=[dict(type="VPT", num_tokens=2, depth=1)])
    adapter = clipadapt.save_adapter(model, tmp / "vpt.pt")
    base = _vit_b32_state_dict(tmp / "vit_b32.pt")
    return lambda: clipadapt.load_adapter(adapter, pretrained=base), []


def _test_py_vit_b32(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    world = ensure_synthetic_world(tmp / "world", progress=False, workers=1, **WORLD)
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp / "cache"))
    config = tmp / "clip.py"
    config.write_text(
        f"_base_ = [{str(CLIP_CONFIG)!r}]\nsynthetic_world = {WORLD!r}\n"
        "visualizer = dict(vis_backends=[dict(type='LocalVisBackend')])\n"
    )
    ckpt = _vit_b32_state_dict(tmp / "vit_b32.pt")
    argv = [str(config), str(ckpt), "--work-dir", str(tmp / "work"), "--out", str(tmp / "metrics.json")]
    return lambda: _tool("test").main(argv), [tmp / "metrics.json"]


def _export_vit_b32(tmp: Path, _: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    ckpt = _vit_b32_state_dict(tmp / "vit_b32.pt")
    out = tmp / "export"
    return lambda: _tool("export_open_clip").main([str(ckpt), str(out), "--config", str(CLIP_CONFIG)]), [out]


def _make_split_missing_folder(tmp: Path, _: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    (tmp / "images" / "val" / "cat").mkdir(parents=True)
    out = tmp / "split.json"
    argv = ["imagefolder", "--root", str(tmp / "images"), "--train", "train", "--test", "val", "--out", str(out)]
    return lambda: _tool("make_split").main(argv), [out]


def _make_synthetic_unknown_colour(tmp: Path, _: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    root = tmp / "world"
    return lambda: _tool("make_synthetic").main([str(root), "--colours", "red", "mauve", "--no-progress"]), [root]


def _export_malicious(tmp: Path, _: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    import os

    class Payload:
        def __reduce__(self):
            return os.system, (f"touch {tmp / 'PWNED'}",)

    ckpt = tmp / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"x": Payload()}}, ckpt)
    out = tmp / "export"
    return lambda: _tool("export_open_clip").main([str(ckpt), str(out), "--config", str(CLIP_CONFIG)]), [
        out,
        tmp / "PWNED",
    ]


def _test_py_truncated(tmp: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    call, outputs = _test_py_vit_b32(tmp, monkeypatch)
    ckpt = tmp / "vit_b32.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:4188])
    return call, [*outputs, tmp / "work"]


def _create_model_empty_safetensors(tmp: Path, _: pytest.MonkeyPatch) -> tuple[Callable[[], object], list[Path]]:
    (tmp / "empty.safetensors").write_bytes(b"")
    return lambda: clipadapt.create_model("tiny-vit", pretrained=tmp / "empty.safetensors"), []


@dataclass(frozen=True)
class Row:
    entry: str
    fault: str
    case: Case
    error: type[BaseException]
    message: str  # regex; must name the file, key or value at fault


MATRIX = [
    Row(
        "clipadapt.create_model(pretrained=)",
        "open_clip ViT-B-32 weights into tiny-vit",
        _create_model_vit_b32,
        CheckpointMismatchError,
        r"vit_b32\.pt does not fit the model: \d+ shape mismatches .*"
        r"text\.token_embedding\.weight: checkpoint \(49408, 512\) vs model \(49408, 128\)",
    ),
    Row(
        "clipadapt.load_adapter(pretrained=)",
        "a tiny-vit adapter rebuilt on ViT-B-32 base weights",
        _load_adapter_on_vit_b32,
        CheckpointMismatchError,
        r"vit_b32\.pt does not fit the model: .*checkpoint \(512,\) vs model \(128,\)",
    ),
    Row(
        "tools/test.py CONFIG CKPT",
        "an open_clip ViT-B-32 state dict for a tiny-vit config",
        _test_py_vit_b32,
        CheckpointMismatchError,
        r"checkpoint .*vit_b32\.pt does not fit the model ImageTextContrastive: .*"
        r"keys the model does not have \['ln_final\.bias'.*no key in common with the model",
    ),
    Row(
        "tools/export_open_clip.py CKPT OUT --config",
        "an open_clip ViT-B-32 state dict for a tiny-vit config",
        _export_vit_b32,
        SystemExit,
        r"export failed: .*vit_b32\.pt does not fit the model: .*'visual\.conv1\.weight: \(768, 3, 32, 32\) vs "
        r"\(192, 3, 8, 8\)'",
    ),
    Row(
        "tools/export_open_clip.py CKPT OUT --config",
        "a malicious pickle (B4)",
        _export_malicious,
        SystemExit,
        r"export failed: refused to load checkpoint .*evil\.pth: it asks for the global posix\.system",
    ),
    Row(
        "tools/test.py CONFIG CKPT",
        "a truncated checkpoint (B2)",
        _test_py_truncated,
        CheckpointReadError,
        r"cannot read checkpoint .*vit_b32\.pt: it is truncated or corrupt",
    ),
    Row(
        "clipadapt.create_model(pretrained=)",
        "a zero-byte .safetensors (B6)",
        _create_model_empty_safetensors,
        CheckpointReadError,
        r"cannot read checkpoint .*empty\.safetensors: the file is empty \(0 bytes\)",
    ),
    Row(
        "tools/make_split.py imagefolder",
        "the --train folder does not exist",
        _make_split_missing_folder,
        FileNotFoundError,
        r"image folder not found: .*images/train",
    ),
    Row(
        "tools/make_synthetic.py",
        "an unknown colour",
        _make_synthetic_unknown_colour,
        ValueError,
        r"unknown colours \['mauve'\]; known colours: \[.*'red'",
    ),
]


@pytest.mark.parametrize("row", MATRIX, ids=[f"{r.entry} / {r.fault}" for r in MATRIX])
def test_bad_input_is_named_and_leaves_no_output(row: Row, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    call, outputs = row.case(tmp_path, monkeypatch)
    before = set(tmp_path.rglob("*"))
    with pytest.raises(row.error, match=row.message):
        call()
    for path in outputs:
        assert not path.exists(), f"{row.entry} left {path} behind after failing"
    temporaries = [p for p in set(tmp_path.rglob("*")) - before if p.name.endswith(".tmp")]
    assert not temporaries, f"{row.entry} left temporary files {temporaries}"


def test_a_worker_crash_names_the_file(tmp_path: Path) -> None:
    """A data-loader worker that fails on a truncated image: the main process's error names the file."""
    from mmengine.dataset import default_collate
    from torch.utils.data import DataLoader

    from clipadapt.datasets import ImageTextDataset

    world = ensure_synthetic_world(tmp_path / "world", progress=False, workers=1, **WORLD)
    dataset = ImageTextDataset(data_root=str(world), csv_file="captions_train.csv")
    broken = Path(dataset.get_data_info(1)["img_path"])
    data = broken.read_bytes()
    broken.write_bytes(data[: len(data) // 2])  # half a PNG
    loader = DataLoader(dataset, batch_size=1, num_workers=2, collate_fn=default_collate)
    with pytest.raises(OSError, match=rf"cannot read image {broken}") as info:
        list(loader)
    assert "DataLoader worker process" in str(info.value)  # torch says where it happened


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))
