"""The nerfstudio methods ForeSplat registers (entry points in pyproject.toml): `foresplat` and `foresplat-meta`.

Refinement settings come from one RefineConfig, so `ns-train foresplat`, MetaGrad's inner loop and
`foresplat-bench refine` optimise the same way. The device is CUDA when present, else CPU.
"""

from __future__ import annotations

import torch
from nerfstudio.configs.base_config import MachineConfig, ViewerConfig
from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig
from nerfstudio.engine.optimizers import AdamOptimizerConfig
from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig
from nerfstudio.plugins.types import MethodSpecification

from foresplat_ns.nerfstudio_glue.capture_dataparser import CaptureDataParserConfig
from foresplat_ns.nerfstudio_glue.meta_datamanager import MultiSceneDataManagerConfig
from foresplat_ns.nerfstudio_glue.meta_pipeline import MetaPipelineConfig
from foresplat_ns.nerfstudio_glue.model import ForeSplatModelConfig
from foresplat_ns.nerfstudio_glue.pipeline import ForeSplatPipelineConfig
from foresplat_ns.nerfstudio_glue.trainer import ForeSplatTrainerConfig
from foresplat_ns.refine import RefineConfig

DEFAULT_REFINE = RefineConfig()
DEVICE_TYPE = "cuda" if torch.cuda.is_available() else "cpu"


def foresplat_trainer_config(refine: RefineConfig = DEFAULT_REFINE) -> ForeSplatTrainerConfig:
    """`ns-train foresplat`: backbone-initialised splatfacto with a short refinement of `refine.max_steps`."""
    return ForeSplatTrainerConfig(
        method_name="foresplat",
        steps_per_eval_image=100,
        steps_per_eval_batch=0,
        steps_per_save=500,
        steps_per_eval_all_images=refine.max_steps,
        max_num_iterations=refine.max_steps,
        mixed_precision=False,
        machine=MachineConfig(device_type=DEVICE_TYPE),
        pipeline=ForeSplatPipelineConfig(
            datamanager=FullImageDatamanagerConfig(
                dataparser=CaptureDataParserConfig(),
                cache_images_type="uint8",
            ),
            model=ForeSplatModelConfig(**refine.splatfacto_fields()),
        ),
        optimizers={
            **refine.nerfstudio_optimizers(),
            "camera_opt": {
                "optimizer": AdamOptimizerConfig(lr=1e-4, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=5e-7, max_steps=refine.max_steps),
            },
            "bilateral_grid": {
                "optimizer": AdamOptimizerConfig(lr=2e-3, eps=1e-15),
                "scheduler": ExponentialDecaySchedulerConfig(lr_final=1e-4, max_steps=refine.max_steps),
            },
        },
        viewer=ViewerConfig(num_rays_per_chunk=1 << 15),
        vis="viewer",
    )


foresplat = MethodSpecification(
    config=foresplat_trainer_config(),
    description="ForeSplat: splatfacto initialised by a feed-forward backbone (MetaGrad-trained), short refinement.",
)


def foresplat_meta_trainer_config(refine: RefineConfig = DEFAULT_REFINE) -> ForeSplatTrainerConfig:
    """`ns-train foresplat-meta`: MetaGrad training of a backbone over a folder of scenes.

    Each step is one scene. Checkpoints (atomic) resume with --load-dir; each save also writes
    <run>/backbone.pt, the file `ns-train foresplat --pipeline.backbone.checkpoint` takes.
    """
    return ForeSplatTrainerConfig(
        method_name="foresplat-meta",
        steps_per_eval_image=0,
        steps_per_eval_batch=0,
        steps_per_eval_all_images=1000,
        steps_per_save=200,
        save_only_latest_checkpoint=True,
        max_num_iterations=3000,
        mixed_precision=False,
        machine=MachineConfig(device_type=DEVICE_TYPE),
        pipeline=MetaPipelineConfig(
            datamanager=MultiSceneDataManagerConfig(),
            refine=refine,
        ),
        optimizers={
            "backbone_head": {"optimizer": AdamOptimizerConfig(lr=1e-3, eps=1e-8), "scheduler": None},
            "backbone_trunk": {"optimizer": AdamOptimizerConfig(lr=1e-3, eps=1e-8), "scheduler": None},
        },
        vis="tensorboard",
    )


foresplat_meta = MethodSpecification(
    config=foresplat_meta_trainer_config(),
    description="ForeSplat MetaGrad: train a backbone across many scenes so its Gaussians refine well.",
)
