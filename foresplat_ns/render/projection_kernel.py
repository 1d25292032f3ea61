"""`projection.project_gaussians` (same conventions, culling and outputs) as numba loops with a
hand-written backward.

The PyTorch projection is some sixty elementwise ops over [C, N] tensors forward and twice as many in
autograd's backward, each a pass over memory and a dispatch; here one loop over the Gaussians (in
parallel, cameras inside) does the forward, and one does the backward, recomputing the few dozen
flops of a Gaussian's footprint instead of saving them. Arithmetic is in float64 whatever the input
dtype (outputs are rounded to it), so float32 results agree with the PyTorch projection to its own
rounding. The PyTorch projection stays the reference that tests compare values and gradients with.

Gradients follow the PyTorch projection's: culled Gaussians get gradients only through their depth;
clamped Jacobian arguments (tx/tz, ty/tz outside the widened field of view) pass none to x, y.
"""

from __future__ import annotations

import math

import numba
import numpy as np
import torch
from torch import Tensor

from .numba_config import GAUSSIANS_PER_TASK, kernel_array, launch, task_items, tasks
from .projection import Projection

NORMALIZE_EPS = 1e-12
"""torch.nn.functional.normalize's floor on a norm (quaternions here, SH directions in sh_kernel.py)."""


@numba.njit(cache=True, nogil=True)
def _factor(quats, scales, n):
    """Unit quaternion (w, x, y, z), its norm, and M = R(q) diag(s) (row-major 9-tuple)."""
    qw, qx, qy, qz = float(quats[n, 0]), float(quats[n, 1]), float(quats[n, 2]), float(quats[n, 3])
    norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    inv = 1.0 / max(norm, NORMALIZE_EPS)
    w, x, y, z = qw * inv, qx * inv, qy * inv, qz * inv
    s0, s1, s2 = float(scales[n, 0]), float(scales[n, 1]), float(scales[n, 2])
    rotation = (
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    )  # fmt: skip
    factor = (
        rotation[0] * s0, rotation[1] * s1, rotation[2] * s2,
        rotation[3] * s0, rotation[4] * s1, rotation[5] * s2,
        rotation[6] * s0, rotation[7] * s1, rotation[8] * s2,
    )  # fmt: skip
    return (w, x, y, z), norm, rotation, factor


@numba.njit(cache=True, nogil=True)
def _camera_space(viewmats, c, means, n, factor):
    """Mean (x, y, z) and covariance factor F = R M (row-major 9-tuple) in camera c's space."""
    m0, m1, m2 = float(means[n, 0]), float(means[n, 1]), float(means[n, 2])
    r = viewmats[c]
    x = float(r[0, 0]) * m0 + float(r[0, 1]) * m1 + float(r[0, 2]) * m2 + float(r[0, 3])
    y = float(r[1, 0]) * m0 + float(r[1, 1]) * m1 + float(r[1, 2]) * m2 + float(r[1, 3])
    z = float(r[2, 0]) * m0 + float(r[2, 1]) * m1 + float(r[2, 2]) * m2 + float(r[2, 3])
    f = (
        float(r[0, 0]) * factor[0] + float(r[0, 1]) * factor[3] + float(r[0, 2]) * factor[6],
        float(r[0, 0]) * factor[1] + float(r[0, 1]) * factor[4] + float(r[0, 2]) * factor[7],
        float(r[0, 0]) * factor[2] + float(r[0, 1]) * factor[5] + float(r[0, 2]) * factor[8],
        float(r[1, 0]) * factor[0] + float(r[1, 1]) * factor[3] + float(r[1, 2]) * factor[6],
        float(r[1, 0]) * factor[1] + float(r[1, 1]) * factor[4] + float(r[1, 2]) * factor[7],
        float(r[1, 0]) * factor[2] + float(r[1, 1]) * factor[5] + float(r[1, 2]) * factor[8],
        float(r[2, 0]) * factor[0] + float(r[2, 1]) * factor[3] + float(r[2, 2]) * factor[6],
        float(r[2, 0]) * factor[1] + float(r[2, 1]) * factor[4] + float(r[2, 2]) * factor[7],
        float(r[2, 0]) * factor[2] + float(r[2, 1]) * factor[5] + float(r[2, 2]) * factor[8],
    )
    return x, y, z, f


@numba.njit(cache=True, nogil=True)
def _screen(Ks, c, x, y, z, f, width, height, eps2d):
    """Footprint of a camera-space Gaussian (z already 1 outside the depth range): focal lengths, tx and
    ty with whether their clamps let gradients through, the rows of J F, the blurred 2D covariance
    (a, b, c), its det, the unblurred det, and the pixel mean (u, v)."""
    fx, fy, cx, cy = float(Ks[c, 0, 0]), float(Ks[c, 1, 1]), float(Ks[c, 0, 2]), float(Ks[c, 1, 2])
    margin_x, margin_y = 0.3 * (0.5 * width / fx), 0.3 * (0.5 * height / fy)
    low_x, high_x = -(cx / fx + margin_x), (width - cx) / fx + margin_x
    low_y, high_y = -(cy / fy + margin_y), (height - cy) / fy + margin_y
    ratio_x, ratio_y = x / z, y / z
    free_x, free_y = low_x <= ratio_x <= high_x, low_y <= ratio_y <= high_y  # clamp passes gradients here
    tx, ty = z * min(max(ratio_x, low_x), high_x), z * min(max(ratio_y, low_y), high_y)
    jx, jy, kx, ky = fx / z, fy / z, fx * tx / (z * z), fy * ty / (z * z)
    row_x = (jx * f[0] - kx * f[6], jx * f[1] - kx * f[7], jx * f[2] - kx * f[8])
    row_y = (jy * f[3] - ky * f[6], jy * f[4] - ky * f[7], jy * f[5] - ky * f[8])
    a = row_x[0] * row_x[0] + row_x[1] * row_x[1] + row_x[2] * row_x[2]
    b = row_x[0] * row_y[0] + row_x[1] * row_y[1] + row_x[2] * row_y[2]
    cc = row_y[0] * row_y[0] + row_y[1] * row_y[1] + row_y[2] * row_y[2]
    det_unblurred = a * cc - b * b
    a, cc = a + eps2d, cc + eps2d
    det = a * cc - b * b
    u, v = fx * x / z + cx, fy * y / z + cy
    return fx, fy, tx, ty, free_x, free_y, row_x, row_y, a, b, cc, det, det_unblurred, u, v


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _forward(
    means, quats, scales, viewmats, Ks, width, height, eps2d, near, far, radius_clip,
    means2d, depths, conics, radii, compensations,
):  # fmt: skip
    for n in numba.prange(means.shape[0]):
        _, _, _, factor = _factor(quats, scales, n)
        for c in range(viewmats.shape[0]):
            x, y, z, f = _camera_space(viewmats, c, means, n, factor)
            depths[c, n] = z
            in_depth = near < z < far
            fx, fy, tx, ty, free_x, free_y, row_x, row_y, a, b, cc, det, det_unblurred, u, v = _screen(
                Ks, c, x, y, z if in_depth else 1.0, f, width, height, eps2d
            )
            half_trace = 0.5 * (a + cc)
            radius = math.ceil(3.0 * math.sqrt(half_trace + math.sqrt(max(half_trace * half_trace - det, 0.01))))
            visible = in_depth and det > 0 and radius > radius_clip
            visible = visible and u + radius > 0 and u - radius < width and v + radius > 0 and v - radius < height
            if visible:
                radii[c, n] = int(radius)
                means2d[c, n, 0], means2d[c, n, 1] = u, v
                conics[c, n, 0], conics[c, n, 1], conics[c, n, 2] = cc / det, -b / det, a / det
                ratio = det_unblurred / det
                if compensations.shape[0]:
                    compensations[c, n] = math.sqrt(ratio) if ratio > 0 else 0.0
            else:
                radii[c, n] = 0
                means2d[c, n, 0] = means2d[c, n, 1] = 0.0
                conics[c, n, 0] = conics[c, n, 1] = conics[c, n, 2] = 0.0
                if compensations.shape[0]:
                    compensations[c, n] = 0.0


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _backward(
    means, quats, scales, viewmats, Ks, width, height, eps2d, radii,
    grad_means2d, grad_depths, grad_conics, grad_compensations,
    grad_means, grad_quats, grad_scales, grad_view,
):  # fmt: skip
    """Gradients of the inputs; grad_view [C, N, 12] (dL/dR row-major, dL/dt per Gaussian) when it has
    rows. Each task's scratch holds the Gaussian at hand's dL/dM, dL/dF and dL/dR(q)."""
    n_gaussians = means.shape[0]
    for task in numba.prange(tasks(n_gaussians, GAUSSIANS_PER_TASK)):
        scratch = np.empty(27)  # one per task: a row per Gaussian was 23 MB of fresh pages a call at 105k Gaussians
        gM, gF, gR = scratch[0:9], scratch[9:18], scratch[18:27]
        for n in task_items(task, n_gaussians, GAUSSIANS_PER_TASK):
            q, norm, rotation, factor = _factor(quats, scales, n)
            m0, m1, m2 = float(means[n, 0]), float(means[n, 1]), float(means[n, 2])
            gm0 = gm1 = gm2 = 0.0
            gM[:] = 0.0  # dL/dM over all cameras
            for c in range(viewmats.shape[0]):
                x, y, z, f = _camera_space(viewmats, c, means, n, factor)
                gx, gy, gz = 0.0, 0.0, float(grad_depths[c, n])
                gF[:] = 0.0
                if radii[c, n] > 0:  # visible, hence within the depth range
                    fx, fy, tx, ty, free_x, free_y, row_x, row_y, a, b, cc, det, det_unblurred, u, v = _screen(
                        Ks, c, x, y, z, f, width, height, eps2d
                    )
                    g0, g1, g2 = float(grad_conics[c, n, 0]), float(grad_conics[c, n, 1]), float(grad_conics[c, n, 2])
                    # conic = (c, -b, a) / det
                    grad_det = -(g0 * cc - g1 * b + g2 * a) / (det * det)
                    ga, gb, gc = g2 / det, -g1 / det, g0 / det
                    ratio = det_unblurred / det
                    if grad_compensations.shape[0] and ratio > 0:
                        grad_ratio = float(grad_compensations[c, n]) * 0.5 / math.sqrt(ratio)
                        grad_unblurred = grad_ratio / det
                        grad_det -= grad_ratio * ratio / det
                        ga += grad_unblurred * (cc - eps2d)
                        gc += grad_unblurred * (a - eps2d)
                        gb -= 2.0 * grad_unblurred * b
                    ga += grad_det * cc
                    gc += grad_det * a
                    gb -= 2.0 * grad_det * b
                    # (a, b, c) = (row_x . row_x, row_x . row_y, row_y . row_y)
                    grx = (2 * ga * row_x[0] + gb * row_y[0], 2 * ga * row_x[1] + gb * row_y[1], 2 * ga * row_x[2] + gb * row_y[2])
                    gry = (2 * gc * row_y[0] + gb * row_x[0], 2 * gc * row_y[1] + gb * row_x[1], 2 * gc * row_y[2] + gb * row_x[2])
                    # row_x = (fx/z) F0 - (fx tx/z^2) F2, row_y = (fy/z) F1 - (fy ty/z^2) F2
                    jx, jy, kx, ky = fx / z, fy / z, fx * tx / (z * z), fy * ty / (z * z)
                    grad_jx = grad_jy = grad_kx = grad_ky = 0.0
                    for k in range(3):
                        gF[k] += grx[k] * jx
                        gF[3 + k] += gry[k] * jy
                        gF[6 + k] -= grx[k] * kx + gry[k] * ky
                        grad_jx += grx[k] * f[k]
                        grad_jy += gry[k] * f[3 + k]
                        grad_kx -= grx[k] * f[6 + k]
                        grad_ky -= gry[k] * f[6 + k]
                    gz -= (grad_jx * jx + 2 * grad_kx * kx + grad_jy * jy + 2 * grad_ky * ky) / z
                    grad_tx, grad_ty = grad_kx * fx / (z * z), grad_ky * fy / (z * z)
                    # t = z clamp(x/z): dt/dx = 1 inside the clamp, dt/dz = the bound outside it
                    if free_x:
                        gx += grad_tx
                    else:
                        gz += grad_tx * tx / z
                    if free_y:
                        gy += grad_ty
                    else:
                        gz += grad_ty * ty / z
                    # (u, v) = (fx x/z + cx, fy y/z + cy)
                    gu, gv = float(grad_means2d[c, n, 0]), float(grad_means2d[c, n, 1])
                    gx += gu * fx / z
                    gy += gv * fy / z
                    gz -= (gu * fx * x + gv * fy * y) / (z * z)
                # camera space = R m + t, F = R M
                r = viewmats[c]
                gm0 += float(r[0, 0]) * gx + float(r[1, 0]) * gy + float(r[2, 0]) * gz
                gm1 += float(r[0, 1]) * gx + float(r[1, 1]) * gy + float(r[2, 1]) * gz
                gm2 += float(r[0, 2]) * gx + float(r[1, 2]) * gy + float(r[2, 2]) * gz
                for j in range(3):
                    for k in range(3):
                        gM[3 * j + k] += float(r[0, j]) * gF[k] + float(r[1, j]) * gF[3 + k] + float(r[2, j]) * gF[6 + k]
                if grad_view.shape[0]:
                    for i in range(3):
                        gi = (gx, gy, gz)[i]
                        grad_view[c, n, 3 * i + 0] = gi * m0 + gF[3 * i] * factor[0] + gF[3 * i + 1] * factor[1] + gF[3 * i + 2] * factor[2]
                        grad_view[c, n, 3 * i + 1] = gi * m1 + gF[3 * i] * factor[3] + gF[3 * i + 1] * factor[4] + gF[3 * i + 2] * factor[5]
                        grad_view[c, n, 3 * i + 2] = gi * m2 + gF[3 * i] * factor[6] + gF[3 * i + 1] * factor[7] + gF[3 * i + 2] * factor[8]
                        grad_view[c, n, 9 + i] = gi
            grad_means[n, 0], grad_means[n, 1], grad_means[n, 2] = gm0, gm1, gm2
            # M = R(q) diag(s)
            s = (float(scales[n, 0]), float(scales[n, 1]), float(scales[n, 2]))
            for j in range(3):
                total = 0.0
                for i in range(3):
                    total += gM[3 * i + j] * rotation[3 * i + j]
                    gR[3 * i + j] = gM[3 * i + j] * s[j]
                grad_scales[n, j] = total
            w, qx, qy, qz = q
            gw = 2 * (-qz * gR[1] + qy * gR[2] + qz * gR[3] - qx * gR[5] - qy * gR[6] + qx * gR[7])
            gqx = 2 * (qy * gR[1] + qz * gR[2] + qy * gR[3] - 2 * qx * gR[4] - w * gR[5] + qz * gR[6] + w * gR[7] - 2 * qx * gR[8])
            gqy = 2 * (-2 * qy * gR[0] + qx * gR[1] + w * gR[2] + qx * gR[3] + qz * gR[5] - w * gR[6] + qz * gR[7] - 2 * qy * gR[8])
            gqz = 2 * (-2 * qz * gR[0] - w * gR[1] + qx * gR[2] + w * gR[3] - 2 * qz * gR[4] + qy * gR[5] + qx * gR[6] + qy * gR[7])
            # q / max(|q|, eps): the norm's own gradient only where it is not clamped
            scale = 1.0 / max(norm, NORMALIZE_EPS)
            along = (w * gw + qx * gqx + qy * gqy + qz * gqz) if norm >= NORMALIZE_EPS else 0.0
            grad_quats[n, 0] = (gw - w * along) * scale
            grad_quats[n, 1] = (gqx - qx * along) * scale
            grad_quats[n, 2] = (gqy - qy * along) * scale
            grad_quats[n, 3] = (gqz - qz * along) * scale


class CompiledProjection(torch.autograd.Function):
    """(means, quats, scales, viewmats) -> (means2d, depths, conics, compensations, radii), as
    `project_gaussians` computes them; differentiable w.r.t. all four (Ks is not)."""

    @staticmethod
    def forward(ctx, means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane, radius_clip, with_compensations):
        n_cameras, n_gaussians, dtype = viewmats.shape[0], means.shape[0], means.dtype
        means2d = torch.empty(n_cameras, n_gaussians, 2, dtype=dtype)
        depths = torch.empty(n_cameras, n_gaussians, dtype=dtype)
        conics = torch.empty(n_cameras, n_gaussians, 3, dtype=dtype)
        radii = torch.empty(n_cameras, n_gaussians, dtype=torch.int32)
        compensations = torch.empty(n_cameras if with_compensations else 0, n_gaussians, dtype=dtype)
        inputs = [kernel_array(t, dtype) for t in (means, quats, scales, viewmats, Ks)]
        launch(
            _forward, *inputs, float(width), float(height), float(eps2d), float(near_plane), float(far_plane), float(radius_clip),
            means2d.numpy(), depths.numpy(), conics.numpy(), radii.numpy(), compensations.numpy(), chunk=GAUSSIANS_PER_TASK,
        )  # fmt: skip
        ctx.mark_non_differentiable(radii)
        ctx.geometry = (float(width), float(height), float(eps2d))
        ctx.save_for_backward(means, quats, scales, viewmats, Ks, radii)
        return means2d, depths, conics, compensations, radii

    @staticmethod
    def backward(ctx, grad_means2d, grad_depths, grad_conics, grad_compensations, _):
        means, quats, scales, viewmats, Ks, radii = ctx.saved_tensors
        dtype, (n_cameras, n_gaussians) = means.dtype, radii.shape
        grads = [torch.empty(n_gaussians, k, dtype=dtype) for k in (3, 4, 3)]
        grad_view = torch.empty(n_cameras if ctx.needs_input_grad[3] else 0, n_gaussians, 12, dtype=dtype)
        launch(
            _backward, *(kernel_array(t, dtype) for t in (means, quats, scales, viewmats, Ks)), *ctx.geometry, radii.numpy(),
            kernel_array(grad_means2d, dtype), kernel_array(grad_depths, dtype), kernel_array(grad_conics, dtype),
            kernel_array(grad_compensations, dtype), *(g.numpy() for g in grads), grad_view.numpy(), chunk=1,
        )  # fmt: skip
        grad_viewmats = None
        if ctx.needs_input_grad[3]:
            grad_viewmats = torch.zeros_like(viewmats)
            per_camera = grad_view.sum(1)
            grad_viewmats[:, :3, :3] = per_camera[:, :9].reshape(n_cameras, 3, 3)
            grad_viewmats[:, :3, 3] = per_camera[:, 9:]
        return (*grads, grad_viewmats, *([None] * 8))


def project_gaussians_compiled(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    with_compensations: bool = False,
) -> Projection:
    """`project_gaussians`, compiled: the same arguments and `Projection`."""
    means2d, depths, conics, compensations, radii = CompiledProjection.apply(
        means, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane, radius_clip, with_compensations
    )
    return Projection(means2d, depths, conics, radii, compensations if with_compensations else None)
