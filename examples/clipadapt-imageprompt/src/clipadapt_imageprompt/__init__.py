"""Image-conditioned deep text prompts for clipadapt: a hook-based plugin and the task that feeds it.

Importing this package registers the ``PatchPrompt`` plugin in ``clipadapt.registry.PLUGINS`` and the
``PatchConditionedClassifier`` task in ``clipadapt.registry.MODELS``. clipadapt imports it through the
``clipadapt.plugins`` entry point group declared in ``pyproject.toml``.
"""

from .plugin import PatchPrompt
from .task import PatchConditionedClassifier

__all__ = ["PatchConditionedClassifier", "PatchPrompt"]
__version__ = "0.1.0"
