"""The DMU recipe's step journal: ``dmu_state.json`` records each finished step, so a killed run resumes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clipadapt.fileio import atomic_write

__all__ = ["State"]


class State:
    """``dmu_state.json``: the finished steps and what they produced, tied to the config's fingerprint."""

    def __init__(self, path: Path, fingerprint: str) -> None:
        self.path = path
        self.data: dict[str, Any] = {"fingerprint": fingerprint, "done": {}}
        if path.is_file():
            data = json.loads(path.read_text())
            if data.get("fingerprint") != fingerprint:
                raise SystemExit(
                    f"{path} records a DMU run of a different config or base (fingerprint "
                    f"{data.get('fingerprint', '?')[:12]} vs {fingerprint[:12]}); use another --work-dir or remove it"
                )
            self.data = data

    def get(self, step: str) -> dict[str, Any] | None:
        return self.data["done"].get(step)

    def record(self, step: str, info: dict[str, Any]) -> None:
        self.data["done"][step] = info
        text = json.dumps(self.data, indent=2) + "\n"
        atomic_write(self.path, lambda tmp: Path(tmp).write_text(text))
