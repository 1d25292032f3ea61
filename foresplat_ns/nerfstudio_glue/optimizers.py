"""nerfstudio optimiser configs ForeSplat's refinement uses."""

from __future__ import annotations

from dataclasses import dataclass

from nerfstudio.engine.optimizers import AdamOptimizerConfig


@dataclass
class FusedAdamOptimizerConfig(AdamOptimizerConfig):
    """nerfstudio's Adam with torch's fused kernel (one pass over a parameter instead of a dozen
    elementwise ops, about 2x faster on CPU), as `Refiner` builds it: both paths must step alike."""

    fused: bool = True
    """Passed to torch.optim.Adam (nerfstudio forwards every field but _target and max_norm)."""
