"""Camera conventions in one place.

Datasets and backbones speak nerfstudio's convention: OpenGL camera-to-world matrices (x right, y up,
the camera looks down -z). The rasteriser speaks gsplat's: world-to-camera view matrices with OpenCV
axes (x right, y down, looking down +z).
"""

from __future__ import annotations

from typing import Tuple

import torch
from torch import Tensor

OPENGL_TO_OPENCV = (1.0, -1.0, -1.0)
"""Flip of the camera's y and z axes between the two conventions."""


def opengl_to_opencv(camtoworlds: Tensor) -> Tensor:
    """OpenGL camera-to-world [...,3|4,4] to OpenCV camera-to-world [...,4,4]."""
    c2w = as_homogeneous(camtoworlds)
    flip = c2w.new_tensor((*OPENGL_TO_OPENCV, 1.0))
    return c2w * flip  # scales the columns: the camera axes


def as_homogeneous(camtoworlds: Tensor) -> Tensor:
    if camtoworlds.shape[-2:] == (4, 4):
        return camtoworlds
    if camtoworlds.shape[-2:] != (3, 4):
        raise ValueError(f"camera-to-world matrices must be [...,3,4] or [...,4,4], got {tuple(camtoworlds.shape)}")
    bottom = camtoworlds.new_zeros((*camtoworlds.shape[:-2], 1, 4))
    bottom[..., 0, 3] = 1.0
    return torch.cat([camtoworlds, bottom], dim=-2)


def viewmats_from_camtoworlds(camtoworlds: Tensor) -> Tensor:
    """OpenGL camera-to-world [...,3|4,4] to the rasteriser's OpenCV world-to-camera [...,4,4].

    The inverse is written out (R^T, -R^T t) so it stays exact and differentiable.
    """
    c2w = opengl_to_opencv(camtoworlds)
    rot = c2w[..., :3, :3]
    trans = c2w[..., :3, 3:4]
    rot_inv = rot.transpose(-1, -2)
    top = torch.cat([rot_inv, -rot_inv @ trans], dim=-1)
    bottom = torch.zeros_like(c2w[..., 3:, :])
    bottom[..., 0, 3] = 1.0
    return torch.cat([top, bottom], dim=-2)


def intrinsics_matrix(fx: Tensor, fy: Tensor, cx: Tensor, cy: Tensor) -> Tensor:
    """Pinhole matrices [...,3,3] from per-camera focal lengths and principal points."""
    fx, fy, cx, cy = torch.broadcast_tensors(fx, fy, cx, cy)
    zero, one = torch.zeros_like(fx), torch.ones_like(fx)
    rows = [torch.stack([fx, zero, cx], -1), torch.stack([zero, fy, cy], -1), torch.stack([zero, zero, one], -1)]
    return torch.stack(rows, dim=-2)


def shrunk_size(size: Tuple[int, int], max_side: int) -> Tuple[int, int]:
    """(H, W) scaled so the longer side is at most `max_side` (never enlarged, at least 1 pixel)."""
    scale = min(1.0, max_side / max(size))
    return max(1, round(size[0] * scale)), max(1, round(size[1] * scale))


def scaled_intrinsics(intrinsics: Tensor, size: Tuple[int, int], new_size: Tuple[int, int]) -> Tensor:
    """Intrinsics [..., 3, 3] of images resampled from `size` to `new_size` (H, W)."""
    scaled = intrinsics.clone()
    scaled[..., 0, :] *= new_size[1] / size[1]
    scaled[..., 1, :] *= new_size[0] / size[0]
    return scaled


def pixel_grid(height: int, width: int, device=None, dtype=torch.float32) -> Tensor:
    """Pixel centres [H,W,2] as (x+0.5, y+0.5), the rasteriser's sampling positions."""
    ys, xs = torch.meshgrid(
        torch.arange(height, device=device, dtype=dtype) + 0.5,
        torch.arange(width, device=device, dtype=dtype) + 0.5,
        indexing="ij",
    )
    return torch.stack([xs, ys], dim=-1)


def unproject_depth(depth: Tensor, Ks: Tensor, camtoworlds: Tensor) -> Tensor:
    """World points [...,H,W,3] from z-depth maps [...,H,W] (OpenCV z, i.e. distance along the optical axis).

    `Ks` [...,3,3] and OpenGL `camtoworlds` [...,3|4,4] share the leading dims of `depth`.
    """
    height, width = depth.shape[-2:]
    pix = pixel_grid(height, width, device=depth.device, dtype=depth.dtype)
    fx, fy = Ks[..., 0, 0, None, None], Ks[..., 1, 1, None, None]
    cx, cy = Ks[..., 0, 2, None, None], Ks[..., 1, 2, None, None]
    x_cam = (pix[..., 0] - cx) / fx * depth
    y_cam = (pix[..., 1] - cy) / fy * depth
    points_cam = torch.stack([x_cam, y_cam, depth], dim=-1)  # OpenCV camera frame
    c2w = opengl_to_opencv(camtoworlds)
    rot, trans = c2w[..., None, None, :3, :3], c2w[..., None, None, :3, 3]
    return (rot @ points_cam[..., None]).squeeze(-1) + trans


def project_points(points: Tensor, K: Tensor, camtoworld: Tensor) -> Tuple[Tensor, Tensor]:
    """Pixel coordinates [P,2] and z-depth [P] of world points [P,3] in one view (`unproject_depth`'s
    inverse): OpenGL `camtoworld` [4,4], `K` [3,3]. Points at or behind the camera get z <= 0 and
    meaningless coordinates: the caller masks them."""
    c2w = opengl_to_opencv(camtoworld)
    local = (points.to(c2w.dtype) - c2w[:3, 3]) @ c2w[:3, :3]
    z = local[:, 2]
    K = K.to(c2w.dtype)
    xy = local[:, :2] / torch.where(z > 0, z, torch.ones_like(z))[:, None] * K.diagonal()[:2] + K[:2, 2]
    return xy, z


# -- rotations and focus: shared by the rasteriser, the backbones and their alignment --------------
def quat_to_rotation(quats: Tensor) -> Tensor:
    """Rotation matrices [..., 3, 3] from (w, x, y, z) quaternions [..., 4], normalised here."""
    w, x, y, z = torch.nn.functional.normalize(quats, p=2, dim=-1).unbind(-1)
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]  # fmt: skip
    return torch.stack(rows, dim=-1).reshape(quats.shape[:-1] + (3, 3))


def matrix_to_quaternion(rot: Tensor) -> Tensor:
    """Unit quaternions [...,4] (wxyz, w >= 0 not enforced) of rotation matrices [...,3,3] (Shepperd's method)."""
    m = rot
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    t = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    candidates = torch.stack(
        [
            torch.stack([t[..., 0], m21 - m12, m02 - m20, m10 - m01], -1),
            torch.stack([m21 - m12, t[..., 1], m10 + m01, m02 + m20], -1),
            torch.stack([m02 - m20, m10 + m01, t[..., 2], m21 + m12], -1),
            torch.stack([m10 - m01, m02 + m20, m21 + m12, t[..., 3]], -1),
        ],
        -2,
    )  # [...,4,4]: row k is 4 q_k q
    best = t.argmax(-1)[..., None, None].expand(*t.shape[:-1], 1, 4)
    q = candidates.gather(-2, best).squeeze(-2)
    return q / q.norm(dim=-1, keepdim=True)


def quaternion_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a*b of wxyz quaternions: R(a*b) = R(a) R(b)."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        -1,
    )


def focus_distances(camtoworlds: Tensor, parallel_axes_focus: float = 20.0) -> Tensor:
    """Per view [B,V], the distance along its optical axis to the point closest to all views' axes.

    The least-squares point is regularised (weakly) towards `parallel_axes_focus` times the camera
    centres' RMS spread ahead of them, which decides it where the axes are near parallel. Without a
    spread (one view, or a common centre) the world origin is that point. Equivariant to rigid motions
    and scaling of the cameras (the fallback: to rotations about and scaling from the origin).
    """
    c2w = camtoworlds
    centres = c2w[..., :3, 3]  # [B,V,3]
    axes = -c2w[..., :3, 2]  # OpenGL cameras look down -z
    axes = axes / axes.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    num_views = centres.shape[-2]
    mean_centre = centres.mean(-2)  # [B,3]
    spread = (centres - mean_centre[..., None, :]).square().sum(-1).mean(-1).sqrt()  # [B]
    eye = torch.eye(3, dtype=c2w.dtype, device=c2w.device)
    proj = eye - axes[..., :, None] * axes[..., None, :]  # [B,V,3,3]
    anchor = mean_centre + parallel_axes_focus * spread[..., None] * axes.mean(-2)
    reg = 1e-4 * num_views
    lhs = proj.sum(-3) + reg * eye
    rhs = (proj @ centres[..., None]).squeeze(-1).sum(-2) + reg * anchor
    point = torch.linalg.solve(lhs, rhs[..., None]).squeeze(-1)  # [B,3]
    scale_of_frame = centres.norm(dim=-1).amax(-1)
    degenerate = spread <= 1e-6 * scale_of_frame.clamp_min(1e-30)
    point = torch.where(degenerate[..., None], torch.zeros_like(point), point)
    offset = point[..., None, :] - centres  # [B,V,3]
    along = (offset * axes).sum(-1)
    distance = offset.norm(dim=-1)
    focus = torch.maximum(along, 0.5 * distance)
    # A camera at the point itself (only possible in the fallback): unit distance, nothing better is known.
    return torch.where(focus > 1e-12, focus, torch.ones_like(focus))
