"""EWA projection of 3D Gaussians to pinhole images, with gsplat's conventions.

Everything here is O(C*N) elementwise torch, so autograd provides the backward pass. Culled Gaussians
(radius 0) get zero means2d/conics/compensations and, through `torch.where`, zero gradients: values that
are undefined for them (division by a depth of 0) never reach the graph's backward. CPU renders use
the compiled copy in projection_kernel.py by default; this one is the reference it is tested against.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import torch
from torch import Tensor

from foresplat_ns.cameras import quat_to_rotation


def covariance_factor(quats: Tensor, scales: Tensor) -> Tensor:
    """M = R S [..., 3, 3], whose M M^T is the world-space covariance of each Gaussian."""
    return quat_to_rotation(quats) * scales[..., None, :]


def camera_centres(viewmats: Tensor) -> Tensor:
    """Camera centres [C, 3] in world space of world-to-camera matrices [C, 4, 4]: -R^T t."""
    rotation, translation = viewmats[:, :3, :3], viewmats[:, :3, 3]
    return -(rotation.transpose(-1, -2) @ translation[..., None])[..., 0]


@dataclass
class Projection:
    """Per-camera screen-space Gaussians, shapes [C, N, ...] as gsplat's unpacked projection."""

    means2d: Tensor  # [C, N, 2] pixel coordinates
    depths: Tensor  # [C, N] camera-space z
    conics: Tensor  # [C, N, 3] upper triangle (a, b, c) of the inverse blurred 2D covariance
    radii: Tensor  # [C, N] int32 3-sigma radius in pixels, 0 = culled
    compensations: Optional[Tensor]  # [C, N] antialiasing opacity factor, when asked for


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    with_compensations: bool = False,
) -> Projection:
    """Project Gaussians [N] into cameras [C] as gsplat's pinhole `fully_fused_projection` (packed=False).

    The Jacobian is evaluated at the mean with tx/tz and ty/tz clamped to the field of view widened by
    30% on each side, so Gaussians far off-screen do not get absurdly stretched footprints. Culled: depth
    outside (near_plane, far_plane), singular blurred covariance, radius <= radius_clip, or a 3-sigma box
    that misses the image.
    """
    rotation, translation = viewmats[:, :3, :3], viewmats[:, :3, 3]
    means_cam = torch.einsum("cij,nj->cni", rotation, means) + translation[:, None]  # [C, N, 3]
    factor_cam = torch.einsum("cij,njk->cnik", rotation, covariance_factor(quats, scales))  # Sigma_cam = F F^T

    x, y, z = means_cam.unbind(-1)
    in_depth = (z > near_plane) & (z < far_plane)
    z = torch.where(in_depth, z, torch.ones_like(z))  # keeps culled entries finite

    fx, fy = Ks[:, 0, 0, None], Ks[:, 1, 1, None]  # [C, 1]
    cx, cy = Ks[:, 0, 2, None], Ks[:, 1, 2, None]
    margin_x, margin_y = 0.3 * (0.5 * width / fx), 0.3 * (0.5 * height / fy)
    tx = z * torch.clamp(x / z, min=-(cx / fx + margin_x), max=(width - cx) / fx + margin_x)
    ty = z * torch.clamp(y / z, min=-(cy / fy + margin_y), max=(height - cy) / fy + margin_y)

    # J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]; cov2d = (J F)(J F)^T from the two rows of J F
    row_x = (fx / z)[..., None] * factor_cam[..., 0, :] - (fx * tx / (z * z))[..., None] * factor_cam[..., 2, :]
    row_y = (fy / z)[..., None] * factor_cam[..., 1, :] - (fy * ty / (z * z))[..., None] * factor_cam[..., 2, :]
    cov_a, cov_b, cov_c = (row_x * row_x).sum(-1), (row_x * row_y).sum(-1), (row_y * row_y).sum(-1)

    det_unblurred = cov_a * cov_c - cov_b * cov_b
    cov_a, cov_c = cov_a + eps2d, cov_c + eps2d
    det = cov_a * cov_c - cov_b * cov_b

    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], dim=-1)
    with torch.no_grad():
        half_trace = 0.5 * (cov_a + cov_c)
        radius = torch.ceil(3.0 * torch.sqrt(half_trace + torch.sqrt(torch.clamp(half_trace**2 - det, min=0.01))))
        visible = in_depth & (det > 0) & (radius > radius_clip)
        mx, my = means2d[..., 0], means2d[..., 1]
        visible &= (mx + radius > 0) & (mx - radius < width) & (my + radius > 0) & (my - radius < height)
        radii = torch.where(visible, radius, torch.zeros_like(radius)).to(torch.int32)

    safe_det = torch.where(visible, det, torch.ones_like(det))
    conics = torch.stack([cov_c / safe_det, -cov_b / safe_det, cov_a / safe_det], dim=-1)
    conics = torch.where(visible[..., None], conics, torch.zeros_like(conics))
    means2d = torch.where(visible[..., None], means2d, torch.zeros_like(means2d))

    compensations = None
    if with_compensations:
        ratio = det_unblurred / safe_det
        positive = visible & (ratio > 0)
        # sqrt only where it is differentiable, so degenerate Gaussians get zero (not NaN) gradients
        compensations = torch.where(positive, torch.sqrt(torch.where(positive, ratio, torch.ones_like(ratio))), 0.0)
    return Projection(means2d, means_cam[..., 2], conics, radii, compensations)
