"""Dense depth for one view from a capture's sparse SfM points.

On real photos the compact backbone's plane sweep barely sees depth: its depth maps are close to a
plane at each view's focus distance and uncorrelated with the SfM points' depths (docs/RESULTS.md),
so its Gaussians sit at the wrong depth and refinement loses to splatfacto's SfM start within ~100
steps. A capture's SfM points carry exactly that geometry; `sfm_depth_map` turns them into a depth
per cell of a view's grid, which the backbone uses in place of its own where the capture has them.
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

from foresplat_ns.cameras import project_points

MIN_POINTS_IN_VIEW = 16
"""Fewer SfM points than this in a view: too few to say its depth; the backbone keeps its own there."""


def sfm_depth_map(points: Tensor, intrinsics: Tensor, camtoworld: Tensor, height: int, width: int) -> Optional[Tensor]:
    """Z-depth [height, width] of a view's grid from SfM points [P,3] (world frame), or None where fewer than
    MIN_POINTS_IN_VIEW land in it.

    intrinsics [3,3] are in grid cells (a pixel grid's, divided by the stride for a block grid); camtoworld
    [4,4] is OpenGL. A cell hit by points takes the nearest one's depth (what the view sees, not what it
    occludes); cells between them are filled in log-depth from the nearest hit cells around them, and a
    3x3 median then removes lone points floating in front of a surface.
    """
    cell, z = points_in_view(points, intrinsics, camtoworld, height, width)
    if z.numel() < MIN_POINTS_IN_VIEW:
        return None
    nearest = torch.full((height * width,), float("inf"), dtype=z.dtype, device=z.device)
    nearest = nearest.scatter_reduce(0, cell, z, reduce="amin")
    hit = torch.isfinite(nearest)
    log_depth = torch.where(hit, nearest, torch.ones_like(nearest)).log().reshape(1, 1, height, width)
    dense = _grow(log_depth, hit.reshape(1, 1, height, width).to(z.dtype))
    padded = F.pad(dense, (1, 1, 1, 1), mode="replicate")
    median = padded.unfold(2, 3, 1).unfold(3, 3, 1).reshape(height, width, 9).median(-1).values
    return median.exp()


def points_in_view(points: Tensor, intrinsics: Tensor, camtoworld: Tensor, height: int, width: int) -> Tuple[Tensor, Tensor]:
    """The points [P,3] that land in a view's [height, width] grid, in front of it: their cells (row-major
    index) and z-depths."""
    xy, z = project_points(points, intrinsics, camtoworld)
    inside = (z > 0) & (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    return xy[inside, 1].long() * width + xy[inside, 0].long(), z[inside]


def _grow(values: Tensor, known: Tensor) -> Tensor:
    """`values` [1,1,h,w] where `known`, grown ring by ring into the other cells: each new cell takes the mean
    of its known 3x3 neighbours, so a gap is filled from its own border, not from far away."""
    values, known = values * known, known.clone()
    while not bool(known.all()):
        total = F.avg_pool2d(values, 3, stride=1, padding=1, count_include_pad=True)
        count = F.avg_pool2d(known, 3, stride=1, padding=1, count_include_pad=True)
        new = (known == 0) & (count > 0)
        values = torch.where(new, total / count.clamp_min(1e-12), values)
        known = torch.where(new, torch.ones_like(known), known)
    return values
