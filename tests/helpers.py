"""Helpers shared by the test modules (not fixtures: plain functions)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parent.parent


def load_tool(name: str) -> ModuleType:
    """``tools/<name>.py`` as a module (the tools are scripts, not a package), registered in ``sys.modules``.

    Registering it lets dataclasses and pickling look the module up while it executes.
    """
    path = ROOT / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(f"clipadapt_tools_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
