"""Gaussian rasterisation: gsplat on CUDA, our own differentiable tile rasteriser on CPU (same API)."""

from . import numba_config  # noqa: F401  (before any kernel compiles)
from .rasterize import rasterization

__all__ = ["rasterization"]
