"""What a config needs installed beyond clipadapt's core, checked before anything is built.

``make quickstart`` installs the core only; MMDetection and mmcv (whose source build takes 15 to 50
minutes on two cores) come with ``make mmdet`` or ``make test``. A detection config run without them
stops at once with one line that names the command to run, instead of an unknown-type error later.
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["MissingPackagesError", "check_installed"]

# default_scope -> (the packages it imports, what they are, the command that installs them).
SCOPES = {
    "mmdet": (
        ("mmdet", "mmcv"),
        "MMDetection 3.3.0 and mmcv 2.1.0",
        "`make mmdet` (or `python tools/install_mmdet.py`; it builds mmcv once, 15 to 50 minutes on two cores)",
    ),
}


class MissingPackagesError(RuntimeError):
    """The config's ``default_scope`` needs packages that are not installed."""


def check_installed(cfg: Any, config_path: str = "the config") -> None:
    """Raise :class:`MissingPackagesError` when ``cfg``'s ``default_scope`` needs a package that is missing."""
    scope = cfg.get("default_scope")
    if scope not in SCOPES:
        return
    packages, what, command = SCOPES[scope]
    missing = [name for name in packages if importlib.util.find_spec(name) is None]
    if missing:
        raise MissingPackagesError(
            f"{config_path} needs {what} (default_scope={scope!r}; missing: {', '.join(missing)}): install them with "
            f"{command}"
        )
