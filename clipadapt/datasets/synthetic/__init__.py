"""A procedural world of coloured shapes on several backgrounds, written to disk in real formats.

See :mod:`clipadapt.datasets.synthetic.writers` for the on-disk layout and
:class:`~clipadapt.datasets.synthetic.vocab.WorldConfig` for every parameter.
"""

from .vocab import COLOURS, DEFAULT_DOMAINS, DEFAULT_SCENE_DOMAINS, DOMAINS, SHAPES, SIZES, TEXTURES, WorldConfig
from .writers import FORMAT_VERSION, MANIFEST, ensure_synthetic_world, generate_synthetic_world, load_manifest

__all__ = [
    "COLOURS",
    "DEFAULT_DOMAINS",
    "DEFAULT_SCENE_DOMAINS",
    "DOMAINS",
    "FORMAT_VERSION",
    "MANIFEST",
    "SHAPES",
    "SIZES",
    "TEXTURES",
    "WorldConfig",
    "ensure_synthetic_world",
    "generate_synthetic_world",
    "load_manifest",
]
