"""Densification: gsplat's DefaultStrategy with splatfacto's settings, minus its step-0 opacity reset."""

from __future__ import annotations

from dataclasses import dataclass

from gsplat.strategy import DefaultStrategy

from foresplat_ns.refine.config import RefineConfig


@dataclass
class PredictedInitStrategy(DefaultStrategy):
    """gsplat's DefaultStrategy, except that it leaves the initial opacities alone at step 0.

    gsplat 1.4 resets every opacity to 2 x prune_opa whenever step % reset_every == 0, step 0 included.
    That is harmless for splatfacto's random or SfM starts, but it flattens a predicted initialisation
    before its first step (measured: -1.3 dB held-out PSNR after one step from pointcloud init on a 64²
    generated scene), and MetaGrad's inner loop, which does not densify, never sees it. At step 0 the
    parent would only update its running statistics (growth starts after refine_start_iter) and reset.
    """

    pause_after_start: bool = True
    """Whether densification also waits `pause_refine_after_reset` steps after the step-0 reset it skips
    (`RefineConfig.pause_after_start`)."""

    def step_post_backward(self, params, optimizers, state, step, info, packed=False):
        if step == 0 and self.refine_start_iter >= 0 and self.refine_stop_iter > 0:
            self._update_state(params, state, info, packed=packed)
            return
        pause = self.pause_refine_after_reset
        if not self.pause_after_start and step < self.reset_every:
            self.pause_refine_after_reset = 0  # no reset happened at step 0: nothing to wait for
        try:
            super().step_post_backward(params, optimizers, state, step, info, packed=packed)
        finally:
            self.pause_refine_after_reset = pause


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
        pause_after_start=config.pause_after_start,
    )
