"""CLIP-MoE as plugins: ``MoEUpcycle`` (MLPs -> sparse MoE) and ``MLPFineTune`` (the dense MLP stages)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from mmengine import dist
from torch import nn

from clipadapt.models import CLIP, TextOutput, TowerContext
from clipadapt.plugins import Plugin, PluginCompatibilityError
from clipadapt.registry import PLUGINS

from .layer import ROUTER_AUX_KEY, RouterRecord, SparseMoE, load_balancing_loss

__all__ = ["MLPFineTune", "MoEUpcycle", "mlp_module_names", "parameter_counts", "select_blocks"]

TOWERS = {"vision": "visual", "text": "text"}  # tower name in TowerContext -> attribute of CLIP
TRAINABLE_CHOICES = ("router", "experts", "all")
LayerSpec = int | Sequence[int] | None


def select_blocks(spec: LayerSpec, depth: int, tower: str, owner: str) -> list[int]:
    """Block indices of a tower: None = all, an int n = the last n, a list = those indices.

    Raises:
        PluginCompatibilityError: n larger than the tower, or an index outside it.
    """
    if spec is None:
        return list(range(depth))
    if isinstance(spec, int):
        if not 0 <= spec <= depth:
            raise PluginCompatibilityError(
                f"{owner} {tower}_layers={spec} must be in [0, {depth}]: the {tower} tower has {depth} blocks"
            )
        return list(range(depth - spec, depth))
    blocks = sorted({int(i) for i in spec})
    bad = [i for i in blocks if not 0 <= i < depth]
    if bad:
        raise PluginCompatibilityError(
            f"{owner} {tower}_layers {bad} are outside the {depth} blocks of the {tower} tower"
        )
    return blocks


def mlp_module_names(clip: CLIP, vision_layers: LayerSpec, text_layers: LayerSpec, owner: str) -> dict[str, list[int]]:
    """``{'vision': [block indices], 'text': [...]}`` chosen by the two layer specs."""
    return {
        tower: select_blocks(spec, getattr(clip, attr).transformer.layers, tower, owner)
        for (tower, attr), spec in zip(TOWERS.items(), (vision_layers, text_layers))
    }


def _mlp_name(tower: str, index: int) -> str:
    return f"{TOWERS[tower]}.transformer.resblocks.{index}.mlp"


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """``total`` parameters, and ``activated`` per token: all but the experts a token does not choose.

    A dense model activates everything; each :class:`SparseMoE` layer leaves ``E - k`` of its experts
    idle for any one token (the router counts as active).
    """
    total = sum(p.numel() for p in model.parameters())
    idle = 0
    for module in model.modules():
        if isinstance(module, SparseMoE):
            per_expert = sum(p.numel() for p in module.experts[0].parameters())
            idle += (module.num_experts - module.top_k) * per_expert
    return {"total": total, "activated": total - idle}


@PLUGINS.register_module()
class MoEUpcycle(Plugin):
    """Sparse upcycling of CLIP's MLPs into routed experts (CLIP-MoE, Zhang et al. 2024,
    https://arxiv.org/abs/2409.19291).

    The MLP of each chosen block becomes a :class:`SparseMoE`: ``num_experts`` copies of the MLP and a
    bias-free linear router, top-k routing with weights from the fp32 softmax renormalised over the k
    choices, no noise, no token dropping. Identical experts leave the model's outputs unchanged for
    any router. Diversified Multiplet Upcycling then overwrites expert ``j`` with the MLPs of the j-th
    fine-tuning stage (:func:`clipadapt_plugins.moe.load_stage_experts`, ``tools/dmu.py``).

    Text tokens after each text's end-of-text token are not routed and do not count in the
    balancing loss (the original routes them and counts them). ``losses`` adds ``loss_moe_balance``
    = ``balance_weight * sum_tower balance_tower_weights[tower] * L_bal(tower)``, each term divided by
    the world size when ``balance_world_size_scaling`` (:func:`load_balancing_loss`, tokens of all MoE
    layers of one tower output pooled). The defaults are the original's ``train_moe.py``:
    ``0.01 * (L_image + L_text / 2)``, each ``L`` divided by the world size.

    Args:
        num_experts: Experts per MoE layer (>= 2; 4 in the paper).
        top_k: Experts per token (2 in the paper).
        vision_layers: Blocks of the vision tower to upcycle: None = all (the original replaces the
            last 24 blocks: all of ViT-L/14), an int n = the last n, a list = those indices.
        text_layers: The same for the text tower.
        balance_weight: Weight of the load-balancing loss (0.01 in the paper); 0 disables it.
        balance_tower_weights: Weight of each tower's term inside it (the original: vision 1, text 1/2).
        balance_world_size_scaling: Divide each term by the world size, as the original does (with DDP's
            gradient averaging the balance gradient then shrinks as GPUs are added); False keeps the
            effective weight the same at any world size.
        expert_dropout: Dropout after each expert's activation while training (the original: 0.1).
        trainable: What trains: ``'router'`` (the routers only: DMU's last stage), ``'experts'``, or
            ``'all'`` (routers and experts: sparse upcycling trained end to end).
    """

    prefix = "moe"
    hook_towers = {"block": ("vision", "text")}

    def __init__(
        self,
        num_experts: int = 4,
        top_k: int = 2,
        vision_layers: LayerSpec = None,
        text_layers: LayerSpec = None,
        balance_weight: float = 0.01,
        trainable: str = "router",
        balance_tower_weights: dict[str, float] | None = None,
        balance_world_size_scaling: bool = True,
        expert_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if num_experts < 2:
            raise ValueError(f"MoEUpcycle needs num_experts >= 2 (one expert is the dense MLP), got {num_experts}")
        if not 1 <= top_k <= num_experts:
            raise ValueError(f"MoEUpcycle top_k={top_k} must be in [1, num_experts={num_experts}]")
        if balance_weight < 0:
            raise ValueError(f"MoEUpcycle balance_weight must be >= 0, got {balance_weight}")
        if trainable not in TRAINABLE_CHOICES:
            raise ValueError(f"MoEUpcycle trainable must be one of {TRAINABLE_CHOICES}, got {trainable!r}")
        tower_weights = {"vision": 1.0, "text": 0.5, **(balance_tower_weights or {})}
        if set(tower_weights) != set(TOWERS) or min(tower_weights.values()) < 0:
            raise ValueError(f"MoEUpcycle balance_tower_weights: >= 0 weights of {sorted(TOWERS)}, got {tower_weights}")
        if not 0 <= expert_dropout < 1:
            raise ValueError(f"MoEUpcycle expert_dropout must be in [0, 1), got {expert_dropout}")
        self.balance_tower_weights = tower_weights
        self.balance_world_size_scaling = balance_world_size_scaling
        self.expert_dropout = expert_dropout
        self.num_experts, self.top_k = num_experts, top_k
        self.vision_layers, self.text_layers = vision_layers, text_layers
        self.balance_weight, self.trainable = balance_weight, trainable
        # tower -> {block index: layer}; plain dicts, so the layers are not registered twice
        self._layers: dict[str, dict[int, SparseMoE]] = {"vision": {}, "text": {}}

    def attach(self, clip: CLIP) -> None:
        blocks = mlp_module_names(clip, self.vision_layers, self.text_layers, "MoEUpcycle")
        if not any(blocks.values()):
            raise PluginCompatibilityError("MoEUpcycle: vision_layers and text_layers select no block")
        for tower, indices in blocks.items():
            width = getattr(clip, TOWERS[tower]).width
            for index in indices:
                name = _mlp_name(tower, index)
                if name in clip.changed_modules:
                    raise PluginCompatibilityError(
                        f"MoEUpcycle cannot upcycle {name!r}: plugin {clip.changed_modules[name]!r} already replaced it"
                    )
                mlp = clip.get_submodule(name)
                layer = SparseMoE(mlp, width, self.num_experts, self.top_k, self.expert_dropout)
                layer = layer.to(clip.logit_scale.device)
                layer.experts.requires_grad_(self.trainable in ("experts", "all"))
                layer.gate.requires_grad_(self.trainable in ("router", "all"))
                self.replace_module(clip, name, layer)  # raises if another plugin replaced it already
                self._layers[tower][index] = layer

    @property
    def layers(self) -> dict[str, dict[int, SparseMoE]]:
        """``{'vision': {block index: SparseMoE}, 'text': {...}}``."""
        return self._layers

    def module_names(self) -> list[str]:
        """The names of the upcycled modules in the CLIP, vision first, in block order."""
        return [_mlp_name(tower, index) for tower, layers in self._layers.items() for index in layers]

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        layer = self._layers[context.tower].get(index)
        if layer is not None:
            mask = None
            if context.tower == "text" and context.eot_index is not None:
                positions = torch.arange(x.shape[1], device=x.device)
                mask = positions[None, :] <= context.eot_index.to(x.device)[:, None]  # [B, N]: up to EOT
            layer.set_routing(mask, context.aux.setdefault(ROUTER_AUX_KEY, []))
        return x

    def losses(self, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """``loss_moe_balance`` from the router records of the task's tower outputs (``*_output.aux``)."""
        if self.balance_weight == 0:
            return {}
        terms = []
        scale = 1.0 / dist.get_world_size() if self.balance_world_size_scaling else 1.0
        for value in outputs.values():
            records: list[RouterRecord] = (getattr(value, "aux", None) or {}).get(ROUTER_AUX_KEY) or []
            if records:
                logits = torch.cat([r.logits for r in records])
                indices = torch.cat([r.indices for r in records])
                tower = "text" if isinstance(value, TextOutput) else "vision"
                weight = self.balance_tower_weights[tower] * scale
                terms.append(weight * load_balancing_loss(logits, self.top_k, indices))
        return {"loss_moe_balance": self.balance_weight * sum(terms)} if terms else {}


@PLUGINS.register_module()
class MLPFineTune(Plugin):
    """Dense fine-tuning of the MLPs of chosen blocks: the MLP stages of CLIP-MoE's DMU, and its baseline.

    Nothing is replaced; the plugin only makes the MLP parameters of the chosen blocks trainable, so
    the adapted model is still an open_clip CLIP (``exportable``) and its adapter holds exactly the
    fine-tuned MLPs, which DMU turns into experts.

    Args:
        vision_layers: Vision blocks whose MLP trains: None = all, an int n = the last n, a list = indices.
        text_layers: The same for the text tower.
    """

    prefix = "mlp_finetune"
    exportable = True

    def __init__(self, vision_layers: LayerSpec = None, text_layers: LayerSpec = None) -> None:
        super().__init__()
        self.vision_layers, self.text_layers = vision_layers, text_layers

    def attach(self, clip: CLIP) -> None:
        blocks = mlp_module_names(clip, self.vision_layers, self.text_layers, "MLPFineTune")
        if not any(blocks.values()):
            raise PluginCompatibilityError("MLPFineTune: vision_layers and text_layers select no block")
        for tower, indices in blocks.items():
            for index in indices:
                clip.get_submodule(_mlp_name(tower, index)).requires_grad_(True)
