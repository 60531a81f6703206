"""Long-CLIP (Zhang et al., 2024, https://arxiv.org/abs/2403.15378).

Knowledge-preserved stretching of the text positions, and primary component matching.
"""

from .pcm import pcm_losses, principal_component_reduction
from .plugin import LongCLIP
from .stretch import FrozenPrefix, stretch_positions, stretched_length

__all__ = [
    "FrozenPrefix",
    "LongCLIP",
    "pcm_losses",
    "principal_component_reduction",
    "stretch_positions",
    "stretched_length",
]
