"""`foresplat-distill`: train the compact backbone to reproduce a large teacher's Gaussians over a corpus.

The large pretrained backbones (anysplat, pi3x) are too big for an edge device; the compact one is
small but starts from nothing. Distillation gives it the teacher's geometry and appearance:

    scene, context views (evenly spaced, random offset) ──teacher (no grad; cached per scene and
        context)──► T, and ──student──► S, both in the dataset's frame
    loss = L1+SSIM(render S, render T)          splatfacto's loss, on `views_per_step` of the
                                                scene's training views, over one random background
         + depth_weight · |depth S − depth T| / mean depth T    where T covers the pixel (alpha > 0.5)
         + opacity_weight · |alpha S − alpha T|

Renders, not Gaussians, are matched: the two predict different numbers of Gaussians at different
places, and what refinement starts from is what they render. The student's checkpoint (our format,
written atomically) is what `--pipeline.backbone.checkpoint` of `ns-train foresplat` and
`ns-train foresplat-meta` takes, so MetaGrad fine-tuning follows.
A killed run resumes from its last save (the same command again).
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple, Union

import torch
import tyro
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import Tensor

from foresplat_ns.backbones import Backbone, BackboneSelection, build_backbone, save_checkpoint
from foresplat_ns.gaussians import Gaussians, cap_gaussians
from foresplat_ns.nerfstudio_glue.meta_datamanager import MetaBatch, MultiSceneDataManagerConfig
from foresplat_ns.refine import RefineConfig, View, background_for_step, photometric_loss, render_gaussians

CONSOLE = Console(stderr=True)
STUDENT_FILE = "student.pt"
"""The distilled backbone: weights, config and the step, what ns-train takes."""
RESUME_FILE = "resume.pt"
"""The student with its optimiser and random state, to resume a killed run."""


@dataclass
class DistillConfig:
    data: Path
    """Training scenes: a folder of scenes, an index.json from foresplat-synth, or a text file listing them."""
    output: Path = Path("outputs/distill")
    """Where student.pt (and resume.pt) are written; a run there already is resumed."""
    teacher: BackboneSelection = field(default_factory=lambda: BackboneSelection(name="anysplat"))
    """The backbone to reproduce, chosen as ns-train foresplat's --pipeline.backbone.* (--teacher.name,
    --teacher.checkpoint, --teacher.anysplat.image-size, ...)."""
    student: BackboneSelection = field(default_factory=BackboneSelection)
    """The backbone trained (default compact; --student.compact.width, ...); --student.checkpoint starts it
    from those weights (e.g. the shipped compact checkpoint), none from its own initialisation."""
    datamanager: MultiSceneDataManagerConfig = field(default_factory=MultiSceneDataManagerConfig)
    """How scenes are read (dataparser, context views, scene limit); its `data` and `seed` are --data and --seed."""
    steps: int = 5000
    views_per_step: int = 2
    """Training views of the scene rendered per step."""
    lr: float = 1e-3
    depth_weight: float = 0.5
    opacity_weight: float = 0.1
    max_teacher_gaussians: int = 100_000
    """The teacher's Gaussians are capped to this before rendering (as `ns-train foresplat` caps them)."""
    teacher_cache: int = 64
    """Teacher predictions kept per (scene, context views); a full-size teacher takes seconds per call."""
    save_every: int = 200
    seed: int = 0
    device: str = "cpu"
    """Where the teacher, the student and rendering run ("cuda" renders through gsplat)."""

    def __post_init__(self) -> None:
        problems = []
        for name in ("steps", "views_per_step", "max_teacher_gaussians", "teacher_cache", "save_every"):
            if getattr(self, name) <= 0:
                problems.append(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        if not self.lr > 0 or self.depth_weight < 0 or self.opacity_weight < 0:
            problems.append("--lr must be positive and --depth-weight, --opacity-weight non-negative")
        if problems:
            raise ValueError("foresplat-distill: " + "; ".join(problems))


@dataclass
class DistillLoss:
    total: Tensor
    """What is back-propagated; the terms below are logged."""
    render: float
    depth: float
    opacity: float


def render_all(gaussians: Gaussians, views: Sequence[View], background: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """rgb [C,H,W,3], alpha [C,H,W,1] and expected depth [C,H,W,1] of `views` (one image size)."""
    viewmats = torch.stack([v.viewmat for v in views])
    Ks = torch.stack([v.K for v in views])
    rgb, alpha, depth, _ = render_gaussians(
        gaussians, viewmats, Ks, views[0].width, views[0].height, gaussians.sh_degree, background, render_mode="RGB+ED"
    )
    return rgb, alpha, depth


def distillation_loss(
    student: Gaussians, teacher: Gaussians, views: Sequence[View], background: Tensor, config: DistillConfig, ssim_lambda: float
) -> DistillLoss:
    """Render-space match of the student to the teacher (see the module docstring)."""
    with torch.no_grad():
        rgb_t, alpha_t, depth_t = render_all(teacher, views, background)
    rgb_s, alpha_s, depth_s = render_all(student, views, background)
    render = torch.stack([photometric_loss(rgb_s[i], rgb_t[i], ssim_lambda) for i in range(len(views))]).mean()
    covered = alpha_t > 0.5
    if covered.any():
        depth = (depth_s - depth_t).abs()[covered].mean() / depth_t[covered].mean().clamp_min(1e-6)
    else:
        depth = render.new_zeros(())
    opacity = (alpha_s - alpha_t).abs().mean()
    total = render + config.depth_weight * depth + config.opacity_weight * opacity
    return DistillLoss(total, render.detach().item(), depth.detach().item(), opacity.detach().item())


class Distiller:
    """One distillation run: data, teacher, student, optimiser, and the step loop with saves."""

    def __init__(self, config: DistillConfig):
        self.config = config
        # The teacher first: a missing weights file or package fails before any scene is read.
        self.teacher: Backbone = build_backbone(config.teacher).to(config.device).eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)
        datamanager = dataclasses.replace(config.datamanager, data=config.data, seed=config.seed)
        self.datamanager = datamanager.setup(device=config.device, test_mode="val")
        self.scenes = self.datamanager.train_scenes
        self.refine = RefineConfig()
        self.generator = torch.Generator().manual_seed(config.seed)
        self.cache: "OrderedDict[Tuple[int, Tuple[int, ...]], Union[Gaussians, str]]" = OrderedDict()
        self.step = 0
        resume = Path(config.output) / RESUME_FILE
        if resume.is_file():
            student = build_backbone(dataclasses.replace(config.student, checkpoint=resume))
            extra = student.training_record
            self._set_student(student)
            self.optimiser.load_state_dict(extra["optimizer"])
            self.step = int(extra["step"])
            self.generator.set_state(extra["generator"])
            self.datamanager.generator.set_state(extra["datamanager_generator"])
            CONSOLE.log(f"foresplat-distill: resuming {resume} at step {self.step}")
        else:
            torch.manual_seed(config.seed)
            student = build_backbone(config.student, without_checkpoint="fresh")
            if not student.is_learned:
                raise ValueError(f"foresplat-distill: the student '{config.student.name}' is not learned: select a learned backbone")
            self._set_student(student)

    def _set_student(self, student: Backbone) -> None:
        self.student = student.to(self.config.device)
        self.optimiser = torch.optim.Adam(self.student.parameters(), lr=self.config.lr)

    def teacher_prediction(self, scene_index: int, context_indices: List[int], batch: MetaBatch) -> Gaussians:
        """The teacher's capped Gaussians for this scene and context, or its ValueError, both remembered:
        a full-size teacher takes seconds per call, and a context it cannot align stays unalignable."""
        key = (scene_index, tuple(context_indices))
        if key in self.cache:
            self.cache.move_to_end(key)
        else:
            try:
                with torch.no_grad():
                    gaussians = self.teacher(batch.context)[0]
                cap_generator = torch.Generator(gaussians.means.device).manual_seed(self.config.seed)
                self.cache[key] = cap_gaussians(gaussians, self.config.max_teacher_gaussians, generator=cap_generator)
            except ValueError as err:
                self.cache[key] = str(err)
            if len(self.cache) > self.config.teacher_cache:
                self.cache.popitem(last=False)
        cached = self.cache[key]
        if isinstance(cached, str):
            raise ValueError(cached)
        return cached

    def train_step(self) -> Optional[DistillLoss]:
        """One step on a random scene; None when the teacher could not predict it (logged, skipped)."""
        scene_index = int(torch.randint(len(self.scenes), (1,), generator=self.generator))
        scene = self.scenes[scene_index]
        context = self.datamanager.context_indices(len(scene[0]))
        batch = self.datamanager.batch(scene, context)
        try:
            teacher = self.teacher_prediction(scene_index, context, batch)
        except ValueError as err:
            CONSOLE.log(f"[yellow]foresplat-distill step {self.step}: skipping scene {batch.scene}: the teacher failed: {err}")
            return None
        picked = torch.randperm(len(batch.supervision), generator=self.generator)[: self.config.views_per_step]
        views = [batch.supervision[int(i)] for i in picked]
        background = background_for_step(self.refine, True, self.generator, views[0].image.device, views[0].image.dtype)
        self.student.train()
        student = self.student(batch.context)[0]
        loss = distillation_loss(student, teacher, views, background, self.config, self.refine.ssim_lambda)
        self.optimiser.zero_grad(set_to_none=True)
        loss.total.backward()
        torch.nn.utils.clip_grad_norm_(self.student.parameters(), 1.0)
        self.optimiser.step()
        return loss

    def save(self) -> None:
        output = Path(self.config.output)
        info = {"step": self.step, "teacher": self.config.teacher.name, "image_side": self.datamanager.largest_image_side()}
        save_checkpoint(output / STUDENT_FILE, self.student, extra=info)
        save_checkpoint(
            output / RESUME_FILE,
            self.student,
            extra={
                **info,
                "optimizer": self.optimiser.state_dict(),
                "generator": self.generator.get_state(),
                "datamanager_generator": self.datamanager.generator.get_state(),
            },
        )

    def run(self) -> List[Dict[str, float]]:
        """Train to `steps`, saving every `save_every` steps and at the end; the losses of the steps run."""
        history: List[Dict[str, float]] = []
        columns = (
            TextColumn(f"[bold]distilling[/] {self.config.teacher.name} → {self.config.student.name}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  skipped {task.fields[skipped]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
        )
        skipped = 0
        with Progress(*columns, console=CONSOLE) as progress:
            task = progress.add_task("", total=self.config.steps, completed=self.step, loss="-", skipped=0)
            while self.step < self.config.steps:
                loss = self.train_step()
                self.step += 1
                if loss is None:
                    skipped += 1
                else:
                    history.append(
                        {
                            "step": self.step,
                            "loss": loss.total.detach().item(),
                            "render": loss.render,
                            "depth": loss.depth,
                            "opacity": loss.opacity,
                        }
                    )
                progress.update(task, advance=1, loss=f"{history[-1]['loss']:.4f}" if history else "-", skipped=skipped)
                if self.step % self.config.save_every == 0 or self.step == self.config.steps:
                    self.save()
        CONSOLE.log(f"foresplat-distill: {Path(self.config.output) / STUDENT_FILE} ({self.step} steps, {skipped} skipped this run)")
        return history


def distill(config: DistillConfig) -> List[Dict[str, float]]:
    return Distiller(config).run()


def entrypoint(argv: Optional[Sequence[str]] = None) -> None:
    """Console script; `argv` (without the program name) defaults to the process arguments."""
    try:
        distill(tyro.cli(DistillConfig, args=argv))
    except ValueError as error:
        CONSOLE.print(f"[bold red]error:[/] {error}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    entrypoint()
