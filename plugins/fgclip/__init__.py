"""FG-CLIP / FG-CLIP 2 (Xie et al., 2025): dense region features, region-text and hard-negative losses.

The plugin :class:`RegionAlign` provides the region features; the losses are those of
:class:`clipadapt.tasks.RegionTextAlignment` (functions in ``clipadapt.tasks.region_losses``).
"""

from .plugin import RegionAlign

__all__ = ["RegionAlign"]
