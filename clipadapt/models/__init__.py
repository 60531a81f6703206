"""The base CLIP: fused attention, the hooked block loop, the towers, configs and weights."""

from .attention import FusedAttention, reference_attention
from .clip import CLIP
from .config import CLIPConfig, TextConfig, UnsupportedModelError, VisionConfig, list_models, load_model_config
from .hooks import ClipPlugin, PluginCompatibilityError, TowerContext
from .towers import TextOutput, TextTower, VisionOutput, VisionTower
from .transformer import ResidualBlock, Transformer

__all__ = [
    "CLIP",
    "CLIPConfig",
    "ClipPlugin",
    "FusedAttention",
    "PluginCompatibilityError",
    "ResidualBlock",
    "TextConfig",
    "TextOutput",
    "TextTower",
    "TowerContext",
    "Transformer",
    "UnsupportedModelError",
    "VisionConfig",
    "VisionOutput",
    "VisionTower",
    "list_models",
    "load_model_config",
    "reference_attention",
]
