"""CLIP-MoE (Zhang et al., 2024, https://arxiv.org/abs/2409.19291).

Sparse upcycling of CLIP's MLPs into routed experts, with Diversified Multiplet Upcycling.
"""

from .dmu import StageMismatchError, load_stage_experts, refine_labels
from .layer import ROUTER_AUX_KEY, RouterRecord, SparseMoE, grouped_dispatch, load_balancing_loss, route
from .plugin import MLPFineTune, MoEUpcycle, mlp_module_names, parameter_counts, select_blocks

__all__ = [
    "ROUTER_AUX_KEY",
    "MLPFineTune",
    "MoEUpcycle",
    "RouterRecord",
    "SparseMoE",
    "StageMismatchError",
    "grouped_dispatch",
    "load_balancing_loss",
    "load_stage_experts",
    "mlp_module_names",
    "parameter_counts",
    "refine_labels",
    "route",
    "select_blocks",
]
