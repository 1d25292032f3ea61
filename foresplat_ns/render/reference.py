"""Brute-force compositing: every pixel against every Gaussian, plain autograd. For tests and benchmarks.

It applies gsplat's rules literally per pixel (including "skip when sigma < 0") and lists a Gaussian
at a pixel only when the pixel's tile lies in the Gaussian's tile range, as the tiled rasteriser does,
so the two agree exactly. Chunked over pixels, which bounds the memory of a forward pass; with autograd
every chunk's graph is kept until backward (about 16 bytes per pixel-Gaussian pair in float32), so
large images are rendered a band of rows at a time (see `foresplat_ns.bench.raster`).
"""

from __future__ import annotations

from typing import Optional, Tuple

import torch
from torch import Tensor

from .tiles import MIN_ALPHA, tile_bounds

MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4


def _composite_pixels(px, py, tile_x, tile_y, means2d, conics, opacities, colors, bounds):
    """Colours [P, D] and final transmittance [P] of pixels against depth-sorted Gaussians [G]."""
    x_min, x_max, y_min, y_max = bounds
    listed = (tile_x[:, None] >= x_min) & (tile_x[:, None] < x_max) & (tile_y[:, None] >= y_min) & (tile_y[:, None] < y_max)
    dx = px[:, None] - means2d[:, 0]
    dy = py[:, None] - means2d[:, 1]
    sigma = 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy
    alpha = torch.clamp_max(opacities * torch.exp(-sigma), MAX_ALPHA)
    alpha = torch.where(listed & (sigma >= 0) & (alpha >= MIN_ALPHA), alpha, torch.zeros_like(alpha))
    behind = torch.cumprod(1 - alpha, dim=-1)  # transmittance after each Gaussian
    included = behind > MIN_TRANSMITTANCE  # compositing stops before the first one that would cross 1e-4
    in_front = torch.cat([torch.ones_like(behind[:, :1]), behind[:, :-1]], dim=-1)
    weights = alpha * in_front * included
    final_t = torch.prod(torch.where(included, 1 - alpha, torch.ones_like(alpha)), dim=-1)
    return weights @ colors, final_t


def reference_composite(
    means2d: Tensor,  # [C, N, 2]
    conics: Tensor,  # [C, N, 3]
    opacities: Tensor,  # [C, N]
    colors: Tensor,  # [C, N, D]
    backgrounds: Optional[Tensor],  # [C, D]
    radii: Tensor,  # [C, N]
    depths: Tensor,  # [C, N]
    width: int,
    height: int,
    tile_size: int = 16,
    pixel_chunk: Optional[int] = None,
) -> Tuple[Tensor, Tensor]:
    """Render [C, H, W, D] colours and [C, H, W, 1] alphas by compositing each pixel over all Gaussians."""
    n_cameras, n_gaussians = radii.shape
    tile_width, tile_height = -(-width // tile_size), -(-height // tile_size)
    if pixel_chunk is None:
        pixel_chunk = max(1, (1 << 20) // max(n_gaussians, 1))
    renders, alphas = [], []
    for camera in range(n_cameras):
        visible = torch.nonzero(radii[camera] > 0).squeeze(1)
        order = visible[torch.sort(depths[camera, visible].detach(), stable=True).indices]
        bounds = tile_bounds(means2d[camera, order].detach(), radii[camera, order], tile_size, tile_width, tile_height)
        gaussians = (means2d[camera, order], conics[camera, order], opacities[camera, order], colors[camera, order])
        pixel = torch.arange(width * height, device=radii.device)
        colour_chunks, t_chunks = [], []
        for start in range(0, width * height, pixel_chunk):
            ids = pixel[start : start + pixel_chunk]
            x, y = ids % width, ids // width
            args = (x.to(colors.dtype) + 0.5, y.to(colors.dtype) + 0.5, x // tile_size, y // tile_size, *gaussians, bounds)
            colour, final_t = _composite_pixels(*args)
            colour_chunks.append(colour)
            t_chunks.append(final_t)
        colour, final_t = torch.cat(colour_chunks), torch.cat(t_chunks)
        if backgrounds is not None:
            colour = colour + final_t[:, None] * backgrounds[camera]
        renders.append(colour.view(height, width, -1))
        alphas.append((1 - final_t).view(height, width, 1))
    return torch.stack(renders), torch.stack(alphas)
