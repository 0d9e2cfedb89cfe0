"""Dominant colours of an image, each named by its nearest W3C (CSS3) colour, as Clarifai's color model.

Why this way: a colour model needs no weights. The image is shrunk to at most
:data:`THUMBNAIL` px a side (a box filter: each pixel the mean of its block), its colours reduced
to at most :data:`MAX_COLORS` by Pillow's median cut, and each cluster's mean colour named by the
CSS3 colour nearest to it in CIELAB (distances there follow perceived difference, RGB's do not).
A cluster's value is its share of the pixels. The CSS3 colours (their values from Pillow's table
of CSS3 names) carry the CamelCase spellings Clarifai's ``w3c.name`` used; where two CSS3 names
share a value (grey/gray, cyan/aqua, magenta/fuchsia) one is used.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageColor

from visionloop.inference.predictions import Color
from visionloop.inference.preprocess import to_rgb

THUMBNAIL = 100
MAX_COLORS = 8

CSS3_NAMES: tuple[str, ...] = (
    "AliceBlue", "AntiqueWhite", "Aqua", "Aquamarine", "Azure", "Beige", "Bisque", "Black", "BlanchedAlmond",
    "Blue", "BlueViolet", "Brown", "BurlyWood", "CadetBlue", "Chartreuse", "Chocolate", "Coral",
    "CornflowerBlue", "Cornsilk", "Crimson", "DarkBlue", "DarkCyan", "DarkGoldenRod", "DarkGray",
    "DarkGreen", "DarkKhaki", "DarkMagenta", "DarkOliveGreen", "DarkOrange", "DarkOrchid", "DarkRed",
    "DarkSalmon", "DarkSeaGreen", "DarkSlateBlue", "DarkSlateGray", "DarkTurquoise", "DarkViolet", "DeepPink",
    "DeepSkyBlue", "DimGray", "DodgerBlue", "FireBrick", "FloralWhite", "ForestGreen", "Fuchsia", "Gainsboro",
    "GhostWhite", "Gold", "GoldenRod", "Gray", "Green", "GreenYellow", "HoneyDew", "HotPink", "IndianRed",
    "Indigo", "Ivory", "Khaki", "Lavender", "LavenderBlush", "LawnGreen", "LemonChiffon", "LightBlue",
    "LightCoral", "LightCyan", "LightGoldenRodYellow", "LightGray", "LightGreen", "LightPink", "LightSalmon",
    "LightSeaGreen", "LightSkyBlue", "LightSlateGray", "LightSteelBlue", "LightYellow", "Lime", "LimeGreen",
    "Linen", "Maroon", "MediumAquaMarine", "MediumBlue", "MediumOrchid", "MediumPurple", "MediumSeaGreen",
    "MediumSlateBlue", "MediumSpringGreen", "MediumTurquoise", "MediumVioletRed", "MidnightBlue", "MintCream",
    "MistyRose", "Moccasin", "NavajoWhite", "Navy", "OldLace", "Olive", "OliveDrab", "Orange", "OrangeRed",
    "Orchid", "PaleGoldenRod", "PaleGreen", "PaleTurquoise", "PaleVioletRed", "PapayaWhip", "PeachPuff", "Peru",
    "Pink", "Plum", "PowderBlue", "Purple", "RebeccaPurple", "Red", "RosyBrown", "RoyalBlue", "SaddleBrown",
    "Salmon", "SandyBrown", "SeaGreen", "SeaShell", "Sienna", "Silver", "SkyBlue", "SlateBlue", "SlateGray",
    "Snow", "SpringGreen", "SteelBlue", "Tan", "Teal", "Thistle", "Tomato", "Turquoise", "Violet", "Wheat",
    "White", "WhiteSmoke", "Yellow", "YellowGreen",
)


@dataclass(frozen=True)
class Palette:
    names: tuple[str, ...]
    hexes: tuple[str, ...]
    lab: np.ndarray  # (len(names), 3)


@functools.lru_cache(maxsize=1)
def css3_palette() -> Palette:
    """The CSS3 colours with their values from Pillow's table (immutable: one copy per process).

    Read by name through ``getrgb``: Pillow replaces a ``colormap`` entry by its parsed tuple once
    anything in the process drew with that colour name, so the table itself is not always hex."""
    rgbs = [ImageColor.getrgb(name.lower())[:3] for name in CSS3_NAMES]
    hexes = tuple("#{:02x}{:02x}{:02x}".format(*rgb) for rgb in rgbs)
    return Palette(CSS3_NAMES, hexes, srgb_to_lab(np.array(rgbs, np.float32)))


def srgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """(N, 3) sRGB in 0..255 -> CIELAB (D65 white)."""
    c = np.asarray(rgb, np.float64) / 255.0
    linear = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    xyz = linear @ np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]).T
    xyz /= np.array([0.95047, 1.0, 1.08883])
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.stack([116 * f[:, 1] - 16, 500 * (f[:, 0] - f[:, 1]), 200 * (f[:, 1] - f[:, 2])], axis=1)


def nearest_css3(rgb: np.ndarray) -> list[int]:
    """Index into :func:`css3_palette` of the colour nearest each (N, 3) RGB colour."""
    palette = css3_palette()
    d = ((srgb_to_lab(rgb)[:, None, :] - palette.lab[None, :, :]) ** 2).sum(axis=2)
    return [int(i) for i in d.argmin(axis=1)]


def _hex(rgb: np.ndarray) -> str:
    return "#" + "".join(f"{int(v):02x}" for v in np.clip(np.rint(rgb), 0, 255))


def dominant_colors(image: Image.Image) -> list[Color]:
    """Up to :data:`MAX_COLORS` colours, the largest share first; values sum to 1."""
    small = to_rgb(image).copy()
    small.thumbnail((THUMBNAIL, THUMBNAIL), Image.Resampling.BOX)
    quantized = small.quantize(colors=MAX_COLORS, method=Image.Quantize.MEDIANCUT)
    labels = np.asarray(quantized).ravel()
    pixels = np.asarray(small, np.float32).reshape(-1, 3)
    counts = np.bincount(labels)
    used = np.flatnonzero(counts)
    means = np.stack([pixels[labels == j].mean(axis=0) for j in used])
    palette = css3_palette()
    colors = [Color(raw_hex=_hex(m), w3c_hex=palette.hexes[i], w3c_name=palette.names[i],
                    value=float(counts[j] / labels.size))
              for j, m, i in zip(used, means, nearest_css3(means))]
    return sorted(colors, key=lambda c: -c.value)
