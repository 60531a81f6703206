"""clipadapt: prompt-learning and fine-grained adaptation plugins for CLIP."""

from .adapter import adapter_from_checkpoint, load_adapter, read_adapter, save_adapter
from .factory import create_model, get_tokenizer, open_clip_model_config, to_open_clip_state_dict
from .models.clip import CLIP
from .models.config import list_models
from .plugins import Plugin, PluginCompatibilityError, registered_plugins
from .registry import PLUGINS

__version__ = "0.1.0"

__all__ = [
    "CLIP",
    "PLUGINS",
    "Plugin",
    "PluginCompatibilityError",
    "adapter_from_checkpoint",
    "create_model",
    "get_tokenizer",
    "list_models",
    "load_adapter",
    "open_clip_model_config",
    "read_adapter",
    "registered_plugins",
    "save_adapter",
    "to_open_clip_state_dict",
]
