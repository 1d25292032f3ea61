"""The CPU tile rasteriser against a brute-force per-pixel float64 reference, hand-computed pixels and
torch.autograd.gradcheck: images, alphas, depths and the gradients of every differentiable input."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import pytest
import torch

import foresplat_ns.render.rasterize as rasterize_module
from foresplat_ns.render import rasterization
from foresplat_ns.render.projection import project_gaussians
from foresplat_ns.render.rasterize import rasterize_on_cpu, use_cpu_kernels
from foresplat_ns.render.reference import reference_composite

WIDTH, HEIGHT = 37, 29  # not multiples of the tile size: partial tiles at the right and bottom


@pytest.fixture(autouse=True)
def single_thread():
    """These scenes are tiny: one thread is as fast, and it spares the tests the thread-pool wake-ups
    that cost milliseconds per op when another process keeps the other core busy."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class Scene:
    means: torch.Tensor
    quats: torch.Tensor
    scales: torch.Tensor
    opacities: torch.Tensor
    colors: torch.Tensor
    viewmats: torch.Tensor
    Ks: torch.Tensor
    backgrounds: torch.Tensor

    def differentiable(self):
        """Fresh leaf copies of every input the rasteriser is differentiable in (Ks is not)."""
        return {
            name: getattr(self, name).detach().clone().requires_grad_(True)
            for name in ("means", "quats", "scales", "opacities", "colors", "viewmats", "backgrounds")
        }


def make_scene(seed: int = 0, sh_degree: Optional[int] = None, n_cameras: int = 2, dtype=torch.float64) -> Scene:
    """Random Gaussians in front of two cameras plus the awkward ones: behind the camera, far
    off-screen, degenerate (zero or tiny scales) and two opaque occluders that stop compositing."""
    g = torch.Generator().manual_seed(seed)
    n = 48
    depth = 2 + 4 * torch.rand(n, generator=g, dtype=dtype)
    xy = (torch.rand(n, 2, generator=g, dtype=dtype) * 2 - 1) * 0.6 * depth[:, None]
    means = torch.cat([xy, depth[:, None]], dim=-1)
    scales = 0.05 + 0.25 * torch.rand(n, 3, generator=g, dtype=dtype)
    opacities = 0.05 + 0.9 * torch.rand(n, generator=g, dtype=dtype)
    special = [
        ([0.0, 0.0, -1.5], [0.3] * 3, 0.9),  # behind the camera
        ([0.2, -0.1, -0.2], [0.3] * 3, 0.9),
        ([25.0, 0.0, 3.0], [0.2] * 3, 0.9),  # far off-screen
        ([0.0, -30.0, 4.0], [0.2] * 3, 0.9),
        ([0.3, 0.2, 3.0], [0.0, 0.0, 0.0], 0.9),  # a point: only the 0.3 px blur is left
        ([-0.4, 0.1, 3.5], [1e-9, 0.2, 0.2], 0.8),  # flat
        ([0.1, 0.4, 4.5], [0.0, 0.0, 0.3], 0.7),  # a needle along the view axis
        ([0.05, 0.0, 1.8], [0.7, 0.6, 0.05], 0.998),  # opaque occluders: T drops below 1e-4 behind them
        ([-0.1, 0.05, 1.9], [0.6, 0.7, 0.05], 0.998),
    ]
    means = torch.cat([means, torch.tensor([s[0] for s in special], dtype=dtype)])
    scales = torch.cat([scales, torch.tensor([s[1] for s in special], dtype=dtype)])
    opacities = torch.cat([opacities, torch.tensor([s[2] for s in special], dtype=dtype)])
    total = means.shape[0]
    quats = torch.randn(total, 4, generator=g, dtype=dtype)
    if sh_degree is None:
        colors = torch.rand(total, 3, generator=g, dtype=dtype)
    else:
        colors = 0.5 * torch.randn(total, (sh_degree + 1) ** 2 + 1, 3, generator=g, dtype=dtype)  # one unused band
    angle = 0.25
    turned = torch.tensor(
        [[math.cos(angle), 0, -math.sin(angle), 0.3], [0, 1, 0, 0.1], [math.sin(angle), 0, math.cos(angle), 0.4], [0, 0, 0, 1]],
        dtype=dtype,
    )
    viewmats = torch.stack([torch.eye(4, dtype=dtype), turned])[:n_cameras]
    Ks = torch.tensor([[[30.0, 0, 18.8], [0, 31.0, 14.2], [0, 0, 1]], [[28.0, 0, 17.5], [0, 28.0, 15.0], [0, 0, 1]]], dtype=dtype)[
        :n_cameras
    ]
    backgrounds = torch.rand(n_cameras, 3, generator=g, dtype=dtype)
    return Scene(means, quats, scales, opacities, colors, viewmats, Ks, backgrounds)


def render_and_grads(scene: Scene, dense: bool, with_backgrounds: bool = True, **options):
    inputs = scene.differentiable()
    backgrounds = inputs["backgrounds"] if with_backgrounds else None
    colors, alphas, info = rasterize_on_cpu(
        inputs["means"], inputs["quats"], inputs["scales"], inputs["opacities"], inputs["colors"], inputs["viewmats"],
        scene.Ks, WIDTH, HEIGHT, backgrounds=backgrounds, dense_reference=dense, **options,
    )  # fmt: skip
    g = torch.Generator().manual_seed(99)
    loss = (colors * torch.randn(colors.shape, generator=g, dtype=colors.dtype)).sum()
    loss = loss + (alphas * torch.randn(alphas.shape, generator=g, dtype=alphas.dtype)).sum()
    if not with_backgrounds:
        del inputs["backgrounds"]
    grads = dict(zip(inputs, torch.autograd.grad(loss, list(inputs.values()), allow_unused=True, materialize_grads=True)))
    return colors.detach(), alphas.detach(), grads, info


def assert_matches_reference(scene: Scene, with_backgrounds: bool = True, **options):
    colors, alphas, grads, info = render_and_grads(scene, dense=False, with_backgrounds=with_backgrounds, **options)
    ref_colors, ref_alphas, ref_grads, _ = render_and_grads(scene, dense=True, with_backgrounds=with_backgrounds, **options)
    torch.testing.assert_close(colors, ref_colors, rtol=1e-9, atol=1e-10)
    torch.testing.assert_close(alphas, ref_alphas, rtol=1e-9, atol=1e-10)
    for name, grad in grads.items():
        torch.testing.assert_close(grad, ref_grads[name], rtol=1e-7, atol=1e-9, msg=lambda m: f"d/d{name}: {m}")
        depth_only = options.get("render_mode") in ("D", "ED")  # colours and backgrounds are not rendered
        if not (depth_only and name in ("colors", "backgrounds")):
            assert float(grad.abs().sum()) > 0, f"d/d{name} is all zero: the comparison would prove nothing"
    return colors, alphas, info


@pytest.mark.parametrize(
    "render_mode, rasterize_mode, with_backgrounds, sh_degree",
    [
        ("RGB", "classic", True, None),
        ("RGB", "antialiased", False, 3),
        ("D", "classic", False, None),
        ("ED", "antialiased", True, 0),
        ("RGB+D", "classic", True, 1),
        ("RGB+ED", "antialiased", True, 2),
        ("RGB+ED", "classic", False, 3),
    ],
)
def test_tiles_match_brute_force_reference(render_mode, rasterize_mode, with_backgrounds, sh_degree):
    scene = make_scene(seed=1, sh_degree=sh_degree)
    colors, alphas, info = assert_matches_reference(
        scene, with_backgrounds, render_mode=render_mode, rasterize_mode=rasterize_mode, sh_degree=sh_degree
    )
    channels = {"RGB": 3, "D": 1, "ED": 1, "RGB+D": 4, "RGB+ED": 4}[render_mode]
    assert colors.shape == (2, HEIGHT, WIDTH, channels) and alphas.shape == (2, HEIGHT, WIDTH, 1)
    assert float(alphas.max()) > 0.999  # the occluders saturate some pixels
    assert bool((info["radii"] == 0).any()) and bool((info["radii"] > 0).any())


@pytest.mark.parametrize("compositor", ["compiled", "torch"])
@pytest.mark.parametrize(
    "tile_size, block_size, chunk_elements, segment_length",
    [(16, 4, 16 * 5, 3), (16, 16, 1 << 12, 7), (16, 8, 1, 1), (12, 8, 1 << 10, 5), (8, 8, 1 << 18, 256)],
)
def test_chunking_segmenting_and_block_size_do_not_change_results(
    monkeypatch, compositor, tile_size, block_size, chunk_elements, segment_length
):
    """Other block and tile sizes (a block size that does not divide the tile size falls back to the
    tile) for both compositors; for the torch one also many small chunks and short depth segments (T
    carried across segments, early stops, padding)."""
    monkeypatch.setattr(rasterize_module, "BLOCK_SIZE", block_size)
    monkeypatch.setattr(rasterize_module, "CHUNK_ELEMENTS", chunk_elements)
    monkeypatch.setattr(rasterize_module, "SEGMENT_LENGTH", segment_length)
    with use_cpu_kernels(compositor):
        assert_matches_reference(make_scene(seed=2), render_mode="RGB+D", absgrad=True, tile_size=tile_size)


def test_depth_modes_are_consistent():
    scene = make_scene(seed=3)
    accumulated, alphas, _ = rasterize_on_cpu(*_args(scene), render_mode="D")
    expected, _, _ = rasterize_on_cpu(*_args(scene), render_mode="ED")
    both, _, _ = rasterize_on_cpu(*_args(scene), render_mode="RGB+ED", backgrounds=scene.backgrounds)
    rgb, _, _ = rasterize_on_cpu(*_args(scene), render_mode="RGB", backgrounds=scene.backgrounds)
    torch.testing.assert_close(expected, accumulated / alphas.clamp(min=1e-10))
    torch.testing.assert_close(both, torch.cat([rgb, expected], dim=-1))


def _args(scene: Scene):
    return scene.means, scene.quats, scene.scales, scene.opacities, scene.colors, scene.viewmats, scene.Ks, WIDTH, HEIGHT


def _one_pixel_scene(opacities, colors, depths):
    """Isotropic Gaussians centred on pixel (2, 2) of an 8x8 image, identity camera with f = 10."""
    n = len(opacities)
    means = torch.tensor([[0.0, 0.0, z] for z in depths], dtype=torch.float64)
    Ks = torch.tensor([[[10.0, 0, 2.5], [0, 10.0, 2.5], [0, 0, 1]]], dtype=torch.float64)
    quats = torch.tensor([[1.0, 0, 0, 0]] * n, dtype=torch.float64)
    return (
        means,
        quats,
        torch.full((n, 3), 0.02, dtype=torch.float64),
        torch.tensor(opacities, dtype=torch.float64),
        torch.tensor(colors, dtype=torch.float64),
        torch.eye(4, dtype=torch.float64)[None],
        Ks,
    )


def test_pixels_match_hand_computed_values():
    """One Gaussian: alpha = o exp(-d^2 / (2 s^2)) with s^2 = (f scale / z)^2 + 0.3 (gsplat's blur)."""
    means, quats, scales, opacities, colors, viewmats, Ks = _one_pixel_scene([0.6], [[0.2, 0.5, 0.9]], [2.0])
    background = torch.tensor([[0.1, 0.1, 0.1]], dtype=torch.float64)
    image, alpha, _ = rasterization(means, quats, scales, opacities, colors, viewmats, Ks, 8, 8, backgrounds=background)
    variance = (10 * 0.02 / 2.0) ** 2 + 0.3
    for x, y in [(2, 2), (3, 2), (4, 4), (0, 1)]:
        squared = (x + 0.5 - 2.5) ** 2 + (y + 0.5 - 2.5) ** 2
        a = 0.6 * math.exp(-squared / (2 * variance))
        a = a if a >= 1 / 255 else 0.0
        torch.testing.assert_close(alpha[0, y, x, 0].item(), a, rtol=1e-12, atol=1e-15)
        torch.testing.assert_close(image[0, y, x], colors[0] * a + (1 - a) * background[0], rtol=1e-12, atol=1e-15)


def test_compositing_stops_before_transmittance_falls_below_1e_4():
    """Three opaque Gaussians on one pixel: alpha clamps at 0.999, so after the first T = 1e-3 and the
    second would take it to 1e-6 <= 1e-4: compositing stops before adding the second (and the third)."""
    args = _one_pixel_scene([1.0, 1.0, 1.0], [[1.0, 0, 0], [0, 1.0, 0], [0, 0, 1.0]], [2.0, 3.0, 4.0])
    background = torch.tensor([[0.0, 0.0, 0.5]], dtype=torch.float64)
    image, alpha, _ = rasterization(*args, 8, 8, backgrounds=background)
    torch.testing.assert_close(alpha[0, 2, 2, 0].item(), 0.999, rtol=1e-12, atol=0)
    torch.testing.assert_close(image[0, 2, 2].tolist(), [0.999, 0.0, 0.001 * 0.5], rtol=1e-12, atol=1e-15)


def test_gradcheck_tiny_scene():
    g = torch.Generator().manual_seed(5)
    means = torch.tensor([[0.05, 0.0, 2.0], [-0.1, 0.08, 2.5], [0.03, -0.05, 3.0]], dtype=torch.float64)
    quats = torch.randn(3, 4, generator=g, dtype=torch.float64)
    scales = torch.tensor([[0.06, 0.04, 0.05], [0.08, 0.05, 0.04], [0.05, 0.07, 0.06]], dtype=torch.float64)
    opacities = torch.tensor([0.6, 0.5, 0.7], dtype=torch.float64)
    colors = torch.rand(3, 3, generator=g, dtype=torch.float64)
    backgrounds = torch.rand(1, 3, generator=g, dtype=torch.float64)
    viewmats = torch.eye(4, dtype=torch.float64)[None]
    Ks = torch.tensor([[[20.0, 0, 4.2], [0, 20.0, 2.9], [0, 0, 1]]], dtype=torch.float64)

    def render(means, quats, scales, opacities, colors, backgrounds, viewmats):
        image, alpha, _ = rasterization(
            means, quats, scales, opacities, colors, viewmats, Ks, 8, 6, backgrounds=backgrounds, render_mode="RGB+ED"
        )
        return image, alpha

    inputs = [t.clone().requires_grad_(True) for t in (means, quats, scales, opacities, colors, backgrounds, viewmats)]
    assert torch.autograd.gradcheck(render, inputs, eps=1e-6, atol=1e-6, rtol=1e-5)


def test_absgrad_sums_absolute_per_pixel_gradients():
    scene = make_scene(seed=4, n_cameras=1)
    width, height = 20, 14  # a crop of the scene keeps the brute-force Jacobian below cheap
    inputs = scene.differentiable()
    colors, alphas, info = rasterization(
        inputs["means"], inputs["quats"], inputs["scales"], inputs["opacities"], inputs["colors"], inputs["viewmats"],
        scene.Ks, width, height, backgrounds=inputs["backgrounds"], absgrad=True,
    )  # fmt: skip
    info["means2d"].retain_grad()
    weights = torch.randn(colors.shape, generator=torch.Generator().manual_seed(0), dtype=colors.dtype)
    ((colors * weights).sum(-1) + alphas[..., 0]).sum().backward()
    absgrad, grad = info["means2d"].absgrad, info["means2d"].grad
    assert absgrad.shape == grad.shape == (1, scene.means.shape[0], 2)
    assert bool((absgrad >= grad.abs() - 1e-12).all()) and float((absgrad - grad.abs()).max()) > 1e-3

    # brute force: each pixel's own gradient w.r.t. means2d, through the dense reference
    projection = project_gaussians(scene.means, scene.quats, scene.scales, scene.viewmats, scene.Ks, width, height)
    means2d = projection.means2d.detach().requires_grad_(True)
    reference, ref_alphas = reference_composite(
        means2d, projection.conics, scene.opacities[None], scene.colors[None], scene.backgrounds, projection.radii,
        projection.depths, width, height,
    )  # fmt: skip
    values = ((reference * weights).sum(-1) + ref_alphas[..., 0]).flatten()
    expected = sum(torch.autograd.grad(value, means2d, retain_graph=True)[0].abs() for value in values)
    torch.testing.assert_close(absgrad, expected, rtol=1e-9, atol=1e-12)


def test_float32_matches_float64():
    scene = make_scene(seed=6)
    single = Scene(*(getattr(scene, f).float() for f in Scene.__dataclass_fields__))
    colors64, alphas64, _ = rasterize_on_cpu(*_args(scene), backgrounds=scene.backgrounds, sh_degree=None)
    colors32, alphas32, _ = rasterize_on_cpu(*_args(single), backgrounds=single.backgrounds)
    assert colors32.dtype == alphas32.dtype == torch.float32
    # float32 may flip a pixel-Gaussian pair sitting on the 1/255 or 1e-4 threshold; such flips move a
    # pixel by at most ~1/255, everything else agrees to float32 precision
    difference = (colors32.double() - colors64).abs()
    assert float(difference.max()) < 5e-3 and float(difference.mean()) < 1e-5
    assert float((alphas32.double() - alphas64).abs().max()) < 5e-3


def test_multiple_cameras_render_like_one_at_a_time():
    scene = make_scene(seed=7, sh_degree=2)
    both, both_alphas, _ = rasterize_on_cpu(*_args(scene), sh_degree=2, backgrounds=scene.backgrounds)
    for camera in range(2):
        one = Scene(
            scene.means,
            scene.quats,
            scene.scales,
            scene.opacities,
            scene.colors,
            scene.viewmats[camera : camera + 1],
            scene.Ks[camera : camera + 1],
            scene.backgrounds[camera : camera + 1],
        )
        image, alpha, _ = rasterize_on_cpu(*_args(one), sh_degree=2, backgrounds=one.backgrounds)
        torch.testing.assert_close(both[camera : camera + 1], image)
        torch.testing.assert_close(both_alphas[camera : camera + 1], alpha)


def test_per_camera_colors_and_info_dict():
    scene = make_scene(seed=8)
    per_camera = torch.stack([scene.colors, 1 - scene.colors])
    image, _, info = rasterize_on_cpu(*_args(scene)[:4], per_camera, *_args(scene)[5:])
    shared, _, _ = rasterize_on_cpu(*_args(scene))
    torch.testing.assert_close(image[:1], shared[:1])
    assert not torch.allclose(image[1:], shared[1:])
    n = scene.means.shape[0]
    assert info["radii"].dtype == torch.int32 and info["radii"].shape == (2, n)
    assert info["means2d"].shape == (2, n, 2) and info["conics"].shape == (2, n, 3)
    assert info["depths"].shape == (2, n) and info["opacities"].shape == (2, n)
    assert (info["width"], info["height"], info["n_cameras"], info["tile_size"]) == (WIDTH, HEIGHT, 2, 16)
    assert (info["tile_width"], info["tile_height"]) == (3, 2)
    assert info["camera_ids"] is None and info["gaussian_ids"] is None
