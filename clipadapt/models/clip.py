"""CLIP: the two towers, the logit scale, and the attached plugins."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .config import CLIPConfig
from .hooks import ClipPlugin, PluginCompatibilityError, hooks_of
from .towers import TextOutput, TextTower, VisionOutput, VisionTower

__all__ = ["CLIP"]


class CLIP(nn.Module):
    """A ViT CLIP as open_clip describes it, running on :class:`FusedAttention`.

    ``encode_image`` / ``encode_text`` behave like open_clip's. Plugins live in ``self.plugins`` under
    their prefixes and act through the towers' hook points.

    Args:
        cfg: The validated model config (:func:`clipadapt.models.config.load_model_config`).
    """

    def __init__(self, cfg: CLIPConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.visual = VisionTower(cfg.vision, cfg.embed_dim, cfg.quick_gelu)
        self.text = TextTower(cfg.text, cfg.embed_dim, cfg.quick_gelu)
        self.logit_scale = nn.Parameter(torch.tensor(cfg.init_logit_scale))
        # prefix -> attached plugin (a ClipPlugin). Typed Any: torch's ModuleDict is not generic, and callers
        # above models/ use the full clipadapt.plugins.Plugin API (losses, config) that this module cannot name.
        self.plugins: Any = nn.ModuleDict()
        self.base_weights: dict[str, Any] | None = None  # {'path', 'sha256'} once pretrained weights load
        self.changed_modules: dict[str, str] = {}  # module name -> prefix of the plugin that replaced it

    # ------------------------------------------------------------------------------ properties
    @property
    def context_length(self) -> int:
        return self.text.context_length

    @property
    def image_size(self) -> int:
        return self.cfg.vision.image_size

    @property
    def embed_dim(self) -> int:
        return self.cfg.embed_dim

    # ---------------------------------------------------------------------------------- encode
    # Per-call conditioning: ``condition`` maps names to tensors with one row per input (image or text).
    # It reaches the plugins' hooks through this call's TowerContext only (see clipadapt.models.towers).
    def forward_image(
        self, images: torch.Tensor, output_tokens: bool = False, condition: Mapping[str, torch.Tensor] | None = None
    ) -> VisionOutput:
        """Images [B, 3, H, W] -> pooled features, and patch tokens on request."""
        return self.visual(images, output_tokens=output_tokens, condition=condition)

    def forward_text(
        self, text: torch.Tensor, output_tokens: bool = False, condition: Mapping[str, torch.Tensor] | None = None
    ) -> TextOutput:
        """Token ids [B, L] -> pooled features, and per-token features on request."""
        return self.text(text, output_tokens=output_tokens, condition=condition)

    def encode_image(
        self, images: torch.Tensor, normalize: bool = False, condition: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        features = self.visual(images, condition=condition).pooled
        return F.normalize(features, dim=-1) if normalize else features

    def encode_text(
        self, text: torch.Tensor, normalize: bool = False, condition: Mapping[str, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """Token ids [B, L] -> features [B, D]; ``condition`` ({name: [B, ...]}) goes to this call's hooks only."""
        features = self.text(text, condition=condition).pooled
        return F.normalize(features, dim=-1) if normalize else features

    def required_conditions(self) -> dict[str, dict[str, tuple[str, ...]]]:
        """``{plugin prefix: {tower: condition names}}`` of the attached plugins that need per-call data."""
        return {prefix: dict(p.conditions) for prefix, p in self.plugins.items() if p.conditions}

    def forward(self, image: torch.Tensor | None = None, text: torch.Tensor | None = None) -> dict[str, Any]:
        """open_clip's ``output_dict`` form: normalised features and the logit scale."""
        return {
            "image_features": self.encode_image(image, normalize=True) if image is not None else None,
            "text_features": self.encode_text(text, normalize=True) if text is not None else None,
            "logit_scale": self.logit_scale.exp(),
        }

    def class_prompt_templates(self, default: Sequence[str]) -> list[str]:
        """The templates class prompts must use: the attached plugins' (they must agree), else ``default``."""
        required = {p.text_template for p in self.plugins.values() if p.text_template is not None}
        if len(required) > 1:
            raise ValueError(f"attached plugins require different class prompt templates: {sorted(required)}")
        return list(required) if required else list(default)

    @contextlib.contextmanager
    def plugins_disabled(self) -> Iterator[None]:
        """Run the base CLIP without any token hook (frozen zero-shot features for regularisers)."""
        saved = (self.visual.embed_hooks, self.visual.block_hooks, self.text.embed_hooks, self.text.block_hooks)
        self.visual.embed_hooks, self.visual.block_hooks, self.text.embed_hooks, self.text.block_hooks = [], [], [], []
        try:
            yield
        finally:
            self.visual.embed_hooks, self.visual.block_hooks, self.text.embed_hooks, self.text.block_hooks = saved

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        self.visual.transformer.grad_checkpointing = enable
        self.text.transformer.grad_checkpointing = enable

    # --------------------------------------------------------------------------------- plugins
    def attach(self, plugin: ClipPlugin) -> None:
        """Register ``plugin`` under its prefix, let it change the model, then refresh the hooks."""
        prefix = plugin.plugin_prefix()
        if prefix in self.plugins:
            raise PluginCompatibilityError(
                f"a plugin with prefix {prefix!r} ({type(self.plugins[prefix]).__name__}) is already attached; "
                "a plugin can be attached once"
            )
        self.plugins[prefix] = plugin
        plugin.bind(self)
        try:
            plugin.attach(self)
        except Exception:
            del self.plugins[prefix]
            plugin.bind(None)
            raise
        self.refresh_hooks()

    def refresh_hooks(self) -> None:
        plugins = list(self.plugins.values())
        self.visual.embed_hooks, self.visual.block_hooks = hooks_of(plugins, "vision")
        self.text.embed_hooks, self.text.block_hooks = hooks_of(plugins, "text")

    def replace_module(self, plugin: ClipPlugin, name: str, new: nn.Module) -> nn.Module:
        """Swap the submodule ``name`` for ``new``, recording which plugin changed it."""
        prefix = plugin.plugin_prefix()
        if name.startswith("plugins."):
            raise PluginCompatibilityError(f"plugin {prefix!r} cannot replace another plugin's module {name!r}")
        if name in self.changed_modules:
            raise PluginCompatibilityError(
                f"plugin {prefix!r} cannot replace {name!r}: plugin {self.changed_modules[name]!r} already replaced it"
            )
        parent_name, _, child = name.rpartition(".")
        try:
            parent = self.get_submodule(parent_name) if parent_name else self
            old = getattr(parent, child)
        except AttributeError as err:
            raise PluginCompatibilityError(f"plugin {prefix!r} cannot replace {name!r}: no such module") from err
        if not isinstance(old, nn.Module):
            raise PluginCompatibilityError(f"plugin {prefix!r} cannot replace {name!r}: it is not a module")
        setattr(parent, child, new)
        self.changed_modules[name] = prefix
        return old
