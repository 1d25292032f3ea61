"""`ns-train foresplat-meta`'s model: the backbone being trained, as a nerfstudio Model.

Wrapping the backbone this way lets nerfstudio's trainer, checkpoints, optimisers and DDP handle it
unchanged. Its output is the predicted Gaussians; the loss is built by the pipeline (MetaGrad).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Type

from nerfstudio.models.base_model import Model, ModelConfig
from torch.nn import Parameter

from foresplat_ns.backbones import Backbone, ContextViews, is_pretrained
from foresplat_ns.gaussians import Gaussians


@dataclass
class BackboneModelConfig(ModelConfig):
    """The backbone itself is chosen by the pipeline's `--pipeline.backbone.*` (as in ns-train foresplat)
    and handed to the model as `backbone`; here is only what training does with it."""

    _target: Type = field(default_factory=lambda: BackboneModel)
    trainable: Literal["auto", "all", "head"] = "auto"
    """Train the whole network or only its prediction head (the trunk frozen). auto: the head of a large
    pretrained backbone (anysplat, pi3x), the whole of one trained here (compact)."""

    def trains_trunk(self, backbone: Backbone) -> bool:
        if self.trainable == "auto":
            return not is_pretrained(backbone.config)
        return self.trainable == "all"


class BackboneModel(Model):
    config: BackboneModelConfig

    def populate_modules(self):
        self.backbone: Backbone = self.kwargs.pop("backbone")  # built by the pipeline from --pipeline.backbone
        if not self.backbone.is_learned:
            raise ValueError(f"the '{self.backbone.config.name}' initialiser has nothing to train: select a learned backbone")
        if not self.config.trains_trunk(self.backbone):
            for p in self.backbone.trunk_parameters():
                p.requires_grad_(False)

    def get_param_groups(self) -> Dict[str, List[Parameter]]:
        groups = {"backbone_head": list(self.backbone.head_parameters())}
        if self.config.trains_trunk(self.backbone):
            groups["backbone_trunk"] = list(self.backbone.trunk_parameters())
        return groups

    def get_outputs(self, context: ContextViews) -> Gaussians:  # type: ignore[override]
        return self.backbone(context)

    def get_loss_dict(self, outputs, batch, metrics_dict=None):
        raise NotImplementedError("foresplat-meta's loss is MetaGrad's surrogate, built by its pipeline")
