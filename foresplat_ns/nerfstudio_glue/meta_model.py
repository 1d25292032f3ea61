"""`ns-train foresplat-meta`'s model: the backbone being trained, as a nerfstudio Model.

Wrapping the backbone this way lets nerfstudio's trainer, checkpoints, optimisers and DDP handle it
unchanged. Its output is the predicted Gaussians; the loss is built by the pipeline (MetaGrad).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Type

from nerfstudio.models.base_model import Model, ModelConfig
from torch.nn import Parameter

from foresplat_ns.backbones import BackboneConfig, ContextViews, build_backbone, is_pretrained
from foresplat_ns.backbones.anysplat import AnySplatBackboneConfig
from foresplat_ns.backbones.compact import CompactBackboneConfig
from foresplat_ns.backbones.pi3x import Pi3XBackboneConfig
from foresplat_ns.gaussians import Gaussians


@dataclass
class BackboneModelConfig(ModelConfig):
    _target: Type = field(default_factory=lambda: BackboneModel)
    backbone: Literal["compact", "anysplat", "pi3x"] = "compact"
    """Which backbone to train; its settings are the same-named field below."""
    compact: CompactBackboneConfig = field(default_factory=CompactBackboneConfig)
    anysplat: AnySplatBackboneConfig = field(default_factory=AnySplatBackboneConfig)
    pi3x: Pi3XBackboneConfig = field(default_factory=Pi3XBackboneConfig)
    init_checkpoint: Optional[Path] = None
    """Starting weights. A ForeSplat .pt checkpoint of this very backbone config (fine-tuning); for anysplat
    and pi3x also their release's weights (model.safetensors or its folder; None: the Hugging Face cache).
    None trains compact from its own initialisation."""
    trainable: Literal["auto", "all", "head"] = "auto"
    """Train the whole network or only its prediction head (the trunk frozen). auto: the head of a large
    pretrained backbone (anysplat, pi3x), the whole of one trained here (compact)."""

    def backbone_config(self) -> BackboneConfig:
        return getattr(self, self.backbone)

    def trains_trunk(self) -> bool:
        if self.trainable == "auto":
            return not is_pretrained(self.backbone_config())
        return self.trainable == "all"


class BackboneModel(Model):
    config: BackboneModelConfig

    def populate_modules(self):
        self.backbone = build_backbone(self.config.backbone_config(), self.config.init_checkpoint)
        if not self.config.trains_trunk():
            for p in self.backbone.trunk_parameters():
                p.requires_grad_(False)

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = {"backbone_head": list(self.backbone.head_parameters())}
        if self.config.trains_trunk():
            groups["backbone_trunk"] = list(self.backbone.trunk_parameters())
        return groups

    def get_outputs(self, context: ContextViews) -> Gaussians:  # type: ignore[override]
        return self.backbone(context)

    def get_loss_dict(self, outputs, batch, metrics_dict=None):
        raise NotImplementedError("foresplat-meta's loss is MetaGrad's surrogate, built by its pipeline")
