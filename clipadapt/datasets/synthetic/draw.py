"""Drawing the synthetic world with PIL: backgrounds (domains), shape masks, textures.

Objects are drawn at ``SUPERSAMPLE`` times the output resolution and the image is reduced with a
box filter, which anti-aliases edges at a fraction of the cost of drawing each shape smoothly.
All randomness comes from the ``numpy.random.Generator`` passed in, so a drawing is a pure
function of its generator's seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

from .vocab import COLOURS

__all__ = ["SUPERSAMPLE", "DrawnObject", "draw_background", "render"]

SUPERSAMPLE = 3
# Alpha (0-255) above which a pixel of the reduced mask belongs to the object's box.
_BOX_ALPHA = 96


@dataclass
class DrawnObject:
    """One object to draw, in output pixels.

    Args:
        colour: Colour name.
        shape: Shape name.
        texture: Texture name.
        cx: Centre x.
        cy: Centre y.
        radius: Half of the object's extent.
        rotation: Rotation in degrees (a small jitter; a square stays a square).
        rgb: The object's colour after a per-instance jitter.
    """

    colour: str
    shape: str
    texture: str
    cx: float
    cy: float
    radius: float
    rotation: float
    rgb: tuple[int, int, int]


def jitter_colour(name: str, rng: np.random.Generator, amount: int = 14) -> tuple[int, int, int]:
    """The named colour with a small per-channel jitter (instances of a colour are not identical)."""
    base = np.array(COLOURS[name], dtype=np.int64)
    rgb = np.clip(base + rng.integers(-amount, amount + 1, size=3), 0, 255)
    return int(rgb[0]), int(rgb[1]), int(rgb[2])


# Domains lit by a coloured light: the cast multiplies every pixel, the objects' included, so the colours
# the world names look different there (yellow turns orange, blue greys). A CLIP that never saw the light
# misreads colours; a few labelled images of the domain are enough to learn the shift.
LIGHT_CASTS: dict[str, tuple[float, float, float]] = {"warm": (1.0, 0.74, 0.46)}


def apply_light(domain: str, image: Image.Image) -> Image.Image:
    """The image under the domain's light (:data:`LIGHT_CASTS`); unchanged for the other domains."""
    cast = LIGHT_CASTS.get(domain)
    if cast is None:
        return image
    pixels = np.asarray(image, dtype=np.float64) * np.asarray(cast)
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def draw_background(domain: str, size: int, rng: np.random.Generator) -> np.ndarray:
    """A background of one visual domain as a uint8 ``[size, size, 3]`` array (before its light)."""
    if domain in ("plain", "warm"):
        tone = rng.integers(200, 236) + rng.integers(-8, 9, size=3)
        return np.broadcast_to(np.clip(tone, 0, 255).astype(np.uint8), (size, size, 3)).copy()
    if domain == "dark":
        tone = rng.integers(12, 46) + rng.integers(-6, 7, size=3)
        return np.broadcast_to(np.clip(tone, 0, 255).astype(np.uint8), (size, size, 3)).copy()
    if domain == "noise":
        base = rng.integers(90, 161) + rng.integers(-10, 11, size=3)
        grain = rng.normal(0.0, rng.uniform(22.0, 40.0), size=(size, size, 1))
        tint = rng.normal(0.0, 6.0, size=(size, size, 3))
        return np.clip(base + grain + tint, 0, 255).astype(np.uint8)
    if domain == "gradient":
        c0 = rng.integers(50, 211, size=3).astype(np.float64)
        c1 = rng.integers(50, 211, size=3).astype(np.float64)
        angle = rng.uniform(0.0, 2 * math.pi)
        ys, xs = np.mgrid[0:size, 0:size] / max(size - 1, 1)
        t = (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle)
        t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
        return np.clip(c0 + (c1 - c0) * t[..., None], 0, 255).astype(np.uint8)
    if domain == "checker":
        cell = int(rng.integers(max(2, size // 16), max(3, size // 6) + 1))
        light, dark = rng.integers(150, 200), rng.integers(90, 140)
        ys, xs = np.mgrid[0:size, 0:size] // cell
        grey = np.where((xs + ys) % 2 == 0, light, dark).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    raise ValueError(f"unknown domain {domain!r}")


def _polygon(shape: str, cx: float, cy: float, r: float, rotation: float) -> list[tuple[float, float]]:
    """Vertices of a polygonal shape centred at ``(cx, cy)`` that spans about ``2r`` pixels."""
    if shape == "square":
        pts = [(-0.88, -0.88), (0.88, -0.88), (0.88, 0.88), (-0.88, 0.88)]
    elif shape == "diamond":
        pts = [(0.0, -1.0), (0.72, 0.0), (0.0, 1.0), (-0.72, 0.0)]
    elif shape == "triangle":
        pts = [(math.cos(a), math.sin(a) + 0.2) for a in (-math.pi / 2, math.pi / 6, 5 * math.pi / 6)]
    elif shape in ("hexagon", "pentagon"):
        n = 6 if shape == "hexagon" else 5
        pts = [
            (math.cos(-math.pi / 2 + 2 * math.pi * k / n), math.sin(-math.pi / 2 + 2 * math.pi * k / n))
            for k in range(n)
        ]
    elif shape == "star":
        pts = []
        for k in range(10):
            rad = 1.0 if k % 2 == 0 else 0.45
            a = -math.pi / 2 + math.pi * k / 5
            pts.append((rad * math.cos(a), rad * math.sin(a) + 0.05))
    elif shape == "cross":
        w = 0.32
        pts = [
            (-w, -1),
            (w, -1),
            (w, -w),
            (1, -w),
            (1, w),
            (w, w),
            (w, 1),
            (-w, 1),
            (-w, w),
            (-1, w),
            (-1, -w),
            (-w, -w),
        ]
    else:
        raise ValueError(f"unknown polygonal shape {shape!r}")
    cos, sin = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    return [(cx + r * (x * cos - y * sin), cy + r * (x * sin + y * cos)) for x, y in pts]


def _draw_mask(draw: ImageDraw.ImageDraw, obj: DrawnObject, scale: int, origin: tuple[int, int]) -> None:
    """Draw the object's mask at ``scale`` times its coordinates, shifted by ``-origin`` (canvas pixels)."""
    cx, cy, r = obj.cx * scale - origin[0], obj.cy * scale - origin[1], obj.radius * scale
    if obj.shape == "circle":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
    elif obj.shape == "ring":
        draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=255)
        inner = 0.55 * r
        draw.ellipse((cx - inner, cy - inner, cx + inner, cy + inner), fill=0)
    else:
        draw.polygon(_polygon(obj.shape, cx, cy, r, obj.rotation), fill=255)


def _texture(
    obj: DrawnObject, extent: tuple[int, int], scale: int, origin: tuple[int, int], rng: np.random.Generator
) -> Image.Image:
    """The fill of an object's region: its colour, with stripes or dots in a contrasting shade."""
    fill = Image.new("RGB", extent, obj.rgb)
    if obj.texture == "plain":
        return fill
    rgb = np.array(obj.rgb, dtype=np.float64)
    # Dark stripes on light colours and light ones on dark colours keep the pattern visible.
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    shade = rgb * 0.45 if luminance > 110 else rgb + (255 - rgb) * 0.6
    shade_t = tuple(int(v) for v in shade)
    draw = ImageDraw.Draw(fill)
    diameter = 2 * obj.radius * scale
    x0, y0 = (obj.cx - obj.radius) * scale - origin[0], (obj.cy - obj.radius) * scale - origin[1]
    if obj.texture == "striped":
        period = max(3.0 * scale, diameter / 4.5)
        width = max(1, round(period * 0.45))
        offset = rng.uniform(0.0, period)
        if rng.random() < 0.5:  # diagonal stripes in one of two directions
            k = 1 if rng.random() < 0.5 else -1
            t = x0 - diameter + offset
            while t < x0 + 2 * diameter:
                draw.line([(t, y0), (t + k * diameter, y0 + diameter)], fill=shade_t, width=width)
                t += period
        else:  # horizontal stripes
            t = y0 + offset - period
            while t < y0 + diameter + period:
                draw.line([(x0, t), (x0 + diameter, t)], fill=shade_t, width=width)
                t += period
    elif obj.texture == "dotted":
        period = max(3.5 * scale, diameter / 4.0)
        dot = max(0.7 * scale, period * 0.24)
        ox, oy = rng.uniform(0.0, period, size=2)
        y = y0 - period + oy
        while y < y0 + diameter + period:
            x = x0 - period + ox
            while x < x0 + diameter + period:
                draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=shade_t)
                x += period
            y += period
    else:
        raise ValueError(f"unknown texture {obj.texture!r}")
    return fill


def render(
    background: np.ndarray, objects: list[DrawnObject], rng: np.random.Generator
) -> tuple[Image.Image, list[tuple[int, int, int, int]]]:
    """Draw objects (in order, later ones on top) over a background.

    Args:
        background: uint8 ``[S, S, 3]`` background.
        objects: Objects to draw.
        rng: Generator for texture phases.

    Returns:
        The RGB image and, per object, its tight visible box ``(x, y, w, h)`` in pixels (the
        pixels whose anti-aliased coverage exceeds about 40%, minus later objects drawn on top).
    """
    size = background.shape[0]
    canvas = size * SUPERSAMPLE
    image = Image.fromarray(background).resize((canvas, canvas), Image.Resampling.NEAREST)
    masks = []  # per object: (x0, y0) in output pixels and its coverage [h, w] there
    for obj in objects:
        # The object's region in output pixels (whole pixels, so the reduced mask aligns with the image).
        x0, y0 = max(0, int(obj.cx - obj.radius) - 1), max(0, int(obj.cy - obj.radius) - 1)
        x1, y1 = min(size, int(obj.cx + obj.radius) + 2), min(size, int(obj.cy + obj.radius) + 2)
        origin = (x0 * SUPERSAMPLE, y0 * SUPERSAMPLE)
        extent = ((x1 - x0) * SUPERSAMPLE, (y1 - y0) * SUPERSAMPLE)
        mask = Image.new("L", extent, 0)
        _draw_mask(ImageDraw.Draw(mask), obj, SUPERSAMPLE, origin)
        image.paste(_texture(obj, extent, SUPERSAMPLE, origin, rng), origin, mask)
        masks.append((x0, y0, np.asarray(mask.resize((x1 - x0, y1 - y0), Image.Resampling.BOX))))
    visible = np.ones((size, size), dtype=bool)
    boxes: list[tuple[int, int, int, int]] = [(0, 0, 0, 0)] * len(objects)
    for i in range(len(objects) - 1, -1, -1):  # from the top object down, remove occluded pixels
        x0, y0, cover = masks[i]
        inside = np.zeros((size, size), dtype=bool)
        inside[y0 : y0 + cover.shape[0], x0 : x0 + cover.shape[1]] = cover > _BOX_ALPHA
        own = inside & visible
        visible &= ~inside
        ys, xs = np.nonzero(own)
        if len(xs):
            boxes[i] = (int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    return image.resize((size, size), Image.Resampling.BOX), boxes
