"""What the large pretrained backbones (`anysplat`, `pi3x`) share, written once.

Both predict their own cameras, in a frame and at a scale of their own, so their Gaussians must be
moved into the dataset's frame before refinement or MetaGrad can use them. `fit_similarity` fits
that change of frame (rotation, uniform scale, translation) from the predicted cameras to the
dataset's, with per-view residuals that say how well the two sets of cameras agree;
`transform_gaussians` applies it to Gaussians in splatfacto's parameterisation (SH bands
included). `stack_capped` caps each sample with the one `cap_gaussians` and stacks the batch.

Their weights are found and loaded by `foresplat_ns.backbones.weights`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from foresplat_ns.backbones.base import Backbone, BackboneConfig, ContextViews
from foresplat_ns.cameras import matrix_to_quaternion, opengl_to_opencv, quaternion_multiply
from foresplat_ns.gaussians import Gaussians, cap_gaussians
from foresplat_ns.render.sh import sh_bases


# -- the change of frame -----------------------------------------------------------------------------
@dataclass
class Similarity:
    """x -> scale * rotation @ x + translation, per batch element: rotation [B,3,3], scale [B], translation [B,3]."""

    rotation: Tensor
    scale: Tensor
    translation: Tensor

    def apply_to_points(self, points: Tensor) -> Tensor:
        """Points [B,...,3] moved by each batch element's transform."""
        b = points.shape[0]
        flat = points.reshape(b, -1, 3)
        rotation, scale, translation = (t.to(points.dtype) for t in (self.rotation, self.scale, self.translation))
        moved = scale[:, None, None] * flat @ rotation.transpose(-1, -2) + translation[:, None]
        return moved.reshape(points.shape)

    def apply_to_cameras(self, camtoworlds: Tensor) -> Tensor:
        """Camera-to-world matrices [B,V,4,4] (either axis convention) moved with the scene."""
        moved = camtoworlds.clone()
        moved[..., :3, :3] = self.rotation.to(camtoworlds.dtype)[:, None] @ camtoworlds[..., :3, :3]
        moved[..., :3, 3] = self.apply_to_points(camtoworlds[..., :3, 3])
        return moved


@dataclass
class PoseResiduals:
    """How far the predicted cameras, once moved by the fitted similarity, land from the given ones [B,V]."""

    rotation_deg: Tensor
    centre_error: Tensor
    """Distance between the camera centres, in the dataset's units."""
    relative_centre_error: Tensor
    """centre_error over the RMS distance of the given centres from their mean."""

    def warn_if_loose(self, source: str, max_relative_centre_error: float, max_rotation_deg: float) -> None:
        """Warn when the cameras agree too loosely for the moved Gaussians to be trusted."""
        rotation, centre = float(self.rotation_deg.max()), float(self.relative_centre_error.max())
        if centre > max_relative_centre_error or rotation > max_rotation_deg:
            warnings.warn(
                f"{source}: its predicted cameras fit the dataset's poses loosely (up to {rotation:.1f} degrees and "
                f"{centre:.2f} of the cameras' spread): its Gaussians may be misplaced in the dataset's frame",
                stacklevel=3,
            )


@dataclass
class AlignedPrediction:
    """A pretrained backbone's Gaussians in the dataset's frame, and the fit that put them there."""

    gaussians: Gaussians
    similarity: Similarity
    residuals: PoseResiduals


def fit_similarity(predicted_c2w: Tensor, given_c2w: Tensor, source: str) -> Tuple[Similarity, PoseResiduals]:
    """The similarity that best maps predicted OpenCV cameras [B,V,4,4] onto given OpenCV cameras [B,V,4,4].

    Rotation: the rotation that best turns both every camera's orientation (chordal distance of
    R R_predicted to R_given) and the cameras' centred layout (their offsets from the mean, each
    set normalised by its RMS spread) onto the given ones; one SVD of the summed correlations.
    Orientations alone fix it for any number of views (two centres leave the rotation about their
    baseline free); the layout keeps it honest where predicted orientations are poor. Scale and
    translation: least squares on the centres, with that rotation fixed. Computed in float64
    without gradient: it is a fixed change of frame, and the gradients of what is predicted in
    that frame pass through it unchanged.
    """
    with torch.no_grad():
        pred, given = predicted_c2w.detach().double(), given_c2w.detach().double()
        if pred.shape != given.shape or pred.dim() != 4 or pred.shape[-2:] != (4, 4):
            raise ValueError(
                f"{source}: predicted cameras {tuple(pred.shape)} and given cameras {tuple(given.shape)} must both be [B,V,4,4]"
            )
        if pred.shape[1] < 2:
            raise ValueError(
                f"{source}: aligning its frame to the dataset's needs at least 2 context views, got {pred.shape[1]} "
                "(the model predicts cameras in a frame and scale of its own)"
            )
        if not (torch.isfinite(pred).all() and torch.isfinite(given).all()):
            raise ValueError(f"{source}: the predicted or given cameras contain NaN or inf")
        r_pred, r_given = pred[..., :3, :3], given[..., :3, :3]
        c_pred, c_given = pred[..., :3, 3], given[..., :3, 3]
        d_pred = c_pred - c_pred.mean(1, keepdim=True)
        d_given = c_given - c_given.mean(1, keepdim=True)
        rms_pred = d_pred.square().sum(-1).mean(1).sqrt()
        rms_given = d_given.square().sum(-1).mean(1).sqrt()
        if (rms_pred <= 1e-9 * c_pred.norm(dim=-1).amax(1).clamp_min(1e-12)).any():
            raise ValueError(f"{source}: its predicted camera centres coincide, so they carry no scale to fit to the dataset's poses")
        layout = (d_given / rms_given.clamp_min(1e-12)[:, None, None]).transpose(-1, -2) @ (d_pred / rms_pred[:, None, None])
        u, _, vh = torch.linalg.svd((r_given @ r_pred.transpose(-1, -2)).sum(1) + layout)
        sign = torch.ones_like(u[..., 0])
        sign[:, -1] = torch.sign(torch.linalg.det(u @ vh))
        rotation = u @ torch.diag_embed(sign) @ vh  # [B,3,3], det +1

        rotated = d_pred @ rotation.transpose(-1, -2)
        scale = (rotated * d_given).sum((1, 2)) / rotated.square().sum((1, 2))
        if (scale <= 0).any():
            raise ValueError(f"{source}: its predicted cameras do not fit the dataset's poses (fitted scale {scale.tolist()} <= 0)")
        translation = c_given.mean(1) - scale[:, None] * (c_pred.mean(1, keepdim=True) @ rotation.transpose(-1, -2))[:, 0]
        similarity = Similarity(rotation, scale, translation)

        mapped = similarity.apply_to_cameras(pred)
        delta = mapped[..., :3, :3].transpose(-1, -2) @ r_given
        cos = ((delta.diagonal(dim1=-2, dim2=-1).sum(-1) - 1) / 2).clamp(-1, 1)
        centre_error = (mapped[..., :3, 3] - c_given).norm(dim=-1)
        residuals = PoseResiduals(
            rotation_deg=torch.rad2deg(torch.acos(cos)).to(given_c2w.dtype),
            centre_error=centre_error.to(given_c2w.dtype),
            relative_centre_error=(centre_error / rms_given.clamp_min(1e-12)[:, None]).to(given_c2w.dtype),
        )
    return similarity, residuals


def sh_rotation_matrix(rotation: Tensor, sh_degree: int) -> Tensor:
    """[B,K,K] matrices taking SH coefficients of bands 1..sh_degree (K = (deg+1)^2 - 1) to those of
    the field rotated by `rotation` [B,3,3]: new(d) = old(R^T d).

    Solved from the basis itself (least squares on directions spread over the sphere) instead of
    per-degree recurrences: each band is closed under rotation, so the fit is exact.
    """
    k = (sh_degree + 1) ** 2
    count = 4 * k
    i = torch.arange(count, dtype=torch.float64, device=rotation.device) + 0.5
    z = 1 - 2 * i / count
    phi = math.pi * (1 + 5**0.5) * i  # Fibonacci sphere
    dirs = torch.stack([(1 - z**2).sqrt() * phi.cos(), (1 - z**2).sqrt() * phi.sin(), z], -1)  # [S,3]
    rotation = rotation.double()
    bases = sh_bases(sh_degree, dirs)[:, 1:]  # [S,K-1]
    rotated = sh_bases(sh_degree, dirs @ rotation)[..., 1:]  # basis at R^T d, [B,S,K-1]
    return torch.linalg.lstsq(bases.expand(rotation.shape[0], -1, -1), rotated).solution


def transform_gaussians(gaussians: Gaussians, similarity: Similarity) -> Gaussians:
    """Batched Gaussians [B,N,...] moved by each batch element's similarity; differentiable in the Gaussians."""
    dtype = gaussians.means.dtype
    rotation = similarity.rotation.to(dtype)
    rest = gaussians.features_rest
    if gaussians.sh_degree > 0:
        rest = torch.einsum("bij,bnjc->bnic", sh_rotation_matrix(similarity.rotation, gaussians.sh_degree).to(dtype), rest)
    rot_quat = matrix_to_quaternion(rotation)[:, None].expand_as(gaussians.quats)
    return Gaussians(
        means=similarity.apply_to_points(gaussians.means),
        scales=gaussians.scales + similarity.scale.log().to(dtype)[:, None, None],
        quats=quaternion_multiply(rot_quat, gaussians.quats),
        opacities=gaussians.opacities,
        features_dc=gaussians.features_dc,
        features_rest=rest,
    )


def align_to_dataset(
    samples: Sequence[Gaussians],
    predicted_c2w: Tensor,
    given_c2w: Tensor,
    max_gaussians: int,
    seed: int,
    source: str,
    max_relative_centre_error: float,
    max_rotation_deg: float,
) -> AlignedPrediction:
    """Model-frame Gaussians of each sample, capped and stacked, moved into the dataset's frame.

    `predicted_c2w` [B,V,4,4] are the model's OpenCV cameras, `given_c2w` the dataset's (OpenGL,
    nerfstudio's). The cap samples reproducibly (`seed`), so a backbone gives the same Gaussians for
    the same input.
    """
    given_cv = opengl_to_opencv(given_c2w)
    similarity, residuals = fit_similarity(predicted_c2w, given_cv, source)
    residuals.warn_if_loose(source, max_relative_centre_error, max_rotation_deg)
    stacked = stack_capped([g.to(given_c2w.dtype) for g in samples], max_gaussians, torch.Generator(given_c2w.device).manual_seed(seed))
    gaussians = transform_gaussians(stacked, similarity)
    gaussians.validate(source)
    return AlignedPrediction(gaussians, similarity, residuals)


def stack_capped(samples: Sequence[Gaussians], max_count: int, generator: Optional[torch.Generator] = None) -> Gaussians:
    """Cap each sample's Gaussians [N_b,...] and stack them [B,N,...].

    Predictions keep a variable number of Gaussians per sample (voxel merging, confidence masks);
    every sample is capped to the same count, the smallest of `max_count` and the sample sizes, so
    the batch stacks without padding Gaussians that refinement would then have to carry.
    """
    count = min([max_count] + [g.num_gaussians for g in samples])
    return Gaussians(
        **{
            name: torch.stack([getattr(cap_gaussians(g, count, generator=generator), name) for g in samples])
            for name in Gaussians.field_names()
        }
    )


@dataclass
class PretrainedBackboneConfig(BackboneConfig):
    """Base of the large pretrained backbones' configs: the settings `AlignedBackbone` reads, declared once.

    Subclasses build their upstream model (`build_model`) and load its release's weights (`load_pretrained`:
    a weights file, its folder, or the Hugging Face cache; never a download).
    """

    sh_degree: int = 3
    """SH degree of the output (splatfacto's); the model's bands above it are dropped, missing ones are zero."""
    max_gaussians: int = 300_000
    """Cap per sample, opacity-aware."""
    max_centre_error: float = 0.1
    """Warn when a predicted camera lands further than this (relative to the cameras' spread) from the
    dataset's after the frame fit: the model's and the dataset's geometry disagree."""
    max_rotation_error_deg: float = 10.0
    """Warn when a predicted camera's orientation is off by more than this after the frame fit."""
    seed: int = 0
    """Seed of the cap's sampling, so a scene always gives the same Gaussians."""

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError(f"{self.name} backbone config: " + "; ".join(problems))

    def problems(self) -> List[str]:
        """What is wrong with the settings; subclasses add their own to these."""
        problems = []
        if not 0 <= self.sh_degree <= 4:
            problems.append(f"sh_degree must be in 0..4, got {self.sh_degree}")
        if self.max_gaussians <= 0:
            problems.append(f"max_gaussians must be positive, got {self.max_gaussians}")
        return problems

    def build_model(self) -> nn.Module:  # pragma: no cover - interface
        """The upstream model with untrained weights."""
        raise NotImplementedError

    def load_pretrained(self, checkpoint: Optional[Path]) -> "AlignedBackbone":  # pragma: no cover - interface
        raise NotImplementedError


class AlignedBackbone(Backbone):
    """A large backbone that predicts in its own frame: subclasses give `predict_model_frame` (Gaussians per
    batch element and the predicted camera-to-worlds) and `source`; the fit into the dataset's frame, the
    cap and the checks are shared, reading the settings of `PretrainedBackboneConfig`."""

    config: PretrainedBackboneConfig
    source: str = ""

    def predict_model_frame(self, context: ContextViews) -> Tuple[List[Gaussians], Tensor]:  # pragma: no cover - interface
        raise NotImplementedError

    def predict(self, context: ContextViews) -> AlignedPrediction:
        """The Gaussians in the dataset's frame, with the frame fit and its per-view residuals."""
        samples, predicted_c2w = self.predict_model_frame(context)
        cfg = self.config
        return align_to_dataset(
            samples, predicted_c2w, context.camtoworlds, cfg.max_gaussians, cfg.seed, self.source,
            cfg.max_centre_error, cfg.max_rotation_error_deg,
        )  # fmt: skip

    def forward(self, context: ContextViews) -> Gaussians:
        return self.predict(context).gaussians
