"""Densification: gsplat's DefaultStrategy with splatfacto's settings, minus its step-0 opacity reset."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch
from gsplat.strategy import DefaultStrategy

from foresplat_ns.refine.config import RefineConfig
from foresplat_ns.render.numba_config import kernel_array, launch

_GAUSSIANS_PER_TASK = 4096


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

    def _update_state(self, params, state, info, packed=False):
        """gsplat's running screen-space statistics, on CPU in one compiled pass over the Gaussians.

        gsplat's version (clone, mask, gather, norm, two index_add_ and a gather-max) runs serially on CPU:
        0.7 ms of a 16 ms step at 128² with 16k Gaussians, 3 ms with 100k; this pass, 0.04 and 0.15. Sums
        are the same float32 operations in the same order; the largest radius is a true maximum over
        cameras where gsplat's scatter keeps the last camera's (the same with the one camera a refinement
        step renders)."""
        means2d = info[self.key_for_gradient]
        if packed or means2d.device.type != "cpu":
            return super()._update_state(params, state, info, packed=packed)
        grads = means2d.absgrad if self.absgrad else means2d.grad
        track_radii = self.refine_scale2d_stop_iter > 0
        n_gaussians = len(next(iter(params.values())))
        for key in ("grad2d", "count", "radii") if track_radii else ("grad2d", "count"):
            if state[key] is None:
                state[key] = torch.zeros(n_gaussians)
        width, height, n_cameras = info["width"], info["height"], info["n_cameras"]
        launch(
            _accumulate_screen_statistics, kernel_array(grads, torch.float32),
            info["radii"].contiguous().numpy(), np.float32(width / 2.0 * n_cameras), np.float32(height / 2.0 * n_cameras),
            np.float32(max(width, height)), state["grad2d"].numpy(), state["count"].numpy(),
            state["radii"].numpy() if track_radii else np.zeros(0, np.float32), track_radii, chunk=_GAUSSIANS_PER_TASK,
        )  # fmt: skip


@numba.njit(parallel=True, cache=True, nogil=True)
def _accumulate_screen_statistics(grads, radii, scale_x, scale_y, side, grad2d, count, max_radii, track_radii):
    """For every Gaussian a camera sees (radius > 0): grad2d += |its means2d gradient in [-1, 1] screen units|,
    count += 1, and (track_radii) max_radii = max(max_radii, radius / side). grads [C, N, 2], radii [C, N]."""
    for g in numba.prange(radii.shape[1]):
        for c in range(radii.shape[0]):
            if radii[c, g] > 0:
                gx, gy = grads[c, g, 0] * scale_x, grads[c, g, 1] * scale_y
                # |.| as torch's norm computes it: sqrt(fma(gy, gy, gx * gx)) in float32 (y * y is exact in float64)
                squared = np.float32(np.float64(gx * gx) + np.float64(gy) * np.float64(gy))
                grad2d[g] += np.float32(math.sqrt(squared))
                count[g] += np.float32(1.0)
                if track_radii:
                    max_radii[g] = max(max_radii[g], np.float32(radii[c, g]) / side)


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
