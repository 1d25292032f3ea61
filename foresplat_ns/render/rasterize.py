"""`rasterization`: gsplat's signature and outputs, gsplat on CUDA tensors, our tile rasteriser on CPU.

Splatfacto (and everything in this package) renders through this one function, so CPU-only machines
can train, test and benchmark with the same code that runs gsplat's kernels on a GPU.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Dict, Iterator, Literal, Optional, Tuple

import torch
from torch import Tensor

from .composite import composite_blocks
from .composite_kernel import composite_compiled
from .projection import camera_centres, project_gaussians
from .projection_kernel import project_gaussians_compiled
from .reference import reference_composite
from .sh import evaluate_sh
from .sh_kernel import MAX_COMPILED_SH_DEGREE, sh_colors_compiled
from .tiles import build_tile_layout
from .validation import validate_rasterization_inputs

CHUNK_ELEMENTS = 1 << 18
"""The torch compositor's pixel-slot pairs composited at once: small enough that a chunk's intermediates stay in cache."""
SEGMENT_LENGTH = 256
"""The torch compositor's list slots composited at once; T is carried across segments, and the forward stops once T <= 1e-4."""
BLOCK_SIZE = 8
"""Side of the pixel blocks the CPU compositor works on (when it divides tile_size)."""
CpuKernel = Literal["compiled", "torch"]
CPU_KERNELS: Tuple[CpuKernel, ...] = ("compiled", "torch")
CPU_KERNEL: CpuKernel = "compiled"
"""The CPU kernels: "compiled" (numba loops: projection_kernel.py, sh_kernel.py, composite_kernel.py and the
loss's refine/ssim_kernel.py, the fast default) or "torch" (the PyTorch projection, SH colours, vectorised
compositor and SSIM: projection.py, sh.py, composite.py and `refine.loss.ssim_reference`, kept as the
references the compiled ones are tested against). Switch it with `use_cpu_kernels`."""


@contextmanager
def use_cpu_kernels(name: CpuKernel) -> Iterator[None]:
    """Render (and compute SSIM) on the CPU with the `name` kernels inside the block (for tests and benchmarks)."""
    global CPU_KERNEL
    if name not in CPU_KERNELS:
        raise ValueError(f"unknown CPU kernel {name!r}; choose 'compiled' or 'torch'")
    previous, CPU_KERNEL = CPU_KERNEL, name
    try:
        yield
    finally:
        CPU_KERNEL = previous


def _block_size(tile_size: int) -> int:
    return BLOCK_SIZE if tile_size % BLOCK_SIZE == 0 else tile_size


def rasterization(
    means: Tensor,  # [N, 3]
    quats: Tensor,  # [N, 4]
    scales: Tensor,  # [N, 3]
    opacities: Tensor,  # [N]
    colors: Tensor,  # [(C,) N, D] or [(C,) N, K, 3]
    viewmats: Tensor,  # [C, 4, 4]
    Ks: Tensor,  # [C, 3, 3]
    width: int,
    height: int,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    eps2d: float = 0.3,
    sh_degree: Optional[int] = None,
    packed: bool = False,
    tile_size: int = 16,
    backgrounds: Optional[Tensor] = None,
    render_mode: str = "RGB",
    sparse_grad: bool = False,
    absgrad: bool = False,
    rasterize_mode: str = "classic",
) -> Tuple[Tensor, Tensor, Dict]:
    """Render Gaussians into C pinhole cameras, as `gsplat.rendering.rasterization` does.

    Returns render_colors [C, H, W, X] (X = D, 1 for "D"/"ED", D+1 for "RGB+D"/"RGB+ED"), render_alphas
    [C, H, W, 1] and an info dict with means2d (retain_grad() it before backward to read dL/dmeans2d;
    with absgrad=True the backward also sets means2d.absgrad), radii, depths, conics, opacities and the
    tile geometry, which is what gsplat's densification strategies read. Arguments are checked on both
    paths (ValueError naming the argument). The CPU path supports packed=False only (what splatfacto
    uses; sparse_grad, which gsplat applies only when packed, has no effect there) and is
    differentiable w.r.t. means, quats, scales, opacities, colors, viewmats and backgrounds, not Ks.
    """
    validate_rasterization_inputs(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height,
        sh_degree, backgrounds, render_mode, rasterize_mode, tile_size,
    )  # fmt: skip
    if means.is_cuda:
        from gsplat.rendering import rasterization as gsplat_rasterization

        return gsplat_rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, width, height,
            near_plane=near_plane, far_plane=far_plane, radius_clip=radius_clip, eps2d=eps2d,
            sh_degree=sh_degree, packed=packed, tile_size=tile_size, backgrounds=backgrounds,
            render_mode=render_mode, sparse_grad=sparse_grad, absgrad=absgrad, rasterize_mode=rasterize_mode,
        )  # fmt: skip
    if packed:
        raise ValueError("'packed'=True is only supported on CUDA (gsplat); the CPU rasteriser renders packed=False")
    return rasterize_on_cpu(
        means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane, far_plane,
        radius_clip, eps2d, sh_degree, tile_size, backgrounds, render_mode, absgrad, rasterize_mode,
    )  # fmt: skip


def rasterize_on_cpu(
    means, quats, scales, opacities, colors, viewmats, Ks, width, height, near_plane=0.01, far_plane=1e10,
    radius_clip=0.0, eps2d=0.3, sh_degree=None, tile_size=16, backgrounds=None, render_mode="RGB",
    absgrad=False, rasterize_mode="classic", dense_reference=False,
):  # fmt: skip
    """The CPU path after validation, projecting and compositing with `CPU_KERNEL`; `dense_reference=True` composites with
    the brute-force reference (same projection, colours and render modes) so tests and benchmarks compare
    like with like."""
    n_cameras = viewmats.shape[0]
    project = project_gaussians_compiled if CPU_KERNEL == "compiled" else project_gaussians
    projection = project(
        means, quats, scales, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane,
        far_plane=far_plane, radius_clip=radius_clip, with_compensations=rasterize_mode == "antialiased",
    )  # fmt: skip
    per_view_opacities = opacities[None].expand(n_cameras, -1)
    if projection.compensations is not None:
        per_view_opacities = per_view_opacities * projection.compensations

    # depth modes render z as one more channel (background depth 0), as gsplat does
    if render_mode in ("D", "ED"):
        colors = projection.depths[..., None]
        backgrounds = None if backgrounds is None else backgrounds.new_zeros(n_cameras, 1)
    else:
        colors = _per_view_colors(means, colors, viewmats, sh_degree)
        if render_mode in ("RGB+D", "RGB+ED"):
            colors = torch.cat([colors, projection.depths[..., None]], dim=-1)
            if backgrounds is not None:
                backgrounds = torch.cat([backgrounds, backgrounds.new_zeros(n_cameras, 1)], dim=-1)

    tile_width, tile_height = math.ceil(width / tile_size), math.ceil(height / tile_size)
    if dense_reference:
        render_colors, render_alphas = reference_composite(
            projection.means2d, projection.conics, per_view_opacities, colors, backgrounds, projection.radii,
            projection.depths, width, height, tile_size,
        )  # fmt: skip
    else:
        layout = build_tile_layout(
            projection.means2d.detach(), projection.radii, projection.depths.detach(), projection.conics.detach(),
            per_view_opacities.detach(), tile_size, tile_width, tile_height, _block_size(tile_size),
        )  # fmt: skip
        composited = (projection.means2d, projection.conics, per_view_opacities, colors, backgrounds, layout, width, height)
        if CPU_KERNEL == "compiled":
            render_colors, render_alphas = composite_compiled(*composited, absgrad)
        else:
            render_colors, render_alphas = composite_blocks(*composited, absgrad, CHUNK_ELEMENTS, SEGMENT_LENGTH)
    if render_mode in ("ED", "RGB+ED"):
        expected_depth = render_colors[..., -1:] / render_alphas.clamp(min=1e-10)
        render_colors = torch.cat([render_colors[..., :-1], expected_depth], dim=-1)

    info = {
        "camera_ids": None,
        "gaussian_ids": None,
        "radii": projection.radii,
        "means2d": projection.means2d,
        "depths": projection.depths,
        "conics": projection.conics,
        "opacities": per_view_opacities,
        "tile_width": tile_width,
        "tile_height": tile_height,
        "width": width,
        "height": height,
        "tile_size": tile_size,
        "n_cameras": n_cameras,
    }
    return render_colors, render_alphas, info


def sh_colors_from_bands(means: Tensor, features_dc: Tensor, features_rest: Tensor, viewmats: Tensor, sh_degree: int) -> Optional[Tensor]:
    """[C, N, 3] colours to hand `rasterization` (with sh_degree=None) where the CPU path's compiled kernels
    evaluate SH at this degree, read from band 0 (features_dc [N, 3]) and the others (features_rest [N, K-1, 3])
    as splatfacto keeps them: bit for bit the colours the rasteriser evaluates from their concatenation, which
    with its gradient's split cost 3.3 ms (timed alone; a late real-capture step took 1.10x as long with them,
    at 105k Gaussians and degree 3). None elsewhere: gsplat and the PyTorch path evaluate the concatenated
    coefficients themselves."""
    if means.is_cuda or CPU_KERNEL != "compiled" or means.dim() != 2 or not 1 <= sh_degree <= MAX_COMPILED_SH_DEGREE:
        return None
    return sh_colors_compiled(sh_degree, means, features_dc[:, None], camera_centres(viewmats), features_rest)


def _per_view_colors(means: Tensor, colors: Tensor, viewmats: Tensor, sh_degree: Optional[int]) -> Tensor:
    """[C, N, D] colours: as given, or SH evaluated towards each camera (+0.5, clamped at 0, as gsplat)."""
    n_cameras, n_gaussians = viewmats.shape[0], means.shape[0]
    if sh_degree is None:
        return colors.expand(n_cameras, n_gaussians, colors.shape[-1]) if colors.dim() == 2 else colors
    # degree 0 reads no direction: PyTorch's expand of band 0 is faster than any loop
    if CPU_KERNEL == "compiled" and colors.dim() == 3 and 1 <= sh_degree <= MAX_COMPILED_SH_DEGREE:
        return sh_colors_compiled(sh_degree, means, colors, camera_centres(viewmats))
    dirs = means[None] - camera_centres(viewmats)[:, None]  # [C, N, 3]
    # [N, K, 3] coefficients broadcast over the cameras inside evaluate_sh: expanding them here first made
    # the backward reduce a whole [C, N, K, 3] gradient every step (~1 ms at 16k Gaussians, K = 16)
    return torch.clamp_min(evaluate_sh(sh_degree, dirs, colors) + 0.5, 0.0)
