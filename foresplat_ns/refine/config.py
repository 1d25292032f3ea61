"""`RefineConfig`: the hyper-parameters of test-time refinement, spelled as splatfacto spells them."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from typing import Dict, Literal, Tuple

from foresplat_ns.gaussians import Gaussians


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
    learning_rate_scale: float = 3.0
    """ForeSplat starts refining at splatfacto's learning rates (the lr_* fields) times this, and decays them
    exponentially to splatfacto's own: over `learning_rate_scale_steps`, and the means over max_steps to
    lr_means_final. splatfacto's rates are set for 30,000 steps from faint SfM points; a learned start
    refined for 2,000 gains most with larger first steps (docs/RESULTS.md, "Learning rates"). 1.0 is
    splatfacto's own refinement (`as_splatfacto`)."""
    learning_rate_scale_steps: int = 200
    """Steps over which the learning rates other than the means' return to splatfacto's."""
    adam_eps: float = 1e-15
    """Adam's eps, as splatfacto: per-Gaussian gradients of a mean loss are tiny, and a larger eps would
    damp the updates."""
    max_steps: int = 2000
    """Length of a refinement: the means learning rate decays over it and densification is timed by it."""

    # Shared with SplatfactoModelConfig (same names; pause_after_start with ForeSplatModelConfig only).
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
    pause_after_start: bool = True
    """splatfacto densifies only from num_train_views + refine_every steps after each opacity reset, its
    step-0 reset included. Refinement here skips that reset (a predicted start keeps its opacities), so it
    need not wait: False densifies from warmup_length on. Probed with warmup_length 50 and not adopted
    (docs/RESULTS.md, "Densifying from step 50"); `as_splatfacto` always waits, as splatfacto does."""

    def schedule(self, name: str) -> Tuple[float, float, int]:
        """(first, last, steps): Adam's learning rate of Gaussian field `name` decays exponentially from
        `first` to `last` over `steps` and then stays (nerfstudio's ExponentialDecayScheduler)."""
        own = getattr(self, f"lr_{name}")
        if name == "means":
            return own * self.learning_rate_scale, self.lr_means_final, self.max_steps
        return own * self.learning_rate_scale, own, self.learning_rate_scale_steps

    def learning_rate(self, name: str, step: int) -> float:
        first, last, steps = self.schedule(name)
        t = min(max(step / max(steps, 1), 0.0), 1.0)
        return math.exp(math.log(first) * (1 - t) + math.log(last) * t)

    def learning_rates(self) -> Dict[str, float]:
        """Adam's learning rate per Gaussian field at step 0."""
        return {name: self.learning_rate(name, 0) for name in Gaussians.field_names()}

    def as_splatfacto(self) -> "RefineConfig":
        """This refinement with splatfacto's own learning rates: what `ns-train splatfacto` would run."""
        return dataclasses.replace(self, learning_rate_scale=1.0, pause_after_start=True)

    def active_sh_degree(self, step: int) -> int:
        return min(step // self.sh_degree_interval, self.sh_degree)

    def splatfacto_fields(self) -> Dict[str, object]:
        """The values of the fields this config shares with the nerfstudio model config (ForeSplatModelConfig)."""
        own = {f.name for f in fields(RefineConfig)}
        return {name: getattr(self, name) for name in own if not name.startswith("lr_") and name not in _REFINE_ONLY}

    def nerfstudio_optimizers(self) -> Dict[str, dict]:
        """TrainerConfig.optimizers for the Gaussian fields, equal to the optimisers `Refiner` builds."""
        from nerfstudio.engine.schedulers import ExponentialDecaySchedulerConfig

        from foresplat_ns.nerfstudio_glue.optimizers import FusedAdamOptimizerConfig

        groups = {}
        for name in Gaussians.field_names():
            first, last, steps = self.schedule(name)
            scheduler = ExponentialDecaySchedulerConfig(lr_final=last, max_steps=steps) if first != last else None
            groups[name] = {"optimizer": FusedAdamOptimizerConfig(lr=first, eps=self.adam_eps), "scheduler": scheduler}
        return groups


_REFINE_ONLY = {"adam_eps", "max_steps", "learning_rate_scale", "learning_rate_scale_steps"}
