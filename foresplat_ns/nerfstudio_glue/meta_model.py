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

from foresplat_ns.backbones import BackboneConfig, ContextViews, load_backbone
from foresplat_ns.backbones.compact import CompactBackboneConfig
from foresplat_ns.gaussians import Gaussians


@dataclass
class BackboneModelConfig(ModelConfig):
    _target: Type = field(default_factory=lambda: BackboneModel)
    backbone: Literal["compact"] = "compact"
    """Which backbone to train; its settings are the same-named field below."""
    compact: CompactBackboneConfig = field(default_factory=CompactBackboneConfig)
    init_checkpoint: Optional[Path] = None
    """Start from these weights (fine-tuning); None trains from the backbone's own initialisation."""
    trainable: Literal["all", "head"] = "all"
    """Train the whole network, or only its prediction head (the trunk is frozen)."""

    def backbone_config(self) -> BackboneConfig:
        return getattr(self, self.backbone)


class BackboneModel(Model):
    config: BackboneModelConfig

    def populate_modules(self):
        expected = self.config.backbone_config()
        if self.config.init_checkpoint is not None:
            self.backbone, _ = load_backbone(self.config.init_checkpoint, expected=expected)
        else:
            self.backbone = expected.setup()
        if self.config.trainable == "head":
            for p in self.backbone.trunk_parameters():
                p.requires_grad_(False)

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = {"backbone_head": list(self.backbone.head_parameters())}
        if self.config.trainable == "all":
            groups["backbone_trunk"] = list(self.backbone.trunk_parameters())
        return groups

    def get_outputs(self, context: ContextViews) -> Gaussians:  # type: ignore[override]
        return self.backbone(context)

    def get_loss_dict(self, outputs, batch, metrics_dict=None):
        raise NotImplementedError("foresplat-meta's loss is MetaGrad's surrogate, built by its pipeline")
