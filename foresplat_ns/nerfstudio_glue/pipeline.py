"""`ns-train foresplat`'s pipeline: training images and cameras -> backbone -> Gaussians -> splatfacto.

At set-up it reads the scene through nerfstudio's datamanager and builds the start (`foresplat_ns.start`:
the backbone's prediction from evenly chosen context views, splatfacto's own SfM/random start, or their
union) and hands it to the model; from then on training is ordinary splatfacto refinement with
nerfstudio's optimisers, schedulers and densification.
"""

from __future__ import annotations

import dataclasses
import typing
import warnings
from dataclasses import dataclass, field
from typing import Literal, Type

import torch
import torch.distributed as dist
from nerfstudio.pipelines.base_pipeline import Pipeline, VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch.nn.parallel import DistributedDataParallel as DDP

from foresplat_ns.backbones import BackboneSelection, build_backbone
from foresplat_ns.data import check_image_files, scene_views_from_datamanager, setup_full_image_datamanager
from foresplat_ns.gaussians import Gaussians
from foresplat_ns.refine import RefineConfig
from foresplat_ns.start import StartConfig, initial_gaussians, resolve_rule


@dataclass
class ForeSplatPipelineConfig(VanillaPipelineConfig):
    _target: Type = field(default_factory=lambda: ForeSplatPipeline)
    backbone: BackboneSelection = field(default_factory=BackboneSelection)
    """What predicts the start: --pipeline.backbone.name, .checkpoint (default: the shipped one) and settings."""
    start: StartConfig = field(default_factory=StartConfig)
    """Where refinement starts (--pipeline.start.start prediction|splatfacto|union|auto) and the context views."""


class ForeSplatPipeline(VanillaPipeline):
    config: ForeSplatPipelineConfig

    def __init__(
        self,
        config: ForeSplatPipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler=None,
    ):
        Pipeline.__init__(self)
        self.config = config
        self.test_mode = test_mode
        self.datamanager = setup_full_image_datamanager(
            config.datamanager, device=device, test_mode=test_mode, world_size=world_size, local_rank=local_rank
        )
        self.datamanager.to(device)
        # Training builds the start from the backbone; loading a finished run (test/inference) takes the
        # Gaussians from its checkpoint, so the backbone is not needed there.
        seed_gaussians = self.predict_initial_gaussians() if test_mode == "val" else None
        self._model = config.model.setup(
            scene_box=self.datamanager.train_dataset.scene_box,
            num_train_data=len(self.datamanager.train_dataset),
            metadata=self.datamanager.train_dataset.metadata,
            device=device,
            grad_scaler=grad_scaler,
            seed_gaussians=seed_gaussians,
        )
        self.model.to(device)
        self.world_size = world_size
        if world_size > 1:
            self._model = typing.cast(Pipeline, DDP(self._model, device_ids=[local_rank], find_unused_parameters=True))
            dist.barrier(device_ids=[local_rank])

    @torch.no_grad()
    def predict_initial_gaussians(self) -> Gaussians:
        scene = scene_views_from_datamanager(self.datamanager)
        model = self.config.model
        # splatfacto's own flags set its random start, as they would in ns-train splatfacto
        start = dataclasses.replace(self.config.start, num_random=model.num_random, random_scale=model.random_scale)
        # The held-out images are read at the first evaluation, long after the first save: checked now.
        held_out = self.datamanager.eval_dataset._dataparser_outputs.image_filenames
        if held_out:
            check_image_files(held_out)
        backbone = None
        if resolve_rule(start.start, scene) != "splatfacto":
            backbone = build_backbone(self.config.backbone, with_sfm_points=start.backbone_sees_points_of(scene))
            with_points = ""
            if start.backbone_sees_points_of(scene):
                with_points = f" and the capture's {scene.points[0].shape[0]} SfM points"
            weights = backbone.checkpoint_path
            side = start.context_side_for(backbone)
            CONSOLE.log(
                f"ForeSplat: predicting initial Gaussians with the '{self.config.backbone.name}' backbone"
                f"{f' ({weights})' if weights else ''} from {min(start.num_context_views, len(scene))} of {len(scene)} "
                f"training views{f' (at most {side} px)' if side else ''}{with_points}"
            )
        # The model's splatfacto fields are RefineConfig's (method_configs derives one from the other).
        refine = RefineConfig(**{name: getattr(model, name) for name in RefineConfig().splatfacto_fields()})
        if backbone is not None:
            warn_if_trained_for_other_refinement(backbone, refine)
        chosen = initial_gaussians(scene, backbone, start, refine)
        if chosen.probe_losses:
            losses = ", ".join(f"{name} {loss:.4f}" for name, loss in chosen.probe_losses.items())
            CONSOLE.log(f"ForeSplat: zero-step loss on probe views: {losses}")
        CONSOLE.log(f"ForeSplat: starting from '{chosen.name}', {chosen.gaussians.num_gaussians} Gaussians")
        return chosen.gaussians


def warn_if_trained_for_other_refinement(backbone, refine: RefineConfig) -> None:
    """MetaGrad trains a backbone for one refinement; say so when this run refines differently."""
    recorded = backbone.training_record.get("refine")
    if not recorded:
        return
    ours = refine.splatfacto_fields()
    differing = [
        f"{name}: trained for {recorded[name]!r}, refining with {value!r}"
        for name, value in ours.items()
        if name in recorded and recorded[name] != value
    ]
    if differing:
        CONSOLE.log(f"[yellow]ForeSplat: the backbone was trained for another refinement ({'; '.join(differing)})")
        warnings.warn(f"the backbone was trained for another refinement: {'; '.join(differing)}", stacklevel=2)
