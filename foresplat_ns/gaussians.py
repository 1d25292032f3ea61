"""3D Gaussians in splatfacto's parameterisation, and the one conversion and cap every backbone uses.

Backbones predict exactly the tensors that refinement optimises (log-scales, quaternions, opacity
logits, SH coefficients), so MetaGrad's anchor gradients live in the same space as the prediction.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Callable, Dict, Iterator, Optional, Tuple

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
"""Zeroth-band SH constant: colour = SH_C0 * features_dc + 0.5, as in gsplat and splatfacto."""


def num_sh_bases(sh_degree: int) -> int:
    return (sh_degree + 1) ** 2


def rgb_to_sh(rgb: Tensor) -> Tensor:
    return (rgb - 0.5) / SH_C0


def sh_to_rgb(sh: Tensor) -> Tensor:
    return sh * SH_C0 + 0.5


@dataclass
class Gaussians:
    """A set of Gaussians (optionally batched: any leading dims before N), named as splatfacto names them.

    means [...,N,3] world positions; scales [...,N,3] log standard deviations; quats [...,N,4] wxyz,
    not necessarily normalised; opacities [...,N,1] logits; features_dc [...,N,3] SH band 0;
    features_rest [...,N,(deg+1)^2-1,3] higher SH bands.
    """

    means: Tensor
    scales: Tensor
    quats: Tensor
    opacities: Tensor
    features_dc: Tensor
    features_rest: Tensor

    # -- construction -------------------------------------------------------------------------
    @classmethod
    def from_activated(
        cls,
        means: Tensor,
        scales: Tensor,
        quats: Tensor,
        opacities: Tensor,
        rgb: Tensor,
        sh_degree: int,
        features_rest: Optional[Tensor] = None,
    ) -> "Gaussians":
        """Convert activated values (metric scales, opacities in (0,1), RGB in [0,1]) to splatfacto's raw tensors."""
        eps = torch.finfo(means.dtype).eps
        rest_shape = (*means.shape[:-1], num_sh_bases(sh_degree) - 1, 3)
        if features_rest is None:
            features_rest = means.new_zeros(rest_shape)
        elif features_rest.shape != rest_shape:
            raise ValueError(f"features_rest has shape {tuple(features_rest.shape)}, expected {rest_shape}")
        return cls(
            means=means,
            scales=torch.log(scales.clamp_min(1e-8)),
            quats=quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12),
            opacities=torch.logit(opacities.clamp(eps, 1 - eps)).reshape(*means.shape[:-1], 1),
            features_dc=rgb_to_sh(rgb),
            features_rest=features_rest,
        )

    # -- views ----------------------------------------------------------------------------------
    @staticmethod
    def field_names() -> Tuple[str, ...]:
        return tuple(f.name for f in fields(Gaussians))

    def items(self) -> Iterator[Tuple[str, Tensor]]:
        for name in self.field_names():
            yield name, getattr(self, name)

    def as_dict(self) -> Dict[str, Tensor]:
        return dict(self.items())

    def map(self, fn: Callable[[Tensor], Tensor]) -> "Gaussians":
        return Gaussians(**{name: fn(t) for name, t in self.items()})

    def detach(self) -> "Gaussians":
        return self.map(Tensor.detach)

    def to(self, *args, **kwargs) -> "Gaussians":
        return self.map(lambda t: t.to(*args, **kwargs))

    def __getitem__(self, index) -> "Gaussians":
        """Index the leading (batch or Gaussian) dimension of every field."""
        return self.map(lambda t: t[index])

    @property
    def num_gaussians(self) -> int:
        return self.means.shape[-2]

    @property
    def sh_degree(self) -> int:
        return int(math.isqrt(self.features_rest.shape[-2] + 1)) - 1

    def with_sh_degree(self, sh_degree: int) -> "Gaussians":
        """The same Gaussians with their higher SH bands padded (zeros) or cut to `sh_degree`."""
        want = num_sh_bases(sh_degree) - 1
        rest = self.features_rest
        if rest.shape[-2] > want:
            rest = rest[..., :want, :]
        elif rest.shape[-2] < want:
            rest = torch.cat([rest, rest.new_zeros((*rest.shape[:-2], want - rest.shape[-2], 3))], dim=-2)
        return Gaussians(**{**self.as_dict(), "features_rest": rest})

    # -- what the rasteriser takes -------------------------------------------------------------
    def activated_scales(self) -> Tensor:
        return torch.exp(self.scales)

    def activated_opacities(self) -> Tensor:
        return torch.sigmoid(self.opacities).squeeze(-1)

    def sh_coefficients(self, sh_degree: Optional[int] = None) -> Tensor:
        """[..., N, K, 3] coefficients of every band, or of the (sh_degree+1)^2 a render at `sh_degree` reads: the
        bands left out are then outside the autograd graph (no zero gradient is built for them, no copy made)."""
        if sh_degree == 0:
            return self.features_dc[..., None, :]
        rest = self.features_rest if sh_degree is None else self.features_rest[..., : num_sh_bases(sh_degree) - 1, :]
        return torch.cat([self.features_dc[..., None, :], rest], dim=-2)

    def rgb(self) -> Tensor:
        return sh_to_rgb(self.features_dc).clamp(0.0, 1.0)

    # -- checks -----------------------------------------------------------------------------------
    def validate(self, source: str) -> None:
        """Raise a ValueError naming `source` when shapes disagree, the set is empty or a value is not finite."""
        n = self.num_gaussians
        lead = self.means.shape[:-2]
        expected = {"means": (3,), "scales": (3,), "quats": (4,), "opacities": (1,), "features_dc": (3,)}
        for name, tail in expected.items():
            t = getattr(self, name)
            if t.shape != (*lead, n, *tail):
                raise ValueError(f"{source}: '{name}' has shape {tuple(t.shape)}, expected {(*lead, n, *tail)}")
        rest = self.features_rest
        if rest.shape[:-2] != (*lead, n) or rest.shape[-1] != 3 or math.isqrt(rest.shape[-2] + 1) ** 2 != rest.shape[-2] + 1:
            raise ValueError(f"{source}: 'features_rest' has shape {tuple(rest.shape)}, expected {(*lead, n, 'K', 3)} with K+1 a square")
        if n == 0:
            raise ValueError(f"{source}: produced zero Gaussians")
        for name, t in self.items():
            bad = ~torch.isfinite(t)
            if bad.any():
                count = int(bad.reshape(-1, *bad.shape[-1:]).any(-1).sum()) if t.dim() else 1
                raise ValueError(f"{source}: '{name}' has {count} non-finite entries (NaN or inf)")
        if (self.quats.norm(dim=-1) == 0).any():
            raise ValueError(f"{source}: 'quats' contains zero-norm quaternions")


def cap_gaussians(
    gaussians: Gaussians,
    max_count: int,
    generator: Optional[torch.Generator] = None,
    min_opacity: float = 0.005,
) -> Gaussians:
    """Keep at most `max_count` Gaussians of one (unbatched) set, preferring opaque ones.

    Near-transparent Gaussians are dropped first; if still too many, the rest are sampled without
    replacement with probability proportional to opacity, so coverage stays even instead of
    concentrating on the most opaque region. Indexing keeps the result differentiable.
    """
    if gaussians.means.dim() != 2:
        raise ValueError("cap_gaussians takes one unbatched set of Gaussians")
    if max_count <= 0:
        raise ValueError(f"max_count must be positive, got {max_count}")
    n = gaussians.num_gaussians
    if n <= max_count:
        return gaussians
    with torch.no_grad():
        weights = gaussians.activated_opacities().float()
        visible = torch.nonzero(weights >= min_opacity).squeeze(-1)
        if visible.numel() <= max_count:
            # Not enough visible ones: fill with the most opaque of the rest.
            order = torch.argsort(weights, descending=True)
            keep = order[:max_count]
        else:
            picked = torch.multinomial(weights[visible], max_count, replacement=False, generator=generator)
            keep = visible[picked]
        keep = torch.sort(keep).values
    return gaussians[keep]


def union(first: Gaussians, second: Gaussians) -> Gaussians:
    """Both sets of Gaussians in one (the higher SH bands padded with zeros to the larger degree)."""
    degree = max(first.sh_degree, second.sh_degree)
    a, b = first.with_sh_degree(degree), second.to(first.means).with_sh_degree(degree)
    return Gaussians(**{name: torch.cat([getattr(a, name), getattr(b, name)], dim=0) for name in Gaussians.field_names()})
