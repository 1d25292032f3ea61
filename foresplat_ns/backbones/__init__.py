"""Backbones: context images and cameras in, Gaussians out. Importing this package registers them all."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

# Registers compact, pointcloud, random, and the large pretrained anysplat and pi3x, whose modules
# import their optional upstream packages (ffgs, pi3) only when a model is built.
from foresplat_ns.backbones import anysplat, compact, pi3x, pointcloud  # noqa: F401
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
from foresplat_ns.backbones.pi3x import Pi3XBackboneConfig

SHIPPED_CHECKPOINTS = Path(__file__).resolve().parent.parent / "checkpoints"
"""Checkpoints installed with the package: <backbone>-foresplat.pt (MetaGrad) and <backbone>-vanilla.pt."""


def shipped_checkpoint(backbone: str, rule: str = "foresplat") -> Path:
    return SHIPPED_CHECKPOINTS / f"{backbone}-{rule}.pt"


def build_backbone(config: BackboneConfig, checkpoint: Optional[Path] = None) -> Backbone:
    """The backbone `config` describes, with its starting weights.

    A `.pt` checkpoint is one of ours (`save_checkpoint`) and must hold this very config. Otherwise a
    pretrained upstream model (anysplat, pi3x) takes its release's weights from `checkpoint` (a
    `.safetensors` file or a folder; None: the Hugging Face cache), found before the model is built,
    and any other backbone starts from its own initialisation.
    """
    if checkpoint is not None and Path(checkpoint).suffix == ".pt":
        return load_backbone(checkpoint, expected=config)[0]
    if is_pretrained(config):
        return config.load_pretrained(checkpoint)
    if checkpoint is not None:
        raise ValueError(f"the '{config.name}' backbone takes ForeSplat .pt checkpoints only, got {checkpoint}")
    return config.setup()


def is_pretrained(config: BackboneConfig) -> bool:
    """Whether the backbone is a large pretrained upstream model (weights from its release)."""
    return hasattr(config, "load_pretrained")


@dataclass
class PretrainedSettings:
    """Settings of the large pretrained backbones when they load their release's weights.

    A ForeSplat `.pt` checkpoint carries its own config, so these apply to release weights only.
    """

    anysplat: AnySplatBackboneConfig = field(default_factory=AnySplatBackboneConfig)
    pi3x: Pi3XBackboneConfig = field(default_factory=Pi3XBackboneConfig)


def resolve_backbone(name: str, checkpoint: Optional[Path] = None, pretrained: Optional[PretrainedSettings] = None) -> Backbone:
    """The backbone `name`, with weights from `checkpoint` or the shipped ForeSplat checkpoint.

    Pretrained upstream models (anysplat, pi3x) take their release's weights (a `.safetensors` file
    or a folder; none: the Hugging Face cache) with their settings in `pretrained` (default: the
    release's), found before their large model is built; a `.pt` checkpoint is one of ours
    (`save_checkpoint`, e.g. after fine-tuning one), whose own config is used.
    """
    config = getattr(pretrained or PretrainedSettings(), name, None) or backbone_config_class(name)()
    if is_pretrained(config):
        if checkpoint is None or Path(checkpoint).suffix != ".pt":
            return config.load_pretrained(checkpoint)
    else:
        backbone = config.setup()
        if not backbone.is_learned:
            if checkpoint is not None:
                raise ValueError(f"the '{name}' initialiser is not learned and takes no checkpoint (got {checkpoint})")
            return backbone
    if checkpoint is None:
        checkpoint = shipped_checkpoint(name)
        if not checkpoint.is_file():
            raise ValueError(
                f"no weights for the '{name}' backbone: none shipped at {checkpoint}. Pass "
                "--pipeline.backbone-checkpoint PATH (train one with `ns-train foresplat-meta`)"
            )
    loaded, extra = load_backbone(checkpoint, expected=None)
    loaded.training_record = extra  # e.g. the refinement settings MetaGrad trained it for
    if loaded.config.name != name:
        raise ValueError(f"{checkpoint} holds a '{loaded.config.name}' backbone, but --pipeline.backbone is '{name}'")
    return loaded


__all__ = [
    "Backbone",
    "BackboneConfig",
    "build_backbone",
    "ContextViews",
    "is_pretrained",
    "load_backbone",
    "PretrainedSettings",
    "registered_backbones",
    "resolve_backbone",
    "save_checkpoint",
    "shipped_checkpoint",
]
