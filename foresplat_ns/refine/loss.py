"""Splatfacto's photometric loss, SSIM and PSNR."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from foresplat_ns.refine.ssim_kernel import CompiledSSIM
from foresplat_ns.render import rasterize

WINDOW_SIZE = 11
WINDOW_SIGMA = 1.5
K1, K2 = 0.01, 0.03
_COMPILED_DTYPES = (torch.float32, torch.float64)


@functools.lru_cache(maxsize=8)
def _window(device: torch.device, dtype: torch.dtype) -> Tensor:
    """pytorch_msssim's 11-tap Gaussian window (sigma 1.5), normalised."""
    coords = torch.arange(WINDOW_SIZE, dtype=torch.float) - WINDOW_SIZE // 2
    window = torch.exp(-(coords**2) / (2 * WINDOW_SIGMA**2))
    return (window / window.sum()).to(device=device, dtype=dtype)


def ssim(X: Tensor, Y: Tensor) -> Tensor:
    """Mean SSIM of [N,C,H,W] images in [0,1], equal to pytorch_msssim's `ssim(X, Y, data_range=1.0)`.

    On the CPU with the compiled kernels (`render.rasterize.use_cpu_kernels`) numba loops compute it
    (`ssim_kernel.py`); elsewhere `ssim_reference` does.
    """
    if rasterize.CPU_KERNEL == "compiled" and not (X.is_cuda or Y.is_cuda) and X.dtype == Y.dtype and X.dtype in _COMPILED_DTYPES:
        window_y, window_x = (_axis_window(length, X.device, X.dtype) for length in X.shape[2:])
        return CompiledSSIM.apply(X, Y, window_y, window_x, K1**2, K2**2)
    return ssim_reference(X, Y)


def _axis_window(length: int, device: torch.device, dtype: torch.dtype) -> Tensor:
    """The window along an axis of `length` pixels: pytorch_msssim's, or none (a single 1) on an axis shorter than it."""
    return _window(device, dtype) if length >= WINDOW_SIZE else torch.ones(1, device=device, dtype=dtype)


def ssim_reference(X: Tensor, Y: Tensor) -> Tensor:
    """`ssim` in PyTorch ops (any device), the reference the compiled SSIM is tested against.

    pytorch_msssim's five Gaussian blurs (μx, μy, x², y², xy), ten grouped convolutions with their backward,
    are two here: one separable 'valid' pass per axis over the five stacked. An axis shorter than the
    window is left unfiltered, as pytorch_msssim skips it.
    """
    blurred = torch.cat([X, Y, X * X, Y * Y, X * Y], dim=1)
    channels, window = blurred.shape[1], _window(X.device, X.dtype)
    if blurred.shape[2] >= WINDOW_SIZE:
        blurred = F.conv2d(blurred, window.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)
    if blurred.shape[3] >= WINDOW_SIZE:
        blurred = F.conv2d(blurred, window.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    mu_x, mu_y, xx, yy, xy = blurred.chunk(5, dim=1)
    mu_xx, mu_yy, mu_xy = mu_x * mu_x, mu_y * mu_y, mu_x * mu_y
    c1, c2 = K1**2, K2**2
    cs_map = (2 * (xy - mu_xy) + c2) / ((xx - mu_xx) + (yy - mu_yy) + c2)
    return (((2 * mu_xy + c1) / (mu_xx + mu_yy + c1)) * cs_map).mean()


class SSIM(torch.nn.Module):
    """`ssim` as the module splatfacto calls for its loss and metrics (no state, as pytorch_msssim's SSIM has none)."""

    def forward(self, X: Tensor, Y: Tensor) -> Tensor:
        return ssim(X, Y)


def photometric_loss(pred: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """Splatfacto's main loss: (1-λ)·L1 + λ·(1-SSIM) on [H,W,3] images."""
    l1 = torch.abs(target - pred).mean()
    structural = 1 - ssim(target.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None])
    return (1 - ssim_lambda) * l1 + ssim_lambda * structural


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    mse = torch.mean((pred - target) ** 2)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))
