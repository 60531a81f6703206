"""LoRA for clipadapt: low-rank updates of the attention projections (Hu et al., 2021, arXiv:2106.09685).

Importing this package registers the ``LoRA`` plugin in ``clipadapt.registry.PLUGINS``. clipadapt
imports it through the ``clipadapt.plugins`` entry point group declared in ``pyproject.toml``.
"""

from .layer import LoRAQKV
from .plugin import LoRA

__all__ = ["LoRA", "LoRAQKV"]
__version__ = "0.1.0"
