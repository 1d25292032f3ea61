"""Which Gaussians touch which pixels, front to back, laid out for batched compositing.

Membership follows gsplat's `isect_tiles`: a Gaussian is listed in every tile its box
[means2d - radius, means2d + radius] overlaps in tile units (floor / ceil, clamped to the grid), and each
list is sorted by depth (ties by Gaussian index, as gsplat's stable radix sort).

The compositor works on square pixel blocks smaller than a tile (`block_size` divides `tile_size`).
A block lists the Gaussians of its tile whose alpha can reach 1/255 somewhere in the block: the region
o exp(-sigma) >= 1/255 is the ellipse sigma <= ln(255 o), and a block missing that ellipse's bounding box
would see alpha 0 (skipped) from it at every pixel. Dropping such entries changes neither the image
nor the gradients, but cuts the pixel-Gaussian pairs to evaluate roughly in half for 8-pixel blocks.
Cameras are batched by numbering (camera, block) pairs along one axis; the lists are built by numba
loops: each Gaussian's block range (`_block_ranges`, in parallel), then a radix sort by depth and a
counting sort into blocks (`_block_lists`). The compiled compositor walks
the lists as they are; the vectorised PyTorch one pads and groups them first (`plan_chunks`). Nothing
here needs gradients.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import List, Tuple

import numba
import numpy as np
import torch
from torch import Tensor

from .numba_config import GAUSSIANS_PER_TASK, launch

MIN_ALPHA = 1.0 / 255.0


@dataclass
class Chunk:
    """Blocks composited together: `length` list slots each, slots offset..offset+len(blocks)*length."""

    blocks: Tensor  # [B] int64 block indices
    length: int
    offset: int


@dataclass
class TileLayout:
    """Front-to-back Gaussian lists per (camera, block): block b's list is ids[starts[b] : starts[b] + counts[b]]."""

    n_cameras: int
    n_gaussians: int
    block_size: int
    blocks_x: int
    blocks_y: int
    counts: Tensor  # [C * blocks_y * blocks_x] list lengths
    ids: Tensor  # [E] int64 flat Gaussian index c*N + n of every list entry, lists end to end in block order

    @property
    def n_blocks(self) -> int:
        return self.n_cameras * self.blocks_y * self.blocks_x

    @property
    def starts(self) -> Tensor:
        return torch.cumsum(self.counts, 0) - self.counts

    def block_centres(self, blocks: Tensor, dtype: torch.dtype) -> Tensor:
        """Pixel coordinates [len(blocks), 2] (x, y) of the centre of each flat block index."""
        in_camera = blocks % (self.blocks_x * self.blocks_y)
        corner = torch.stack([in_camera % self.blocks_x, in_camera // self.blocks_x], dim=-1)
        return (corner * self.block_size).to(dtype) + self.block_size / 2


@dataclass
class ChunkPlan:
    """The lists padded and grouped into chunks for the vectorised (PyTorch) compositor.

    Slots are the padded lists of all chunks laid end to end: chunk k's lists are
    slot_ids[offset : offset + B*length].view(B, length), padded with index C*N (no Gaussian).
    """

    chunks: List[Chunk]
    slot_ids: Tensor  # [S] int64 flat Gaussian index c*N + n, or C*N for padding
    slot_blocks: Tensor  # [S] int64 block of each slot


def tile_bounds(means2d: Tensor, radii: Tensor, tile_size: int, tile_width: int, tile_height: int) -> Tuple[Tensor, ...]:
    """Half-open tile ranges (x_min, x_max, y_min, y_max) of each Gaussian's box, clamped to the grid."""
    tile_radius = radii.to(means2d.dtype) / tile_size
    tile_xy = means2d / tile_size
    x_min = torch.floor(tile_xy[..., 0] - tile_radius).clamp(0, tile_width).long()
    x_max = torch.ceil(tile_xy[..., 0] + tile_radius).clamp(0, tile_width).long()
    y_min = torch.floor(tile_xy[..., 1] - tile_radius).clamp(0, tile_height).long()
    y_max = torch.ceil(tile_xy[..., 1] + tile_radius).clamp(0, tile_height).long()
    return x_min, x_max, y_min, y_max


@numba.njit(cache=True, nogil=True, inline="always")
def _axis_range(centre, radius, half_extent, tile_size, tiles, block_size):
    """Half-open block range along one axis: the tile box (floor / ceil in tile units, clamped to the
    grid), in blocks, met with the visible ellipse's box (clamped to int32 so huge extents stay integers)."""
    per_tile, limit = tile_size // block_size, 2147483647.0
    tile_centre, tile_radius = centre / tile_size, radius / tile_size
    tile_low = int(min(max(np.floor(tile_centre - tile_radius), 0.0), tiles)) * per_tile
    tile_high = int(min(max(np.ceil(tile_centre + tile_radius), 0.0), tiles)) * per_tile
    visible_low = int(max(np.floor((centre - half_extent) / block_size), -limit))
    visible_high = int(min(np.floor((centre + half_extent) / block_size) + 1, limit))
    return max(tile_low, visible_low), min(tile_high, visible_high)


@numba.njit(parallel=True, cache=True, nogil=True, error_model="numpy")
def _block_ranges(means2d, radii, conics, opacities, tile_size, tile_width, tile_height, block_size, ranges):
    """ranges [G, 4]: each Gaussian's half-open block range (x_min, x_max, y_min, y_max), all 0 where it lists nowhere.

    A block is covered when the Gaussian's tile box (`tile_bounds`, in blocks) and the bounding box of its
    visible ellipse sigma <= ln(255 o) both cover it. The ellipse's half extents are sqrt(2 ln(255 o) Sigma_xx)
    and sqrt(2 ln(255 o) Sigma_yy), Sigma = conic^-1, widened by a small relative and absolute margin that
    absorbs rounding, so no block that sees alpha >= 1/255 is lost. Not listed at all: culled Gaussians
    (radius 0), opacity below 1/255 (alpha can never reach it) and conics that are not positive definite
    (sigma < 0 everywhere: gsplat skips every pixel). In float64, one pass over the Gaussians.
    """
    for g in numba.prange(radii.shape[0]):
        u, v, radius, opacity = float(means2d[g, 0]), float(means2d[g, 1]), float(radii[g]), float(opacities[g])
        a, b, c = float(conics[g, 0]), float(conics[g, 1]), float(conics[g, 2])
        det = a * c - b * b
        x_min = x_max = y_min = y_max = 0
        if radius > 0 and opacity >= MIN_ALPHA and a > 0 and det > 0 and math.isfinite(u) and math.isfinite(v):
            reach = 2.0 * math.log(max(opacity / MIN_ALPHA, 1.0))
            half_x, half_y = math.sqrt(reach * c / det) * 1.001 + 0.01, math.sqrt(reach * a / det) * 1.001 + 0.01
            x_min, x_max = _axis_range(u, radius, half_x, tile_size, tile_width, block_size)
            y_min, y_max = _axis_range(v, radius, half_y, tile_size, tile_height, block_size)
            if x_max <= x_min or y_max <= y_min:
                x_min = x_max = y_min = y_max = 0
        ranges[g, 0], ranges[g, 1], ranges[g, 2], ranges[g, 3] = x_min, x_max, y_min, y_max


@torch.no_grad()
def build_tile_layout(
    means2d: Tensor,
    radii: Tensor,
    depths: Tensor,
    conics: Tensor,
    opacities: Tensor,
    tile_size: int,
    tile_width: int,
    tile_height: int,
    block_size: int,
) -> TileLayout:
    """Intersect projected Gaussians [C, N] with blocks: every block's list, front to back (`_block_ranges`
    says which Gaussians cover which blocks)."""
    if tile_size % block_size:
        raise ValueError(f"block_size {block_size} must divide tile_size {tile_size}")
    n_cameras, n_gaussians = radii.shape
    per_tile = tile_size // block_size
    blocks_x, blocks_y = tile_width * per_tile, tile_height * per_tile

    footprints = [t.detach().flatten(0, 1).contiguous().numpy() for t in (means2d, radii, conics, opacities)]
    ranges = np.empty((n_cameras * n_gaussians, 4), np.int64)
    launch(_block_ranges, *footprints, tile_size, tile_width, tile_height, block_size, ranges, chunk=GAUSSIANS_PER_TASK)
    listed = np.flatnonzero(ranges[:, 1] > ranges[:, 0])
    counts, ids = _block_lists(
        *_sort_keys(depths.flatten().index_select(0, torch.from_numpy(listed))), listed, ranges,
        n_gaussians, blocks_x, blocks_x * blocks_y, n_cameras * blocks_x * blocks_y,
    )  # fmt: skip
    return TileLayout(n_cameras, n_gaussians, block_size, blocks_x, blocks_y, torch.from_numpy(counts), torch.from_numpy(ids))


def _sort_keys(depths: Tensor) -> Tuple[np.ndarray, int]:
    """Unsigned integers (as uint64) ordering as the finite `depths` do, -0.0 as 0.0, and their width in
    bits: a float's bits with the sign bit set when positive, all bits flipped when negative."""
    raw = (depths.detach().to(torch.float64 if depths.dtype == torch.float64 else torch.float32) + 0.0).contiguous().numpy()
    raw = raw.view(np.uint32 if raw.dtype == np.float32 else np.uint64)
    top = raw.dtype.type(1) << raw.dtype.type(8 * raw.itemsize - 1)
    return np.where(raw & top, ~raw, raw | top).astype(np.uint64), 8 * raw.itemsize


@numba.njit(cache=True, nogil=True)
def _block_lists(keys, key_bits, listed, ranges, n_gaussians, blocks_x, blocks_per_camera, n_blocks):
    """(counts, ids): every block's list of the `listed` Gaussians whose block range (`ranges`, [C*N, 4])
    covers it, by key.

    A stable radix sort of the keys (ties keep the order of `listed`, i.e. Gaussian index, as gsplat's
    stable sort), then a counting sort into blocks: one pass over the entries, where sorting the entries
    themselves (as a torch.sort would) costs ten times more.
    """
    n = listed.shape[0]
    order, scratch = np.arange(n), np.empty(n, np.int64)
    for pass_ in range(key_bits // 8):
        shift, mask = np.uint64(8 * pass_), np.uint64(255)
        buckets = np.zeros(257, np.int64)
        for i in range(n):
            buckets[((keys[i] >> shift) & mask) + 1] += 1
        if buckets.max() == n:
            continue  # every key has the same digit here: the pass would not move anything
        for b in range(256):
            buckets[b + 1] += buckets[b]
        for i in range(n):
            j = order[i]
            digit = (keys[j] >> shift) & mask
            scratch[buckets[digit]] = j
            buckets[digit] += 1
        order, scratch = scratch, order
    # counts from each range's four corners and running sums over the block grid, not entry by entry; the
    # ranges copied in id order into a compact array, which the fill below reads in depth order (from
    # [C*N, 4] those reads missed the cache: the whole took 1.2-1.6x as long at 105k Gaussians, 1.15-1.2x at 16k)
    n_cameras, blocks_y = n_blocks // blocks_per_camera, blocks_per_camera // blocks_x
    corners = np.zeros((n_cameras, blocks_y + 1, blocks_x + 1), np.int64)
    boxes = np.empty((n, 4), np.int32)
    for j in range(n):
        g = listed[j]
        camera, x_min, x_max, y_min, y_max = g // n_gaussians, ranges[g, 0], ranges[g, 1], ranges[g, 2], ranges[g, 3]
        boxes[j, 0], boxes[j, 1], boxes[j, 2], boxes[j, 3] = x_min, x_max, y_min, y_max
        corners[camera, y_min, x_min] += 1
        corners[camera, y_min, x_max] -= 1
        corners[camera, y_max, x_min] -= 1
        corners[camera, y_max, x_max] += 1
    counts = np.empty(n_blocks, np.int64)
    for camera in range(n_cameras):
        for by in range(blocks_y):
            row = 0
            for bx in range(blocks_x):
                row += corners[camera, by, bx]
                corners[camera, by + 1, bx] += corners[camera, by, bx]  # carries the column sums down
                counts[camera * blocks_per_camera + by * blocks_x + bx] = row
    fill = np.cumsum(counts) - counts
    ids = np.empty(counts.sum(), np.int64)
    for i in range(n):
        j = order[i]
        g = listed[j]
        base = (g // n_gaussians) * blocks_per_camera
        for by in range(boxes[j, 2], boxes[j, 3]):
            for bx in range(boxes[j, 0], boxes[j, 1]):
                block = base + by * blocks_x + bx
                ids[fill[block]] = g
                fill[block] += 1
    return counts, ids


def plan_chunks(layout: TileLayout, chunk_elements: int, segment_length: int) -> ChunkPlan:
    """Group non-empty blocks longest list first, so blocks composited together need little padding.

    Each group's [blocks, pixels, min(longest list, segment_length)] stays under `chunk_elements` pairs
    (or is a single block): the compositor walks a chunk's lists `segment_length` slots at a time.
    """
    ids, counts, pixels_per_block = layout.ids, layout.counts, layout.block_size**2
    pad, starts = layout.n_cameras * layout.n_gaussians, layout.starts
    lengths, blocks = torch.sort(counts, descending=True, stable=True)
    n_busy = int((lengths > 0).sum())
    lengths_list = lengths[:n_busy].tolist()
    chunks, begin, offset = [], 0, 0
    while begin < n_busy:
        length = lengths_list[begin]
        end = min(n_busy, begin + max(1, chunk_elements // (min(length, segment_length) * pixels_per_block)))
        chunks.append(Chunk(blocks[begin:end], length, offset))
        offset += (end - begin) * length
        begin = end
    if not chunks:
        empty = torch.zeros(0, dtype=torch.long, device=counts.device)
        return ChunkPlan(chunks, empty, empty)
    chunk_blocks = torch.cat([chunk.blocks for chunk in chunks])
    chunk_lengths = torch.tensor([chunk.length for chunk in chunks], device=counts.device)
    per_block_length = torch.repeat_interleave(chunk_lengths, torch.tensor([len(chunk.blocks) for chunk in chunks], device=counts.device))
    slot_blocks = torch.repeat_interleave(chunk_blocks, per_block_length)
    first_slot = torch.cumsum(per_block_length, 0) - per_block_length
    position = torch.arange(slot_blocks.numel(), device=counts.device) - torch.repeat_interleave(first_slot, per_block_length)
    real = position < counts.index_select(0, slot_blocks)
    source = (starts.index_select(0, slot_blocks) + position).clamp_max(max(ids.numel() - 1, 0))
    slot_ids = torch.where(real, ids.index_select(0, source), torch.full_like(source, pad))
    return ChunkPlan(chunks, slot_ids, slot_blocks)
