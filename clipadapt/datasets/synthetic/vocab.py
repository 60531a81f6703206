"""The vocabulary of the synthetic world and the parameters that generate it.

Every attribute the world can draw is named here: shapes, colours (with their RGB), sizes,
textures and the background domains. :class:`WorldConfig` holds every generation parameter; it is
what the manifest records, so two worlds with equal configs are byte-identical.
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "COLOURS",
    "DEFAULT_COLOURS",
    "DEFAULT_DOMAINS",
    "DEFAULT_SCENE_DOMAINS",
    "DEFAULT_SHAPES",
    "DOMAINS",
    "SHAPES",
    "SIZES",
    "TEXTURES",
    "WorldConfig",
    "split_base_novel",
]

# Shapes in a fixed order: detection category ids and the base/novel split follow the order of the
# configured shapes, so keep the defaults stable.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star", "cross", "ring", "diamond", "hexagon", "pentagon")
DEFAULT_SHAPES: tuple[str, ...] = SHAPES[:8]

# Saturated colours that stay visible on every background domain; the extra ones are available by
# name (white and black disappear on the plain and dark domains, so they are not defaults).
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "green": (35, 165, 55),
    "blue": (35, 75, 220),
    "yellow": (240, 205, 30),
    "orange": (245, 135, 25),
    "purple": (135, 55, 185),
    "pink": (240, 115, 180),
    "cyan": (35, 200, 210),
    "brown": (135, 85, 40),
    "grey": (128, 128, 128),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}
DEFAULT_COLOURS: tuple[str, ...] = ("red", "green", "blue", "yellow", "orange", "purple", "pink", "cyan")

SIZES: tuple[str, ...] = ("small", "medium", "large")
TEXTURES: tuple[str, ...] = ("plain", "striped", "dotted")

# Background domains with the words the long captions use for them.
DOMAINS: dict[str, str] = {
    "plain": "a plain light background",
    "noise": "a noisy grey background",
    "gradient": "a smooth colour gradient",
    "dark": "a dark background",
    "checker": "a grey checkerboard background",
    "warm": "a light background under warm orange light",
}
DEFAULT_DOMAINS: tuple[str, ...] = ("plain", "noise", "gradient", "dark", "warm")
# Scenes (the image-text, region and detection data) leave out "dark" so that a CLIP pretrained on
# the scenes meets "dark" classification images as an unseen domain.
DEFAULT_SCENE_DOMAINS: tuple[str, ...] = ("plain", "noise", "gradient")


def split_base_novel(count: int, novel_fraction: float) -> list[str]:
    """``"base"``/``"novel"`` for ``count`` categories in order: the last ``novel_fraction`` are novel.

    At least one category stays base; a single category is base.
    """
    n_novel = min(count - 1, round(count * novel_fraction)) if count > 1 else 0
    return ["novel" if i >= count - n_novel else "base" for i in range(count)]


def _check_names(kind: str, names: tuple[str, ...], known: tuple[str, ...] | dict) -> None:
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ValueError(f"unknown {kind} {unknown}; known {kind}: {list(known)}")
    if len(set(names)) != len(names):
        raise ValueError(f"duplicate {kind} in {list(names)}")
    if not names:
        raise ValueError(f"at least one {kind.removesuffix('s')} is required")


@dataclass(frozen=True)
class WorldConfig:
    """Every parameter of a synthetic world; equal configs give byte-identical files.

    Args:
        seed: Seed of every random choice (numpy ``SeedSequence`` streams derived from it).
        image_size: Side in pixels of the single-object classification images.
        scene_size: Side in pixels of the multi-object scene images.
        colours: Colour names (keys of ``COLOURS``).
        shapes: Shape names (from ``SHAPES``), in the order that sets detection category ids.
        classes: Explicit class names ``"<colour> <shape>"``; ``None`` = every colour x shape pair.
            Scenes draw their objects from the same classes.
        domains: Background domains of the classification images (one split file each).
        per_class_train: Training images per class and domain.
        per_class_val: Validation images per class and domain.
        per_class_test: Test images per class and domain.
        object_jitter: How far a classification image's object may sit from the image centre, as a
            fraction of the side; ``None`` places it anywhere. Object-centric images (the default)
            let the tiny CLIP learn shape within minutes; scenes place their objects anywhere.
        scene_domains: Background domains of the scenes.
        scenes_train: Number of training scenes.
        scenes_val: Number of validation scenes.
        scenes_test: Number of test scenes.
        min_objects: Fewest objects in a scene.
        max_objects: Most objects in a scene.
        min_negatives: Fewest attribute-swapped hard negatives per region phrase.
        max_negatives: Most hard negatives per region phrase.
        novel_fraction: Fraction of the detection categories (the last ones) that are novel.
    """

    seed: int = 0
    image_size: int = 64
    scene_size: int = 96
    colours: tuple[str, ...] = DEFAULT_COLOURS
    shapes: tuple[str, ...] = DEFAULT_SHAPES
    classes: tuple[str, ...] | None = None
    domains: tuple[str, ...] = DEFAULT_DOMAINS
    per_class_train: int = 16
    per_class_val: int = 4
    per_class_test: int = 10
    object_jitter: float | None = 0.0625
    scene_domains: tuple[str, ...] = DEFAULT_SCENE_DOMAINS
    scenes_train: int = 1600
    scenes_val: int = 200
    scenes_test: int = 200
    min_objects: int = 2
    max_objects: int = 4
    min_negatives: int = 3
    max_negatives: int = 5
    novel_fraction: float = 1 / 3
    _pairs: tuple[tuple[str, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("colours", "shapes", "domains", "scene_domains", "classes"):
            value = getattr(self, name)
            if value is not None:
                if isinstance(value, str):
                    raise TypeError(f"WorldConfig.{name} must be a sequence of names, not the string {value!r}")
                object.__setattr__(self, name, tuple(value))
        _check_names("colours", self.colours, COLOURS)
        _check_names("shapes", self.shapes, SHAPES)
        _check_names("domains", self.domains, DOMAINS)
        if self.scenes_train + self.scenes_val + self.scenes_test > 0:
            _check_names("scene_domains", self.scene_domains, DOMAINS)
        if self.classes is None:
            pairs = tuple((c, s) for c in self.colours for s in self.shapes)
        else:
            pairs = tuple(self._parse_class(name) for name in self.classes)
            if len(set(pairs)) != len(pairs):
                raise ValueError(f"duplicate classes in {list(self.classes)}")
        object.__setattr__(self, "_pairs", pairs)
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if self.image_size < 16 or self.scene_size < 32:
            raise ValueError(f"image_size must be >= 16 and scene_size >= 32, got {self.image_size}, {self.scene_size}")
        counts = ("per_class_train", "per_class_val", "per_class_test", "scenes_train", "scenes_val", "scenes_test")
        for name in counts:
            if getattr(self, name) < 0:
                raise ValueError(f"WorldConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.object_jitter is not None and not 0.0 <= self.object_jitter <= 0.5:
            raise ValueError(f"object_jitter must be None or in [0, 0.5], got {self.object_jitter}")
        if not 1 <= self.min_objects <= self.max_objects <= 6:
            raise ValueError(f"need 1 <= min_objects <= max_objects <= 6, got {self.min_objects}, {self.max_objects}")
        if self.scenes_train + self.scenes_val + self.scenes_test > 0 and self.max_objects > len(pairs):
            raise ValueError(f"max_objects={self.max_objects} exceeds the {len(pairs)} classes (objects are distinct)")
        if not 1 <= self.min_negatives <= self.max_negatives:
            raise ValueError(
                f"need 1 <= min_negatives <= max_negatives, got {self.min_negatives}, {self.max_negatives}"
            )
        if not 0.0 <= self.novel_fraction < 1.0:
            raise ValueError(f"novel_fraction must be in [0, 1), got {self.novel_fraction}")

    def _parse_class(self, name: str) -> tuple[str, str]:
        parts = name.split()
        if len(parts) != 2 or parts[0] not in COLOURS or parts[1] not in SHAPES:
            raise ValueError(
                f"class {name!r} is not '<colour> <shape>' with colour in {list(COLOURS)} and shape in {SHAPES}"
            )
        return parts[0], parts[1]

    @property
    def class_pairs(self) -> tuple[tuple[str, str], ...]:
        """The ``(colour, shape)`` pairs of the classes, in configuration order."""
        return self._pairs

    @functools.cached_property
    def class_names(self) -> list[str]:
        """Class names in label order: the index in this list is the label.

        Base classes come first, then novel ones (CoOp's base-to-novel split takes the first half of the
        labels), each half sorted by name. A class is base when the positions of its colour and of its
        shape in the sorted vocabularies have an even sum: a checkerboard over colour x shape. So every
        novel class is an unseen combination of a colour and a shape that base classes show, and a
        correction learned on the base classes can carry over to the novel ones.
        """
        colours = sorted({c for c, _ in self._pairs})
        shapes = sorted({s for _, s in self._pairs})
        names = sorted(self._pairs, key=lambda p: ((colours.index(p[0]) + shapes.index(p[1])) % 2, p))
        return [f"{c} {s}" for c, s in names]

    @functools.cached_property
    def scene_colours(self) -> list[str]:
        """Colours used by the classes (the colour vocabulary of the scenes and hard negatives)."""
        return [c for c in COLOURS if any(p[0] == c for p in self._pairs)]

    @functools.cached_property
    def detection_categories(self) -> list[tuple[str, str]]:
        """``(shape, "base"|"novel")`` in category-id order; the last ``novel_fraction`` are novel."""
        shapes = [s for s in self.shapes if any(p[1] == s for p in self._pairs)]
        shapes += [s for s in SHAPES if s not in shapes and any(p[1] == s for p in self._pairs)]
        return list(zip(shapes, split_base_novel(len(shapes), self.novel_fraction), strict=True))

    def to_dict(self) -> dict[str, Any]:
        """The parameters as JSON-ready data (tuples become lists); the manifest stores this."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            if not f.init:
                continue
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        out["novel_fraction"] = float(self.novel_fraction)
        return out
