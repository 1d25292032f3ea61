"""Camera sets around a scene: pinhole intrinsics and OpenGL camera-to-world poses.

Poses follow nerfstudio's convention (x right, y up, the camera looks down -z); the world is y-up with the
ground at y = 0. Azimuth 0 puts a camera on the +z axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import Tensor

from .config import SceneConfig

LOOK_AT = (0.0, 0.4, 0.0)
"""Where generated cameras aim: about the middle of the object cluster."""
WORLD_UP = np.array([0.0, 1.0, 0.0])
GOLDEN_ANGLE_DEG = 180.0 * (3.0 - math.sqrt(5.0))


@dataclass(frozen=True, eq=False)
class CameraSet:
    """Views sharing one pinhole model (pixel centres at integer + 0.5, as in nerfstudio)."""

    camtoworlds: Tensor
    """[N, 4, 4] float64, OpenGL axes."""
    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    description: Dict[str, Any] = field(default_factory=dict)
    """How the poses were made, for scene.json."""

    def __len__(self) -> int:
        return self.camtoworlds.shape[0]

    @property
    def intrinsics(self) -> Tensor:
        """The [3, 3] pinhole matrix."""
        return torch.tensor([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], dtype=torch.float64)


def pinhole_intrinsics(width: int, height: int, fov_deg: float) -> Tuple[float, float, float, float]:
    """(fx, fy, cx, cy) for square pixels and a horizontal field of view, principal point at the image centre."""
    focal = 0.5 * width / math.tan(math.radians(fov_deg) / 2)
    return focal, focal, width / 2, height / 2


def direction(azimuth_deg: float, elevation_deg: float) -> np.ndarray:
    """Unit vector at the given azimuth (about +y, from +z towards +x) and elevation above the ground."""
    azimuth, elevation = math.radians(azimuth_deg), math.radians(elevation_deg)
    horizontal = math.cos(elevation)
    return np.array([horizontal * math.sin(azimuth), math.sin(elevation), horizontal * math.cos(azimuth)])


def look_at(eye: Sequence[float], target: Sequence[float]) -> np.ndarray:
    """OpenGL camera-to-world [4, 4] at `eye` looking at `target`, with no roll."""
    eye, target = np.asarray(eye, dtype=np.float64), np.asarray(target, dtype=np.float64)
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, WORLD_UP)
    if np.linalg.norm(right) < 1e-6:
        raise ValueError("look_at cannot orient a camera looking straight up or down")
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    pose = np.eye(4)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
    return pose


def orbit_poses(
    num_views: int,
    distance: float,
    elevation_deg: float,
    target: Sequence[float] = LOOK_AT,
    start_azimuth_deg: float = 0.0,
) -> np.ndarray:
    """[N, 4, 4] poses evenly spaced on a horizontal ring, all looking at `target`."""
    target = np.asarray(target, dtype=np.float64)
    azimuths = start_azimuth_deg + 360.0 * np.arange(num_views) / num_views
    return np.stack([look_at(target + distance * direction(a, elevation_deg), target) for a in azimuths])


def hemisphere_poses(
    num_views: int,
    distance: float,
    elevation_range_deg: Tuple[float, float] = (10.0, 70.0),
    target: Sequence[float] = LOOK_AT,
    azimuth_offset_deg: float = 0.0,
) -> np.ndarray:
    """[N, 4, 4] poses on a Fibonacci spiral over a band of the upper hemisphere (even area coverage)."""
    target = np.asarray(target, dtype=np.float64)
    low, high = (math.sin(math.radians(e)) for e in elevation_range_deg)
    poses = []
    for k in range(num_views):
        elevation = math.degrees(math.asin(low + (high - low) * (k + 0.5) / num_views))
        eye = target + distance * direction(azimuth_offset_deg + k * GOLDEN_ANGLE_DEG, elevation)
        poses.append(look_at(eye, target))
    return np.stack(poses)


def forward_facing_poses(
    num_views: int,
    distance: float,
    azimuth_deg: float,
    elevation_deg: float,
    target: Sequence[float] = LOOK_AT,
    extent: Tuple[float, float] = (1.0, 0.6),
    jitter: Optional[np.ndarray] = None,
) -> np.ndarray:
    """[N, 4, 4] LLFF-like poses: one orientation, positions on a grid of `extent` metres facing the target.

    `jitter` [N, 2], in grid cells, breaks the grid's regularity.
    """
    target = np.asarray(target, dtype=np.float64)
    centre_pose = look_at(target + distance * direction(azimuth_deg, elevation_deg), target)
    columns = math.ceil(math.sqrt(num_views * extent[0] / extent[1]))
    rows = math.ceil(num_views / columns)
    cells = np.array([(k % columns, k // columns) for k in range(num_views)], dtype=np.float64)
    if jitter is not None:
        cells = cells + jitter
    offsets_x = ((cells[:, 0] + 0.5) / columns - 0.5) * extent[0]
    offsets_y = (0.5 - (cells[:, 1] + 0.5) / rows) * extent[1]
    poses = np.repeat(centre_pose[None], num_views, axis=0)
    poses[:, :3, 3] += offsets_x[:, None] * centre_pose[:3, 0] + offsets_y[:, None] * centre_pose[:3, 1]
    return poses


def sample_cameras(rng: np.random.Generator, config: SceneConfig) -> CameraSet:
    """The scene's camera set: layout from `config.cameras`, elevation and azimuth drawn from `rng`."""
    height, width = config.image_size
    fx, fy, cx, cy = pinhole_intrinsics(width, height, config.fov_deg)
    distance, azimuth = config.camera_distance, float(rng.uniform(0.0, 360.0))
    description: Dict[str, Any] = {"kind": config.cameras, "distance": distance, "target": list(LOOK_AT)}
    if config.cameras == "orbit":
        elevation = float(rng.uniform(10.0, 30.0))
        poses = orbit_poses(config.num_views, distance, elevation, start_azimuth_deg=azimuth)
        description.update(elevation_deg=elevation, start_azimuth_deg=azimuth)
    elif config.cameras == "hemisphere":
        poses = hemisphere_poses(config.num_views, distance, azimuth_offset_deg=azimuth)
        description.update(elevation_range_deg=[10.0, 70.0], azimuth_offset_deg=azimuth)
    elif config.cameras == "forward-facing":
        elevation = float(rng.uniform(5.0, 20.0))
        jitter = rng.uniform(-0.25, 0.25, size=(config.num_views, 2))
        extent = (distance / 4.0, 0.6 * distance / 4.0)
        poses = forward_facing_poses(config.num_views, distance, azimuth, elevation, extent=extent, jitter=jitter)
        description.update(azimuth_deg=azimuth, elevation_deg=elevation, extent=list(extent))
    else:
        raise ValueError(f"unknown camera layout {config.cameras!r}")
    return CameraSet(torch.from_numpy(poses), width, height, fx, fy, cx, cy, description)
