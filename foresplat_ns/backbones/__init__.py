"""Backbones: context images and cameras in, Gaussians out. Importing this package registers them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

# Importing the configs registers every backbone; the large pretrained anysplat and pi3x import their
# optional upstream packages (ffgs, pi3) only when a model is built.
from foresplat_ns.backbones.align import PretrainedBackboneConfig
from foresplat_ns.backbones.anysplat import AnySplatBackboneConfig
from foresplat_ns.backbones.base import (
    Backbone,
    BackboneConfig,
    ContextViews,
    backbone_config_class,
    load_backbone,
    registered_backbones,
    save_checkpoint,
)
from foresplat_ns.backbones.compact import CompactBackboneConfig
from foresplat_ns.backbones.pi3x import Pi3XBackboneConfig
from foresplat_ns.backbones.pointcloud import PointCloudInitConfig, RandomInitConfig

SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
"""Checkpoints installed with the package: <backbone>-foresplat.pt (MetaGrad) and <backbone>-vanilla.pt, and
<backbone>-<rule>-sfm.pt, the same fine-tuned for captures whose SfM points the backbone sees."""


def shipped_checkpoint(backbone: str, rule: str = "foresplat", with_sfm_points: bool = False) -> Path:
    """The shipped checkpoint; `with_sfm_points`: the one for captures whose SfM points the backbone sees,
    where one is shipped. Two, because fine-tuning with the points' depth made the network's own depth
    worse on captures without them (docs/RESULTS.md)."""
    specialised = SHIPPED_CHECKPOINTS / f"{backbone}-{rule}-sfm.pt"
    if with_sfm_points and specialised.is_file():
        return specialised
    return SHIPPED_CHECKPOINTS / f"{backbone}-{rule}.pt"


@dataclass
class BackboneSelection:
    """Which backbone predicts the Gaussians, its settings and its weights: the same flags in every command
    (`--pipeline.backbone.*` in ns-train foresplat and foresplat-meta, `--teacher.*` and `--student.*` in
    foresplat-distill)."""

    name: Literal["compact", "anysplat", "pi3x", "pointcloud", "random"] = "compact"
    """A learned backbone (compact; the large pretrained anysplat and pi3x) or a non-learned initialiser
    (pointcloud: depth maps, else SfM points; random). Its settings are the same-named field below."""
    checkpoint: Optional[Path] = None
    """Weights: a ForeSplat .pt checkpoint (from foresplat-meta or foresplat-distill; it carries its own
    settings); for anysplat and pi3x also their release's weights (model.safetensors or its folder). None:
    the checkpoint shipped with the package for ns-train foresplat, a fresh network for training commands;
    for anysplat and pi3x the release's weights from the Hugging Face cache."""
    compact: CompactBackboneConfig = field(default_factory=CompactBackboneConfig)
    anysplat: AnySplatBackboneConfig = field(default_factory=AnySplatBackboneConfig)
    pi3x: Pi3XBackboneConfig = field(default_factory=Pi3XBackboneConfig)
    pointcloud: PointCloudInitConfig = field(default_factory=PointCloudInitConfig)
    random: RandomInitConfig = field(default_factory=RandomInitConfig)

    def settings(self) -> BackboneConfig:
        """The selected backbone's settings: its field here, else (a backbone registered from Python, e.g. by
        a test or a plugin) its defaults; an unknown name is a ValueError listing the known ones."""
        settings = getattr(self, self.name, None)
        return settings if isinstance(settings, BackboneConfig) else backbone_config_class(self.name)()


def build_backbone(
    selection: BackboneSelection, without_checkpoint: Literal["shipped", "fresh"] = "shipped", with_sfm_points: bool = False
) -> Backbone:
    """The selected backbone with its weights; one rule for every command.

    A `.pt` checkpoint is one of ours and rebuilds the backbone it holds (settings given beside it must
    agree); anysplat and pi3x otherwise take their release's weights. With no checkpoint, a learned
    backbone takes the shipped ForeSplat checkpoint (`without_checkpoint="shipped"`, what inference
    wants; the one for captures with SfM points where `with_sfm_points`) or starts from its own
    initialisation ("fresh", what training from scratch wants).
    """
    settings, checkpoint = selection.settings(), selection.checkpoint
    if is_pretrained(settings) and (checkpoint is None or Path(checkpoint).suffix != ".pt"):
        return settings.load_pretrained(checkpoint)
    if not is_pretrained(settings):
        backbone = settings.setup()
        if not backbone.is_learned:
            if checkpoint is not None:
                raise ValueError(f"the '{selection.name}' initialiser is not learned and takes no checkpoint (got {checkpoint})")
            return backbone
        if checkpoint is None and without_checkpoint == "fresh":
            return backbone
    if checkpoint is None:
        checkpoint = shipped_checkpoint(selection.name, with_sfm_points=with_sfm_points)
        if not checkpoint.is_file():
            raise ValueError(
                f"no weights for the '{selection.name}' backbone: none shipped at {checkpoint}. Pass "
                "--pipeline.backbone.checkpoint PATH (train one with `ns-train foresplat-meta`)"
            )
    elif Path(checkpoint).suffix != ".pt":
        raise ValueError(f"the '{selection.name}' backbone takes ForeSplat .pt checkpoints only, got {checkpoint}")
    return _from_checkpoint(Path(checkpoint), settings)


def _from_checkpoint(path: Path, settings: BackboneConfig) -> Backbone:
    """The backbone in our checkpoint `path`, which must be of `settings`' kind; settings changed from their
    defaults must be the checkpoint's (a checkpoint cannot be loaded into another architecture)."""
    changed = settings.to_dict() != type(settings)().to_dict()
    backbone, _ = load_backbone(path, expected=settings if changed else None)
    if backbone.config.name != settings.name:
        raise ValueError(f"{path} holds a '{backbone.config.name}' backbone, but the '{settings.name}' backbone was selected")
    return backbone


def is_pretrained(config: BackboneConfig) -> bool:
    """Whether the backbone is a large pretrained upstream model (weights from its release)."""
    return isinstance(config, PretrainedBackboneConfig)


__all__ = [
    "Backbone",
    "BackboneConfig",
    "BackboneSelection",
    "build_backbone",
    "ContextViews",
    "is_pretrained",
    "load_backbone",
    "registered_backbones",
    "save_checkpoint",
    "shipped_checkpoint",
]
