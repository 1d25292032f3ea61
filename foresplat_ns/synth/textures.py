"""Surface textures: crops of photographs bundled with scikit-image, and procedural patterns.

Photographs bring natural-image statistics (soft edges, fine detail, clutter) that a feed-forward network has to
lift into 3D; the patterns bring high-contrast regular structure on which a misplaced Gaussian is obvious.
Only images that scikit-image ships inside its wheel are used, so generation works offline.
"""

from __future__ import annotations

import colorsys
import functools
from dataclasses import dataclass, field
from typing import Any, Dict, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

TEXTURE_SIZE = 256
"""Side of every texture image in texels."""

COLOUR_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
GREY_PHOTOS = ("brick", "grass", "gravel", "moon", "coins", "camera")
"""Greyscale photographs are given a random two-colour (duotone) palette."""
PATTERNS = ("checker", "stripes", "noise", "gradient")


@dataclass(frozen=True)
class Texture:
    """An RGB image in [0, 1] tiled over a surface.

    `mirrored` tiles alternate with their mirror image, which hides the seams of photographs and gradients;
    periodic patterns repeat plainly.
    """

    image: Tensor
    """[S, S, 3] float32."""
    mirrored: bool
    description: Dict[str, Any] = field(default_factory=dict)
    """How the texture was made, for scene.json."""

    @staticmethod
    def solid(rgb: Sequence[float]) -> "Texture":
        """A single colour, for scenes whose expected pixels are known exactly (tests)."""
        image = torch.tensor(rgb, dtype=torch.float32).expand(2, 2, 3).contiguous()
        return Texture(image, mirrored=False, description={"kind": "solid", "rgb": list(rgb)})

    def sample(self, uv: Tensor) -> Tensor:
        """Bilinear colours [N, 3] at `uv` [N, 2], measured in tiles (u along image columns, v down the rows)."""
        height, width = self.image.shape[:2]
        x = uv[:, 0] * width - 0.5
        y = uv[:, 1] * height - 0.5
        x0, y0 = torch.floor(x), torch.floor(y)
        wx, wy = (x - x0)[:, None], (y - y0)[:, None]
        x0, y0 = x0.long(), y0.long()
        cols = self._wrap(x0, width), self._wrap(x0 + 1, width)
        rows = self._wrap(y0, height), self._wrap(y0 + 1, height)
        texels = self.image.reshape(-1, 3)
        top = texels[rows[0] * width + cols[0]] * (1 - wx) + texels[rows[0] * width + cols[1]] * wx
        bottom = texels[rows[1] * width + cols[0]] * (1 - wx) + texels[rows[1] * width + cols[1]] * wx
        return top * (1 - wy) + bottom * wy

    def _wrap(self, index: Tensor, size: int) -> Tensor:
        if not self.mirrored:
            return index.remainder(size)
        folded = index.remainder(2 * size)
        return torch.where(folded >= size, 2 * size - 1 - folded, folded)


def random_texture(rng: np.random.Generator) -> Texture:
    """A photograph crop or a procedural pattern, about half of each."""
    if rng.random() < 0.55:
        return photo_texture(rng, str(rng.choice(COLOUR_PHOTOS + GREY_PHOTOS)))
    return pattern_texture(rng, str(rng.choice(PATTERNS)))


def photo_texture(rng: np.random.Generator, name: str) -> Texture:
    """A random square crop of a scikit-image photograph, resized, randomly rotated and tinted."""
    photo = _load_photo(name)
    height, width = photo.shape[:2]
    side = int(rng.integers(int(0.35 * min(height, width)), min(height, width) + 1))
    top, left = int(rng.integers(0, height - side + 1)), int(rng.integers(0, width - side + 1))
    quarter_turns = int(rng.integers(0, 4))
    crop = torch.from_numpy(photo[top : top + side, left : left + side].copy()).permute(2, 0, 1)[None]
    crop = F.interpolate(crop, size=(TEXTURE_SIZE, TEXTURE_SIZE), mode="bilinear", antialias=True, align_corners=False)
    image = torch.rot90(crop[0].permute(1, 2, 0), quarter_turns, dims=(0, 1))
    description: Dict[str, Any] = {"kind": "photo", "source": name, "crop_yxs": [top, left, side]}
    description["quarter_turns"] = quarter_turns
    if name in GREY_PHOTOS:
        dark, light = random_colour(rng, value=(0.05, 0.45)), random_colour(rng, value=(0.6, 1.0))
        image = _palette(image[..., 0], [dark, light])
        description["palette"] = [dark, light]
    else:
        tint = random_colour(rng)
        strength = float(rng.uniform(0.0, 0.4))
        image = image * (1 - strength + strength * torch.tensor(tint))
        description["tint"], description["tint_strength"] = tint, round(strength, 4)
    return Texture(image.clamp(0, 1).contiguous(), mirrored=True, description=description)


def pattern_texture(rng: np.random.Generator, name: str) -> Texture:
    """A procedural pattern; checker, stripes and noise are periodic over one tile so they repeat seamlessly."""
    coords = (np.arange(TEXTURE_SIZE) + 0.5) / TEXTURE_SIZE
    u, v = np.meshgrid(coords, coords, indexing="xy")
    colours = [random_colour(rng) for _ in range(3)]
    if name == "checker":
        cells = int(rng.integers(2, 9))
        level = ((np.floor(u * cells) + np.floor(v * cells)) % 2).astype(np.float32)
        params: Dict[str, Any] = {"cells": cells}
        colours = colours[:2]
    elif name == "stripes":
        du, dv = int(rng.integers(0, 3)), int(rng.integers(-2, 3))
        du = du if (du, dv) != (0, 0) else 1
        frequency, sharpness = int(rng.integers(2, 7)), float(rng.uniform(1.0, 8.0))
        wave = 0.5 + 0.5 * np.sin(2 * np.pi * frequency * (du * u + dv * v))
        level = np.clip((wave - 0.5) * sharpness + 0.5, 0.0, 1.0)
        params = {"direction": [du, dv], "frequency": frequency, "sharpness": round(sharpness, 4)}
        colours = colours[:2]
    elif name == "noise":
        octaves = int(rng.integers(3, 6))
        level = _periodic_value_noise(rng, u, v, base_cells=int(rng.integers(3, 7)), octaves=octaves)
        params = {"octaves": octaves}
    elif name == "gradient":
        angle = float(rng.uniform(0, 2 * np.pi))
        ramp = np.cos(angle) * u + np.sin(angle) * v
        level = (ramp - ramp.min()) / (ramp.max() - ramp.min())
        params = {"angle_rad": round(angle, 4)}
    else:
        raise ValueError(f"unknown pattern {name!r}; choose from {PATTERNS}")
    image = _palette(torch.from_numpy(np.asarray(level, dtype=np.float32)), colours)
    description = {"kind": "pattern", "pattern": name, "colours": colours, **params}
    return Texture(image.contiguous(), mirrored=name == "gradient", description=description)


def random_colour(rng: np.random.Generator, value: Sequence[float] = (0.35, 1.0), saturation: Sequence[float] = (0.25, 0.9)) -> list:
    """A random RGB colour, drawn in HSV so saturation and brightness stay in a pleasant range."""
    hue, saturation, brightness = rng.uniform(0, 1), rng.uniform(*saturation), rng.uniform(*value)
    return [round(c, 4) for c in colorsys.hsv_to_rgb(hue, saturation, brightness)]


def _palette(level: Tensor, colours: Sequence[Sequence[float]]) -> Tensor:
    """Maps levels [H, W] in [0, 1] piecewise-linearly through the colour stops: [H, W, 3]."""
    stops = torch.tensor(colours, dtype=torch.float32)
    position = level.clamp(0, 1) * (len(colours) - 1)
    lower = position.floor().long().clamp(max=len(colours) - 2)
    weight = (position - lower)[..., None]
    return stops[lower] * (1 - weight) + stops[lower + 1] * weight


def _periodic_value_noise(rng: np.random.Generator, u: np.ndarray, v: np.ndarray, base_cells: int, octaves: int) -> np.ndarray:
    """Fractal value noise whose lattices wrap around the tile, normalised to [0, 1]."""
    total = np.zeros_like(u)
    for octave in range(octaves):
        cells = base_cells * 2**octave
        lattice = rng.uniform(0, 1, size=(cells, cells))
        x, y = u * cells, v * cells
        x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
        sx, sy = _smoothstep(x - x0), _smoothstep(y - y0)
        x1, y1 = (x0 + 1) % cells, (y0 + 1) % cells
        top = lattice[y0, x0] * (1 - sx) + lattice[y0, x1] * sx
        bottom = lattice[y1, x0] * (1 - sx) + lattice[y1, x1] * sx
        total += (top * (1 - sy) + bottom * sy) * 0.5**octave
    return (total - total.min()) / (total.max() - total.min())


def _smoothstep(t: np.ndarray) -> np.ndarray:
    return t * t * (3 - 2 * t)


@functools.lru_cache(maxsize=None)
def _load_photo(name: str) -> np.ndarray:
    """[H, W, 3] float32 in [0, 1]; greyscale photos are repeated over the channels."""
    import skimage.data  # imported here: it is slow to import and only photographs need it

    if name not in COLOUR_PHOTOS + GREY_PHOTOS:
        raise ValueError(f"unknown photograph {name!r}; choose from {COLOUR_PHOTOS + GREY_PHOTOS}")
    photo = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
    if photo.ndim == 2:
        photo = np.repeat(photo[..., None], 3, axis=-1)
    photo = photo[..., :3]
    photo.setflags(write=False)
    return photo
