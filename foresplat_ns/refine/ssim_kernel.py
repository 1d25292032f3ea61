"""`loss.ssim_reference` (pytorch_msssim's SSIM) as numba loops with a hand-written backward, for the CPU.

Through PyTorch the SSIM of a 128² refinement step is two grouped convolutions over five stacked images,
their backward through oneDNN and some twenty elementwise ops: 3-5 ms on this project's 2-core machines,
a tenth of a compiled step. Here the forward is one pass per output row (both blur directions, then the
SSIM terms), and the backward two: the SSIM map's gradient spread back along rows, then along columns,
where it meets the pixels. Sums follow the window in another order than oneDNN's, so float32 results
differ from the reference by rounding; float64 agrees to its own.

With S = A C / (B D) per output pixel (A = 2 μx μy + c1, B = μx² + μy² + c1, C = 2 (E[xy] - μx μy) + c2,
D = E[x²] - μx² + E[y²] - μy² + c2), the gradients of the five blurred maps are
dS/dμx = 2 μy (C - A) / (B D) + 2 μx (S/D - S/B) (μx and μy swapped for dS/dμy), dS/dE[x²] = dS/dE[y²] = -S/D and
dS/dE[xy] = 2 A / (B D) (not S/A or S/C: A or C may be exactly 0); each goes back through its blur (the window is symmetric: the same window, 'full'),
then through x, y, x², y² or xy.
"""

from __future__ import annotations

from typing import Callable, Tuple

import numba
import numpy as np
import torch
from torch import Tensor

from foresplat_ns.render.numba_config import VECTORISING_FASTMATH, kernels_by_dtype, launch

_ROWS_PER_TASK = 8


def _compile(dtype, c1: float, c2: float) -> Tuple[Callable, Callable]:
    """The forward and backward kernels for arrays of `dtype`, constants kept in it (see composite_kernel)."""
    F = dtype
    zero, two, k1, k2 = F(0.0), F(2.0), F(c1), F(c2)

    @numba.njit(parallel=True, cache=True, nogil=True, fastmath=VECTORISING_FASTMATH, error_model="numpy")
    def forward(x, y, window_y, window_x, moments, row_sums):
        """moments [5, P, H', W'] = the blurred x, y, x², y², xy; row_sums [P * H'] = SSIM summed per output row."""
        planes, height, width = x.shape
        out_h, out_w = moments.shape[2], moments.shape[3]
        for r in numba.prange(planes * out_h):
            p, i = r // out_h, r % out_h
            along = np.zeros((5, width), F)  # this output row, blurred down the columns
            for k in range(window_y.shape[0]):
                w = window_y[k]
                for j in range(width):
                    a, b = x[p, i + k, j], y[p, i + k, j]
                    along[0, j] += w * a
                    along[1, j] += w * b
                    along[2, j] += w * a * a
                    along[3, j] += w * b * b
                    along[4, j] += w * a * b
            blurred = np.zeros((5, out_w), F)
            for k in range(window_x.shape[0]):
                w = window_x[k]
                for m in range(5):
                    for j in range(out_w):
                        blurred[m, j] += w * along[m, j + k]
            total = zero
            for j in range(out_w):
                mx, my, xx, yy, xy = blurred[0, j], blurred[1, j], blurred[2, j], blurred[3, j], blurred[4, j]
                for m in range(5):
                    moments[m, p, i, j] = blurred[m, j]
                total += (
                    (two * mx * my + k1) * (two * (xy - mx * my) + k2) / ((mx * mx + my * my + k1) * (xx - mx * mx + yy - my * my + k2))
                )
            row_sums[r] = total

    @numba.njit(parallel=True, cache=True, nogil=True, fastmath=VECTORISING_FASTMATH, error_model="numpy")
    def backward(x, y, window_y, window_x, moments, scale, spread, grad_x, grad_y):
        """grad_x, grad_y [P, H, W] of scale * sum(SSIM map); spread [4, P, H', W] is scratch."""
        planes, height, width = x.shape
        out_h, out_w = moments.shape[2], moments.shape[3]
        for r in numba.prange(planes * out_h):
            p, i = r // out_h, r % out_h
            grads = np.empty((4, out_w), F)  # d/dμx, d/dμy, d/dE[x²] (= d/dE[y²]), d/dE[xy]
            for j in range(out_w):
                mx, my, xx, yy, xy = moments[0, p, i, j], moments[1, p, i, j], moments[2, p, i, j], moments[3, p, i, j], moments[4, p, i, j]
                a, b = two * mx * my + k1, mx * mx + my * my + k1
                c, d = two * (xy - mx * my) + k2, xx - mx * mx + yy - my * my + k2
                # dS/dA and dS/dC without dividing by A or C: either is 0 wherever a mean or the covariance
                # crosses -c/2 (rendered colours are not clamped), and s / a or s / c would be 0 / 0 there.
                q = scale / (b * d)
                ds_da, ds_dc = q * c, q * a
                s = ds_da * a
                towards_ac, towards_bd = ds_da - ds_dc, s / d - s / b
                grads[0, j] = two * (my * towards_ac + mx * towards_bd)
                grads[1, j] = two * (mx * towards_ac + my * towards_bd)
                grads[2, j] = -s / d
                grads[3, j] = two * ds_dc
            for m in range(4):
                for j in range(width):
                    spread[m, p, i, j] = zero
            for k in range(window_x.shape[0]):
                w = window_x[k]
                for m in range(4):
                    for j in range(out_w):
                        spread[m, p, i, j + k] += w * grads[m, j]
        for r in numba.prange(planes * height):
            p, i = r // height, r % height
            back = np.zeros((4, width), F)
            for k in range(window_y.shape[0]):
                row = i - k
                if 0 <= row < out_h:
                    w = window_y[k]
                    for m in range(4):
                        for j in range(width):
                            back[m, j] += w * spread[m, p, row, j]
            for j in range(width):
                a, b = x[p, i, j], y[p, i, j]
                grad_x[p, i, j] = back[0, j] + two * a * back[2, j] + b * back[3, j]
                grad_y[p, i, j] = back[1, j] + two * b * back[2, j] + a * back[3, j]

    return forward, backward


_kernels = kernels_by_dtype(_compile)


class CompiledSSIM(torch.autograd.Function):
    """(X, Y [N,C,H,W], windows along H and W, c1, c2) -> mean SSIM, as `loss.ssim_reference` computes it."""

    @staticmethod
    def forward(ctx, X: Tensor, Y: Tensor, window_y: Tensor, window_x: Tensor, c1: float, c2: float) -> Tensor:
        n, channels, height, width = X.shape
        out_h, out_w = height - window_y.numel() + 1, width - window_x.numel() + 1
        forward, _ = _kernels(X.dtype, c1, c2)
        images = [t.detach().reshape(n * channels, height, width).contiguous() for t in (X, Y)]
        windows = [w.contiguous() for w in (window_y, window_x)]
        moments = torch.empty(5, n * channels, out_h, out_w, dtype=X.dtype)
        row_sums = torch.empty(n * channels * out_h, dtype=X.dtype)
        launch(forward, *(t.numpy() for t in images + windows), moments.numpy(), row_sums.numpy(), chunk=_ROWS_PER_TASK)
        ctx.shape, ctx.constants = X.shape, (c1, c2)
        ctx.save_for_backward(*images, *windows, moments)
        return row_sums.sum() / moments[0].numel()

    @staticmethod
    def backward(ctx, grad: Tensor):
        x, y, window_y, window_x, moments = ctx.saved_tensors
        _, backward = _kernels(x.dtype, *ctx.constants)
        planes, height, width = x.shape
        spread = torch.empty(4, planes, moments.shape[2], width, dtype=x.dtype)
        grad_x, grad_y = torch.empty_like(x), torch.empty_like(x)
        scale = x.numpy().dtype.type(grad.item() / moments[0].numel())  # a scalar of the kernels' dtype
        launch(
            backward, *(t.numpy() for t in (x, y, window_y, window_x, moments)), scale,
            spread.numpy(), grad_x.numpy(), grad_y.numpy(), chunk=_ROWS_PER_TASK,
        )  # fmt: skip
        return grad_x.reshape(ctx.shape), grad_y.reshape(ctx.shape), None, None, None, None
