"""Non-learned initialisers: Gaussians from the scene's own geometry, or uniformly random ones.

`pointcloud` unprojects the context views' depth maps when the dataset has them, else takes its SfM
points. Fed generated (exact) depth it is an oracle-geometry reference, not a fair competitor to a
learned backbone. `random` is splatfacto's random initialisation, asked for explicitly: nothing
falls back to it silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal, Tuple

import torch
from torch import Tensor

from foresplat_ns.backbones.base import Backbone, BackboneConfig, ContextViews, register_backbone
from foresplat_ns.cameras import unproject_depth
from foresplat_ns.gaussians import Gaussians


def _identity_quats(n: int, like: Tensor) -> Tensor:
    quats = like.new_zeros((n, 4))
    quats[:, 0] = 1.0
    return quats


def _nearest_neighbour_scale(points: Tensor, k: int = 3, chunk: int = 4096) -> Tensor:
    """Mean distance to the k nearest other points (splatfacto's initial scale), computed in chunks."""
    dists = []
    for start in range(0, points.shape[0], chunk):
        d = torch.cdist(points[start : start + chunk], points)
        dists.append(d.topk(min(k + 1, points.shape[0]), largest=False).values[:, 1:].mean(-1))
    return torch.cat(dists).clamp_min(1e-6)


@register_backbone
@dataclass
class PointCloudInitConfig(BackboneConfig):
    name: ClassVar[str] = "pointcloud"
    source: Literal["auto", "depth", "sfm"] = "auto"
    """'auto' uses depth maps when present, else SfM points; naming one makes its absence an error."""
    stride: int = 2
    """Unproject one depth pixel per stride x stride block."""
    initial_opacity: float = 0.5
    sh_degree: int = 3

    def setup(self) -> "PointCloudInit":
        return PointCloudInit(self)


class PointCloudInit(Backbone):
    def __init__(self, config: PointCloudInitConfig):
        super().__init__()
        self.config = config

    def head_parameter_names(self) -> Tuple[str, ...]:
        return ()

    def forward(self, context: ContextViews) -> Gaussians:
        context.validate("pointcloud initialiser")
        has_depth = context.depths is not None and bool((context.depths > 0).any())
        source = self.config.source
        if source == "auto":
            source = "depth" if has_depth else "sfm"
        if source == "depth":
            if not has_depth:
                raise ValueError("pointcloud initialiser: source 'depth' asked for, but the dataset has no depth maps")
            sets = [self._from_depth(context, b) for b in range(context.batch_size)]
        else:
            if context.points is None or context.points[0].shape[0] == 0:
                raise ValueError(
                    "pointcloud initialiser: the dataset has neither depth maps nor SfM points "
                    "(use a learned backbone, or --pipeline.backbone.name random to start from random Gaussians)"
                )
            sets = [self._from_points(*context.points)] * context.batch_size
        counts = {g.num_gaussians for g in sets}
        if len(counts) != 1:
            raise ValueError(f"pointcloud initialiser: batch elements gave different Gaussian counts {sorted(counts)}")
        return Gaussians(**{name: torch.stack([getattr(g, name) for g in sets]) for name in Gaussians.field_names()})

    def _from_depth(self, context: ContextViews, b: int) -> Gaussians:
        s = self.config.stride
        depth = context.depths[b, :, s // 2 :: s, s // 2 :: s]  # block centres
        Ks = context.intrinsics[b].clone()
        Ks[:, :2, :2] /= s
        Ks[:, :2, 2] = (Ks[:, :2, 2] - s // 2 - 0.5) / s + 0.5  # pixel centres of the strided grid
        points = unproject_depth(depth, Ks, context.camtoworlds[b])  # [V,h,w,3]
        rgb = context.images[b, :, s // 2 :: s, s // 2 :: s]
        valid = depth > 0
        focal = context.intrinsics[b, :, 0, 0][:, None, None].expand_as(depth)
        footprint = depth * s / focal  # metric size of one block at that depth
        points, rgb, footprint = points[valid], rgb[valid], footprint[valid]
        return Gaussians.from_activated(
            means=points,
            scales=(0.5 * footprint)[:, None].expand(-1, 3),
            quats=_identity_quats(points.shape[0], points),
            opacities=points.new_full((points.shape[0],), self.config.initial_opacity),
            rgb=rgb,
            sh_degree=self.config.sh_degree,
        )

    def _from_points(self, xyz: Tensor, rgb: Tensor) -> Gaussians:
        return Gaussians.from_activated(
            means=xyz,
            scales=_nearest_neighbour_scale(xyz)[:, None].expand(-1, 3),
            quats=_identity_quats(xyz.shape[0], xyz),
            opacities=xyz.new_full((xyz.shape[0],), self.config.initial_opacity),
            rgb=rgb.clamp(0, 1),
            sh_degree=self.config.sh_degree,
        )


@register_backbone
@dataclass
class RandomInitConfig(BackboneConfig):
    """Splatfacto's random initialisation: Gaussians uniform in a cube around the cameras' scene."""

    name: ClassVar[str] = "random"
    num_gaussians: int = 50_000
    extent: float = 2.0
    """Side of the cube (in the dataset's frame, which nerfstudio normalises to about [-1,1]^3)."""
    initial_opacity: float = 0.1
    sh_degree: int = 3
    seed: int = 0

    def setup(self) -> "RandomInit":
        return RandomInit(self)


class RandomInit(Backbone):
    def __init__(self, config: RandomInitConfig):
        super().__init__()
        self.config = config

    def head_parameter_names(self) -> Tuple[str, ...]:
        return ()

    def forward(self, context: ContextViews) -> Gaussians:
        context.validate("random initialiser")
        gen = torch.Generator().manual_seed(self.config.seed)
        n = self.config.num_gaussians
        like = context.camtoworlds
        means = ((torch.rand((n, 3), generator=gen) - 0.5) * self.config.extent).to(like)
        gaussians = Gaussians.from_activated(
            means=means,
            scales=_nearest_neighbour_scale(means)[:, None].expand(-1, 3),
            quats=_identity_quats(n, means),
            opacities=means.new_full((n,), self.config.initial_opacity),
            rgb=torch.rand((n, 3), generator=gen).to(like),
            sh_degree=self.config.sh_degree,
        )
        return gaussians.map(lambda t: t.expand(context.batch_size, *t.shape))
