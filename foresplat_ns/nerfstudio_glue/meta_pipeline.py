"""`ns-train foresplat-meta`'s pipeline: scenes -> backbone -> Gaussians -> MetaGrad -> backbone update.

Each outer step predicts one scene's Gaussians, runs MetaGrad's unrolled refinement on them (or the
zero-step rule, `--pipeline.rule zero-step`) and hands nerfstudio's trainer the surrogate loss
Σ⟨φ, g⟩, whose backward is exactly back-propagating the aggregate g into the network. A scene whose
prediction or inner loop goes non-finite is skipped with its name logged; no NaN reaches the weights.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Literal, Optional, Type

import torch
import torch.distributed as dist
from nerfstudio.pipelines.base_pipeline import Pipeline, VanillaPipeline, VanillaPipelineConfig
from nerfstudio.utils.rich_utils import CONSOLE
from torch.nn.parallel import DistributedDataParallel as DDP

from foresplat_ns.backbones import BackboneSelection, build_backbone, save_checkpoint
from foresplat_ns.gaussians import cap_gaussians, union
from foresplat_ns.metagrad import DivergedInnerLoop, MetaGradConfig, metagrad_step
from foresplat_ns.nerfstudio_glue.meta_datamanager import MetaBatch, MultiSceneDataManagerConfig
from foresplat_ns.nerfstudio_glue.meta_model import BackboneModelConfig
from foresplat_ns.refine import RefineConfig, Refiner


@dataclass
class MetaPipelineConfig(VanillaPipelineConfig):
    _target: Type = field(default_factory=lambda: MetaPipeline)
    datamanager: MultiSceneDataManagerConfig = field(default_factory=MultiSceneDataManagerConfig)
    backbone: BackboneSelection = field(default_factory=BackboneSelection)
    """The backbone to train (--pipeline.backbone.name, its settings, and --pipeline.backbone.checkpoint to
    fine-tune one; none: compact from its own initialisation, anysplat/pi3x from their release's weights)."""
    model: BackboneModelConfig = field(default_factory=BackboneModelConfig)
    rule: Literal["metagrad", "zero-step"] = "metagrad"
    """metagrad: the ForeSplat rule; zero-step: the vanilla rule (MetaGrad with K = 0), same code."""
    metagrad: MetaGradConfig = field(default_factory=MetaGradConfig)
    refine: RefineConfig = field(default_factory=RefineConfig)
    """Test-time refinement, which the inner loop reproduces: keep it equal to `ns-train foresplat`'s."""
    max_gaussians: int = 100_000
    eval_refine_steps: int = 100
    """Refinement steps for the held-out evaluation nerfstudio runs (and ns-eval reports)."""
    seed: int = 0

    def rule_config(self) -> MetaGradConfig:
        if self.rule == "zero-step":
            return dataclasses.replace(self.metagrad, inner_steps=0, num_anchors=1, zero_step_weight=0.0, zero_step_weight_start=None)
        return self.metagrad


class MetaPipeline(VanillaPipeline):
    config: MetaPipelineConfig

    def __init__(
        self,
        config: MetaPipelineConfig,
        device: str,
        test_mode: Literal["test", "val", "inference"] = "val",
        world_size: int = 1,
        local_rank: int = 0,
        grad_scaler=None,
    ):
        Pipeline.__init__(self)
        self.config = config
        self.test_mode = test_mode
        self.datamanager = config.datamanager.setup(device=device, test_mode=test_mode, world_size=world_size, local_rank=local_rank)
        backbone = build_backbone(config.backbone, without_checkpoint="fresh")
        self._model = config.model.setup(scene_box=None, num_train_data=0, device=device, grad_scaler=grad_scaler, backbone=backbone)
        self.model.to(device)
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + local_rank)
        self.world_size = world_size
        if world_size > 1:
            device_ids = [local_rank] if str(device).startswith("cuda") else None  # gloo on CPU takes none
            self._model = typing.cast(Pipeline, DDP(self._model, device_ids=device_ids, find_unused_parameters=True))
            dist.barrier()

    @property
    def backbone(self):
        return self.model.backbone

    def _generators(self) -> Dict[str, torch.Generator]:
        """The random streams a resumed run must continue (scene and view draws, inner-loop views); with
        several processes each has its own, re-seeded on resume."""
        return {} if self.world_size > 1 else {"rng.pipeline": self.generator, "rng.datamanager": self.datamanager.generator}

    def state_dict(self, *args, **kwargs):
        state = super().state_dict(*args, **kwargs)
        if not args and not kwargs:  # the checkpoint's top-level call, not nn.Module's recursion
            state.update({key: generator.get_state() for key, generator in self._generators().items()})
        return state

    def load_state_dict(self, state_dict, strict: bool = True, **kwargs):
        state = dict(state_dict)
        for key, generator in self._generators().items():
            if key in state:
                generator.set_state(state.pop(key))
        for key in ("rng.pipeline", "rng.datamanager"):
            state.pop(key, None)
        return super().load_state_dict(state, strict=strict, **kwargs)

    def get_train_loss_dict(self, step: int):
        batch: MetaBatch = self.datamanager.next_train(step)
        try:
            prediction = self._model(batch.context)[0]
            prediction = cap_gaussians(prediction, self.config.max_gaussians, generator=self.generator)
            result = metagrad_step(
                prediction,
                batch.supervision,
                self.config.refine,
                self.config.rule_config(),
                query_views=batch.query,
                generator=self.generator,
                outer_step=step,
                measure_view=batch.query[0] if batch.query else batch.supervision[0],
                companion=batch.companion,
            )
        except (DivergedInnerLoop, ValueError) as err:
            CONSOLE.log(f"[yellow]foresplat-meta step {step}: skipping scene {batch.scene}: {err}")
            return {}, {"surrogate": self._zero_loss()}, {"skipped_scenes": 1.0}
        losses = result.result.inner_losses
        metrics = {
            "inner_loss_first": losses[0],
            "inner_loss_last": losses[-1],
            "zero_step_psnr": result.zero_step_psnr,
            "inner_final_psnr": result.final_psnr,
            "num_gaussians": float(prediction.num_gaussians),
            "skipped_scenes": 0.0,
        }
        return {}, {"surrogate": result.surrogate}, metrics

    def _zero_loss(self) -> torch.Tensor:
        """A loss with zero gradient for every trainable weight (DDP still needs every rank to back-propagate)."""
        return sum((p * 0).sum() for p in self.model.parameters() if p.requires_grad)

    @torch.no_grad()
    def evaluate_scene(self, batch: MetaBatch, steps: int) -> Dict[str, float]:
        """Held-out-view PSNR of the prediction before and after `steps` steps of test-time refinement."""
        prediction = cap_gaussians(self.model(batch.context)[0], self.config.max_gaussians, generator=self.generator)
        start = prediction if batch.companion is None else union(prediction, batch.companion)
        query = batch.query or batch.supervision
        with torch.enable_grad():
            refiner = Refiner(start, self.config.refine, len(batch.supervision), generator=self.generator)
            zero_psnr = refiner.evaluate(query)["psnr"]
            for _ in range(steps):
                refiner.train_step(batch.supervision[int(torch.randint(len(batch.supervision), (1,), generator=self.generator))])
        refined_psnr = refiner.evaluate(query)["psnr"]
        return {"zero_step_psnr": zero_psnr, f"psnr_after_{steps}": refined_psnr}

    def get_eval_loss_dict(self, step: int):
        metrics = self.evaluate_scene(self.datamanager.next_eval(step), self.config.rule_config().inner_steps)
        return {}, {}, metrics

    def get_eval_image_metrics_and_images(self, step: int):
        return self.evaluate_scene(self.datamanager.next_eval(step), self.config.eval_refine_steps), {}

    def get_average_eval_image_metrics(self, step: Optional[int] = None, output_path: Optional[Path] = None, get_std: bool = False):
        """Mean held-out metrics over every evaluation scene (the context views fixed: evenly spaced, no offset)."""
        from foresplat_ns.data import evenly_spaced

        self.eval()
        rows = []
        for scene in self.datamanager.eval_scenes:
            context = evenly_spaced(self.datamanager.config.num_context_views, len(scene[0]))
            rows.append(self.evaluate_scene(self.datamanager.batch(scene, context), self.config.eval_refine_steps))
        self.train()
        if not rows:
            return {}
        return {key: sum(r[key] for r in rows) / len(rows) for key in rows[0]}

    def save_backbone(self, path: Path, step: int) -> None:
        """The checkpoint `ns-train foresplat --pipeline.backbone.checkpoint` loads (written atomically)."""
        save_checkpoint(
            path,
            self.backbone,
            extra={
                "step": step,
                "image_side": self.datamanager.largest_image_side(),
                "rule": self.config.rule,
                "metagrad": dataclasses.asdict(self.config.rule_config()),
                "refine": dataclasses.asdict(self.config.refine),
            },
        )
