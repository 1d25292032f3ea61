"""Dense depth for one view from a capture's sparse SfM points.

On real photos the compact backbone's plane sweep barely sees depth: its depth maps are close to a
plane at each view's focus distance and uncorrelated with the SfM points' depths (docs/RESULTS.md),
so its Gaussians sit at the wrong depth and refinement loses to splatfacto's SfM start within ~100
steps. A capture's SfM points carry exactly that geometry; `sfm_depth_map` turns them into a depth
per cell of a view's grid, which the backbone uses in place of its own where the capture has them.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

from foresplat_ns.cameras import opengl_to_opencv

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
    c2w = opengl_to_opencv(camtoworld)
    rotation, centre = c2w[:3, :3], c2w[:3, 3]
    local = (points.to(c2w.dtype) - centre) @ rotation
    z = local[:, 2]
    in_front = z > 1e-6 * z.abs().max().clamp_min(1e-12)
    xy = local[in_front, :2] / z[in_front, None] * intrinsics.diagonal()[:2].to(c2w.dtype) + intrinsics[:2, 2].to(c2w.dtype)
    z = z[in_front]
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < width) & (xy[:, 1] >= 0) & (xy[:, 1] < height)
    if int(inside.sum()) < MIN_POINTS_IN_VIEW:
        return None
    cell = xy[inside, 1].long() * width + xy[inside, 0].long()
    nearest = torch.full((height * width,), float("inf"), dtype=z.dtype, device=z.device)
    nearest = nearest.scatter_reduce(0, cell, z[inside], reduce="amin")
    hit = torch.isfinite(nearest)
    log_depth = torch.where(hit, nearest, torch.ones_like(nearest)).log().reshape(1, 1, height, width)
    dense = _grow(log_depth, hit.reshape(1, 1, height, width).to(z.dtype))
    padded = F.pad(dense, (1, 1, 1, 1), mode="replicate")
    median = padded.unfold(2, 3, 1).unfold(3, 3, 1).reshape(height, width, 9).median(-1).values
    return median.exp()


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
