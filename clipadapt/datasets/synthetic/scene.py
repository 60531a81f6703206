"""Sampling single objects and multi-object scenes, and describing them in words.

A scene holds 2-4 distinct ``(colour, shape)`` objects placed with at most a small overlap. Its
language is produced from the sampled attributes only:

- short caption: ``"a red circle and a small blue star"``;
- long caption: several sentences giving every object's size, texture, colour, shape and position
  (``"in the top left"``) plus pairwise relations (left of, above, larger than); with 3-4 objects
  it usually exceeds CLIP's 77 tokens;
- region phrase per object: ``"small striped red circle"`` (size, texture, colour, shape; the
  texture word is always present so that a texture swap is a false phrase);
- hard negatives: the phrase with one attribute swapped (colour, shape, size or texture), all
  different from the positive, from each other and from the other objects' phrases.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from .draw import DrawnObject, jitter_colour
from .vocab import DOMAINS, SIZES, TEXTURES

__all__ = ["SceneObject", "hard_negatives", "long_caption", "phrase", "sample_scene", "sample_single", "short_caption"]

# Object extent (diameter) as a fraction of the image side.
SINGLE_SIZE_FRACTION = {"small": 0.36, "medium": 0.52, "large": 0.68}
SCENE_SIZE_FRACTION = {"small": 0.17, "medium": 0.24, "large": 0.31}
_NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
_ORDINALS = ("First", "Next", "Then", "Finally")
_TEXTURE_WORDS = {"plain": "a plain, solid surface", "striped": "stripes across it", "dotted": "a pattern of dots"}


@dataclass
class SceneObject:
    """An object of a scene: its attributes, where it is drawn, and its visible box."""

    colour: str
    shape: str
    size: str
    texture: str
    drawn: DrawnObject
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)

    @property
    def name(self) -> str:
        """``"<colour> <shape>"``: the class name."""
        return f"{self.colour} {self.shape}"


def _make(colour: str, shape: str, size: str, cx: float, cy: float, r: float, rng: np.random.Generator) -> SceneObject:
    texture = TEXTURES[int(rng.integers(len(TEXTURES)))]
    rotation = float(rng.uniform(-10.0, 10.0))
    drawn = DrawnObject(colour, shape, texture, cx, cy, r, rotation, jitter_colour(colour, rng))
    return SceneObject(colour, shape, size, texture, drawn)


def sample_single(
    colour: str, shape: str, image_size: int, rng: np.random.Generator, jitter: float | None = None
) -> SceneObject:
    """One object of a classification image: random size, texture and position, fully inside.

    Args:
        colour: Colour name.
        shape: Shape name.
        image_size: Side of the image in pixels.
        rng: Generator of every random choice.
        jitter: How far the object's centre may move from the image centre, as a fraction of the
            side (object-centric, like the photos of classification data sets); ``None`` places it
            anywhere it fits.
    """
    size = SIZES[int(rng.integers(len(SIZES)))]
    r = SINGLE_SIZE_FRACTION[size] * image_size / 2 * float(rng.uniform(0.92, 1.08))
    lo, hi = r + 1, image_size - r - 1
    if jitter is not None:
        centre, reach = image_size / 2, jitter * image_size
        lo, hi = max(lo, centre - reach), min(hi, centre + reach)
    cx, cy = rng.uniform(lo, hi, size=2)
    return _make(colour, shape, size, float(cx), float(cy), r, rng)


def sample_scene(
    pairs: list[tuple[str, str]], image_size: int, num_objects: int, rng: np.random.Generator
) -> list[SceneObject]:
    """Place ``num_objects`` distinct objects (from ``pairs``) with no or a small overlap.

    Each object is placed by rejection: a centre is accepted when its circle overlaps no earlier
    object's by more than 10% of the radii. An object that cannot be placed is shrunk to the next
    smaller size; one that still cannot be placed is dropped (never below one object).
    """
    chosen = rng.choice(len(pairs), size=num_objects, replace=False)
    placed: list[SceneObject] = []
    for idx in chosen:
        colour, shape = pairs[int(idx)]
        size_idx = int(rng.integers(len(SIZES)))
        while size_idx >= 0:
            r = SCENE_SIZE_FRACTION[SIZES[size_idx]] * image_size / 2
            for _ in range(60):
                cx, cy = rng.uniform(r + 1, image_size - r - 1, size=2)
                if all(math.hypot(cx - o.drawn.cx, cy - o.drawn.cy) >= 0.9 * (r + o.drawn.radius) for o in placed):
                    placed.append(_make(colour, shape, SIZES[size_idx], float(cx), float(cy), r, rng))
                    break
            else:
                size_idx -= 1
                continue
            break
    return placed


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def phrase(obj: SceneObject | tuple[str, str, str, str]) -> str:
    """``"<size> <texture> <colour> <shape>"``, e.g. ``"small striped red circle"``."""
    colour, shape, size, texture = (
        (obj.colour, obj.shape, obj.size, obj.texture) if isinstance(obj, SceneObject) else obj
    )
    return f"{size} {texture} {colour} {shape}"


def hard_negatives(
    obj: SceneObject,
    others: list[SceneObject],
    colours: list[str],
    shapes: list[str],
    count: int,
    rng: np.random.Generator,
) -> list[str]:
    """Phrases of ``obj`` with one attribute swapped; at least one colour and one shape swap when possible.

    Args:
        obj: The object (the positive phrase).
        others: The other objects of the scene; their phrases are never used as negatives.
        colours: Colour vocabulary for colour swaps.
        shapes: Shape vocabulary for shape swaps.
        count: How many negatives to return (fewer when fewer distinct swaps exist).
        rng: Generator.
    """
    attrs = (obj.colour, obj.shape, obj.size, obj.texture)
    forbidden = {phrase(obj)} | {phrase(o) for o in others}
    swaps: dict[str, list[str]] = {"colour": [], "shape": [], "size": [], "texture": []}
    for slot, (kind, vocab) in enumerate(zip(swaps, (colours, shapes, SIZES, TEXTURES), strict=True)):
        for value in vocab:
            if value == attrs[slot]:
                continue
            candidate = list(attrs)
            candidate[slot] = value
            text = phrase((candidate[0], candidate[1], candidate[2], candidate[3]))
            if text not in forbidden:
                swaps[kind].append(text)
    out: list[str] = []
    for kind in ("colour", "shape"):  # the attributes the class depends on come first
        if swaps[kind] and len(out) < count:
            out.append(swaps[kind].pop(int(rng.integers(len(swaps[kind])))))
    # Then round-robin over the attributes in a random order, so that no attribute dominates.
    kinds = [kind for kind in swaps if swaps[kind]]
    kinds = [kinds[int(i)] for i in rng.permutation(len(kinds))]
    while len(out) < count and kinds:
        for kind in list(kinds):
            if len(out) == count:
                break
            out.append(swaps[kind].pop(int(rng.integers(len(swaps[kind])))))
            if not swaps[kind]:
                kinds.remove(kind)
    return out


def short_caption(objects: list[SceneObject], rng: np.random.Generator) -> str:
    """``"a red circle and a small blue star"``: every object, sometimes with its size."""
    parts = []
    for obj in objects:
        words = f"{obj.size} {obj.colour} {obj.shape}" if rng.random() < 0.3 else obj.name
        parts.append(f"{_article(words)} {words}")
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def _position(obj: SceneObject, image_size: int) -> str:
    col = min(2, int(3 * obj.drawn.cx / image_size))
    row = min(2, int(3 * obj.drawn.cy / image_size))
    rows, cols = ("top", "middle", "bottom"), ("left", "centre", "right")
    if row == 1 and col == 1:
        return "in the centre"
    if row == 1:
        return f"on the {cols[col]}"
    if col == 1:
        return f"at the {rows[row]}"
    return f"in the {rows[row]} {cols[col]}"


def _relation(a: SceneObject, b: SceneObject) -> str:
    dx, dy = a.drawn.cx - b.drawn.cx, a.drawn.cy - b.drawn.cy
    if abs(dx) >= abs(dy):
        return "to the left of" if dx < 0 else "to the right of"
    return "above" if dy < 0 else "below"


def long_caption(objects: list[SceneObject], domain: str, image_size: int, rng: np.random.Generator) -> str:
    """Several sentences describing every object (size, texture, position) and their relations."""
    n = len(objects)
    noun = "object" if n == 1 else "objects"
    sentences = [f"The image shows {_NUMBER_WORDS.get(n, str(n))} {noun} on {DOMAINS[domain]}."]
    for i, obj in enumerate(objects):
        where = _position(obj, image_size)
        template = int(rng.integers(3 if n > 1 else 2))  # no "First, ..." for a single object
        if template == 0:
            text = f"{where[0].upper()}{where[1:]} there is a {obj.size} {obj.name} with {_TEXTURE_WORDS[obj.texture]}."
        elif template == 1:
            text = f"A {obj.size} {obj.texture} {obj.name} sits {where}."
        else:
            ordinal = _ORDINALS[min(i, len(_ORDINALS) - 2)] if i < n - 1 else _ORDINALS[-1]
            texture = _TEXTURE_WORDS[obj.texture]
            text = f"{ordinal}, {_article(obj.size)} {obj.size} {obj.name} with {texture} appears {where}."
        sentences.append(text)
    for a, b in itertools.pairwise(objects):
        text = f"The {a.name} is {_relation(a, b)} the {b.name}"
        ia, ib = SIZES.index(a.size), SIZES.index(b.size)
        if ia != ib:
            text += f" and {'larger' if ia > ib else 'smaller'} than it"
        sentences.append(text + ".")
    return " ".join(sentences)
