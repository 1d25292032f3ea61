"""`Refiner`: Adam refinement of one set of Gaussians, step by step, exactly as test time runs it."""

from __future__ import annotations

import math
from contextlib import AbstractContextManager, nullcontext
from typing import Callable, Dict, Optional

import torch
from torch import Tensor

from foresplat_ns.gaussians import Gaussians
from foresplat_ns.refine.adam import SplatfactoAdam
from foresplat_ns.refine.config import RefineConfig
from foresplat_ns.refine.loss import photometric_loss, psnr, ssim
from foresplat_ns.refine.render import View, background_for_step, composite_over, render_view
from foresplat_ns.refine.strategy import make_strategy


class Refiner:
    """Adam refinement of one set of Gaussians, step by step, exactly as test time runs it.

    It owns leaf parameters initialised from `gaussians` (detached copies), one fused `SplatfactoAdam` per
    field as nerfstudio builds them (`RefineConfig.nerfstudio_optimizers`) with their schedules, and, when
    `densify` is set, gsplat's DefaultStrategy with its pre/post-backward hooks. `loss_and_grad` and `apply` are split so MetaGrad can read the
    plain gradient of each state before the step moves it. `phase` wraps each part of a step (render,
    strategy, loss, validation, backward, adam): `foresplat-bench step` times the very step this runs.
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
            name: SplatfactoAdam([self.params[name]], lr=lr, eps=config.adam_eps, fused=True)
            for name, lr in config.learning_rates().items()
        }
        self.strategy = make_strategy(config, num_train_views) if densify else None
        self.strategy_state = self.strategy.initialize_state(scene_scale=1.0) if self.strategy else None
        self.step = 0
        self._info: Optional[dict] = None
        self.phase: Callable[[str], AbstractContextManager] = lambda name: nullcontext()

    @property
    def gaussians(self) -> Gaussians:
        return Gaussians(**dict(self.params.items()))

    def loss_and_grad(self, view: View) -> Tensor:
        """Render `view` at the current state, backpropagate the loss into the parameters' .grad."""
        for opt in self.optimizers.values():
            opt.zero_grad(set_to_none=True)
        background = background_for_step(self.config, True, self.generator, view.image.device, view.image.dtype)
        with self.phase("render"):
            pred, info = render_view(
                self.gaussians, view, self.config.active_sh_degree(self.step), background,
                absgrad=self.config.use_absgrad, active_bands_only=True,
            )  # fmt: skip
        if self.strategy is not None:
            with self.phase("strategy"):
                self.strategy.step_pre_backward(self.params, self.optimizers, self.strategy_state, self.step, info)
        with self.phase("loss"):
            loss = photometric_loss(pred, composite_over(view.image, background), self.config.ssim_lambda)
        with self.phase("validation"):
            if not torch.isfinite(loss):
                raise FloatingPointError(f"refinement loss became {loss.item()} at step {self.step}")
        with self.phase("backward"):
            loss.backward()
        self._info = info
        return loss.detach()

    def apply(self) -> None:
        """Take the Adam step (and densification) for the gradients left by `loss_and_grad`."""
        with self.phase("adam"):
            for name, opt in self.optimizers.items():
                for group in opt.param_groups:
                    group["lr"] = self.config.learning_rate(name, self.step)
                opt.step()
        with self.phase("validation"):
            self.check_finite()
        if self.strategy is not None:
            with self.phase("strategy"):
                self.strategy.step_post_backward(self.params, self.optimizers, self.strategy_state, self.step, self._info, packed=False)
        self.step += 1

    @torch.no_grad()
    def check_finite(self) -> None:
        """Raise FloatingPointError if a parameter became non-finite or the log-scales diverged (one sync)."""
        names = list(self.params)
        # a sum is non-finite exactly when some element is (or overflows, then the exact check below decides)
        sums = torch.stack([self.params[name].sum() for name in names] + [self.params["scales"].max()]).tolist()
        for name, total in zip(names, sums):
            if not math.isfinite(total) and not bool(torch.isfinite(self.params[name]).all()):
                raise FloatingPointError(f"refinement diverged: '{name}' became non-finite at step {self.step}")
        if sums[-1] > 80:
            # exp(log-scale) overflows float32 beyond ~88: divergence, caught before the renderer refuses it
            raise FloatingPointError(f"refinement diverged: log-scales reached {sums[-1]:.3g} at step {self.step}")

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
            pred, _ = render_view(gaussians, view, self.config.active_sh_degree(self.step), background, active_bands_only=True)
            target = composite_over(view.image, background)
            pred_nchw, target_nchw = pred.permute(2, 0, 1)[None], target.permute(2, 0, 1)[None]
            totals["psnr"] += float(psnr(pred, target))
            totals["ssim"] += float(ssim(target_nchw, pred_nchw))
            if lpips is not None:
                totals["lpips"] += float(lpips(target_nchw.clamp(0, 1), pred_nchw.clamp(0, 1)))
        return {key: value / len(views) for key, value in totals.items()}
