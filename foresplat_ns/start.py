"""Where refinement starts: the backbone's prediction, splatfacto's own start, or their union.

Splatfacto starts from the capture's SfM points (else from random Gaussians). A learned prediction
renders better before any step, but on real photos it has ended below splatfacto's start after
1,000+ steps (docs/RESULTS.md). So `ns-train foresplat` knows splatfacto's start too and can begin
from either or from their union (by default: the union where there are SfM points, the prediction then
placed at their depth); `auto` and `best` decide per scene by the zero-step loss on a few
training views the backbone did not see (cheap, and never the held-out views). `foresplat-bench refine` builds
its starts with the same `initial_gaussians`, so `--init default` is exactly what `ns-train foresplat`
does with no flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Literal, Optional, Tuple

import torch

from foresplat_ns.backbones import Backbone
from foresplat_ns.backbones.pointcloud import PointCloudInitConfig, RandomInitConfig
from foresplat_ns.data import SceneViews, evenly_spaced
from foresplat_ns.gaussians import Gaussians, cap_gaussians, union
from foresplat_ns.refine import RefineConfig, background_for_step, composite_over, photometric_loss, render_view

START_NAMES: Tuple[str, ...] = ("prediction", "splatfacto", "union")
RULES: Tuple[str, ...] = ("sfm-union-else-best", "sfm-else-best", "sfm-else-prediction", "best", "auto")
"""Starts chosen per scene among START_NAMES."""
PROBED: Dict[str, Tuple[str, ...]] = {"best": ("prediction", "splatfacto"), "auto": START_NAMES}
"""The rules that render their candidates on probe views and keep the lowest zero-step loss."""


@dataclass
class StartConfig:
    """How `ns-train foresplat` builds the Gaussians refinement starts from."""

    start: Literal["sfm-union-else-best", "sfm-else-best", "sfm-else-prediction", "best", "auto", "prediction", "splatfacto", "union"] = (
        "sfm-union-else-best"
    )
    """'prediction': the backbone's Gaussians; 'splatfacto': splatfacto's own start (the capture's SfM
    points, else random Gaussians); 'union': both together; 'best': the prediction or splatfacto's start,
    whichever has the lower zero-step loss on probe views; 'auto': the same among all three;
    'sfm-union-else-best' (default): the union where the capture has SfM points (the prediction then sits
    at their depth), else 'best'; 'sfm-else-best' and 'sfm-else-prediction': splatfacto's start where the
    capture has SfM points, else 'best' or the prediction. The default always holds splatfacto's own
    start or something that renders better before any step; it was chosen on training captures and
    judged on held-out ones (docs/RESULTS.md)."""
    num_context_views: int = 4
    """Training views (evenly chosen) the backbone sees."""
    context_max_side: Optional[int] = None
    """The backbone sees its context views shrunk so their longer side is at most this; None: the size the
    backbone predicts best from (`Backbone.preferred_context_side`: for the compact one 1.5x the side its
    checkpoint trained at, 240 px for the shipped ones; AnySplat and Pi3X take the views as they are and
    resize them to their own input size)."""
    backbone_sees_sfm_points: bool = True
    """Hand the capture's SfM points to the backbone with its context views: the compact backbone then
    places its Gaussians at the depth the points give (backbones/sfm_depth.py), not its plane sweep's.
    False: images and cameras only."""
    num_probe_views: int = 4
    """Training views, other than the context views, whose zero-step loss decides 'best' and 'auto'."""
    max_gaussians: int = 100_000
    """Cap on the backbone's Gaussians (opacity-aware subsampling); splatfacto's start is not capped."""
    max_predicted_opacity: Optional[float] = None
    """Cap on the predicted Gaussians' opacity (None: as predicted). Refinement culls Gaussians below
    splatfacto's cull_alpha_thresh (0.1) and resets opacities only every 3,000 steps, so an opaque
    prediction at a wrong depth stays in front for a whole short refinement; a faint one is culled unless
    the loss raises it."""
    sfm_opacity: float = 0.1
    """Initial opacity of splatfacto's start (splatfacto's own value)."""
    num_random: int = 50_000
    """Gaussians of splatfacto's random start, used where the capture has no SfM points (splatfacto's;
    ns-train foresplat takes splatfacto's own --pipeline.model.num-random)."""
    random_scale: float = 10.0
    """Side of the cube splatfacto's random start fills (splatfacto's; ns-train foresplat takes
    --pipeline.model.random-scale)."""
    seed: int = 0

    def context_side_for(self, backbone: Backbone) -> Optional[int]:
        """The longest side `backbone` sees its context views at (None: as they are)."""
        return self.context_max_side or backbone.preferred_context_side

    def backbone_sees_points_of(self, scene: SceneViews) -> bool:
        """Whether the backbone gets `scene`'s SfM points (and so the shipped checkpoint made for them)."""
        return self.backbone_sees_sfm_points and scene.has_sfm_points


@dataclass
class Start:
    """The chosen Gaussians, which start they are, and the zero-step probe loss of each candidate ('best', 'auto')."""

    gaussians: Gaussians
    name: str
    probe_losses: Dict[str, float]


def splatfacto_start(scene: SceneViews, config: StartConfig, sh_degree: int = 3) -> Gaussians:
    """Splatfacto's initial Gaussians: its SfM points (nearest-neighbour scales, opacity 0.1), else random ones."""
    context = scene.context([0])
    if scene.has_sfm_points:
        backbone = PointCloudInitConfig(source="sfm", initial_opacity=config.sfm_opacity, sh_degree=sh_degree).setup()
    else:
        backbone = RandomInitConfig(
            num_gaussians=config.num_random,
            extent=config.random_scale,
            initial_opacity=config.sfm_opacity,
            sh_degree=sh_degree,
            seed=config.seed,
        ).setup()
    return backbone(context)[0]


def probe_view_indices(num_views: int, context: List[int], count: int) -> List[int]:
    """`count` training views spread evenly over those the backbone did not see (all views if it saw them all)."""
    unseen = [i for i in range(num_views) if i not in set(context)] or list(range(num_views))
    return [unseen[i] for i in evenly_spaced(min(count, len(unseen)), len(unseen))]


@torch.no_grad()
def zero_step_loss(gaussians: Gaussians, scene: SceneViews, indices: List[int], refine: RefineConfig) -> float:
    """Refinement's own loss (L1 + SSIM, evaluation background) of the unrefined Gaussians, mean over views."""
    total = 0.0
    for view in scene.views(indices):
        background = background_for_step(refine, False, None, view.image.device, view.image.dtype)
        pred, _ = render_view(gaussians, view, refine.active_sh_degree(0), background)
        total += float(photometric_loss(pred, composite_over(view.image, background), refine.ssim_lambda))
    return total / len(indices)


def resolve_rule(start: str, scene: SceneViews) -> str:
    """What a rule gives on `scene` without rendering anything: a start, or a rule of PROBED (renders needed)."""
    for prefix, where_sfm in (("sfm-else-", "splatfacto"), ("sfm-union-else-", "union")):
        if start.startswith(prefix):
            return where_sfm if scene.has_sfm_points else start.removeprefix(prefix)
    return start


@torch.no_grad()
def initial_gaussians(
    scene: SceneViews, backbone: Optional[Backbone], config: StartConfig, refine: RefineConfig, start: Optional[str] = None
) -> Start:
    """The Gaussians refinement starts from, built as `config.start` (or `start`) says.

    `backbone` may be None only for the 'splatfacto' start. Its prediction is validated (a NaN names the
    scene) and capped; 'best' and 'auto' render each candidate on the probe views and keep the lowest loss.
    """
    start = start or config.start
    if start not in RULES + START_NAMES:
        raise ValueError(f"unknown start {start!r}; choose one of {', '.join(RULES + START_NAMES)}")
    start = resolve_rule(start, scene)
    candidates: Dict[str, Gaussians] = {}
    if start != "splatfacto":
        if backbone is None:
            raise ValueError(f"the '{start}' start needs a backbone")
        context = scene.context(scene.context_indices(config.num_context_views), with_points=config.backbone_sees_sfm_points)
        max_side = config.context_side_for(backbone)
        context = context if max_side is None else context.shrunk(max_side)
        predicted = backbone.eval()(context)[0]
        predicted.validate(f"the '{backbone.config.name}' backbone's prediction for {scene.name}")
        generator = torch.Generator().manual_seed(config.seed)
        predicted = cap_gaussians(predicted, config.max_gaussians, generator=generator)
        if config.max_predicted_opacity is not None:
            ceiling = torch.logit(torch.tensor(config.max_predicted_opacity, dtype=predicted.opacities.dtype))
            predicted = Gaussians(**{**predicted.as_dict(), "opacities": predicted.opacities.clamp_max(ceiling)})
        candidates["prediction"] = predicted
    if start != "prediction":
        sh_degree = candidates["prediction"].sh_degree if candidates else 3
        candidates["splatfacto"] = splatfacto_start(scene, config, sh_degree).to(scene.camtoworlds)
    if start in ("union", "auto"):
        candidates["union"] = union(candidates["prediction"], candidates["splatfacto"])
    if start not in PROBED:
        return Start(candidates[start], start, {})
    probes = probe_view_indices(len(scene), scene.context_indices(config.num_context_views), config.num_probe_views)
    losses = {name: zero_step_loss(candidates[name], scene, probes, refine) for name in PROBED[start]}
    best = min(losses, key=losses.get)
    return Start(candidates[best], best, losses)
