"""Analytic ray casting of a scene: nearest hit over all shapes, Lambertian shading, supersampled anti-aliasing.

Colours average `supersample`^2 sub-pixel rays on a regular grid inside each pixel. Depth comes from one ray
through the pixel centre, so it is the depth of an actual surface point (averaging depths across an occlusion
edge would invent points floating between the two surfaces).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence, Tuple

import torch
from torch import Tensor

from .cameras import CameraSet
from .primitives import Primitive, Scene

RAYS_PER_CHUNK = 1 << 17
"""Bounds memory: a 512 x 512 view at 3 x 3 supersampling is cast in chunks of image rows."""
SHADOW_RAY_OFFSET = 1e-3
"""Shadow rays start this far off the surface (metres) so they do not hit it again."""


@dataclass(frozen=True, eq=False)
class RenderedViews:
    """Every view of a camera set, in memory."""

    images: Tensor
    """[N, H, W, 3] float32 RGB in [0, 1]."""
    depths: Tensor
    """[N, H, W] float32 z-depth in metres (along the optical axis); 0 where the ray hit nothing."""
    cameras: CameraSet


def render_views(
    scene: Scene,
    cameras: CameraSet,
    supersample: int = 2,
    shadows: bool = True,
    on_view: Optional[Callable[[int], None]] = None,
) -> RenderedViews:
    """Renders all views of `cameras`; `on_view(i)` is called after each, for progress bars."""
    images, depths = [], []
    for index in range(len(cameras)):
        image, depth = render_view(scene, cameras, index, supersample, shadows)
        images.append(image)
        depths.append(depth)
        if on_view is not None:
            on_view(index)
    return RenderedViews(torch.stack(images), torch.stack(depths), cameras)


@torch.no_grad()
def render_view(scene: Scene, cameras: CameraSet, index: int, supersample: int = 2, shadows: bool = True) -> Tuple[Tensor, Tensor]:
    """One view: (image [H, W, 3] in [0, 1], z-depth [H, W] in metres, 0 where nothing was hit)."""
    height, width = cameras.height, cameras.width
    pose = cameras.camtoworlds[index].float()
    origin = pose[:3, 3][None]
    samples = supersample * supersample
    sub_pixel = (torch.arange(supersample, dtype=torch.float32) + 0.5) / supersample
    sub_y, sub_x = torch.meshgrid(sub_pixel, sub_pixel, indexing="ij")
    sample_offsets = torch.stack([sub_x.reshape(-1), sub_y.reshape(-1)], dim=-1)
    centre_offset = torch.tensor([[0.5, 0.5]])
    rows_per_chunk = max(1, RAYS_PER_CHUNK // (width * samples))
    image_rows, depth_rows = [], []
    for first_row in range(0, height, rows_per_chunk):
        rows = torch.arange(first_row, min(first_row + rows_per_chunk, height), dtype=torch.float32)
        directions, _ = _ray_directions(cameras, pose, rows, width, sample_offsets)
        t, hit_index = trace(scene.primitives, origin, directions)
        colours = shade(scene, origin, directions, t, hit_index, shadows)
        image_rows.append(colours.reshape(len(rows), width, samples, 3).mean(dim=2))
        directions, axis_length = _ray_directions(cameras, pose, rows, width, centre_offset)
        t, _ = trace(scene.primitives, origin, directions)
        depth = torch.where(torch.isfinite(t), t / axis_length, 0.0)
        depth_rows.append(depth.reshape(len(rows), width))
    return torch.cat(image_rows).clamp(0, 1), torch.cat(depth_rows)


def _ray_directions(cameras: CameraSet, pose: Tensor, rows: Tensor, width: int, offsets: Tensor) -> Tuple[Tensor, Tensor]:
    """Unit world directions [R * W * K, 3] through pixel positions (col, row) + offsets [K, 2], and the
    length of each camera-space direction whose z is -1 (distance / that length = z-depth)."""
    columns = torch.arange(width, dtype=torch.float32)
    x = (columns[None, :, None] + offsets[None, None, :, 0]).expand(len(rows), -1, -1)
    y = (rows[:, None, None] + offsets[None, None, :, 1]).expand(-1, width, -1)
    camera_directions = torch.stack([(x - cameras.cx) / cameras.fx, -(y - cameras.cy) / cameras.fy, -torch.ones_like(x)], dim=-1).reshape(
        -1, 3
    )
    axis_length = camera_directions.norm(dim=-1)
    return (camera_directions / axis_length[:, None]) @ pose[:3, :3].T, axis_length


def trace(primitives: Sequence[Primitive], origins: Tensor, directions: Tensor) -> Tuple[Tensor, Tensor]:
    """Nearest hit per ray: (distance [N], inf where missed; index of the shape hit [N], -1 where missed)."""
    nearest = torch.full(directions.shape[:1], torch.inf)
    hit_index = torch.full(directions.shape[:1], -1, dtype=torch.long)
    for index, primitive in enumerate(primitives):
        t = primitive.intersect(origins, directions)
        closer = t < nearest
        nearest = torch.where(closer, t, nearest)
        hit_index.masked_fill_(closer, index)
    return nearest, hit_index


def shade(scene: Scene, origins: Tensor, directions: Tensor, t: Tensor, hit_index: Tensor, shadows: bool) -> Tensor:
    """Colours [N, 3]: textured Lambertian surfaces (two-sided) where rays hit, sky where they do not."""
    upness = directions[:, 1:2].clamp(0, 1)
    colours = torch.tensor(scene.sky_horizon) * (1 - upness) + torch.tensor(scene.sky_zenith) * upness
    hit = hit_index >= 0
    if not hit.any():
        return colours
    hit_directions, which = directions[hit], hit_index[hit]
    points = origins + t[hit, None] * hit_directions
    normals, albedo = torch.empty_like(points), torch.empty_like(points)
    for index, primitive in enumerate(scene.primitives):
        mask = which == index
        if mask.any():
            normals[mask], uv = primitive.surface(points[mask])
            albedo[mask] = primitive.texture.sample(uv)
    facing_away = (normals * hit_directions).sum(-1, keepdim=True) > 0
    normals = torch.where(facing_away, -normals, normals)
    light = torch.tensor(scene.light_direction, dtype=torch.float32)
    lambert = (normals @ light).clamp(min=0)
    if shadows:
        lit = lambert > 0
        shadow_origins = points[lit] + SHADOW_RAY_OFFSET * normals[lit]
        _, blocker = trace(scene.primitives, shadow_origins, light.expand_as(shadow_origins))
        lambert[lit] = torch.where(blocker >= 0, 0.0, lambert[lit])
    colours[hit] = albedo * (scene.ambient + (1 - scene.ambient) * lambert[:, None])
    return colours
