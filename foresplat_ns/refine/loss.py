"""Splatfacto's photometric loss and PSNR."""

from __future__ import annotations

import torch
from pytorch_msssim import ssim
from torch import Tensor


def photometric_loss(pred: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """Splatfacto's main loss: (1-λ)·L1 + λ·(1-SSIM) on [H,W,3] images."""
    l1 = torch.abs(target - pred).mean()
    structural = 1 - ssim(target.permute(2, 0, 1)[None], pred.permute(2, 0, 1)[None], data_range=1.0, size_average=True)
    return (1 - ssim_lambda) * l1 + ssim_lambda * structural


def psnr(pred: Tensor, target: Tensor) -> Tensor:
    mse = torch.mean((pred - target) ** 2)
    return -10.0 * torch.log10(mse.clamp_min(1e-12))
