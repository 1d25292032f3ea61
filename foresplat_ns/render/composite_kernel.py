"""The compositor of `composite.py` (same rules, inputs and outputs) as numba-compiled CPU loops.

A block's pixels (8x8 by default) are walked together down the block's depth-sorted list, front to
back, as gsplat's warps do: per list entry one pass over the block's pixels, written without branches
so that LLVM vectorises it, each pixel carrying its transmittance and whether it still composites.
A pixel stops before the first entry that would take T to 1e-4 or below, and the block stops once all
its pixels have. Blocks run in parallel (numba prange, as many threads as torch uses), rows of blocks
dealt to the threads in turn.

The forward saves per pixel the colour before the background, the final transmittance and how many
list entries it walked, and per entry whether it composited at some pixel; the backward walks the same
entries again, recomputing alpha and T exactly as the forward did, and gets the light behind each entry
as (total - running sum), the total being known from the saved colour, as the PyTorch compositor does.
It skips the entries that composited nowhere (all their terms are 0): a fifth to a third of those it
walks on refinement's workloads, since lists come from bounding boxes and late entries reach only
pixels that have stopped. Gradients summed over a block's pixels go to
per-entry rows (an entry belongs to one block, so threads never share a row) and are scattered to the
Gaussians in one pass, each thread adding those of its own range of Gaussians.

Kernels are compiled per dtype and compute in it (float32 training packs twice the pixels per vector
instruction). exp() is evaluated in plain arithmetic, to a few ulps: libm's exp is a call LLVM cannot
vectorise, and it would cost more than everything else a pixel-Gaussian pair does. numba caches the
machine code (`cache=True`) next to this file or, where that is read-only, in its user cache directory
(NUMBA_CACHE_DIR overrides it): only the first call on a machine compiles (several seconds per dtype,
block size and channel count).
Threads and vector width are numba settings, made once in `numba_config.py`.
"""

from __future__ import annotations

import math
from typing import Callable, Optional, Tuple

import numba
import numpy as np
import torch
from torch import Tensor

from .numba_config import VECTORISING_FASTMATH, interleaved, kernel_array, kernel_threads, kernels_by_dtype, launch, runs_per_thread
from .tiles import MIN_ALPHA, TileLayout

_BLOCKS_PER_TASK = 4
"""Blocks per chunk of the kernels' prange. Which thread takes which block is `_shares`' interleaving: lists
differ in length across the image, and the OpenMP layer splits a loop statically."""

MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
_GRAD_COLUMNS = 8  # mean x, mean y, conic (3), opacity, |mean x|, |mean y|; the colour channels follow
_EXP_LIMIT = 6.0
"""alpha = exp(-(sigma - ln o)) is evaluated for sigma - ln o clamped to [0, 6]: exp(-6) < 1/255 is skipped
like any larger exponent, and below 0 alpha is clamped at 0.999 anyway."""
_EXP_DEGREES = {np.float32: 7, np.float64: 13}
"""Taylor degrees of exp(-r), |r| <= 3/8, with a truncation error below the dtype's rounding."""


def _compile(dtype, block_size: int, depth: int) -> Tuple[Callable, Callable]:
    """The forward and backward kernels for float arrays of `dtype` (np.float32 or np.float64), blocks of
    `block_size`² pixels and `depth` colour channels.

    Constants are closure values of `dtype`, so float32 kernels stay in float32 (a float64 literal would
    promote every expression it touches); numba caches each dtype's kernels under its own key. The block
    size and depth are closure values too, so numba compiles them in as constants: the pixel loops have a
    known length (no remainder loops) and a pixel's colour channels are unrolled into its loop body.
    """
    F, pixels = dtype, block_size * block_size
    zero, half, one = F(0.0), F(0.5), F(1.0)
    max_alpha, min_alpha, min_t = F(MAX_ALPHA), F(MIN_ALPHA), F(MIN_TRANSMITTANCE)
    limit, eighth, centre, scale = F(_EXP_LIMIT), F(0.125), F(0.375), F(math.exp(-0.375))
    taylor = tuple(F((-1.0) ** n / math.factorial(n)) for n in range(_EXP_DEGREES[dtype] + 1))[::-1]

    @numba.njit(cache=True, nogil=True, fastmath=VECTORISING_FASTMATH, inline="always")
    def alpha_of(dx, dy, c0, c1, c2, log_opacity):
        """(alpha, 0 where skipped below 1/255; o exp(-sigma) before the 0.999 clamp).

        exp(-u) = (exp(-3/8) exp(-r))^8, r = u/8 - 3/8: a Taylor polynomial and three squarings."""
        u = min(max(half * (c0 * dx * dx + c2 * dy * dy) + c1 * dx * dy - log_opacity, zero), limit)
        r = u * eighth - centre
        poly = zero
        for coefficient in taylor:
            poly = poly * r + coefficient
        raw = scale * poly
        raw *= raw
        raw *= raw
        raw *= raw
        alpha = min(max_alpha, raw)
        return (alpha if alpha >= min_alpha else zero), raw

    @numba.njit(cache=True, nogil=True, inline="always")
    def block_pixels(block, blocks_x, blocks_y, width, height):
        """The block's camera, first pixel, and its pixels' centres (x, y) and whether each lies in the
        image (1 / 0), row-major over the block."""
        per_camera = blocks_x * blocks_y
        camera = block // per_camera
        in_camera = block - camera * per_camera
        x0, y0 = (in_camera % blocks_x) * block_size, (in_camera // blocks_x) * block_size
        px, py, inside = np.empty(pixels, F), np.empty(pixels, F), np.empty(pixels, F)
        for p in range(pixels):
            x, y = x0 + p % block_size, y0 + p // block_size
            px[p], py[p] = F(x) + half, F(y) + half
            inside[p] = one if x < width and y < height else zero
        return camera, x0, y0, px, py, inside

    @numba.njit(parallel=True, cache=True, nogil=True, fastmath=VECTORISING_FASTMATH, error_model="numpy")
    def forward(
        table, colors, ids, starts, counts, blocks_x, blocks_y, width, height, colour, final_t, used, touched, per_thread, threads, group
    ):
        for i in numba.prange(per_thread * threads):
            block = interleaved(i, per_thread, threads, group)
            if block >= counts.shape[0]:
                continue
            camera, x0, y0, px, py, running = block_pixels(block, blocks_x, blocks_y, width, height)
            t = np.ones(pixels, F)
            walked = np.zeros(pixels, F)
            tint = np.empty(depth, F)
            accumulated = np.zeros((depth, pixels), F)
            start = starts[block]
            for k in range(counts[block]):
                g = ids[start + k]
                mx, my, c0, c1, c2, log_opacity = table[g, 0], table[g, 1], table[g, 2], table[g, 3], table[g, 4], table[g, 5]
                for d in range(depth):
                    tint[d] = colors[g, d]
                alive = hit = zero
                for p in range(pixels):
                    alpha, _ = alpha_of(px[p] - mx, py[p] - my, c0, c1, c2, log_opacity)
                    # a pixel stops before the first entry that would take T to 1e-4 or below, and stays stopped
                    go = running[p] if t[p] * (one - alpha) > min_t else zero
                    weight = go * alpha * t[p]
                    t[p] *= one - go * alpha
                    walked[p] += go
                    running[p] = go
                    alive += go
                    hit += go * alpha
                    for d in range(depth):
                        accumulated[d, p] += weight * tint[d]
                touched[start + k] = hit > zero
                if alive == zero:
                    break
            for p in range(pixels):
                x, y = x0 + p % block_size, y0 + p // block_size
                if x < width and y < height:
                    final_t[camera, y, x] = t[p]
                    used[camera, y, x] = int(walked[p])
                    for d in range(depth):
                        colour[camera, y, x, d] = accumulated[d, p]

    @numba.njit(parallel=True, cache=True, nogil=True, fastmath=VECTORISING_FASTMATH, error_model="numpy")
    def backward(
        table, colors, ids, starts, counts, blocks_x, blocks_y, width, height,
        colour, final_t, used, touched, grad_render, grad_alpha, backgrounds, grads, per_thread, threads, group,
    ):  # fmt: skip
        for i in numba.prange(per_thread * threads):
            block = interleaved(i, per_thread, threads, group)
            if block >= counts.shape[0]:
                continue
            camera, x0, y0, px, py, inside = block_pixels(block, blocks_x, blocks_y, width, height)
            # per pixel: dL/dcolour, how many entries it walked, and `beyond`: the light of every entry plus
            # T_final dL/dT_final (dL/dT_final = dL/dcolour . background - dL/drender_alpha), which loses
            # each entry's share as the walk passes it
            grad_out = np.zeros((depth, pixels), F)
            walked = np.zeros(pixels, F)
            beyond = np.zeros(pixels, F)
            longest = 0
            for p in range(pixels):
                x, y = x0 + p % block_size, y0 + p // block_size
                if inside[p] != zero:
                    walked[p] = used[camera, y, x]
                    longest = max(longest, used[camera, y, x])
                    towards_t = -grad_alpha[camera, y, x]
                    light = zero
                    for d in range(depth):
                        grad_out[d, p] = grad_render[camera, y, x, d]
                        towards_t += grad_render[camera, y, x, d] * backgrounds[camera, d]
                        light += grad_render[camera, y, x, d] * colour[camera, y, x, d]
                    beyond[p] = light + final_t[camera, y, x] * towards_t
            t = np.ones(pixels, F)
            weight = np.empty(pixels, F)
            tint = np.empty(depth, F)
            start = starts[block]
            for k in range(longest):
                g = ids[start + k]
                mx, my, c0, c1, c2, log_opacity = table[g, 0], table[g, 1], table[g, 2], table[g, 3], table[g, 4], table[g, 5]
                if not touched[start + k]:  # alpha 0 at every pixel that walked it: T and the light behind stay
                    grads[start + k, :] = zero
                    continue
                for d in range(depth):
                    tint[d] = colors[g, d]
                entry = F(k)
                mean_x = mean_y = abs_x = abs_y = conic0 = conic1 = conic2 = towards_log = zero
                for p in range(pixels):
                    shade = zero
                    for d in range(depth):
                        shade += grad_out[d, p] * tint[d]
                    dx, dy = px[p] - mx, py[p] - my
                    alpha, raw = alpha_of(dx, dy, c0, c1, c2, log_opacity)
                    alpha = alpha if entry < walked[p] else zero
                    weight[p] = alpha * t[p]
                    beyond[p] -= weight[p] * shade
                    grad_alpha_k = t[p] * shade - beyond[p] / (one - alpha)
                    # dL/dlog(alpha), 0 where alpha was clamped at 0.999 (it then moves with neither opacity nor position)
                    grad_log = grad_alpha_k * alpha if raw <= max_alpha else zero
                    towards_log += grad_log
                    conic0 -= half * grad_log * dx * dx
                    conic1 -= grad_log * dx * dy
                    conic2 -= half * grad_log * dy * dy
                    along_x = grad_log * (c0 * dx + c1 * dy)
                    along_y = grad_log * (c1 * dx + c2 * dy)
                    mean_x += along_x
                    mean_y += along_y
                    abs_x += abs(along_x)
                    abs_y += abs(along_y)
                    t[p] *= one - alpha
                e = start + k  # rows indexed in place: a row view per entry would cost reference counting
                grads[e, 0], grads[e, 1], grads[e, 2], grads[e, 3] = mean_x, mean_y, conic0, conic1
                grads[e, 4], grads[e, 5], grads[e, 6], grads[e, 7] = conic2, towards_log / table[g, 6], abs_x, abs_y
                for d in range(depth):
                    total = zero
                    for p in range(pixels):
                        total += weight[p] * grad_out[d, p]
                    grads[e, _GRAD_COLUMNS + d] = total
            grads[start + longest : start + counts[block], :] = zero  # entries no pixel walked

    return forward, backward


@numba.njit(parallel=True, cache=True, nogil=True)
def _add_rows(ids, rows, out, parts):
    """out[ids[e]] += rows[e] in entry order: index_add_'s sums, several times faster on CPU.

    Each of `parts` threads owns one contiguous range of Gaussians (rows of out) and walks every entry,
    adding those of its range: no two threads write one row, and each Gaussian's sum keeps entry order, so
    the result is the same bit for bit on any number of threads. (Summing each Gaussian's entries through
    their positions instead read the rows out of order and was slower than the serial scatter.)"""
    n = out.shape[0]
    for part in numba.prange(parts):
        low, high = part * n // parts, (part + 1) * n // parts
        for e in range(ids.shape[0]):
            g = ids[e]
            if low <= g < high:
                for j in range(rows.shape[1]):
                    out[g, j] += rows[e, j]


_kernels = kernels_by_dtype(_compile)


def _tables(means2d: Tensor, conics: Tensor, opacities: Tensor, colors: Tensor) -> Tuple[np.ndarray, np.ndarray]:
    """Per-Gaussian rows [C*N, 7] (mean, conic, log opacity, opacity) and colours [C*N, D]."""
    with torch.no_grad():
        opacity = opacities.reshape(-1, 1)
        log_opacity = torch.log(opacity.clamp_min(torch.finfo(opacity.dtype).tiny))
        table = torch.cat([means2d.reshape(-1, 2), conics.reshape(-1, 3), log_opacity, opacity], dim=-1)
    return kernel_array(table, colors.dtype), kernel_array(colors.reshape(-1, colors.shape[-1]), colors.dtype)


def _lists(layout: TileLayout, width: int, height: int) -> tuple:
    """The layout as the kernels take it: ids, starts, counts and the block grid."""
    ids, starts, counts = (tensor.contiguous().numpy() for tensor in (layout.ids, layout.starts, layout.counts))
    return ids, starts, counts, layout.blocks_x, layout.blocks_y, width, height


def _shares(layout: TileLayout) -> Tuple[int, int, int]:
    """The kernels' (per_thread, threads, group): rows of blocks dealt to the threads in turn (`interleaved`).
    Whole rows keep a thread's consecutive blocks side by side; groups of 4 blocks were slower on real captures."""
    threads = kernel_threads()
    return runs_per_thread(layout.n_blocks, threads, layout.blocks_x), threads, layout.blocks_x


class CompiledComposite(torch.autograd.Function):
    """(means2d, conics, opacities, colors, backgrounds) -> (render [C,H,W,D], alpha [C,H,W,1]), as
    `composite.BlockComposite` computes them, with the loops compiled by numba."""

    @staticmethod
    def forward(
        ctx,
        means2d: Tensor,  # [C, N, 2]
        conics: Tensor,  # [C, N, 3]
        opacities: Tensor,  # [C, N]
        colors: Tensor,  # [C, N, D]
        backgrounds: Optional[Tensor],  # [C, D]
        layout: TileLayout,
        width: int,
        height: int,
        absgrad: bool,
    ) -> Tuple[Tensor, Tensor]:
        n_cameras, depth, dtype = layout.n_cameras, colors.shape[-1], colors.dtype
        forward, _ = _kernels(dtype, layout.block_size, depth)
        colour = torch.empty(n_cameras, height, width, depth, dtype=dtype)  # the kernel writes every pixel
        final_t = torch.empty(n_cameras, height, width, dtype=dtype)
        used = torch.empty(n_cameras, height, width, dtype=torch.int32)
        touched = np.zeros(layout.ids.numel(), np.bool_)  # entries past a block's walk stay False
        tables = _tables(means2d, conics, opacities, colors)
        launch(
            forward, *tables, *_lists(layout, width, height), colour.numpy(), final_t.numpy(), used.numpy(), touched,
            *_shares(layout), chunk=_BLOCKS_PER_TASK,
        )  # fmt: skip
        remaining = final_t[..., None]
        render = colour if backgrounds is None else colour + remaining * backgrounds[:, None, None, :]
        # the backward reads the same tables: kept rather than rebuilt (two concatenations of [C*N] rows a step)
        ctx.layout, ctx.width, ctx.height, ctx.absgrad, ctx.tables, ctx.touched = layout, width, height, absgrad, tables, touched
        ctx.save_for_backward(means2d, conics, opacities, colors, backgrounds, colour, final_t, used)
        return render, 1.0 - remaining

    @staticmethod
    def backward(ctx, grad_render: Tensor, grad_alpha: Tensor):
        means2d, conics, opacities, colors, backgrounds, colour, final_t, used = ctx.saved_tensors
        layout: TileLayout = ctx.layout
        n_cameras, n_gaussians, depth = colors.shape
        dtype = colors.dtype
        _, backward = _kernels(dtype, layout.block_size, depth)
        background_rows = backgrounds if backgrounds is not None else colors.new_zeros(n_cameras, depth)
        grads = torch.empty(layout.ids.numel(), _GRAD_COLUMNS + depth, dtype=dtype)  # the kernel writes every row
        launch(
            backward, *ctx.tables, *_lists(layout, ctx.width, ctx.height), colour.numpy(),
            final_t.numpy(), used.numpy(), ctx.touched, kernel_array(grad_render, dtype), kernel_array(grad_alpha[..., 0], dtype),
            kernel_array(background_rows, dtype), grads.numpy(), *_shares(layout), chunk=_BLOCKS_PER_TASK,
        )  # fmt: skip
        per_gaussian = torch.zeros(n_cameras * n_gaussians, _GRAD_COLUMNS + depth, dtype=dtype)
        launch(_add_rows, layout.ids.numpy(), grads.numpy(), per_gaussian.numpy(), kernel_threads(), chunk=1)
        shape = (n_cameras, n_gaussians)
        if ctx.absgrad:
            means2d.absgrad = per_gaussian[:, 6:8].reshape(*shape, 2)
        grad_backgrounds = None
        if backgrounds is not None and ctx.needs_input_grad[4]:
            grad_backgrounds = (grad_render * final_t[..., None]).sum((1, 2))
        return (
            per_gaussian[:, 0:2].reshape(*shape, 2),
            per_gaussian[:, 2:5].reshape(*shape, 3),
            per_gaussian[:, 5].reshape(shape),
            per_gaussian[:, _GRAD_COLUMNS:].reshape(*shape, depth),
            grad_backgrounds,
            None,
            None,
            None,
            None,
        )


def composite_compiled(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    backgrounds: Optional[Tensor],
    layout: TileLayout,
    width: int,
    height: int,
    absgrad: bool = False,
) -> Tuple[Tensor, Tensor]:
    """Render [C, H, W, D] colours and [C, H, W, 1] alphas of projected Gaussians through `layout`."""
    return CompiledComposite.apply(means2d, conics, opacities, colors, backgrounds, layout, width, height, absgrad)
