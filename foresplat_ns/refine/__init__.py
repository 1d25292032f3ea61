"""Test-time refinement of Gaussians: one definition shared by `ns-train foresplat`, MetaGrad's inner
loop and `foresplat-bench refine`.

MetaGrad only helps if its inner loop is the optimisation that will really run at test time, so the
learning rates, loss, SH schedule, background and densification live here once. The nerfstudio
method config is generated from a `RefineConfig` (see `nerfstudio_optimizers` and `splatfacto_fields`).
"""

from foresplat_ns.refine.config import RefineConfig
from foresplat_ns.refine.loss import photometric_loss, psnr
from foresplat_ns.refine.refiner import Refiner
from foresplat_ns.refine.render import View, background_for_step, composite_over, render_gaussians, render_view
from foresplat_ns.refine.strategy import PredictedInitStrategy, make_strategy

__all__ = [
    "PredictedInitStrategy",
    "RefineConfig",
    "Refiner",
    "View",
    "background_for_step",
    "composite_over",
    "make_strategy",
    "photometric_loss",
    "psnr",
    "render_gaussians",
    "render_view",
]
