"""The plugin contract and plugin discovery."""

from .base import Plugin, PluginCompatibilityError, check_conditions
from .discovery import build_plugin, load_plugin_modules, registered_plugins

__all__ = [
    "Plugin",
    "PluginCompatibilityError",
    "build_plugin",
    "check_conditions",
    "load_plugin_modules",
    "registered_plugins",
]
