"""`sh.evaluate_sh` towards each camera, +0.5 and clamped at 0 (what the rasteriser's colours are), as numba
loops with a hand-written backward.

In PyTorch this is a dozen elementwise ops over [C, N, K] and [C, N, K, 3] tensors forward and twice as many
in autograd's backward: at 50k Gaussians and degree 3 27-35 ms a step on one thread, more than the
compositor. Here one loop over the Gaussians (in parallel, cameras inside) does the forward and one the
backward, recomputing the bases instead of saving them. Arithmetic is in float64 whatever the input dtype
(outputs are rounded to it), as in projection_kernel.py. Degrees 0-3; the rasteriser uses it for 1-3 (degree
0 reads no direction, and PyTorch's expand of band 0 is faster), and sh.py, the reference the tests compare
with, renders degrees 0 and 4.
"""

from __future__ import annotations

import math
from typing import Optional

import numba
import numpy as np
import torch
from torch import Tensor

from .numba_config import GAUSSIANS_PER_TASK, kernel_array, launch, task_items, tasks
from .projection_kernel import NORMALIZE_EPS
from .sh import _C0, _C1, _C2, _C3, num_sh_bases

MAX_COMPILED_SH_DEGREE = 3


@numba.njit(cache=True, nogil=True)
def _bases(x, y, z, count, out):
    """The first `count` basis values at the unit direction (x, y, z), into out[:count] (sh.sh_bases' order)."""
    out[0] = _C0
    if count > 1:
        out[1], out[2], out[3] = -_C1 * y, _C1 * z, -_C1 * x
    if count > 4:
        xx, yy, zz = x * x, y * y, z * z
        out[4] = _C2[0] * x * y
        out[5] = _C2[1] * y * z
        out[6] = _C2[2] * (2 * zz - xx - yy)
        out[7] = _C2[3] * x * z
        out[8] = _C2[4] * (xx - yy)
    if count > 9:
        out[9] = _C3[0] * y * (3 * xx - yy)
        out[10] = _C3[1] * x * y * z
        out[11] = _C3[2] * y * (4 * zz - xx - yy)
        out[12] = _C3[3] * z * (2 * zz - 3 * xx - 3 * yy)
        out[13] = _C3[4] * x * (4 * zz - xx - yy)
        out[14] = _C3[5] * z * (xx - yy)
        out[15] = _C3[6] * x * (xx - 3 * yy)


@numba.njit(cache=True, nogil=True)
def _direction_gradient(x, y, z, count, grad_bases):
    """dL/d(x, y, z) from dL/d(basis k) in grad_bases[:count], x, y, z taken as independent (as autograd does)."""
    g = grad_bases
    gx = gy = gz = 0.0
    if count > 1:
        gx -= _C1 * g[3]
        gy -= _C1 * g[1]
        gz += _C1 * g[2]
    if count > 4:
        gx += _C2[0] * y * g[4] - 2 * _C2[2] * x * g[6] + _C2[3] * z * g[7] + 2 * _C2[4] * x * g[8]
        gy += _C2[0] * x * g[4] + _C2[1] * z * g[5] - 2 * _C2[2] * y * g[6] - 2 * _C2[4] * y * g[8]
        gz += _C2[1] * y * g[5] + 4 * _C2[2] * z * g[6] + _C2[3] * x * g[7]
    if count > 9:
        xx, yy, zz = x * x, y * y, z * z
        gx += (
            6 * _C3[0] * x * y * g[9] + _C3[1] * y * z * g[10] - 2 * _C3[2] * x * y * g[11] - 6 * _C3[3] * x * z * g[12]
            + _C3[4] * (4 * zz - 3 * xx - yy) * g[13] + 2 * _C3[5] * x * z * g[14] + 3 * _C3[6] * (xx - yy) * g[15]
        )  # fmt: skip
        gy += (
            3 * _C3[0] * (xx - yy) * g[9] + _C3[1] * x * z * g[10] + _C3[2] * (4 * zz - xx - 3 * yy) * g[11]
            - 6 * _C3[3] * y * z * g[12] - 2 * _C3[4] * x * y * g[13] - 2 * _C3[5] * y * z * g[14] - 6 * _C3[6] * x * y * g[15]
        )  # fmt: skip
        gz += (
            _C3[1] * x * y * g[10] + 8 * _C3[2] * y * z * g[11] + _C3[3] * (6 * zz - 3 * xx - 3 * yy) * g[12]
            + 8 * _C3[4] * x * z * g[13] + _C3[5] * (xx - yy) * g[14]
        )  # fmt: skip
    return gx, gy, gz


@numba.njit(cache=True, nogil=True)
def _direction(means, centres, n, c):
    """(x, y, z) of the unit direction from camera c's centre to Gaussian n, the norm before, and 1 / max(norm, eps)."""
    dx = float(means[n, 0]) - float(centres[c, 0])
    dy = float(means[n, 1]) - float(centres[c, 1])
    dz = float(means[n, 2]) - float(centres[c, 2])
    norm = math.sqrt(dx * dx + dy * dy + dz * dz)
    inv = 1.0 / max(norm, NORMALIZE_EPS)
    return dx * inv, dy * inv, dz * inv, norm, inv


@numba.njit(cache=True, nogil=True, inline="always")
def _load_bands(head, tail, n, count, out):
    """Gaussian n's first `count` bands, in float64, into out[:count]: bands 0.. from head, the rest from tail."""
    split = head.shape[1]
    for k in range(count):
        for j in range(3):
            out[k, j] = float(head[n, k, j]) if k < split else float(tail[n, k - split, j])


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _forward(means, head, tail, centres, count, colors):
    n_gaussians = means.shape[0]
    for task in numba.prange(tasks(n_gaussians, GAUSSIANS_PER_TASK)):
        bases, coeffs = np.empty(16), np.empty((16, 3))  # one per task: a scratch row per Gaussian cost its page faults every call
        for n in task_items(task, n_gaussians, GAUSSIANS_PER_TASK):
            _load_bands(head, tail, n, count, coeffs)
            for c in range(centres.shape[0]):
                x, y, z, _, _ = _direction(means, centres, n, c)
                _bases(x, y, z, count, bases)
                for j in range(3):
                    total = 0.5
                    for k in range(count):
                        total += bases[k] * coeffs[k, j]
                    colors[c, n, j] = max(total, 0.0)


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _backward(means, head, tail, centres, count, grad_colors, grad_means, grad_head, grad_tail, grad_centres):
    """grad_head, grad_tail as head, tail, zeros beyond `count` bands; grad_centres [C, N, 3] per Gaussian, when it has rows."""
    n_gaussians, split = means.shape[0], head.shape[1]
    for task in numba.prange(tasks(n_gaussians, GAUSSIANS_PER_TASK)):
        bases, grad_bases = np.empty(16), np.empty(16)
        coeffs, grad_coeffs = np.empty((16, 3)), np.empty((16, 3))
        for n in task_items(task, n_gaussians, GAUSSIANS_PER_TASK):
            _load_bands(head, tail, n, count, coeffs)
            grad_coeffs[:count] = 0.0
            gm0 = gm1 = gm2 = 0.0
            for c in range(centres.shape[0]):
                x, y, z, norm, inv = _direction(means, centres, n, c)
                _bases(x, y, z, count, bases)
                # the clamp at 0 passes the gradient where its input is >= 0, as torch.clamp_min's backward
                raw0 = raw1 = raw2 = 0.5
                for k in range(count):
                    raw0 += bases[k] * coeffs[k, 0]
                    raw1 += bases[k] * coeffs[k, 1]
                    raw2 += bases[k] * coeffs[k, 2]
                g0 = float(grad_colors[c, n, 0]) if raw0 >= 0.0 else 0.0
                g1 = float(grad_colors[c, n, 1]) if raw1 >= 0.0 else 0.0
                g2 = float(grad_colors[c, n, 2]) if raw2 >= 0.0 else 0.0
                for k in range(count):
                    grad_bases[k] = coeffs[k, 0] * g0 + coeffs[k, 1] * g1 + coeffs[k, 2] * g2
                    grad_coeffs[k, 0] += bases[k] * g0
                    grad_coeffs[k, 1] += bases[k] * g1
                    grad_coeffs[k, 2] += bases[k] * g2
                gx, gy, gz = _direction_gradient(x, y, z, count, grad_bases)
                # (x, y, z) = d / max(|d|, eps): the norm's own gradient only where it is not clamped
                along = (x * gx + y * gy + z * gz) if norm >= NORMALIZE_EPS else 0.0
                gd0, gd1, gd2 = (gx - x * along) * inv, (gy - y * along) * inv, (gz - z * along) * inv
                gm0 += gd0
                gm1 += gd1
                gm2 += gd2
                if grad_centres.shape[0]:
                    grad_centres[c, n, 0], grad_centres[c, n, 1], grad_centres[c, n, 2] = -gd0, -gd1, -gd2
            grad_means[n, 0], grad_means[n, 1], grad_means[n, 2] = gm0, gm1, gm2
            for k in range(split + grad_tail.shape[1]):  # the bands the degree does not read get zeros
                for j in range(3):
                    value = grad_coeffs[k, j] if k < count else 0.0
                    if k < split:
                        grad_head[n, k, j] = value
                    else:
                        grad_tail[n, k - split, j] = value


class CompiledSHColors(torch.autograd.Function):
    """(means [N, 3], head [N, H, 3], tail [N, T, 3], camera centres [C, 3]) -> colours [C, N, 3], the bands
    read in turn from head, then tail; differentiable w.r.t. all four."""

    @staticmethod
    def forward(ctx, means, head, tail, centres, sh_degree):
        count, dtype = num_sh_bases(sh_degree), means.dtype
        colors = torch.empty(centres.shape[0], means.shape[0], 3, dtype=dtype)
        arrays = [kernel_array(t, dtype) for t in (means, head, tail, centres)]
        launch(_forward, *arrays, count, colors.numpy(), chunk=1)
        ctx.count = count
        ctx.save_for_backward(means, head, tail, centres)
        return colors

    @staticmethod
    def backward(ctx, grad_colors):
        means, head, tail, centres = ctx.saved_tensors
        dtype, n = means.dtype, means.shape[0]
        grad_means, grad_head, grad_tail = (torch.empty(t.shape, dtype=dtype) for t in (means, head, tail))
        grad_centres = torch.empty(centres.shape[0] if ctx.needs_input_grad[3] else 0, n, 3, dtype=dtype)
        launch(
            _backward, *(kernel_array(t, dtype) for t in (means, head, tail, centres)), ctx.count, kernel_array(grad_colors, dtype),
            grad_means.numpy(), grad_head.numpy(), grad_tail.numpy(), grad_centres.numpy(), chunk=1,
        )  # fmt: skip
        return grad_means, grad_head, grad_tail, grad_centres.sum(1) if ctx.needs_input_grad[3] else None, None


def sh_colors_compiled(sh_degree: int, means: Tensor, coeffs: Tensor, centres: Tensor, more_coeffs: Optional[Tensor] = None) -> Tensor:
    """clamp_min(evaluate_sh(sh_degree, means - centres, coeffs) + 0.5, 0) for coeffs [N, K, 3] seen from
    camera centres [C, 3]: colours [C, N, 3], degrees 0 to MAX_COMPILED_SH_DEGREE.

    `more_coeffs` [N, R, 3], where given, holds the bands after coeffs' K, so that splatfacto's
    features_dc[:, None] and features_rest are read as they are (`rasterize.sh_colors_from_bands` says why).
    Bands beyond the degree get zero gradients."""
    if not 0 <= sh_degree <= MAX_COMPILED_SH_DEGREE:
        raise ValueError(f"the compiled SH colours take degrees 0..{MAX_COMPILED_SH_DEGREE}, got {sh_degree}")
    tail = coeffs.new_empty(coeffs.shape[0], 0, 3) if more_coeffs is None else more_coeffs
    if coeffs.shape[1] + tail.shape[1] < num_sh_bases(sh_degree):
        raise ValueError(
            f"SH degree {sh_degree} reads {num_sh_bases(sh_degree)} bands, the coefficients hold {coeffs.shape[1] + tail.shape[1]}"
        )
    return CompiledSHColors.apply(means, coeffs, tail, centres, sh_degree)
