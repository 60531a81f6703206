"""The plugin contract.

A plugin is an ``nn.Module`` registered in ``PLUGINS``. A config lists plugins; ``create_model``
attaches them to the base CLIP in list order. A plugin can do four things, all optional:

1. ``attach(clip)``: change the architecture once (stretch an embedding, replace modules with
   :meth:`replace_module`, register its parameters) and decide what trains. Incompatibilities raise
   :class:`PluginCompatibilityError` at build time.
2. Token hooks: ``embed_hook(x, ctx)`` after embedding and ``block_hook(index, x, ctx)`` before each
   block, for the towers named in ``hook_towers``. A hook whose tokens depend on per-call data (CoCoOp:
   the image features, for the text prompts) reads it from ``ctx.conditioned(name, owner)`` and declares
   the names in ``conditions``; the task passes it with ``encode_text(tokens, condition={...})``. Nothing
   per call is kept on the plugin, so encodings are reentrant. A task that cannot provide a declared
   condition refuses the plugin at build time (:func:`check_conditions`).
3. ``losses(outputs)``: extra loss terms computed from a task's forward outputs.
4. Its own state: everything under ``plugins.<prefix>.``, every trainable parameter, and every base
   module it replaced or changed goes into the adapter checkpoint (:mod:`clipadapt.adapter`).

Third parties write plugins the same way: subclass :class:`Plugin`, decorate with
``@PLUGINS.register_module()``, and expose the module through the ``clipadapt.plugins`` entry point
group (or MMEngine's ``custom_imports``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from ..models.clip import CLIP

from ..models.hooks import PluginCompatibilityError, TowerContext

__all__ = ["Plugin", "PluginCompatibilityError", "check_conditions"]


class Plugin(nn.Module):
    """Base class of every plugin.

    Attributes:
        prefix: Unique name; the plugin lives at ``clip.plugins[prefix]`` and its parameters are named
            ``plugins.<prefix>.*``. Defaults to the lower-cased class name.
        hook_towers: Which towers the token hooks act on, per hook kind, e.g.
            ``{"embed": ("vision",), "block": ("vision", "text")}``. Hooks not listed are never called.
        text_template: The template class prompts must use (``"a photo of a {}."``), for plugins
            whose text hooks assume a token layout (CoOp, MaPLe); None leaves the task's templates.
        exportable: The adapted model is still an open_clip CLIP (the plugin only changes base
            weights or shapes); ``clipadapt.to_open_clip_state_dict`` refuses the others.
        conditions: Per-call data the hooks read, per tower: ``{"text": ("image_features",)}`` says the
            text features depend on each image (CoCoOp). Tasks check it against what they provide.
    """

    prefix: ClassVar[str] = ""
    text_template: str | None = None
    hook_towers: ClassVar[dict[str, tuple[str, ...]]] = {}
    exportable: ClassVar[bool] = False
    conditions: ClassVar[dict[str, tuple[str, ...]]] = {}

    def __init__(self) -> None:
        super().__init__()
        self._clip_ref: list[CLIP] = []  # a list keeps the CLIP out of this module's children
        self._build_cfg: dict[str, Any] = {"type": type(self).__name__}  # set by build_plugin

    def bind(self, clip: CLIP | None) -> None:
        """Called by ``CLIP.attach``: remember the CLIP this plugin is attached to (None: forget it)."""
        self._clip_ref[:] = [] if clip is None else [clip]

    @classmethod
    def plugin_prefix(cls) -> str:
        return cls.prefix or cls.__name__.lower()

    @property
    def clip(self) -> CLIP:
        if not self._clip_ref:
            raise RuntimeError(f"plugin {type(self).__name__} is not attached to a CLIP")
        return self._clip_ref[0]

    def hooked_towers(self, kind: str) -> tuple[str, ...]:
        return tuple(self.hook_towers.get(kind, ()))

    # 1. architecture --------------------------------------------------------------------------
    def attach(self, clip: CLIP) -> None:
        """Change the architecture of ``clip`` and set ``requires_grad`` of what trains.

        Called once, after the base weights are loaded, with the plugin already registered under
        ``clip.plugins``. The base CLIP is frozen before the first plugin attaches; the plugin's own
        parameters train unless ``attach`` freezes them.
        """

    def replace_module(self, clip: CLIP, name: str, new: nn.Module) -> nn.Module:
        """Replace the submodule ``name`` of ``clip`` and record it as this plugin's change.

        Raises:
            PluginCompatibilityError: no such module, or another plugin already replaced it.
        """
        return clip.replace_module(self, name, new)

    # 2. token hooks ---------------------------------------------------------------------------
    def embed_hook(self, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        """Rewrite the embedded tokens [B, N, C] of a tower; called for towers in ``hook_towers['embed']``.

        Vision: after patch, CLS and positional embedding, before ``ln_pre``. Text: token embeddings,
        before the positional embedding is added.
        """
        return x

    def block_hook(self, index: int, x: torch.Tensor, context: TowerContext) -> torch.Tensor:
        """Rewrite the tokens [B, N, C] before block ``index``; for towers in ``hook_towers['block']``."""
        return x

    # 3. losses --------------------------------------------------------------------------------
    def losses(self, outputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Extra loss terms from a task's forward outputs; names should start with ``loss_``."""
        return {}

    # 4. state ---------------------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        """The config dict that rebuilds this plugin (``type`` plus constructor arguments), as plain Python.

        Nested config values arrive as MMEngine ``ConfigDict``s; they become ``dict``s here, because
        checkpoints store this config and ``torch.load(weights_only=True)`` refuses unknown classes.
        """
        return _plain(dict(self._build_cfg))


def check_conditions(plugins: Mapping[str, Plugin], provided: Mapping[str, tuple[str, ...]], task: str) -> None:
    """Raise unless ``task`` provides every per-call condition that ``plugins`` declare.

    Args:
        plugins: The attached plugins by prefix (``clip.plugins``).
        provided: What the task passes, per tower: ``{"text": ("image_features",)}``.
        task: The task's name, for the message.

    Raises:
        PluginCompatibilityError: naming the plugin, the task, and the missing conditions.
    """
    for prefix, plugin in plugins.items():
        for tower, names in plugin.conditions.items():
            missing = [n for n in names if n not in provided.get(tower, ())]
            if missing:
                offered = {t: list(v) for t, v in provided.items() if v} or "nothing"
                raise PluginCompatibilityError(
                    f"plugin {type(plugin).__name__} ({prefix!r}) needs the per-call condition(s) {missing} in the "
                    f"{tower} tower, which task {task} does not provide (it provides {offered}); use a task that "
                    "passes them, such as PromptClassifier for 'image_features' to the text tower"
                )


def _plain(value: Any) -> Any:
    """``value`` with every mapping a ``dict`` and every list or tuple a ``list``, recursively."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value
