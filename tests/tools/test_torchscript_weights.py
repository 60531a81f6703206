"""TorchScript weights (OpenAI's release format) load without running code, on every load path.

The attack: a TorchScript archive in OpenAI's layout with one extra submodule whose ``__setstate__`` runs
``torch.from_file(MARKER, shared=True, size=8).fill_(65)``, i.e. writes a file the attacker chose.
``torch.jit.load`` runs it (shown below through the documented opt-in); clipadapt's reader never does.
The refusal is checked on ``create_model``, a config's ``model.pretrained`` given by ``--cfg-options``
(``tools/test.py`` and ``tools/train.py``), the base path recorded in an adapter (``load_adapter`` and
``tools/export_open_clip.py``). A real OpenAI-layout archive still loads, every tensor equal. OpenAI
weights on a GELU config fail naming the ``-quickgelu`` config.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch

import clipadapt
from clipadapt.engine.paths import load_tool
from clipadapt.models.checkpoint import CheckpointMismatchError, UnsafeCheckpointError
from clipadapt.models.checkpoint_io import read_checkpoint
from tests.conftest import open_clip_model
from tests.helpers import two_class_vpt_config
from tests.models.test_checkpoint import _OpenAIArchive


class _Payload(torch.nn.Module):
    """Its TorchScript ``__setstate__`` writes 8 bytes of 'A' to the path stored in its state."""

    def __init__(self, marker: str) -> None:
        super().__init__()
        self.marker = marker
        self.weight = torch.ones(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.weight

    @torch.jit.export
    def __getstate__(self) -> tuple[torch.Tensor, str, bool]:
        return self.weight, self.marker, self.training

    @torch.jit.export
    def __setstate__(self, state: tuple[torch.Tensor, str, bool]) -> None:
        written = torch.from_file(state[1], shared=True, size=8, dtype=torch.uint8).fill_(65)
        self.weight = state[0] + written[:2].float() * 0  # used, so TorchScript keeps the call
        self.marker = state[1]
        self.training = state[2]


def _script(module: torch.nn.Module, path: Path) -> Path:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
        torch.jit.script(module).save(str(path))
    return path


@pytest.fixture(scope="module")
def archives(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("torchscript")
    reference = open_clip_model("tiny-vit-quickgelu")
    evil = _OpenAIArchive(reference)
    evil.add_module("payload", _Payload(str(root / "PWNED")))
    paths = {
        "real": _script(_OpenAIArchive(reference), root / "openai.pt"),
        "evil": _script(evil, root / "evil.pt"),
        "marker": root / "PWNED",
    }
    torch.save(reference.state_dict() | {"input_resolution": torch.tensor(64)}, root / "openai_state.pt")
    paths["state"] = root / "openai_state.pt"
    return paths


@pytest.fixture
def marker(archives) -> Path:
    archives["marker"].unlink(missing_ok=True)
    yield archives["marker"]
    archives["marker"].unlink(missing_ok=True)


def test_the_payload_is_live_under_torch_jit_load_behind_the_opt_in(archives, marker, monkeypatch):
    """Without this, the tests below would prove nothing: torch.jit.load does write the file."""
    monkeypatch.setenv("CLIPADAPT_TRUST_TORCHSCRIPT", "1")
    with pytest.warns(UserWarning, match=r"CLIPADAPT_TRUST_TORCHSCRIPT=1: .*evil\.pt with torch\.jit\.load"):
        read_checkpoint(archives["evil"])
    assert marker.read_bytes() == b"A" * 8


def test_real_archive_loads_every_tensor_intact(archives, marker):
    reference = open_clip_model("tiny-vit-quickgelu").state_dict()
    state = read_checkpoint(archives["real"])
    assert set(state) == set(reference) | {"input_resolution", "context_length", "vocab_size"}
    for key, value in reference.items():
        assert torch.equal(state[key], value), key
    model = clipadapt.create_model("tiny-vit-quickgelu", pretrained=archives["real"])
    assert torch.equal(model.visual.conv1.weight, reference["visual.conv1.weight"])
    assert torch.equal(model.text.token_embedding.weight, reference["token_embedding.weight"])


def _refused(err: BaseException, path: Path) -> None:
    text = str(err)
    assert f"refused to load checkpoint {path}" in text, text
    assert "__torch__" in text and "_Payload with its own __setstate__" in text, text
    assert "weights_only=False" not in text and "\n" not in text, text


def test_create_model_refuses_and_nothing_runs(archives, marker):
    with pytest.raises(UnsafeCheckpointError) as err:
        clipadapt.create_model("tiny-vit-quickgelu", pretrained=archives["evil"])
    _refused(err.value, archives["evil"])
    assert not marker.exists()


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> tuple[Path, Path]:
    return two_class_vpt_config(tmp_path_factory.mktemp("torchscript_config"), model_name="tiny-vit-quickgelu")


@pytest.mark.parametrize("tool", ["test", "train"])
def test_config_pretrained_refuses_and_nothing_runs(tool, archives, marker, config, tmp_path, monkeypatch):
    cfg, world = config
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp_path / "cache"))
    argv = [str(cfg), "--work-dir", str(tmp_path / "work"), "--cfg-options", f"model.pretrained={archives['evil']}"]
    with pytest.raises(UnsafeCheckpointError) as err:
        load_tool(tool).main(argv)
    _refused(err.value, archives["evil"])
    assert not marker.exists()


@pytest.fixture
def adapter_on_evil_base(archives, tmp_path) -> tuple[Path, Path]:
    """An adapter trained on a real archive whose file was then swapped for the malicious one."""
    base = tmp_path / "ViT-openai.pt"
    base.write_bytes(archives["real"].read_bytes())
    model = clipadapt.create_model("tiny-vit-quickgelu", pretrained=base, plugins=[dict(type="VPT", num_tokens=2)])
    adapter = clipadapt.save_adapter(model, tmp_path / "vpt.pt")
    base.write_bytes(archives["evil"].read_bytes())
    return adapter, base


def test_adapter_base_path_refuses_and_nothing_runs(adapter_on_evil_base, marker):
    adapter, base = adapter_on_evil_base
    with pytest.raises(UnsafeCheckpointError) as err:
        clipadapt.load_adapter(adapter)
    _refused(err.value, base)
    assert not marker.exists()


def test_export_tool_refuses_and_nothing_runs(adapter_on_evil_base, marker, tmp_path):
    adapter, base = adapter_on_evil_base
    with pytest.raises(SystemExit) as err:
        load_tool("export_open_clip").main([str(adapter), str(tmp_path / "out")])
    assert str(err.value).startswith("export failed: ")
    _refused(err.value, base)
    assert not marker.exists() and not (tmp_path / "out").exists()


# ------------------------------------------------------------------------------ QuickGELU guard
@pytest.mark.parametrize("which", ["real", "state"])
def test_openai_weights_on_a_gelu_config_name_the_quickgelu_config(which, archives):
    with pytest.raises(CheckpointMismatchError, match=r"OpenAI weights.*QuickGELU.*'tiny-vit'.*'tiny-vit-quickgelu'"):
        clipadapt.create_model("tiny-vit", pretrained=archives[which])


def test_openai_weights_on_a_gelu_config_through_config_pretrained(archives, config, tmp_path, monkeypatch):
    cfg, world = config
    monkeypatch.setenv("CLIPADAPT_DATA", str(world))
    monkeypatch.setenv("CLIPADAPT_CACHE", str(tmp_path / "cache"))
    options = ["model.model_name=tiny-vit", f"model.pretrained={archives['real']}"]
    with pytest.raises(CheckpointMismatchError, match=r"'tiny-vit-quickgelu'"):
        load_tool("test").main([str(cfg), "--work-dir", str(tmp_path / "work"), "--cfg-options", *options])


def test_open_clip_weights_on_a_gelu_config_still_load(tmp_path):
    reference = open_clip_model("tiny-vit")
    torch.save(reference.state_dict(), tmp_path / "laion.pt")
    model = clipadapt.create_model("tiny-vit", pretrained=tmp_path / "laion.pt")
    assert torch.equal(model.visual.conv1.weight, reference.state_dict()["visual.conv1.weight"])
