"""The shapes of a scene: ray intersection, surface normals and texture coordinates, vectorised over rays.

Every shape answers `intersect(origins, directions)` with the ray parameter of its nearest hit in front of the
origin (inf where missed) for unit directions, and `surface(points)` with normals and uv at points on it.
Geometry is stored as rounded Python numbers so scene.json describes the scene exactly.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, Dict, Sequence, Tuple, Union

import torch
from torch import Tensor

from .textures import Texture

Vec3 = Tuple[float, float, float]

HIT_EPSILON = 1e-4
"""Hits closer than this to the ray origin are ignored, so rays leaving a surface do not hit it again."""


def rotation_matrix(yaw_pitch_roll_deg: Sequence[float]) -> Tensor:
    """Rotation [3, 3] about y (yaw), then x (pitch), then z (roll), applied right to left: R = Ry Rx Rz."""
    yaw, pitch, roll = (math.radians(a) for a in yaw_pitch_roll_deg)
    cy, sy, cp, sp = math.cos(yaw), math.sin(yaw), math.cos(pitch), math.sin(pitch)
    cr, sr = math.cos(roll), math.sin(roll)
    r_yaw = torch.tensor([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]], dtype=torch.float64)
    r_pitch = torch.tensor([[1, 0, 0], [0, cp, -sp], [0, sp, cp]], dtype=torch.float64)
    r_roll = torch.tensor([[cr, -sr, 0], [sr, cr, 0], [0, 0, 1]], dtype=torch.float64)
    return (r_yaw @ r_pitch @ r_roll).float()


def _vec(values: Sequence[float]) -> Tensor:
    return torch.tensor(values, dtype=torch.float32)


@dataclass(frozen=True, eq=False)
class Sphere:
    """A textured sphere, mapped with spherical (longitude, latitude) coordinates: two mirrored tiles around."""

    center: Vec3
    radius: float
    texture: Texture
    texture_rotation_deg: Vec3 = (0.0, 0.0, 0.0)
    """Turns the texture's poles away from the vertical, so spheres do not all look alike."""

    @functools.cached_property
    def _center(self) -> Tensor:
        return _vec(self.center)

    @functools.cached_property
    def _rotation(self) -> Tensor:
        return rotation_matrix(self.texture_rotation_deg)

    def intersect(self, origins: Tensor, directions: Tensor) -> Tensor:
        offset = origins - self._center
        half_b = (offset * directions).sum(-1)
        discriminant = half_b * half_b - ((offset * offset).sum(-1) - self.radius**2)
        t = -half_b - discriminant.clamp(min=0).sqrt()
        return torch.where((discriminant >= 0) & (t > HIT_EPSILON), t, torch.inf)

    def surface(self, points: Tensor) -> Tuple[Tensor, Tensor]:
        normals = (points - self._center) / self.radius
        local = normals @ self._rotation
        longitude = torch.atan2(local[:, 0], local[:, 2]) / (2 * math.pi) + 0.5
        latitude = torch.acos(local[:, 1].clamp(-1, 1)) / math.pi
        return normals, torch.stack([2 * longitude, latitude], dim=-1)

    def describe(self) -> Dict[str, Any]:
        return {
            "type": "sphere",
            "center": list(self.center),
            "radius": self.radius,
            "texture_rotation_deg": list(self.texture_rotation_deg),
            "texture": self.texture.description,
        }


@dataclass(frozen=True, eq=False)
class Box:
    """A textured box, possibly rotated; each face is mapped by planar projection onto it."""

    center: Vec3
    half_size: Vec3
    texture: Texture
    rotation_deg: Vec3 = (0.0, 0.0, 0.0)
    """Yaw, pitch, roll of the box axes; zeros give an axis-aligned box."""
    tile_size: float = 0.5
    """Metres covered by one texture tile, the same on every face."""
    uv_offset: Tuple[float, float] = (0.0, 0.0)

    @functools.cached_property
    def _center(self) -> Tensor:
        return _vec(self.center)

    @functools.cached_property
    def _half(self) -> Tensor:
        return _vec(self.half_size)

    @functools.cached_property
    def _rotation(self) -> Tensor:
        """Columns are the box axes in world coordinates."""
        return rotation_matrix(self.rotation_deg)

    def intersect(self, origins: Tensor, directions: Tensor) -> Tensor:
        """Slab test in the box's own frame."""
        local_origins = (origins - self._center) @ self._rotation
        local_directions = directions @ self._rotation
        tiny = torch.full_like(local_directions, 1e-12).copysign(local_directions)
        inverse = 1.0 / torch.where(local_directions.abs() < 1e-12, tiny, local_directions)
        t_low = (-self._half - local_origins) * inverse
        t_high = (self._half - local_origins) * inverse
        t_near = torch.minimum(t_low, t_high).amax(-1)
        t_far = torch.maximum(t_low, t_high).amin(-1)
        return torch.where((t_near <= t_far) & (t_near > HIT_EPSILON), t_near, torch.inf)

    def surface(self, points: Tensor) -> Tuple[Tensor, Tensor]:
        local = (points - self._center) @ self._rotation
        face_axis = (local.abs() / self._half).argmax(-1)
        local_normals = torch.nn.functional.one_hot(face_axis, 3).float() * torch.sign(local)
        normals = local_normals @ self._rotation.T
        x, y, z = local.unbind(-1)
        # Side faces keep the texture upright (v down the box); the top and bottom use x and z.
        u = torch.where(face_axis == 0, z, x)
        v = torch.where(face_axis == 1, z, -y)
        uv = torch.stack([u, v], dim=-1) / self.tile_size + _vec(self.uv_offset)
        return normals, uv

    def describe(self) -> Dict[str, Any]:
        return {
            "type": "box",
            "center": list(self.center),
            "half_size": list(self.half_size),
            "rotation_deg": list(self.rotation_deg),
            "tile_size": self.tile_size,
            "uv_offset": list(self.uv_offset),
            "texture": self.texture.description,
        }


@dataclass(frozen=True, eq=False)
class Quad:
    """A textured rectangle (the ground, a wall), spanned by two orthogonal unit axes through its centre."""

    center: Vec3
    u_axis: Vec3
    """Direction of the texture's columns."""
    v_axis: Vec3
    """Direction of the texture's rows (downwards on a wall, so photographs stand upright)."""
    half_size: Tuple[float, float]
    texture: Texture
    tile_size: float = 1.0
    uv_offset: Tuple[float, float] = (0.0, 0.0)

    @functools.cached_property
    def _frame(self) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
        u_axis, v_axis = _vec(self.u_axis), _vec(self.v_axis)
        normal = torch.linalg.cross(u_axis, v_axis)
        return _vec(self.center), u_axis, v_axis, normal / normal.norm()

    def intersect(self, origins: Tensor, directions: Tensor) -> Tensor:
        center, u_axis, v_axis, normal = self._frame
        facing = directions @ normal
        facing = torch.where(facing.abs() < 1e-12, 1e-12, facing)
        t = ((center - origins) @ normal) / facing
        offset = origins + t[:, None] * directions - center
        inside = ((offset @ u_axis).abs() <= self.half_size[0]) & ((offset @ v_axis).abs() <= self.half_size[1])
        return torch.where(inside & (t > HIT_EPSILON), t, torch.inf)

    def surface(self, points: Tensor) -> Tuple[Tensor, Tensor]:
        center, u_axis, v_axis, normal = self._frame
        offset = points - center
        uv = torch.stack([offset @ u_axis, offset @ v_axis], dim=-1) / self.tile_size + _vec(self.uv_offset)
        return normal.expand_as(points), uv

    def describe(self) -> Dict[str, Any]:
        return {
            "type": "quad",
            "center": list(self.center),
            "u_axis": list(self.u_axis),
            "v_axis": list(self.v_axis),
            "half_size": list(self.half_size),
            "tile_size": self.tile_size,
            "uv_offset": list(self.uv_offset),
            "texture": self.texture.description,
        }


Primitive = Union[Sphere, Box, Quad]


@dataclass(frozen=True, eq=False)
class Scene:
    """Shapes plus lighting: one directional light, an ambient term, and a sky for rays that hit nothing."""

    primitives: Tuple[Primitive, ...]
    light_direction: Vec3 = (0.0, 1.0, 0.0)
    """Unit vector pointing towards the light."""
    ambient: float = 0.4
    """Share of the light that reaches every surface, lit or in shadow."""
    sky_horizon: Vec3 = (0.85, 0.88, 0.92)
    sky_zenith: Vec3 = (0.45, 0.6, 0.85)

    def describe(self) -> Dict[str, Any]:
        return {
            "light_direction": list(self.light_direction),
            "ambient": self.ambient,
            "sky_horizon": list(self.sky_horizon),
            "sky_zenith": list(self.sky_zenith),
            "primitives": [primitive.describe() for primitive in self.primitives],
        }
