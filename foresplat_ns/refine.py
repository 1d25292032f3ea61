"""Test-time refinement of Gaussians: one definition shared by `ns-train foresplat`, MetaGrad's inner
loop and `foresplat-bench refine`.

MetaGrad only helps if its inner loop is the optimisation that will really run at test time, so the
learning rates, loss, SH schedule, background and densification live here once. The nerfstudio
method config is generated from a `RefineConfig` (see `nerfstudio_optimizers` and `splatfacto_fields`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Dict, Literal, Optional, Tuple

import torch
from gsplat.strategy import DefaultStrategy
from pytorch_msssim import ssim
from torch import Tensor

from foresplat_ns.gaussians import Gaussians
from foresplat_ns.render import rasterization


@dataclass
class View:
    """One posed image: what a refinement step or an evaluation renders against."""

    image: Tensor  # [H,W,3] or [H,W,4] (RGBA, composited over the render background) float in [0,1]
    viewmat: Tensor  # [4,4] world-to-camera, OpenCV axes
    K: Tensor  # [3,3]

    @property
    def height(self) -> int:
        return self.image.shape[0]

    @property
    def width(self) -> int:
        return self.image.shape[1]


@dataclass
class RefineConfig:
    """Hyper-parameters of test-time refinement. Field names shared with splatfacto's model config are
    spelled as splatfacto spells them, so the nerfstudio method config is derived from this one."""

    lr_means: float = 1.6e-4
    """Adam learning rate of the means at the start (splatfacto's), decayed to lr_means_final."""
    lr_means_final: float = 1.6e-6
    """Adam learning rate of the means at max_steps."""
    lr_scales: float = 0.005
    """Adam learning rate of the log-scales (splatfacto's)."""
    lr_quats: float = 0.001
    """Adam learning rate of the quaternions (splatfacto's)."""
    lr_opacities: float = 0.05
    """Adam learning rate of the opacity logits (splatfacto's)."""
    lr_features_dc: float = 0.0025
    """Adam learning rate of SH band 0 (splatfacto's)."""
    lr_features_rest: float = 0.0025 / 20
    """Adam learning rate of the higher SH bands (splatfacto's)."""
    adam_eps: float = 1e-15
    """Adam's eps, as splatfacto: per-Gaussian gradients of a mean loss are tiny, and a larger eps would
    damp the updates."""
    max_steps: int = 2000
    """Length of a refinement: the means learning rate decays over it and densification is timed by it."""

    # Shared with SplatfactoModelConfig (same names).
    ssim_lambda: float = 0.2
    sh_degree: int = 3
    sh_degree_interval: int = 500
    background_color: Literal["random", "black", "white"] = "random"
    num_downscales: int = 0
    warmup_length: int = 200
    refine_every: int = 100
    reset_alpha_every: int = 30
    stop_split_at: int = 1500
    stop_screen_size_at: int = 2000
    densify_grad_thresh: float = 0.0008
    densify_size_thresh: float = 0.01
    cull_alpha_thresh: float = 0.1
    cull_scale_thresh: float = 0.5
    cull_screen_size: float = 0.15
    split_screen_size: float = 0.05
    use_absgrad: bool = True

    def learning_rates(self) -> Dict[str, float]:
        return {name: getattr(self, f"lr_{name}") for name in Gaussians.field_names()}

    def means_lr(self, step: int) -> float:
        """Exponential decay from lr_means to lr_means_final over max_steps (nerfstudio's schedule)."""
        t = min(max(step / max(self.max_steps, 1), 0.0), 1.0)
        return math.exp(math.log(self.lr_means) * (1 - t) + math.log(self.lr_means_final) * t)

    def active_sh_degree(self, step: int) -> int:
        return min(step // self.sh_degree_interval, self.sh_degree)

    def splatfacto_fields(self) -> Dict[str, object]:
        """The values of the fields this config shares with SplatfactoModelConfig."""
        own = {f.name for f in fields(RefineConfig)}
        return {name: getattr(self, name) for name in own if not name.startswith("lr_") and name not in _REFINE_ONLY}

    def nerfstudio_optimizers(self) -> Dict[str, dict]:
        """TrainerConfig.optimizers for the Gaussian fields, equal to what `make_optimizers` builds."""
        from nerfstudio.engine.optimizers import AdamOptimizerConfig
        from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

        groups = {}
        for name, lr in self.learning_rates().items():
            scheduler = None
            if name == "means":
                scheduler = ExponentialDecaySchedulerConfig(lr_final=self.lr_means_final, max_steps=self.max_steps)
            groups[name] = {"optimizer": AdamOptimizerConfig(lr=lr, eps=self.adam_eps), "scheduler": scheduler}
        return groups


_REFINE_ONLY = {"adam_eps", "max_steps"}


def background_for_step(config: RefineConfig, training: bool, generator: Optional[torch.Generator], device, dtype) -> Tensor:
    """Splatfacto's background rule: a random colour per training step in 'random' mode, fixed otherwise."""
    if config.background_color == "random":
        if training:
            return torch.rand(3, generator=generator, device="cpu").to(device=device, dtype=dtype)
        return torch.tensor([0.1490, 0.1647, 0.2157], device=device, dtype=dtype)
    value = 1.0 if config.background_color == "white" else 0.0
    return torch.full((3,), value, device=device, dtype=dtype)


def render_gaussians(
    gaussians: Gaussians,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: int,
    background: Tensor,
    render_mode: str = "RGB",
    absgrad: bool = False,
) -> Tuple[Tensor, Tensor, Optional[Tensor], dict]:
    """Render cameras the way splatfacto does: colour over `background`, clamped to [0,1].

    viewmats [C,4,4] (world-to-camera, OpenCV), Ks [C,3,3]. Returns rgb [C,H,W,3], alpha [C,H,W,1],
    depth [C,H,W,1] for the "+D"/"+ED" render modes (else None), and the rasteriser's info.
    """
    render, alpha, info = rasterization(
        means=gaussians.means,
        quats=gaussians.quats,
        scales=gaussians.activated_scales(),
        opacities=gaussians.activated_opacities(),
        colors=gaussians.sh_coefficients(),
        viewmats=viewmats,
        Ks=Ks,
        width=width,
        height=height,
        packed=False,
        near_plane=0.01,
        far_plane=1e10,
        render_mode=render_mode,
        sh_degree=min(sh_degree, gaussians.sh_degree),
        absgrad=absgrad,
    )
    rgb = torch.clamp(render[..., :3] + (1 - alpha) * background, 0.0, 1.0)
    depth = render[..., 3:4] if render_mode.endswith("D") else None
    return rgb, alpha, depth, info


def render_view(gaussians: Gaussians, view: View, sh_degree: int, background: Tensor, absgrad: bool = False):
    """Render one refinement view: rgb [H,W,3] and the rasteriser's info."""
    rgb, _, _, info = render_gaussians(
        gaussians, view.viewmat[None], view.K[None], view.width, view.height, sh_degree, background, absgrad=absgrad
    )
    return rgb[0], info


def composite_over(image: Tensor, background: Tensor) -> Tensor:
    """RGB target from an RGB or RGBA image, as splatfacto composites ground truth with an alpha channel."""
    if image.shape[-1] == 4:
        alpha = image[..., 3:]
        return alpha * image[..., :3] + (1 - alpha) * background
    return image


def photometric_loss(pred: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """Splatfacto's main loss: (1-λ)·L1 + λ·(1-SSIM) on [H,W,3] images."""
    l1 = torch.abs(target - pred).mean()
    structural = 1 - ssim(target.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None], data_range=1.0, size_average=True)
    return (1 - ssim_lambda) * l1 + ssim_lambda * structural


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    mse = torch.mean((pred - target) ** 2)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


class Refiner:
    """Adam refinement of one set of Gaussians, step by step, exactly as test time runs it.

    It owns leaf parameters initialised from `gaussians` (detached copies), one Adam per field as
    nerfstudio builds them, the means schedule, and, when `densify` is set, gsplat's DefaultStrategy
    with its pre/post-backward hooks. `loss_and_grad` and `apply` are split so MetaGrad can read the
    plain gradient of each state before the step moves it.
    """

    def __init__(
        self,
        gaussians: Gaussians,
        config: RefineConfig,
        num_train_views: int,
        densify: bool = False,
        generator: Optional[torch.Generator] = None,
    ):
        self.config = config
        self.generator = generator
        self.params = torch.nn.ParameterDict({name: torch.nn.Parameter(t.detach().clone()) for name, t in gaussians.items()})
        self.optimizers = {
            name: torch.optim.Adam([self.params[name]], lr=lr, eps=config.adam_eps) for name, lr in config.learning_rates().items()
        }
        self.strategy = make_strategy(config, num_train_views) if densify else None
        self.strategy_state = self.strategy.initialize_state(scene_scale=1.0) if self.strategy else None
        self.step = 0
        self._info: Optional[dict] = None

    @property
    def gaussians(self) -> Gaussians:
        return Gaussians(**dict(self.params.items()))

    def loss_and_grad(self, view: View) -> Tensor:
        """Render `view` at the current state, backpropagate the loss into the parameters' .grad."""
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        background = background_for_step(self.config, True, self.generator, view.image.device, view.image.dtype)
        pred, info = render_view(self.gaussians, view, self.config.active_sh_degree(self.step), background, absgrad=self.config.use_absgrad)
        if self.strategy is not None:
            self.strategy.step_pre_backward(self.params, self.optimizers, self.strategy_state, self.step, info)
        loss = photometric_loss(pred, composite_over(view.image, background), self.config.ssim_lambda)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"refinement loss became {loss.item()} at step {self.step}")
        loss.backward()
        self._info = info
        return loss.detach()

    def apply(self) -> None:
        """Take the Adam step (and densification) for the gradients left by `loss_and_grad`."""
        for group in self.optimizers["means"].param_groups:
            group["lr"] = self.config.means_lr(self.step)
        for opt in self.optimizers.values():
            opt.step()
        for name, p in self.params.items():
            if not torch.isfinite(p).all():
                raise FloatingPointError(f"refinement diverged: '{name}' became non-finite at step {self.step}")
        if self.params["scales"].max() > 80:
            # exp(log-scale) overflows float32 beyond ~88: divergence, caught before the renderer refuses it
            raise FloatingPointError(
                f"refinement diverged: log-scales reached {self.params['scales'].max().item():.3g} at step {self.step}"
            )
        if self.strategy is not None:
            self.strategy.step_post_backward(self.params, self.optimizers, self.strategy_state, self.step, self._info, packed=False)
        self.step += 1

    def train_step(self, view: View) -> Tensor:
        loss = self.loss_and_grad(view)
        self.apply()
        return loss

    @torch.no_grad()
    def evaluate(self, views, lpips=None) -> Dict[str, float]:
        """Mean PSNR and SSIM (and LPIPS, given the metric) over `views` with the evaluation background."""
        totals: Dict[str, float] = {"psnr": 0.0, "ssim": 0.0}
        if lpips is not None:
            totals["lpips"] = 0.0
        gaussians = self.gaussians
        for view in views:
            background = background_for_step(self.config, False, None, view.image.device, view.image.dtype)
            pred, _ = render_view(gaussians, view, self.config.active_sh_degree(self.step), background)
            target = composite_over(view.image, background)
            pred_nchw, target_nchw = pred.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None]
            totals["psnr"] += float(psnr(pred, target))
            totals["ssim"] += float(ssim(target_nchw, pred_nchw, data_range=1.0))
            if lpips is not None:
                totals["lpips"] += float(lpips(target_nchw.clamp(0, 1), pred_nchw.clamp(0, 1)))
        return {key: value / len(views) for key, value in totals.items()}


class PredictedInitStrategy(DefaultStrategy):
    """gsplat's DefaultStrategy, except that it leaves the initial opacities alone at step 0.

    gsplat 1.4 resets every opacity to 2 x prune_opa whenever step % reset_every == 0, step 0 included.
    That is harmless for splatfacto's random or SfM starts, but it flattens a predicted initialisation
    before its first step (measured: -1.3 dB held-out PSNR after one step from pointcloud init on a 64²
    generated scene), and MetaGrad's inner loop, which does not densify, never sees it. At step 0 the
    parent would only update its running statistics (growth starts after refine_start_iter) and reset.
    """

    def step_post_backward(self, params, optimizers, state, step, info, packed=False):
        if step == 0 and self.refine_start_iter >= 0 and self.refine_stop_iter > 0:
            self._update_state(params, state, info, packed=packed)
            return
        super().step_post_backward(params, optimizers, state, step, info, packed=packed)


def make_strategy(config: RefineConfig, num_train_views: int) -> PredictedInitStrategy:
    """Densification with splatfacto's mapping of its settings onto gsplat's DefaultStrategy."""
    return PredictedInitStrategy(
        prune_opa=config.cull_alpha_thresh,
        grow_grad2d=config.densify_grad_thresh,
        grow_scale3d=config.densify_size_thresh,
        grow_scale2d=config.split_screen_size,
        prune_scale3d=config.cull_scale_thresh,
        prune_scale2d=config.cull_screen_size,
        refine_scale2d_stop_iter=config.stop_screen_size_at,
        refine_start_iter=config.warmup_length,
        refine_stop_iter=config.stop_split_at,
        reset_every=config.reset_alpha_every * config.refine_every,
        refine_every=config.refine_every,
        pause_refine_after_reset=num_train_views + config.refine_every,
        absgrad=config.use_absgrad,
        revised_opacity=False,
        verbose=False,
    )
