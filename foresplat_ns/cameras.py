"""Camera conventions in one place.

Datasets and backbones speak nerfstudio's convention: OpenGL camera-to-world matrices (x right, y up,
the camera looks down -z). The rasteriser speaks gsplat's: world-to-camera view matrices with OpenCV
axes (x right, y down, looking down +z).
"""

from __future__ import annotations

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
