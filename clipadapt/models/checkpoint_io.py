"""Reading checkpoint files without running anything in them: one reader for every load path.

:func:`read_checkpoint` reads a local file in any of the formats clipadapt meets and returns what it
holds (a state dict, a runner checkpoint dict, an adapter dict):

- ``.safetensors``: tensors only, by construction;
- a ``torch.save`` file (zip, or the legacy pickle format): ``torch.load(weights_only=True)``, always
  passed explicitly (torch's default can be flipped by ``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``);
- a TorchScript archive (OpenAI's released weights): its ``data.pkl`` is read by torch's own
  weights-only unpickler, with each ``__torch__.*`` class of the archive replaced by an inert
  stand-in that only records its attributes. The archive's code (``code/``) is never compiled or run,
  and a class that carries its own ``__setstate__`` is refused. The tensors are then collected into
  the state dict ``torch.jit.load(...).state_dict()`` would give.

Every failure is a :class:`CheckpointReadError` whose message is one line naming the file and the
reason (empty, truncated, not a checkpoint, a refused global); a refusal is its subclass
:class:`UnsafeCheckpointError`. No message suggests turning ``weights_only`` off.

``torch.jit.load`` (which runs the archive's code) is used only when ``CLIPADAPT_TRUST_TORCHSCRIPT=1``
is set (or ``trust_torchscript=True`` is passed), with a warning.
"""

from __future__ import annotations

import io
import os
import pickle
import re
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch

__all__ = [
    "TRUST_TORCHSCRIPT_ENV",
    "CheckpointReadError",
    "UnsafeCheckpointError",
    "is_torchscript_file",
    "read_checkpoint",
    "zip_problem",
]

TRUST_TORCHSCRIPT_ENV = "CLIPADAPT_TRUST_TORCHSCRIPT"
# Harmless helpers that TorchScript's pickler writes for typed lists; each returns its argument.
_JIT_LIST_HELPERS = ("build_intlist", "build_tensorlist", "build_doublelist", "build_boollist", "restore_type_tag")


class CheckpointReadError(ValueError):
    """A checkpoint file that cannot be read: the message names the file and the reason, on one line.

    ``CheckpointReadError(path, reason)``; a single argument is taken as the whole message (as pickling
    and re-raising with ``type(err)(message)`` do).
    """

    def __init__(self, path: str | os.PathLike[str], reason: str | None = None) -> None:
        self.path = str(path) if reason is not None else None
        message = str(path) if reason is None else self._message(str(path), " ".join(str(reason).split()))
        super().__init__(message)

    @staticmethod
    def _message(path: str, reason: str) -> str:
        return f"cannot read checkpoint {path}: {reason}"


class UnsafeCheckpointError(CheckpointReadError, pickle.UnpicklingError):
    """A checkpoint that asks for something outside the weights-only allow-list; nothing of it ran."""

    @staticmethod
    def _message(path: str, reason: str) -> str:
        return (
            f"refused to load checkpoint {path}: it asks for {reason}, which clipadapt's "
            "torch.load(weights_only=True) allow-list does not hold; nothing in the file was run"
        )


def _short(err: BaseException) -> str:
    """torch's message without its multi-line advice: the first line that says what went wrong."""
    text = str(err)
    inner = re.search(r"WeightsUnpickler error:\s*(.*?)\s*(?:Check the documentation|$)", text, re.DOTALL)
    if inner:
        text = inner.group(1)
    text = text.replace("PytorchStreamReader failed reading zip archive: ", "")
    text = re.split(r"\. (?:This is an internal|Please |If you)", text)[0]
    text = (text.strip().splitlines() or [""])[0]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _pickle_globals(path: Path) -> list[str]:
    """The globals a legacy (non-zip) pickle names, read statically with ``pickletools`` (nothing runs)."""
    import pickletools

    names: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as handle:
            for opcode, arg, _ in pickletools.genops(handle):
                if opcode.name == "GLOBAL":
                    names.append(str(arg).replace(" ", "."))
                elif opcode.name == "STACK_GLOBAL" and len(strings) >= 2:
                    names.append(f"{strings[-2]}.{strings[-1]}")
                elif isinstance(arg, str):
                    strings.append(arg)
    except Exception:  # a truncated or foreign file: report what was found before the break
        pass
    return names


def _refusal(path: Path, err: pickle.UnpicklingError, is_zip: bool = True) -> UnsafeCheckpointError:
    found = re.search(r"GLOBAL ([\w.]+)", str(err))  # torch names the global it refused
    if found:
        return UnsafeCheckpointError(path, f"the global {found.group(1)}")
    if not is_zip:  # torch stopped before naming it (e.g. at pickle protocol 4's FRAME): find it ourselves
        from torch import _weights_only_unpickler as wo

        allowed = set(wo._get_allowed_globals()) | set(wo._get_user_allowed_globals())
        refused = [name for name in _pickle_globals(path) if name not in allowed]
        if refused:
            return UnsafeCheckpointError(path, f"the global {refused[0]}")
    return UnsafeCheckpointError(path, f"an object ({_short(err)})")


def _torch_load(path: Path, map_location: Any, is_zip: bool) -> Any:
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if re.search(r"GLOBAL |unrecognized function|Can only (build|create)|Unsupported operand", str(err)):
            raise _refusal(path, err, is_zip) from None
        reason = "it is truncated or corrupt" if is_zip else "it is not a torch checkpoint (or is truncated)"
        raise CheckpointReadError(path, f"{reason} ({_short(err)})") from None
    except (EOFError, RuntimeError, OSError, KeyError, ValueError, IndexError, TypeError) as err:
        if is_zip:
            intact = zip_problem(path) is None
            what = (
                "a zip archive, but not one torch.save wrote"
                if intact
                else "truncated or corrupt: its zip archive is incomplete"
            )
            raise CheckpointReadError(path, f"it is {what} ({_short(err)})") from None
        raise CheckpointReadError(
            path, f"it is not a checkpoint clipadapt reads (torch.save zip, safetensors or TorchScript) ({_short(err)})"
        ) from None


def zip_problem(path: str | os.PathLike[str]) -> str | None:
    """Why a zip file is incomplete (no central directory, a record failing its CRC), or None when it is whole.

    Reads the bytes; unpickles nothing.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            broken = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as err:
        return f"it is truncated or corrupt ({err})"
    return f"it is corrupt (record {broken} fails its CRC check)" if broken else None


def _read_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as err:  # SafetensorError, OSError
        raise CheckpointReadError(path, f"it is not a complete safetensors file ({_short(err)})") from None


class _ScriptObject:
    """Stands in for one ``__torch__`` class of a TorchScript archive: it records attributes, runs nothing."""

    qualified_name = "__torch__"

    def __init__(self, *args: Any) -> None:
        self.state: Any = args

    def __setstate__(self, state: Any) -> None:
        self.state = state


def _stand_in(name: str) -> type:
    return type(name.rsplit(".", 1)[-1], (_ScriptObject,), {"qualified_name": name})


def _collect(obj: _ScriptObject, prefix: str, out: dict[str, torch.Tensor], path: Path) -> None:
    if not isinstance(obj.state, dict):  # a class with its own __getstate__ / __setstate__: code we will not run
        raise UnsafeCheckpointError(path, f"TorchScript class {obj.qualified_name} with its own __setstate__")
    for key, value in obj.state.items():
        if isinstance(value, torch.Tensor):
            out[prefix + key] = value
        elif isinstance(value, _ScriptObject):
            _collect(value, f"{prefix}{key}.", out, path)


def _read_torchscript(path: Path, map_location: Any) -> dict[str, torch.Tensor]:
    """The parameters and buffers of a TorchScript archive, read from ``data.pkl`` with code never run."""
    from torch import _weights_only_unpickler
    from torch.jit import _pickle as jit_pickle

    try:
        reader = torch._C.PyTorchFileReader(str(path))
        data = reader.get_record("data.pkl")
    except (RuntimeError, OSError) as err:
        raise CheckpointReadError(path, f"it is truncated or corrupt TorchScript ({_short(err)})") from None
    names = _weights_only_unpickler.get_globals_in_pkl(io.BytesIO(data))
    allowed: list[Any] = [(_stand_in(n), n) for n in sorted(names) if n.startswith("__torch__.")]
    allowed += [(getattr(jit_pickle, f), f"torch.jit._pickle.{f}") for f in _JIT_LIST_HELPERS]
    try:
        with torch.serialization.safe_globals(allowed):
            root = torch.serialization._load(reader, map_location, _weights_only_unpickler, weights_only=True)
    except pickle.UnpicklingError as err:
        raise _refusal(path, err) from None
    except (EOFError, RuntimeError, OSError, KeyError, ValueError) as err:
        raise CheckpointReadError(path, f"it is truncated or corrupt TorchScript ({_short(err)})") from None
    if not isinstance(root, _ScriptObject):
        raise CheckpointReadError(path, "its TorchScript data holds no module")
    state: dict[str, torch.Tensor] = {}
    _collect(root, "", state, path)
    return state


def is_torchscript_file(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a TorchScript archive (a torch zip with ``constants.pkl``)."""
    try:
        with open(path, "rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                return False
        return "constants.pkl" in torch._C.PyTorchFileReader(str(path)).get_all_records()
    except (RuntimeError, OSError):
        return False  # not a readable zip: torch.load reports why


def _jit_load(path: Path, map_location: Any) -> dict[str, torch.Tensor]:
    warnings.warn(
        f"{TRUST_TORCHSCRIPT_ENV}=1: loading {path} with torch.jit.load, which runs the archive's code; "
        "do this only for files whose origin you trust",
        stacklevel=3,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit is deprecated
        return dict(torch.jit.load(str(path), map_location=map_location).state_dict())


def read_checkpoint(
    path: str | os.PathLike[str], map_location: Any = "cpu", trust_torchscript: bool | None = None
) -> Any:
    """What a checkpoint file holds, read without running any code from it.

    Args:
        path: A local ``.safetensors``, ``torch.save`` or TorchScript file.
        map_location: As ``torch.load``'s.
        trust_torchscript: Read TorchScript archives with ``torch.jit.load`` (runs their code).
            None reads ``$CLIPADAPT_TRUST_TORCHSCRIPT`` (``1`` = yes); the default is no.

    Raises:
        FileNotFoundError: no such file.
        CheckpointReadError: empty, truncated, corrupt, or not a checkpoint (one line, naming the file).
        UnsafeCheckpointError: the file asks for a global or code outside the allow-list.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise FileNotFoundError(f"checkpoint file not found: {path}")
    if not path.is_file():
        raise CheckpointReadError(path, "it is a directory, not a file")
    if path.stat().st_size == 0:
        raise CheckpointReadError(path, "the file is empty (0 bytes)")
    with open(path, "rb") as handle:
        is_zip = handle.read(4) == b"PK\x03\x04"
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    if is_zip and is_torchscript_file(path):
        if trust_torchscript is None:
            trust_torchscript = os.environ.get(TRUST_TORCHSCRIPT_ENV) == "1"
        return _jit_load(path, map_location) if trust_torchscript else _read_torchscript(path, map_location)
    return _torch_load(path, map_location, is_zip)
