"""The numba-compiled compositor against the PyTorch one (the reference it replaces by default): images,
alphas and every gradient in float64 on awkward scenes, gradcheck, float32, and the thread settings.

The brute-force checks of tests/test_render.py run through the default (compiled) compositor too.
"""

from __future__ import annotations

import math
import os

import pytest
import torch
from test_render import make_scene, render_and_grads

import foresplat_ns.render.rasterize as rasterize_module
from foresplat_ns.render.composite import composite_blocks
from foresplat_ns.render.composite_kernel import composite_compiled
from foresplat_ns.render.numba_config import interleaved, runs_per_thread
from foresplat_ns.render.rasterize import rasterize_on_cpu, use_cpu_kernels
from foresplat_ns.render.tiles import build_tile_layout

TILE = 16


pytestmark = pytest.mark.usefixtures("single_thread")


def projected_scene(seed: int, n_cameras: int, count: int, width: int, height: int, opaque: bool = False, depth: int = 3):
    """Random projected Gaussians [C, N]: screen means, conics of random anisotropic covariances, their
    3-sigma radii, depths, opacities (0.95-1.0 when `opaque`, so many alphas clamp at 0.999) and colours."""
    g = torch.Generator().manual_seed(seed)
    shape = (n_cameras, count)
    means2d = torch.rand(*shape, 2, generator=g, dtype=torch.float64) * torch.tensor([width, height]) * 1.2 - 2
    angle = torch.rand(shape, generator=g, dtype=torch.float64) * math.pi
    sides = 0.5 + 4 * torch.rand(*shape, 2, generator=g, dtype=torch.float64)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a = (sides[..., 0] * cos) ** 2 + (sides[..., 1] * sin) ** 2
    c = (sides[..., 0] * sin) ** 2 + (sides[..., 1] * cos) ** 2
    b = (sides[..., 0] ** 2 - sides[..., 1] ** 2) * cos * sin
    det = a * c - b * b
    conics = torch.stack([c / det, -b / det, a / det], dim=-1)
    radii = torch.ceil(3 * sides.amax(-1)).int()
    low = 0.95 if opaque else 0.05
    opacities = low + (1.0 - low) * torch.rand(shape, generator=g, dtype=torch.float64)
    depths = 1 + torch.rand(shape, generator=g, dtype=torch.float64)
    colors = torch.rand(*shape, depth, generator=g, dtype=torch.float64)
    backgrounds = torch.rand(n_cameras, depth, generator=g, dtype=torch.float64)
    return means2d, conics, opacities, colors, backgrounds, radii, depths


def composite_with_grads(composite, scene, width: int, height: int, block_size: int = 8, with_backgrounds: bool = True):
    means2d, conics, opacities, colors, backgrounds, radii, depths = scene
    layout = build_tile_layout(
        means2d, radii, depths, conics, opacities, TILE, math.ceil(width / TILE), math.ceil(height / TILE), block_size
    )
    inputs = [t.detach().clone().requires_grad_(True) for t in (means2d, conics, opacities, colors, backgrounds)]
    image, alpha = composite(*inputs[:4], inputs[4] if with_backgrounds else None, layout, width, height, absgrad=True)
    g = torch.Generator().manual_seed(7)
    loss = (image * torch.randn(image.shape, generator=g, dtype=torch.float64).to(image.dtype)).sum()
    loss = loss + (alpha * torch.randn(alpha.shape, generator=g, dtype=torch.float64).to(alpha.dtype)).sum()
    inputs[0].retain_grad()
    loss.backward()
    grads = {name: t.grad for name, t in zip(("means2d", "conics", "opacities", "colors", "backgrounds"), inputs)}
    grads["absgrad"] = inputs[0].absgrad
    return image.detach(), alpha.detach(), grads


@pytest.mark.parametrize(
    "seed, n_cameras, count, width, height, opaque, block_size, with_backgrounds",
    [
        (0, 1, 60, 37, 29, False, 8, True),  # image not a multiple of the block or tile size
        (1, 2, 400, 40, 24, False, 8, True),  # dense: most pixels run out of transmittance
        (2, 2, 150, 33, 35, True, 8, False),  # opaque: alphas clamp at 0.999, early stops
        (3, 1, 200, 48, 16, False, 4, True),  # small blocks: many Gaussians straddle block borders
        (4, 3, 120, 20, 20, False, 16, True),  # one block per tile, three cameras
    ],
)
def test_compiled_matches_torch_compositor(seed, n_cameras, count, width, height, opaque, block_size, with_backgrounds):
    scene = projected_scene(seed, n_cameras, count, width, height, opaque)
    image, alpha, grads = composite_with_grads(composite_compiled, scene, width, height, block_size, with_backgrounds)
    ref_image, ref_alpha, ref_grads = composite_with_grads(composite_blocks, scene, width, height, block_size, with_backgrounds)
    torch.testing.assert_close(image, ref_image, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(alpha, ref_alpha, rtol=1e-9, atol=1e-10)
    for name, grad in grads.items():
        if name == "backgrounds" and not with_backgrounds:
            assert grad is None and ref_grads[name] is None
            continue
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-7, atol=1e-9, msg=lambda m: f"d/d{name}: {m}")
        assert float(grad.abs().sum()) > 0, f"d/d{name} is all zero: the comparison would prove nothing"
    if opaque or count >= 400:
        assert float(alpha.max()) > 0.999  # pixels saturate: the 1e-4 stop is exercised


def test_render_modes_match_torch_compositor():
    """RGB+ED through the whole CPU rasteriser (depth as a channel, expected depth after compositing)."""
    scene = make_scene(seed=11)
    options = dict(render_mode="RGB+ED", sh_degree=None, absgrad=True)
    colors, alphas, grads, _ = render_and_grads(scene, dense=False, **options)
    with use_cpu_kernels("torch"):
        ref_colors, ref_alphas, ref_grads, _ = render_and_grads(scene, dense=False, **options)
    torch.testing.assert_close(colors, ref_colors, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(alphas, ref_alphas, rtol=1e-9, atol=1e-10)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-7, atol=1e-9, msg=lambda m: f"d/d{name}: {m}")


def test_gradcheck_compiled_compositor():
    means2d, conics, opacities, colors, backgrounds, radii, depths = projected_scene(5, 1, 6, 10, 9)
    layout = build_tile_layout(means2d, radii, depths, conics, opacities, TILE, 1, 1, 8)

    def render(means2d, conics, opacities, colors, backgrounds):
        return composite_compiled(means2d, conics, opacities, colors, backgrounds, layout, 10, 9)

    inputs = [t.clone().requires_grad_(True) for t in (means2d, conics, opacities, colors, backgrounds)]
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_float32_kernel_matches_float64():
    scene = projected_scene(6, 2, 200, 40, 30)
    image64, alpha64, grads64 = composite_with_grads(composite_compiled, scene, 40, 30)
    single = [t.float() if t.dtype == torch.float64 else t for t in scene]
    image32, alpha32, grads32 = composite_with_grads(composite_compiled, single, 40, 30)
    assert image32.dtype == alpha32.dtype == grads32["means2d"].dtype == torch.float32
    # float32 may flip a pair sitting on the 1/255 or 1e-4 threshold (a pixel moves by ~1/255 at most)
    difference = (image32.double() - image64).abs()
    assert float(difference.max()) < 5e-3 and float(difference.mean()) < 1e-5
    for name in ("colors", "opacities"):
        error = (grads32[name].double() - grads64[name]).norm() / grads64[name].norm()
        assert float(error) < 1e-3, f"d/d{name}: relative error {float(error):.2e}"


def test_kernels_are_compiled_for_the_hosts_widest_vectors():
    """On an AVX-512 host numba compiles without LLVM's 256-bit preference (the compositor's backward in half
    the time); elsewhere for the host as it is; NUMBA_CPU_FEATURES, where a user sets it, wins. Read from the
    features numba's CPU target was built with (numba keeps them in a private attribute)."""
    from numba.core.registry import cpu_target

    from foresplat_ns.render.numba_config import WIDE_VECTORS, host_features_for_wide_vectors

    composite_with_grads(composite_compiled, projected_scene(9, 1, 20, 16, 16), 16, 16)  # the CPU target has started
    compiled_for = cpu_target.target_context.codegen()._tm_features
    if "NUMBA_CPU_FEATURES" in os.environ:
        assert compiled_for == os.environ["NUMBA_CPU_FEATURES"]
    elif host_features_for_wide_vectors() is None:
        assert WIDE_VECTORS not in compiled_for
    else:
        assert compiled_for == host_features_for_wide_vectors()


def test_kernel_threads_follow_torch_and_leave_its_setting_alone():
    """The blocks are dealt to the threads interleaved (`numba_config.interleaved`): with an odd number of
    blocks each is still composited exactly once, and 2 threads give 1 thread's images and gradients bit for bit."""
    width, height = 40, 24  # 5 x 3 blocks of 8 pixels
    scene = projected_scene(8, 1, 100, width, height)
    ref_image, _, reference = composite_with_grads(composite_blocks, scene, width, height)
    results = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        results[threads] = composite_with_grads(composite_compiled, scene, width, height)
        assert torch.get_num_threads() == threads
    torch.testing.assert_close(results[2][0], ref_image, rtol=1e-9, atol=1e-10)
    assert torch.equal(results[1][0], results[2][0]) and torch.equal(results[1][1], results[2][1])
    for name, grad in results[2][2].items():
        assert torch.equal(grad, results[1][2][name]), f"d/d{name} differs between 1 and 2 threads"
        torch.testing.assert_close(grad, reference[name], rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("items, threads, group", [(15, 2, 5), (64, 2, 16), (7, 3, 2), (5, 1, 4), (3, 4, 1)])
def test_interleaving_covers_every_item_once_and_deals_groups_in_turn(items, threads, group):
    per_thread = runs_per_thread(items, threads, group)
    dealt = [[interleaved(i, per_thread, threads, group) for i in range(t * per_thread, (t + 1) * per_thread)] for t in range(threads)]
    kept = [[item for item in run if item < items] for run in dealt]
    assert sorted(sum(kept, [])) == list(range(items))
    for thread, run in enumerate(kept):
        assert all((item // group) % threads == thread for item in run)  # group g goes to thread g mod threads
        assert run == sorted(run)  # each thread walks its items in order


def test_use_cpu_kernels_switches_and_restores():
    assert rasterize_module.CPU_KERNEL == "compiled"
    with pytest.raises(ValueError, match="unknown CPU kernel"):
        with use_cpu_kernels("cuda"):
            pass
    means = torch.tensor([[0.0, 0.0, 2.0]], dtype=torch.float64)
    args = (
        means,
        torch.tensor([[1.0, 0, 0, 0]], dtype=torch.float64),
        torch.full((1, 3), 0.1, dtype=torch.float64),
        torch.tensor([0.7], dtype=torch.float64),
        torch.tensor([[0.2, 0.4, 0.6]], dtype=torch.float64),
        torch.eye(4, dtype=torch.float64)[None],
        torch.tensor([[[20.0, 0, 8], [0, 20.0, 8], [0, 0, 1]]], dtype=torch.float64),
        16,
        16,
    )
    compiled, _, _ = rasterize_on_cpu(*args)
    with use_cpu_kernels("torch"):
        reference, _, _ = rasterize_on_cpu(*args)
    assert rasterize_module.CPU_KERNEL == "compiled"
    torch.testing.assert_close(compiled, reference, rtol=1e-9, atol=1e-12)


def visible_region_blocks(means2d, conics, opacities, block_size):
    """Half-open block ranges of each ellipse sigma <= ln(255 o)'s bounding box (with the layout's margins):
    half extents sqrt(2 ln(255 o) Sigma_xx) and sqrt(2 ln(255 o) Sigma_yy), Sigma = conic^-1, in float64."""
    from foresplat_ns.render.tiles import MIN_ALPHA

    a, b, c = conics.double().unbind(-1)
    det = (a * c - b * b).clamp_min(1e-300)
    reach = 2 * torch.log((opacities.double() / MIN_ALPHA).clamp_min(1.0))
    half = torch.stack([torch.sqrt(reach * c / det), torch.sqrt(reach * a / det)], dim=-1) * 1.001 + 0.01
    low = torch.floor((means2d.double() - half) / block_size).long()
    high = torch.floor((means2d.double() + half) / block_size).long() + 1
    return low[..., 0], high[..., 0], low[..., 1], high[..., 1]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tile_layout_lists_every_covering_gaussian_front_to_back(dtype):
    """build_tile_layout's lists against a per-block brute force: the listable Gaussians whose tile box and
    visible region cover the block, by depth with ties by index (-0.0 equal to 0.0), over two cameras."""
    from foresplat_ns.render.tiles import MIN_ALPHA, tile_bounds

    width, height, block = 40, 30, 8
    means2d, conics, opacities, _, _, radii, _ = projected_scene(7, 2, 150, width, height)
    means2d, conics, opacities = means2d.to(dtype), conics.to(dtype), opacities.to(dtype)
    depths = (torch.randint(-2, 6, radii.shape, generator=torch.Generator().manual_seed(8)) * 0.5).to(dtype)  # many ties
    depths[0, :20] = -0.0
    radii[1, :10] = 0
    tiles_x, tiles_y = math.ceil(width / TILE), math.ceil(height / TILE)
    layout = build_tile_layout(means2d, radii, depths, conics, opacities, TILE, tiles_x, tiles_y, block)

    per_tile = TILE // block
    tx_min, tx_max, ty_min, ty_max = tile_bounds(means2d, radii, TILE, tiles_x, tiles_y)
    ex_min, ex_max, ey_min, ey_max = visible_region_blocks(means2d, conics, opacities, block)
    a, b, c = conics.unbind(-1)
    listable = (radii > 0) & (opacities >= MIN_ALPHA) & (a > 0) & (a * c - b * b > 0)
    starts = layout.starts.tolist()
    for camera in range(2):
        order = sorted(range(150), key=lambda n: (float(depths[camera, n]) + 0.0, n))
        for by in range(layout.blocks_y):
            for bx in range(layout.blocks_x):
                expected = [
                    camera * 150 + n
                    for n in order
                    if listable[camera, n]
                    and max(int(tx_min[camera, n]) * per_tile, int(ex_min[camera, n]))
                    <= bx
                    < min(int(tx_max[camera, n]) * per_tile, int(ex_max[camera, n]))
                    and max(int(ty_min[camera, n]) * per_tile, int(ey_min[camera, n]))
                    <= by
                    < min(int(ty_max[camera, n]) * per_tile, int(ey_max[camera, n]))
                ]
                index = (camera * layout.blocks_y + by) * layout.blocks_x + bx
                assert layout.ids[starts[index] : starts[index] + int(layout.counts[index])].tolist() == expected
