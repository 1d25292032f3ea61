"""nerfstudio's trainer with checkpoints written atomically, used by both ForeSplat methods.

nerfstudio writes `step-*.ckpt` in place, so a kill mid-write leaves a truncated latest checkpoint that
`--load-dir` then fails on. Here each checkpoint is written to a temporary file beside the checkpoint
folder and renamed into place; a run killed at any moment resumes from its last complete save. A
pipeline that exports something of its own at each save (foresplat-meta's backbone) does it here too.

nerfstudio's learning-rate schedules return numpy floats, which end up in the schedulers' state; torch
(2.6 and newer) then refuses the checkpoint in ns-eval/ns-render/ns-viewer/ns-export and on resume,
since they load with weights_only=True. Checkpoints are saved with plain Python numbers instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Type

import numpy as np
from nerfstudio.engine.trainer import Trainer, TrainerConfig
from nerfstudio.utils.decorators import check_main_thread

from foresplat_ns.atomic import torch_save_atomic
from foresplat_ns.nerfstudio_glue.launch import install_cpu_launcher

BACKBONE_EXPORT_NAME = "backbone.pt"


@dataclass
class ForeSplatTrainerConfig(TrainerConfig):
    _target: Type = field(default_factory=lambda: ForeSplatTrainer)

    def __post_init__(self) -> None:
        install_cpu_launcher()


def plain_numbers(obj):
    """`obj` with numpy scalars turned into Python numbers, recursively through dicts, lists and tuples."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: plain_numbers(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(plain_numbers(v) for v in obj)
    return obj


def atomic_torch_save(payload, path: Path) -> None:
    """torch.save through a hidden sibling staging folder (nerfstudio_models must hold only whole
    checkpoints: its loader parses every file name there)."""
    staging = path.parent.parent / f".{path.parent.name}.staging"
    for stale in staging.glob("*.tmp"):  # left by a process killed mid-save; one writer per run folder
        stale.unlink()
    torch_save_atomic(payload, path, staging=staging)


def check_load_dir(load_dir: Path) -> None:
    """`--load-dir` must be a run's nerfstudio_models folder holding a step-*.ckpt; otherwise say which
    folder was meant, before nerfstudio's bare FileNotFoundError, int() or IndexError."""
    load_dir = Path(load_dir)
    if not load_dir.is_dir():
        raise ValueError(f"--load-dir {load_dir} does not exist (give a run's nerfstudio_models folder)")
    if not any(load_dir.glob("step-*.ckpt")):
        if (load_dir / "nerfstudio_models").is_dir():
            raise ValueError(f"--load-dir {load_dir} is a run folder: give its checkpoints, --load-dir {load_dir / 'nerfstudio_models'}")
        raise ValueError(f"--load-dir {load_dir} holds no step-*.ckpt checkpoint (was the run stopped before its first save?)")


class ForeSplatTrainer(Trainer):
    def _load_checkpoint(self) -> None:
        if self.config.load_dir is not None:
            check_load_dir(self.config.load_dir)
        super()._load_checkpoint()

    @check_main_thread
    def save_checkpoint(self, step: int) -> None:
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        ckpt_path = self.checkpoint_dir / f"step-{step:09d}.ckpt"
        pipeline = self.pipeline.module if hasattr(self.pipeline, "module") else self.pipeline
        payload = {
            "step": step,
            "pipeline": pipeline.state_dict(),
            "optimizers": {k: v.state_dict() for k, v in self.optimizers.optimizers.items()},
            "schedulers": {k: v.state_dict() for k, v in self.optimizers.schedulers.items()},
            "scalers": self.grad_scaler.state_dict(),
        }
        atomic_torch_save(plain_numbers(payload), ckpt_path)
        if self.config.save_only_latest_checkpoint:
            for old in self.checkpoint_dir.glob("*.ckpt"):
                if old != ckpt_path:
                    old.unlink()
        if hasattr(pipeline, "save_backbone"):
            pipeline.save_backbone(self.base_dir / BACKBONE_EXPORT_NAME, step)
