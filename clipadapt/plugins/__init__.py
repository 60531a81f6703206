"""The plugin contract and plugin discovery."""

from .base import Plugin, PluginCompatibilityError
from .discovery import build_plugin, load_plugin_modules, registered_plugins

__all__ = ["Plugin", "PluginCompatibilityError", "build_plugin", "load_plugin_modules", "registered_plugins"]
