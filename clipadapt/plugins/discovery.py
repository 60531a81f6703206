"""Finding plugins: the built-ins, the ``clipadapt.plugins`` entry point group, ``custom_imports``.

The built-in plugins are one package, ``clipadapt_plugins`` (the ``plugins/`` folder of the source tree),
which :func:`load_plugin_modules` imports before the entry point group; its ``__init__`` imports every
built-in, so a new built-in needs a line there and its package in ``setup.cfg``, and no entry point. In a
source checkout (``plugins/`` beside the ``clipadapt`` package that runs), ``clipadapt_plugins`` is that
folder, whatever another install of clipadapt maps the name to: a checkout run through ``PYTHONPATH``
uses its own plugins.

A third-party package declares, in its packaging metadata::

    [options.entry_points]
    clipadapt.plugins =
        my_plugin = my_package.my_plugin_module

Loading the entry point imports the module, whose ``@PLUGINS.register_module()`` decorators
register the plugin classes; the same module may register tasks (``@MODELS.register_module()``),
data sets or hooks, because clipadapt loads the group before it checks or builds a config's types
(``clipadapt.engine.check_config``). A config can instead name the module with MMEngine's
``custom_imports = dict(imports=['my_package.my_plugin_module'])``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

from ..registry import PLUGINS
from .base import Plugin

__all__ = ["build_plugin", "load_plugin_modules", "registered_plugins"]

ENTRY_POINT_GROUP = "clipadapt.plugins"
BUILTIN_PACKAGE = "clipadapt_plugins"
_CHECKOUT_PLUGINS = Path(__file__).resolve().parents[2] / "plugins"
_loaded = False


class _CheckoutPluginsFinder(importlib.abc.MetaPathFinder):
    """Resolves ``clipadapt_plugins`` to the ``plugins/`` folder of the source checkout this clipadapt runs from."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname != BUILTIN_PACKAGE:
            return None
        return importlib.util.spec_from_file_location(
            fullname, _CHECKOUT_PLUGINS / "__init__.py", submodule_search_locations=[str(_CHECKOUT_PLUGINS)]
        )


if (_CHECKOUT_PLUGINS / "__init__.py").is_file() and BUILTIN_PACKAGE not in sys.modules:
    sys.meta_path.insert(0, _CheckoutPluginsFinder())


def load_plugin_modules(force: bool = False) -> None:
    """Import the built-in plugins and every module of the ``clipadapt.plugins`` entry point group."""
    global _loaded
    if _loaded and not force:
        return
    _loaded = True
    try:
        importlib.import_module(BUILTIN_PACKAGE)
    except ModuleNotFoundError as err:
        if err.name != BUILTIN_PACKAGE:
            raise
    for entry in entry_points(group=ENTRY_POINT_GROUP):
        try:
            entry.load()
        except Exception as err:  # a broken third-party package must not break clipadapt
            dist = entry.dist.name if entry.dist is not None else "?"
            warnings.warn(
                f"clipadapt: plugin entry point {entry.name!r} = {entry.value!r} of package {dist!r} failed to load: "
                f"{type(err).__name__}: {err}",
                RuntimeWarning,
                stacklevel=2,
            )


def registered_plugins() -> list[str]:
    """Names of every plugin type in the registry (after discovery)."""
    load_plugin_modules()
    return sorted(PLUGINS.module_dict)


def build_plugin(cfg: dict[str, Any] | Plugin) -> Plugin:
    """Build a plugin from a config dict ``{'type': name, **kwargs}`` (or pass a built one through).

    Raises:
        KeyError: unknown plugin type; the message lists the registered ones.
        TypeError: the built object is not a :class:`Plugin`, or the arguments do not fit.
    """
    if isinstance(cfg, Plugin):
        return cfg
    if not isinstance(cfg, dict) or "type" not in cfg:
        raise TypeError(f"a plugin config is a dict with a 'type' key, got {cfg!r}")
    load_plugin_modules()
    kind = cfg["type"]
    if isinstance(kind, str) and PLUGINS.get(kind) is None:
        raise KeyError(f"unknown plugin type {kind!r}; registered plugins: {', '.join(registered_plugins()) or 'none'}")
    args = {k: v for k, v in cfg.items() if k != "type"}
    cls = PLUGINS.get(kind) if isinstance(kind, str) else kind
    try:
        plugin = cls(**args)
    except TypeError as err:
        raise TypeError(f"plugin {cls.__name__}: {err}") from err
    if not isinstance(plugin, Plugin):
        raise TypeError(f"{type(plugin).__name__} is registered as a plugin but is not a clipadapt.plugins.Plugin")
    plugin._build_cfg = dict(cfg, type=cls.__name__)
    return plugin
