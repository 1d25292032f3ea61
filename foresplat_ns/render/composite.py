"""Front-to-back alpha compositing of depth-sorted Gaussians per pixel block, with a hand-written backward.

Per pixel and its block's list of Gaussians i (front to back), as gsplat's rasteriser:

    sigma_i = 0.5 * (c0 dx^2 + c2 dy^2) + c1 dx dy,   (dx, dy) = pixel centre - mean
    alpha_i = min(0.999, o_i exp(-sigma_i)),  skipped (alpha 0) when below 1/255
    T_i     = prod_{j<i} (1 - alpha_j);  compositing stops before the first i with T_i (1 - alpha_i) <= 1e-4
    colour  = sum_i c_i alpha_i T_i + T_final * background,   render alpha = 1 - T_final

Vectorised over a chunk of blocks as [blocks, pixels, list slots] arrays: the cumprod of (1 - alpha)
gives T, and "T behind slot i > 1e-4" is exactly the prefix of the list gsplat visits. sigma is a
quadratic in the pixel's coordinates, so log(o exp(-sigma)) for a whole chunk is one matmul of six
per-slot coefficients with six per-pixel monomials (coordinates relative to the block centre keep the
expansion well conditioned). gsplat also skips a pixel when sigma < 0; the layout leaves out conics that
are not positive definite, and for the others sigma >= 0 everywhere, so the 1/255 rule is the one kept.

The forward keeps no [blocks, pixels, slots] intermediates: it saves its inputs, the layout and, per
pixel, the colour before the background, the final transmittance and how many list slots it used. The
backward recomputes alpha and T for the used slots only and applies the chain rule by hand; per-slot
gradients are gathered for all chunks and scattered to the Gaussians once.
"""

from __future__ import annotations

import math
from typing import Dict, Optional, Tuple

import torch
from torch import Tensor

from .tiles import MIN_ALPHA, ChunkPlan, TileLayout, plan_chunks

MAX_ALPHA = 0.999
MIN_TRANSMITTANCE = 1e-4
_PADDING_LOG_OPACITY = -1e4  # a padding slot never reaches 1/255
_LOG2_FLOOR = -40.0  # 2^-40 ~ 1e-12: skipped like anything below 1/255, yet clear of exp2's slow underflow path


def pixel_monomials(block_size: int, dtype: torch.dtype, device: torch.device) -> Tensor:
    """[block_size^2, 6] monomials (x^2, y^2, xy, x, y, 1) of pixel centres relative to the block centre, row-major."""
    offsets = torch.arange(block_size, dtype=dtype, device=device) + 0.5 - block_size / 2
    y, x = torch.meshgrid(offsets, offsets, indexing="ij")
    x, y = x.flatten(), y.flatten()
    return torch.stack([x * x, y * y, x * y, x, y, torch.ones_like(x)], dim=-1)


def image_to_blocks(image: Tensor, layout: TileLayout) -> Tensor:
    """[C, H, W, D] -> [n_blocks, block_size^2, D], zero-padded past the image border."""
    n_cameras, height, width, depth = image.shape
    size = layout.block_size
    padded = image.new_zeros(n_cameras, layout.blocks_y * size, layout.blocks_x * size, depth)
    padded[:, :height, :width] = image
    blocks = padded.view(n_cameras, layout.blocks_y, size, layout.blocks_x, size, depth)
    return blocks.permute(0, 1, 3, 2, 4, 5).reshape(layout.n_blocks, size * size, depth)


def blocks_to_image(blocks: Tensor, layout: TileLayout, height: int, width: int) -> Tensor:
    """Inverse of `image_to_blocks`: [n_blocks, block_size^2, D] -> [C, H, W, D], cropping the padding."""
    size, depth = layout.block_size, blocks.shape[-1]
    grid = blocks.view(layout.n_cameras, layout.blocks_y, layout.blocks_x, size, size, depth)
    image = grid.permute(0, 1, 3, 2, 4, 5).reshape(layout.n_cameras, layout.blocks_y * size, -1, depth)
    return image[:, :height, :width]


def _with_padding_row(values: Tensor) -> Tensor:
    """[C*N + 1, D] rows of a [C, N, D] tensor plus a zero row for padding slots."""
    flat = values.reshape(-1, values.shape[-1])
    return torch.cat([flat, flat.new_zeros(1, flat.shape[-1])])


class _Workspace:
    """Flat buffers reused chunk after chunk: fresh multi-megabyte tensors would page-fault every time."""

    def __init__(self, dtype: torch.dtype, device: torch.device):
        self.dtype, self.device = dtype, device
        self.buffers: Dict[str, Tensor] = {}

    def take(self, name: str, shape: Tuple[int, ...]) -> Tensor:
        size = math.prod(shape)
        buffer = self.buffers.get(name)
        if buffer is None or buffer.numel() < size:
            buffer = self.buffers[name] = torch.empty(size, dtype=self.dtype, device=self.device)
        return buffer[:size].view(shape)


class _Slots:
    """Every list slot of every chunk: its Gaussian's parameters relative to the slot's block centre."""

    def __init__(self, layout: TileLayout, plan: ChunkPlan, means2d: Tensor, conics: Tensor, opacities: Tensor):
        log_opacity = torch.log(opacities.clamp_min(torch.finfo(opacities.dtype).tiny))
        table = torch.cat([means2d.reshape(-1, 2), conics.reshape(-1, 3), log_opacity.reshape(-1, 1)], dim=-1)
        padding = table.new_zeros(1, 6)
        padding[0, 5] = _PADDING_LOG_OPACITY
        rows = torch.cat([table, padding]).index_select(0, plan.slot_ids)  # [S, 6]
        centres = layout.block_centres(plan.slot_blocks, rows.dtype)
        self.mx, self.my = rows[:, 0] - centres[:, 0], rows[:, 1] - centres[:, 1]
        self.c0, self.c1, self.c2, self.log_opacity = rows[:, 2], rows[:, 3], rows[:, 4], rows[:, 5]

    def exponent_coefficients(self) -> Tensor:
        """[S, 6] coefficients q with log(o exp(-sigma)) = monomials(pixel) . q; the compositor evaluates
        alpha as exp2(monomials . q log2(e)), exp2 being twice as fast as exp on CPU."""
        mx, my, c0, c1, c2 = self.mx, self.my, self.c0, self.c1, self.c2
        constant = self.log_opacity - (0.5 * c0 * mx * mx + 0.5 * c2 * my * my + c1 * mx * my)
        return torch.stack([-0.5 * c0, -0.5 * c2, -c1, c0 * mx + c1 * my, c2 * my + c1 * mx, constant], dim=-1)

    def chain(self, grad: Tensor) -> Tensor:
        """[S, 6] gradients w.r.t. (mean x, mean y, c0, c1, c2, log opacity) from those of the coefficients."""
        g0, g1, g2, g3, g4, g5 = grad.unbind(-1)
        mx, my, c0, c1, c2 = self.mx, self.my, self.c0, self.c1, self.c2
        along_x, along_y = g3 - mx * g5, g4 - my * g5  # sums of grad * (pixel - mean) over the block
        return torch.stack(
            [
                c0 * along_x + c1 * along_y,
                c1 * along_x + c2 * along_y,
                -0.5 * g0 + mx * g3 - 0.5 * mx * mx * g5,
                -g2 + my * g3 + mx * g4 - mx * my * g5,
                -0.5 * g1 + my * g4 - 0.5 * my * my * g5,
                g5,
            ],
            dim=-1,
        )

    def mean_slopes(self) -> Tensor:
        """[S, 2, 3]: d log(alpha) / d mean = (c0 dx + c1 dy, c1 dx + c2 dy), (dx, dy) = pixel - mean,
        written as coefficients of the pixel's (1, x, y)."""
        mx, my, c0, c1, c2 = self.mx, self.my, self.c0, self.c1, self.c2
        along_x = torch.stack([-(c0 * mx + c1 * my), c0, c1], dim=-1)
        along_y = torch.stack([-(c1 * mx + c2 * my), c1, c2], dim=-1)
        return torch.stack([along_x, along_y], dim=1)


def _just_below(value: float, dtype: torch.dtype) -> float:
    """Largest `dtype` number below `value`: threshold(x, it) keeps exactly the x >= value."""
    return torch.nextafter(torch.tensor(value, dtype=dtype), torch.tensor(0.0, dtype=dtype)).item()


def _alpha_and_transmittance(
    monomials: Tensor, coefficients: Tensor, in_front: Tensor, workspace: _Workspace, min_alpha: float, clamp_mask: bool
) -> Tuple[Tensor, Tensor, Tensor, Optional[Tensor]]:
    """One segment of list slots, given the transmittance `in_front` [B, P, 1] of its first slot.

    Returns alpha [B, P, K] (0 where skipped), T [B, P, K+1] (T[..., i] in front of slot i), the float
    mask "slot i is composited" [B, P, K] and, if asked, the float mask "alpha was not clamped at 0.999".
    """
    blocks, pixels, slots = coefficients.shape[0], monomials.shape[0], coefficients.shape[-1]
    alpha = torch.matmul(monomials, coefficients, out=workspace.take("alpha", (blocks, pixels, slots)))
    # Flooring the exponent changes nothing (anything below 1/255 is skipped) and keeps exp2() off its
    # slow underflow path, which most slots of a block would otherwise take.
    torch.exp2(alpha.clamp_min_(_LOG2_FLOOR), out=alpha)
    unclamped = torch.le(alpha, MAX_ALPHA, out=workspace.take("unclamped", alpha.shape)) if clamp_mask else None
    torch.nn.functional.threshold_(alpha.clamp_max_(MAX_ALPHA), min_alpha, 0.0)
    transmittance = workspace.take("transmittance", (blocks, pixels, slots + 1))
    transmittance[..., :1] = in_front
    torch.sub(torch.ones((), dtype=alpha.dtype), alpha, out=transmittance[..., 1:])
    torch.cumprod(transmittance, dim=-1, out=transmittance)
    # T only decreases along the list, so once a slot is excluded all later ones are, in later segments too
    included = torch.gt(transmittance[..., 1:], MIN_TRANSMITTANCE, out=workspace.take("included", alpha.shape))
    return alpha, transmittance, included, unclamped


class _ChunkSlots:
    """Views of per-slot arrays [S, ...] as one chunk's [B, K, ...] lists, cut into depth segments."""

    def __init__(self, chunk, segment_length: int):
        self.blocks, self.length = chunk.blocks, chunk.length
        self.part = slice(chunk.offset, chunk.offset + len(chunk.blocks) * chunk.length)
        self.segment_length = segment_length

    def view(self, per_slot: Tensor) -> Tensor:
        return per_slot[self.part].view(len(self.blocks), self.length, *per_slot.shape[1:])

    def segments(self, length: int):
        return [slice(start, min(start + self.segment_length, length)) for start in range(0, length, self.segment_length)]


class BlockComposite(torch.autograd.Function):
    """(means2d, conics, opacities, colors, backgrounds) -> (render [C,H,W,D], alpha [C,H,W,1]).

    A chunk's lists are walked front to back `segment_length` slots at a time, carrying T across
    segments: memory stays bounded however long a list is, and the forward stops as soon as every pixel
    of the chunk has reached T <= 1e-4, which in dense scenes skips most of the lists.
    """

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
        chunk_elements: int,
        segment_length: int,
    ) -> Tuple[Tensor, Tensor]:
        dtype, device, depth = colors.dtype, colors.device, colors.shape[-1]
        pixels = layout.block_size**2
        plan = plan_chunks(layout, chunk_elements, segment_length)
        monomials = pixel_monomials(layout.block_size, dtype, device)
        coefficients = _Slots(layout, plan, means2d, conics, opacities).exponent_coefficients() * math.log2(math.e)
        slot_colors = _with_padding_row(colors).index_select(0, plan.slot_ids)
        workspace, min_alpha = _Workspace(dtype, device), _just_below(MIN_ALPHA, dtype)

        accumulated = colors.new_zeros(layout.n_blocks, pixels, depth)
        final_t = colors.new_ones(layout.n_blocks, pixels)
        used = torch.zeros(layout.n_blocks, pixels, dtype=torch.int32, device=device)
        for chunk in plan.chunks:
            lists = _ChunkSlots(chunk, segment_length)
            chunk_coefficients, chunk_colors = lists.view(coefficients), lists.view(slot_colors)
            colour = colors.new_zeros(len(chunk.blocks), pixels, depth)
            in_front = colors.new_ones(len(chunk.blocks), pixels, 1)
            chunk_final_t = colors.new_ones(len(chunk.blocks), pixels)
            chunk_used = torch.zeros(len(chunk.blocks), pixels, dtype=torch.long, device=device)
            for segment in lists.segments(chunk.length):
                alpha, transmittance, included, _ = _alpha_and_transmittance(
                    monomials, chunk_coefficients[:, segment].transpose(1, 2), in_front, workspace, min_alpha, False
                )
                weights = alpha.mul_(transmittance[..., :-1]).mul_(included)
                colors_t = chunk_colors[:, segment].transpose(1, 2).contiguous()  # the fast BLAS layout
                colour.add_(torch.matmul(weights, colors_t.transpose(1, 2)))
                n_used = included.sum(-1, keepdim=True).long()  # the composited slots are a prefix
                running = in_front[..., 0] > MIN_TRANSMITTANCE
                chunk_final_t = torch.where(running, transmittance.gather(-1, n_used)[..., 0], chunk_final_t)
                chunk_used += n_used[..., 0]
                in_front = transmittance[..., -1:].clone()
                if not bool((in_front > MIN_TRANSMITTANCE).any()):
                    break
            accumulated.index_copy_(0, chunk.blocks, colour)
            final_t.index_copy_(0, chunk.blocks, chunk_final_t)
            used.index_copy_(0, chunk.blocks, chunk_used.int())

        render = blocks_to_image(accumulated, layout, height, width)
        remaining = blocks_to_image(final_t[..., None], layout, height, width)
        if backgrounds is not None:
            render = render + remaining * backgrounds[:, None, None, :]

        ctx.layout, ctx.plan, ctx.width, ctx.height, ctx.absgrad = layout, plan, width, height, absgrad
        ctx.segment_length = segment_length
        ctx.save_for_backward(means2d, conics, opacities, colors, backgrounds, accumulated, final_t, used)
        return render, 1.0 - remaining

    @staticmethod
    def backward(ctx, grad_render: Tensor, grad_alpha: Tensor):
        means2d, conics, opacities, colors, backgrounds, accumulated, final_t, used = ctx.saved_tensors
        layout: TileLayout = ctx.layout
        plan: ChunkPlan = ctx.plan
        n_cameras, n_gaussians, depth = colors.shape
        dtype, device = colors.dtype, colors.device
        monomials = pixel_monomials(layout.block_size, dtype, device)
        slots = _Slots(layout, plan, means2d, conics, opacities)
        coefficients = slots.exponent_coefficients() * math.log2(math.e)  # gradients are w.r.t. the natural ones
        slot_colors = _with_padding_row(colors).index_select(0, plan.slot_ids)
        mean_slopes = slots.mean_slopes() if ctx.absgrad else None
        workspace, min_alpha = _Workspace(dtype, device), _just_below(MIN_ALPHA, dtype)

        grad_blocks = image_to_blocks(grad_render, layout)  # [n_blocks, P, D]
        # With g_i = dL/dcolour . c_i, w_i = alpha_i T_i and S_i = sum_{j>i} w_j g_j:
        #   dL/dalpha_i = T_i g_i - (S_i + T_final dL/dT_final) / (1 - alpha_i),
        #   dL/dT_final = dL/dcolour . background - dL/drender_alpha.
        # S_i is (sum of all w_j g_j) - (running sum up to i); the total comes from the saved colours.
        beyond = -image_to_blocks(grad_alpha, layout)[..., 0]
        if backgrounds is not None:
            camera_of_block = torch.arange(layout.n_blocks, device=device) // (layout.blocks_x * layout.blocks_y)
            beyond = beyond + (grad_blocks * backgrounds[camera_of_block][:, None, :]).sum(-1)
        beyond = (beyond * final_t + (accumulated * grad_blocks).sum(-1))[..., None]

        n_slots = plan.slot_ids.numel()
        grad_coefficients = coefficients.new_zeros(n_slots, 6)
        grad_slot_colors = coefficients.new_zeros(n_slots, depth)
        abs_slots = coefficients.new_zeros(n_slots, 2) if ctx.absgrad else None
        lengths = used.amax(dim=1)
        for chunk in plan.chunks:
            lists = _ChunkSlots(chunk, ctx.segment_length)
            length = int(lengths[chunk.blocks].max())  # later slots got no light: no gradient
            chunk_coefficients, chunk_colors = lists.view(coefficients), lists.view(slot_colors)
            grad_out = grad_blocks.index_select(0, chunk.blocks)  # [B, P, D]
            total_beyond = beyond.index_select(0, chunk.blocks)
            in_front = colors.new_ones(len(chunk.blocks), grad_out.shape[1], 1)
            running_sum = colors.new_zeros(len(chunk.blocks), grad_out.shape[1], 1)
            for segment in lists.segments(length):
                alpha, transmittance, included, unclamped = _alpha_and_transmittance(
                    monomials, chunk_coefficients[:, segment].transpose(1, 2), in_front, workspace, min_alpha, True
                )
                alpha.mul_(included)  # slots past the stop get no gradient
                weights = torch.mul(alpha, transmittance[..., :-1], out=workspace.take("weights", alpha.shape))
                colors_t = chunk_colors[:, segment].transpose(1, 2).contiguous()
                per_slot = torch.matmul(grad_out, colors_t, out=workspace.take("per_slot", alpha.shape))
                later = torch.mul(weights, per_slot, out=workspace.take("later", alpha.shape))
                torch.cumsum(later, dim=-1, out=later)
                # S_i + T_final dL/dT_final = (total - sum over earlier segments) - running sum in this one
                torch.sub(total_beyond - running_sum, later, out=later)
                running_sum = total_beyond - later[..., -1:]
                one_minus_alpha = torch.sub(torch.ones((), dtype=dtype), alpha, out=included)
                grad_log = per_slot.mul_(transmittance[..., :-1]).addcdiv_(later, one_minus_alpha, value=-1.0)
                # d alpha / d log(o exp(-sigma)) = alpha where it was neither skipped nor clamped at 0.999
                grad_log.mul_(alpha.mul_(unclamped))
                in_front = transmittance[..., -1:].clone()

                lists.view(grad_coefficients)[:, segment].copy_(torch.matmul(monomials.T, grad_log).transpose(1, 2))
                lists.view(grad_slot_colors)[:, segment].copy_(torch.matmul(grad_out.transpose(1, 2), weights).transpose(1, 2))
                if abs_slots is not None:
                    lists.view(abs_slots)[:, segment].copy_(
                        _abs_mean_gradients(monomials, lists.view(mean_slopes)[:, segment], grad_log, workspace)
                    )

        grad_table = torch.zeros(n_cameras * n_gaussians + 1, 6, dtype=dtype, device=device)
        grad_table.index_add_(0, plan.slot_ids, slots.chain(grad_coefficients))
        grad_colors = torch.zeros(n_cameras * n_gaussians + 1, depth, dtype=dtype, device=device)
        grad_colors.index_add_(0, plan.slot_ids, grad_slot_colors)
        shape = (n_cameras, n_gaussians)
        if abs_slots is not None:
            abs_grad = torch.zeros(n_cameras * n_gaussians + 1, 2, dtype=dtype, device=device)
            means2d.absgrad = abs_grad.index_add_(0, plan.slot_ids, abs_slots)[:-1].view(*shape, 2)
        grad_opacities = grad_table[:-1, 5] / opacities.flatten().clamp_min(torch.finfo(dtype).tiny)
        grad_backgrounds = None
        if backgrounds is not None and ctx.needs_input_grad[4]:
            grad_backgrounds = (grad_render * blocks_to_image(final_t[..., None], layout, ctx.height, ctx.width)).sum((1, 2))
        return (
            grad_table[:-1, :2].view(*shape, 2),
            grad_table[:-1, 2:5].view(*shape, 3),
            grad_opacities.view(shape),
            grad_colors[:-1].view(*shape, depth),
            grad_backgrounds,
            None,
            None,
            None,
            None,
            None,
            None,
        )


def _abs_mean_gradients(monomials: Tensor, slopes: Tensor, grad_log: Tensor, workspace: _Workspace) -> Tensor:
    """[B, K, 2] sums over pixels of |dL/dmean| per pixel (AbsGS) from dL/dlog(alpha) [B, P, K].

    The per-pixel slope d log(alpha)/d mean is linear in the pixel's (1, x, y), so one matmul gives
    both components for the whole chunk. Overwrites grad_log with its absolute value.
    """
    n_blocks, pixels, length = grad_log.shape
    linear = monomials[:, [5, 3, 4]]  # (1, x, y)
    factors = slopes.permute(0, 3, 2, 1).reshape(n_blocks, 3, 2 * length)  # x slopes, then y slopes
    per_pixel = torch.matmul(linear, factors, out=workspace.take("abs", (n_blocks, pixels, 2 * length))).abs_()
    per_pixel = per_pixel.view(n_blocks, pixels, 2, length).mul_(grad_log.abs_()[:, :, None, :])
    return per_pixel.sum(1).transpose(1, 2)


def composite_blocks(
    means2d: Tensor,
    conics: Tensor,
    opacities: Tensor,
    colors: Tensor,
    backgrounds: Optional[Tensor],
    layout: TileLayout,
    width: int,
    height: int,
    absgrad: bool = False,
    chunk_elements: int = 1 << 18,
    segment_length: int = 256,
) -> Tuple[Tensor, Tensor]:
    """Render [C, H, W, D] colours and [C, H, W, 1] alphas of projected Gaussians through `layout`,
    compositing chunks of ~`chunk_elements` pixel-slot pairs, `segment_length` list slots at a time."""
    return BlockComposite.apply(
        means2d, conics, opacities, colors, backgrounds, layout, width, height, absgrad, chunk_elements, segment_length
    )
