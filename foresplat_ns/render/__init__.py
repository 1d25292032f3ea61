"""Gaussian rasterisation: gsplat on CUDA, our own differentiable tile rasteriser on CPU (same API)."""

from .rasterize import rasterization

__all__ = ["rasterization"]
