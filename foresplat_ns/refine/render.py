"""Rendering as splatfacto renders: posed views, its background rule, colour over the background."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

import torch
from torch import Tensor

from foresplat_ns.gaussians import Gaussians
from foresplat_ns.refine.config import RefineConfig
from foresplat_ns.render import rasterization
from foresplat_ns.render.rasterize import sh_colors_from_bands


@dataclass
class View:
    """One posed image: what a refinement step or an evaluation renders against."""

    image: Tensor  # [H,W,3] or [H,W,4] (RGBA, composited over the render background) float in [0,1]
    viewmat: Tensor  # [4,4] world-to-camera, OpenCV axes
    K: Tensor  # [3,3]

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


def background_for_step(config: RefineConfig, training: bool, generator: Optional[torch.Generator], device, dtype) -> Tensor:
    """Splatfacto's background rule: a random colour per training step in 'random' mode, fixed otherwise."""
    if config.background_color == "random":
        if training:
            return torch.rand(3, generator=generator, device="cpu").to(device=device, dtype=dtype)
        return torch.tensor([0.1490, 0.1647, 0.2157], device=device, dtype=dtype)
    value = 1.0 if config.background_color == "white" else 0.0
    return torch.full((3,), value, device=device, dtype=dtype)


def render_gaussians(
    gaussians: Gaussians,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int,
    background: Tensor,
    render_mode: str = "RGB",
    absgrad: bool = False,
    active_bands_only: bool = False,
) -> Tuple[Tensor, Tensor, Optional[Tensor], dict]:
    """Render cameras the way splatfacto does: colour over `background`, clamped to [0,1].

    viewmats [C,4,4] (world-to-camera, OpenCV), Ks [C,3,3]. Returns rgb [C,H,W,3], alpha [C,H,W,1],
    depth [C,H,W,1] for the "+D"/"+ED" render modes (else None), and the rasteriser's info. Splatfacto hands
    the rasteriser every SH band, so bands above `sh_degree` get a zero gradient. `active_bands_only` hands
    it only the bands it reads (same image): at degree 0 features_rest then gets no gradient at all
    (`SplatfactoAdam` takes splatfacto's step for it without the arithmetic). Where the CPU path's compiled
    kernels evaluate SH, the colours come from `sh_colors_from_bands`, without concatenating the bands.
    """
    sh_degree = min(sh_degree, gaussians.sh_degree)
    colors, colors_sh_degree = None, None
    if render_mode not in ("D", "ED"):
        colors = sh_colors_from_bands(gaussians.means, gaussians.features_dc, gaussians.features_rest, viewmats, sh_degree)
    if colors is None:  # the rasteriser evaluates the coefficients (gsplat, the PyTorch kernels, degree 0, depth only)
        colors, colors_sh_degree = gaussians.sh_coefficients(sh_degree if active_bands_only else None), sh_degree
    render, alpha, info = rasterization(
        means=gaussians.means,
        quats=gaussians.quats,
        scales=gaussians.activated_scales(),
        opacities=gaussians.activated_opacities(),
        colors=colors,
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
        packed=False,
        near_plane=0.01,
        far_plane=1e10,
        render_mode=render_mode,
        sh_degree=colors_sh_degree,
        absgrad=absgrad,
    )
    rgb = torch.clamp(render[..., :3] + (1 - alpha) * background, 0.0, 1.0)
    depth = render[..., 3:4] if render_mode.endswith("D") else None
    return rgb, alpha, depth, info


def render_view(
    gaussians: Gaussians, view: View, sh_degree: int, background: Tensor, absgrad: bool = False, active_bands_only: bool = False
):
    """Render one refinement view: rgb [H,W,3] and the rasteriser's info."""
    rgb, _, _, info = render_gaussians(
        gaussians, view.viewmat[None], view.K[None], view.width, view.height, sh_degree, background,
        absgrad=absgrad, active_bands_only=active_bands_only,
    )  # fmt: skip
    return rgb[0], info


def composite_over(image: Tensor, background: Tensor) -> Tensor:
    """RGB target from an RGB or RGBA image, as splatfacto composites ground truth with an alpha channel."""
    if image.shape[-1] == 4:
        alpha = image[..., 3:]
        return alpha * image[..., :3] + (1 - alpha) * background
    return image
