"""ForeSplat's nerfstudio model: splatfacto that runs on any device and starts from a backbone's Gaussians.

Splatfacto hard-codes `.cuda()` and gsplat's CUDA rasteriser, and builds LPIPS by downloading AlexNet
weights. This subclass renders through `foresplat_ns.render` (gsplat on CUDA, our tile rasteriser on
CPU), takes its initial Gaussians from the pipeline, and builds LPIPS only from locally cached weights.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from typing import Dict, Optional, Tuple, Type

import torch
from nerfstudio.cameras.cameras import Cameras
from nerfstudio.model_components.lib_bilagrid import BilateralGrid
from nerfstudio.models.splatfacto import SplatfactoModel, SplatfactoModelConfig
from nerfstudio.utils.colors import get_color
from torch.nn import Parameter

from foresplat_ns.cameras import viewmats_from_camtoworlds
from foresplat_ns.gaussians import Gaussians, sh_to_rgb
from foresplat_ns.refine import make_strategy, render_gaussians
from foresplat_ns.refine.loss import SSIM

VIEWER_BACKGROUND = (0.1490, 0.1647, 0.2157)
"""Splatfacto's evaluation background in 'random' mode (viser's default background)."""


def local_lpips():
    """LPIPS (AlexNet) if its weights are already on disk, else None with one warning: never a download."""
    from torchvision.models import AlexNet_Weights

    weights_file = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(AlexNet_Weights.DEFAULT.url))
    if not os.path.isfile(weights_file):
        warnings.warn(
            f"LPIPS is left out of the metrics: its AlexNet weights are not in {weights_file} and ForeSplat never "
            "downloads at run time. Put the file there (torchvision's alexnet-owt-7be5be79.pth) to get LPIPS.",
            stacklevel=2,
        )
        return None
    from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity

    return LearnedPerceptualImagePatchSimilarity(normalize=True)


@dataclass
class ForeSplatModelConfig(SplatfactoModelConfig):
    """Splatfacto's config; the method config fills its refinement fields from a RefineConfig."""

    _target: Type = field(default_factory=lambda: ForeSplatModel)
    pause_after_start: bool = True
    """Densify only num_train_views + refine_every steps into the run, as splatfacto does after its step-0
    opacity reset, which ForeSplat skips (`RefineConfig.pause_after_start`)."""


class ForeSplatModel(SplatfactoModel):
    """Splatfacto initialised from `seed_gaussians` (a backbone's prediction) instead of SfM or random points.

    Without seed Gaussians (loading a trained run for ns-eval, ns-render, ns-viewer, ns-export) it holds
    one placeholder Gaussian, which the checkpoint's state dict resizes, as splatfacto's loader does.
    """

    config: ForeSplatModelConfig

    def __init__(self, *args, seed_gaussians: Optional[Gaussians] = None, **kwargs):
        self.seed_gaussians = seed_gaussians
        super().__init__(*args, **kwargs)

    def populate_modules(self):
        if self.config.rasterize_mode != "classic":
            # Refused rather than ignored: the CPU rasteriser, MetaGrad's inner loop and the benchmark render
            # classic splats, and ns-train foresplat refines exactly as they do.
            raise ValueError(
                f"--pipeline.model.rasterize-mode {self.config.rasterize_mode} is not supported by ForeSplat: it refines with "
                "classic rasterisation on every device (leave the flag out)"
            )
        gaussians = self.seed_gaussians if self.seed_gaussians is not None else self._placeholder_gaussians()
        gaussians = gaussians.with_sh_degree(self.config.sh_degree)
        self.gauss_params = torch.nn.ParameterDict({name: Parameter(t.detach().clone().float()) for name, t in gaussians.items()})
        self.seed_gaussians = None  # the parameters own the values now
        self.camera_optimizer = self.config.camera_optimizer.setup(num_cameras=self.num_train_data, device="cpu")

        from torchmetrics.image import PeakSignalNoiseRatio

        self.psnr = PeakSignalNoiseRatio(data_range=1.0)
        self.ssim = SSIM()  # the Refiner's SSIM: splatfacto's loss and metrics call it
        self.lpips = local_lpips()
        self.step = 0
        self.crop_box = None
        if self.config.background_color == "random":
            self.background_color = torch.tensor(VIEWER_BACKGROUND)
        else:
            self.background_color = get_color(self.config.background_color)
        if self.config.use_bilateral_grid:
            self.bil_grids = BilateralGrid(
                num=self.num_train_data,
                grid_X=self.config.grid_shape[0],
                grid_Y=self.config.grid_shape[1],
                grid_W=self.config.grid_shape[2],
            )
        # SplatfactoModelConfig spells the densification settings as RefineConfig does.
        self.strategy = make_strategy(self.config, self.num_train_data)
        self.strategy_state = self.strategy.initialize_state(scene_scale=1.0)

    # Colour is SH band 0 at every sh_degree, 0 included, on every path (ns-train foresplat, Refiner, MetaGrad,
    # the gsplat and CPU renderers). splatfacto's sh_degree 0 stores sigmoid logits instead; its `colors` and
    # `shs_0`, which ns-export and the viewer read, are overridden to this one parameterisation.
    @property
    def colors(self) -> torch.Tensor:
        return sh_to_rgb(self.features_dc)

    @property
    def shs_0(self) -> torch.Tensor:
        return self.features_dc

    def _placeholder_gaussians(self) -> Gaussians:
        one = torch.zeros(1, 3)
        return Gaussians.from_activated(
            means=one,
            scales=torch.full((1, 3), 0.01),
            quats=torch.tensor([[1.0, 0.0, 0.0, 0.0]]),
            opacities=torch.full((1,), 0.1),
            rgb=torch.full((1, 3), 0.5),
            sh_degree=self.config.sh_degree,
        )

    def get_outputs(self, camera: Cameras) -> Dict[str, torch.Tensor]:
        if not isinstance(camera, Cameras):
            raise TypeError(f"ForeSplatModel.get_outputs takes a Cameras object, got {type(camera).__name__}")
        if self.training:
            if camera.shape[0] != 1:
                raise ValueError("training renders one camera at a time")
            camtoworlds = self.camera_optimizer.apply_to_camera(camera)
        else:
            camtoworlds = camera.camera_to_worlds

        gaussians = Gaussians(**dict(self.gauss_params.items()))
        if self.crop_box is not None and not self.training:
            crop_ids = self.crop_box.within(self.means).squeeze()
            if crop_ids.sum() == 0:
                return self.get_empty_outputs(int(camera.width.item()), int(camera.height.item()), self.background_color)
            gaussians = gaussians[crop_ids]

        downscale = self._get_downscale_factor()
        camera.rescale_output_resolution(1 / downscale)
        Ks = camera.get_intrinsics_matrices().to(self.device)
        width, height = int(camera.width.item()), int(camera.height.item())
        camera.rescale_output_resolution(downscale)
        self.last_size = (height, width)
        viewmats = viewmats_from_camtoworlds(camtoworlds.to(self.device))

        render_mode = "RGB+ED" if self.config.output_depth_during_training or not self.training else "RGB"
        sh_degree = min(self.step // self.config.sh_degree_interval, self.config.sh_degree)
        background = self._get_background_color()
        rgb, alpha, depth, self.info = render_gaussians(
            gaussians, viewmats, Ks, width, height, sh_degree, background, render_mode, absgrad=self.strategy.absgrad
        )
        if self.training:
            self.strategy.step_pre_backward(self.gauss_params, self.optimizers, self.strategy_state, self.step, self.info)
        if self.config.use_bilateral_grid and self.training and camera.metadata and "cam_idx" in camera.metadata:
            rgb = self._apply_bilateral_grid(rgb, camera.metadata["cam_idx"], height, width)
        if depth is not None:
            depth = torch.where(alpha > 0, depth, depth.detach().max()).squeeze(0)
        if background.shape[0] == 3 and not self.training:
            background = background.expand(height, width, 3)
        return {"rgb": rgb.squeeze(0), "depth": depth, "accumulation": alpha.squeeze(0), "background": background}

    def get_image_metrics_and_images(self, outputs, batch) -> Tuple[Dict[str, float], Dict[str, torch.Tensor]]:
        gt_rgb = self.composite_with_background(self.get_gt_img(batch["image"]), outputs["background"])
        predicted_rgb = outputs["rgb"]
        combined_rgb = torch.cat([gt_rgb, predicted_rgb], dim=1)
        gt = torch.moveaxis(gt_rgb, -1, 0)[None]
        pred = torch.moveaxis(predicted_rgb, -1, 0)[None]
        metrics = {"psnr": float(self.psnr(gt, pred).item()), "ssim": float(self.ssim(gt, pred))}
        if self.lpips is not None:
            metrics["lpips"] = float(self.lpips(gt, pred))
        metrics["gaussian_count"] = float(self.num_points)
        return metrics, {"img": combined_rgb}
