"""clipadapt's built-in plugins, installed as ``clipadapt_plugins``.

Each plugin is a folder written exactly as a third party would write it: it uses only clipadapt's
public API and registers itself in ``clipadapt.registry.PLUGINS`` when imported.
"""

from . import cloc, cocoop, coop, fgclip, ivlp, longclip, maple, moe, vpt

__all__ = ["cloc", "cocoop", "coop", "fgclip", "ivlp", "longclip", "maple", "moe", "vpt"]
