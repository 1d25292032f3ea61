"""Options shared by the Python API and the `foresplat-synth` command line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Tuple

CameraKind = Literal["orbit", "hemisphere", "forward-facing"]


class ConfigError(ValueError):
    """An option value the generator cannot honour; the CLI reports it without a traceback."""


@dataclass(frozen=True)
class SceneConfig:
    """What one synthetic scene looks like and how it is rendered."""

    seed: int = 0
    """Seed of a single scene; for a corpus, the root seed from which each scene's seed is derived."""
    resolution: int = 128
    """Image height in pixels (and width, unless --width is given)."""
    width: Optional[int] = None
    """Image width in pixels, for non-square images."""
    num_views: int = 24
    """Views per scene (train + eval)."""
    num_eval_views: int = 4
    """Views held out for evaluation, spread evenly over the camera sequence."""
    cameras: CameraKind = "orbit"
    """Camera layout: a ring around the scene, points on an upper hemisphere, or an LLFF-like grid."""
    fov_deg: float = 50.0
    """Horizontal field of view in degrees."""
    camera_distance: float = 4.0
    """Distance in metres from the cameras to the point they look at."""
    num_objects: Tuple[int, int] = (4, 8)
    """Inclusive range of the number of spheres and boxes; each scene draws its count from it."""
    supersample: int = 2
    """Anti-aliasing: each pixel averages supersample x supersample sub-pixel rays."""
    shadows: bool = True
    """Cast hard shadows from the directional light (they are baked into the colours, so views stay consistent)."""
    depth: bool = True
    """Write z-depth maps (16-bit PNG, millimetres) next to the images."""
    colmap: bool = True
    """Also write a COLMAP text model (colmap/sparse/0, with points from the training views' depth), a
    sparse_pc.ply and split lists, so nerfstudio's colmap dataparser reads the scene too."""
    colmap_points: int = 4000
    """Points in that cloud, spread evenly over the training views (fewer only if they see too few surfaces)."""

    def __post_init__(self) -> None:
        if self.seed < 0:
            raise ConfigError("--seed must be non-negative")
        if self.resolution < 8 or (self.width is not None and self.width < 8):
            raise ConfigError("images must be at least 8 pixels on each side")
        if self.num_views < 2:
            raise ConfigError("a scene needs at least 2 views (one train, one eval)")
        if not 1 <= self.num_eval_views < self.num_views:
            raise ConfigError(f"--num-eval-views must be between 1 and {self.num_views - 1} for {self.num_views} views")
        if not 1.0 <= self.fov_deg <= 150.0:
            raise ConfigError("--fov-deg must be between 1 and 150 degrees")
        if self.camera_distance <= 2.5:
            raise ConfigError("--camera-distance must exceed 2.5 m so the cameras stay outside the objects")
        low, high = self.num_objects
        if not 0 <= low <= high:
            raise ConfigError("--num-objects takes MIN MAX with 0 <= MIN <= MAX")
        if not 1 <= self.supersample <= 8:
            raise ConfigError("--supersample must be between 1 and 8")
        if self.colmap_points < 1:
            raise ConfigError("--colmap-points must be at least 1")

    @property
    def image_size(self) -> Tuple[int, int]:
        """(height, width) in pixels."""
        return self.resolution, self.width if self.width is not None else self.resolution
