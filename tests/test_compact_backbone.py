"""The `compact` backbone: shapes, initial prediction, gradients, head/trunk split, equivariance, checkpoints."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from foresplat_ns.backbones import ContextViews, load_backbone, save_checkpoint
from foresplat_ns.backbones.base import backbone_config_class
from foresplat_ns.backbones.compact import CompactBackbone, CompactBackboneConfig
from foresplat_ns.cameras import focus_distances, opengl_to_opencv
from foresplat_ns.gaussians import Gaussians, rgb_to_sh
from foresplat_ns.render.sh import sh_bases

SMALL = dict(width=8, num_depth_planes=8)


# -- helpers ---------------------------------------------------------------------------------------
def look_at(eye: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """OpenGL camera-to-world [4,4] at `eye` looking at `target` (y up, no roll)."""
    forward = (target - eye) / (target - eye).norm()
    right = torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0], dtype=eye.dtype))
    right = right / right.norm()
    up = torch.linalg.cross(right, forward)
    pose = torch.eye(4, dtype=eye.dtype)
    pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, up, -forward, eye
    return pose


def make_context(batch: int = 1, views: int = 3, height: int = 32, width: int = 32, dtype=torch.float32, seed: int = 0) -> ContextViews:
    """Smoothly textured random images and cameras on a ring (varied elevation) looking at a point near the origin."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch * views, 3, height // 4 + 1, width // 4 + 1, generator=gen, dtype=torch.float64)
    images = F.interpolate(coarse, size=(height, width), mode="bilinear", align_corners=False)
    images = images.permute(0, 2, 3, 1).reshape(batch, views, height, width, 3)
    target = torch.tensor([0.2, 0.3, -0.1], dtype=torch.float64)
    poses = []
    for b in range(batch):
        for v in range(views):
            azimuth = 2 * math.pi * (v + 0.3 * b) / max(views, 1) * 0.6  # a 216-degree arc
            elevation = 0.2 + 0.15 * v
            eye = target + 3.0 * torch.tensor(
                [math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth)],
                dtype=torch.float64,
            )
            poses.append(look_at(eye, target))
    focal = 1.1 * width
    K = torch.tensor([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]], dtype=torch.float64)
    return ContextViews(
        images=images.to(dtype),
        intrinsics=K.expand(batch, views, 3, 3).to(dtype).clone(),
        camtoworlds=torch.stack(poses).reshape(batch, views, 4, 4).to(dtype),
    )


def random_rotation(gen: torch.Generator, dtype=torch.float64) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen, dtype=dtype))
    q = q * torch.sign(torch.diagonal(r))
    if torch.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def quat_to_matrix(q: torch.Tensor) -> torch.Tensor:
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q.unbind(-1)
    rows = [
        torch.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ]
    return torch.stack(rows, -2)


def depth_along_axes(gaussians: Gaussians, context: ContextViews) -> torch.Tensor:
    """z-depth [B,V,n] of each view's Gaussians in its own camera."""
    b, v = context.batch_size, context.num_views
    means = gaussians.means.reshape(b, v, -1, 3)
    c2w = context.camtoworlds
    return ((means - c2w[:, :, None, :3, 3]) * -c2w[:, :, None, :3, 2]).sum(-1)


def small_model(dtype=torch.float64, seed: int = 0, **overrides) -> CompactBackbone:
    torch.manual_seed(seed)
    return CompactBackboneConfig(**{**SMALL, **overrides}).setup().to(dtype)


# -- config and output -----------------------------------------------------------------------------
def test_config_is_registered_and_round_trips_through_a_dict():
    assert backbone_config_class("compact") is CompactBackboneConfig
    config = CompactBackboneConfig(width=12, stride=4, near_factor=0.2)
    assert CompactBackboneConfig(**config.to_dict()) == config
    assert isinstance(config.setup(), CompactBackbone)
    with pytest.raises(ValueError, match="compact backbone config: .*near_factor"):
        CompactBackboneConfig(near_factor=2.0, far_factor=1.0)
    with pytest.raises(ValueError, match="predict_sh_degree"):
        CompactBackboneConfig(predict_sh_degree=2)


@pytest.mark.parametrize("stride", [1, 2, 4])
def test_output_shapes_are_one_gaussian_per_block(stride):
    context = make_context(batch=2, views=3, height=32, width=48)
    model = small_model(torch.float32, stride=stride)
    g = model(context)
    n = 3 * (32 // stride) * (48 // stride)
    assert g.means.shape == (2, n, 3) and g.scales.shape == (2, n, 3) and g.quats.shape == (2, n, 4)
    assert g.opacities.shape == (2, n, 1) and g.features_dc.shape == (2, n, 3)
    assert g.features_rest.shape == (2, n, 15, 3) and g.sh_degree == 3
    assert g.means.dtype == torch.float32
    for name, t in g.items():
        assert torch.isfinite(t).all(), name
    torch.testing.assert_close(g.quats.norm(dim=-1), torch.ones(2, n))
    assert (g.features_rest == 0).all()  # only band 0 is predicted by default


def test_untrained_network_predicts_a_reasonable_start():
    context = make_context(batch=1, views=4, height=32, width=32, dtype=torch.float64)
    model = small_model()
    g = model(context)[0]
    # opacity about 0.5, colour about the block's mean colour
    assert (g.activated_opacities() - 0.5).abs().max() < 0.05
    block_rgb = F.avg_pool2d(context.images[0].permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1).reshape(-1, 3)
    assert (g.features_dc - rgb_to_sh(block_rgb)).abs().max() * 0.2821 < 0.03
    # depth about the focus distance (the cameras look at a point 3 away), within the sweep range
    depth = depth_along_axes(g[None], context)[0]
    focus = focus_distances(context.camtoworlds)[0]
    torch.testing.assert_close(focus, torch.full_like(focus, 3.0), rtol=2e-3, atol=0)
    ratio = depth / focus[:, None]
    assert 0.6 < ratio.median() < 1.6 and ratio.min() > 0.3 * 0.8 and ratio.max() < 5.0 * 1.25
    # scales about half the block's footprint, isotropic; rotations about the camera's axes
    footprint = depth * 2 / context.intrinsics[0, :, 0, 0, None]
    torch.testing.assert_close(g.scales.reshape(4, -1, 3), torch.log(0.5 * footprint)[..., None].expand(-1, -1, 3), atol=0.1, rtol=0)
    rot = quat_to_matrix(g.quats).reshape(4, -1, 3, 3)
    cam_rot = context.camtoworlds[0, :, None, :3, :3] * torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64)
    assert (rot - cam_rot).abs().max() < 0.1


def test_gradients_reach_every_parameter():
    context = make_context(batch=1, views=3, height=32, width=32)
    model = small_model(torch.float32, predict_sh_degree=1)
    g = model(context)
    gen = torch.Generator().manual_seed(1)
    loss = sum((t * torch.randn(t.shape, generator=gen)).sum() for _, t in g.items())
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not (p.grad != 0).any()]
    assert not missing, f"no gradient reaches {missing}"


def test_head_only_optimisation_changes_only_the_head():
    context = make_context(batch=1, views=2, height=32, width=32)
    model = small_model(torch.float32)
    names = set(model.head_parameter_names())
    all_names = {n for n, _ in model.named_parameters()}
    assert names and names < all_names
    assert all(n.startswith("head.") for n in names)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.Adam(model.head_parameters(), lr=1e-2)
    g = model(context)
    loss = g.means.square().mean() + g.features_dc.square().mean() + g.opacities.mean() + g.scales.mean()
    loss.backward()
    opt.step()
    changed = {n for n, p in model.named_parameters() if not torch.equal(p, before[n])}
    assert changed == names
    assert len(list(model.trunk_parameters())) == len(all_names) - len(names)


def test_plane_sweep_finds_the_depth_of_a_textured_wall():
    """The cost volume's geometry: features of the wall z = 0 (multi-frequency cos/sin of its
    coordinates, so only the right correspondence correlates fully) peak on the true depth's plane."""
    h = w = 16
    factor = 4  # the sweep runs at 1/4 of the image resolution, as in forward()
    focal, centre = 1.0 * w * factor, w * factor / 2
    K = torch.tensor([[focal, 0, centre], [0, focal, centre], [0, 0, 1]], dtype=torch.float64)
    eyes = [(-0.6, -0.3, 3.0), (0.5, -0.4, 2.8), (0.1, 0.5, 3.2), (-0.4, 0.4, 2.6)]
    c2w = torch.stack([look_at(torch.tensor(e, dtype=torch.float64), torch.tensor([0.1, 0.0, 0.0], dtype=torch.float64)) for e in eyes])
    c2w_cv = c2w * torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    freqs = torch.randn(12, 2, generator=gen, dtype=torch.float64) * 4.0
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64) + 0.5, torch.arange(w, dtype=torch.float64) + 0.5, indexing="ij")
    K_f = K.clone()
    K_f[:2] /= factor
    rays_cam = torch.stack([(xs - K_f[0, 2]) / K_f[0, 0], (ys - K_f[1, 2]) / K_f[1, 1], torch.ones_like(xs)], -1)
    feats, depths = [], []
    for pose in c2w_cv:
        rays = rays_cam @ pose[:3, :3].T
        t = -pose[2, 3] / rays[..., 2]  # z-depth of the wall (the rays have unit camera z)
        points = pose[:3, 3] + t[..., None] * rays
        phase = points[..., :2] @ freqs.T
        feats.append(torch.cat([phase.cos(), phase.sin()], -1).permute(2, 0, 1))
        depths.append(t)
    feats = torch.stack(feats)[None]
    true_depth = torch.stack(depths)[None]
    model = small_model(num_depth_planes=64)
    _, near, far = model.depth_range(c2w[None])
    u = torch.linspace(0, 1, 64, dtype=torch.float64)
    planes = 1.0 / (1 / near[..., None] + (1 / far - 1 / near)[..., None] * u)
    cost, seen = model._cost_volume(feats, K.expand(1, 4, 3, 3), c2w_cv[None], planes, (h * factor, w * factor), factor)
    assert cost.shape == (1, 4, 64, h, w) and seen.shape == (1, 4, 1, h, w)
    best = planes[..., None, None].expand_as(cost).gather(2, cost.argmax(2, keepdim=True)).squeeze(2)
    visible = seen[:, :, 0] > 0.5
    assert visible.float().mean() > 0.5
    relative = ((best - true_depth).abs() / true_depth)[visible]
    # relative spacing of neighbouring planes at the true depth: depth * d(inverse depth)
    spacing = (true_depth * (1 / near - 1 / far)[..., None, None] / 63)[visible]
    assert spacing.max() < 0.1
    assert (relative < spacing).float().mean() > 0.8 and (relative < 2 * spacing).float().mean() > 0.95
    # a single view has nothing to match: an empty cost volume
    cost1, seen1 = model._cost_volume(feats[:, :1], K.expand(1, 1, 3, 3), c2w_cv[None, :1], planes[:, :1], (64, 64), factor)
    assert (cost1 == 0).all() and (seen1 == 0).all()


# -- equivariance ----------------------------------------------------------------------------------
def transform(context: ContextViews, rotation: torch.Tensor, translation: torch.Tensor, scale: float = 1.0) -> ContextViews:
    c2w = context.camtoworlds.clone()
    c2w[..., :3, :3] = rotation @ c2w[..., :3, :3]
    c2w[..., :3, 3] = scale * (c2w[..., :3, 3] @ rotation.T) + translation
    return ContextViews(context.images, context.intrinsics, c2w)


@pytest.mark.parametrize("seed", [0, 1])
def test_rigid_motion_of_the_cameras_moves_the_gaussians_rigidly(seed):
    gen = torch.Generator().manual_seed(seed)
    context = make_context(batch=2, views=3, height=32, width=32, dtype=torch.float64, seed=seed)
    rotation = random_rotation(gen)
    translation = torch.randn(3, generator=gen, dtype=torch.float64) * 5
    model = small_model(predict_sh_degree=1, seed=seed)
    with torch.no_grad():
        a = model(context)
        b = model(transform(context, rotation, translation))
    torch.testing.assert_close(b.means, a.means @ rotation.T + translation, atol=1e-8, rtol=1e-8)
    torch.testing.assert_close(quat_to_matrix(b.quats), rotation @ quat_to_matrix(a.quats), atol=1e-8, rtol=1e-8)
    for name in ("scales", "opacities", "features_dc"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=1e-8, rtol=1e-8)
    # the view-dependent band turns with the scene: same colour for the correspondingly rotated direction
    dirs = F.normalize(torch.randn(a.num_gaussians, 3, generator=gen, dtype=torch.float64), dim=-1)
    colour_a = (sh_bases(1, dirs)[..., 1:4, None] * a.features_rest[:, :, :3]).sum(-2)
    colour_b = (sh_bases(1, dirs @ rotation.T)[..., 1:4, None] * b.features_rest[:, :, :3]).sum(-2)
    torch.testing.assert_close(colour_b, colour_a, atol=1e-8, rtol=1e-8)
    assert colour_a.abs().max() > 1e-6  # the band is actually predicted


@pytest.mark.parametrize("scale", [0.05, 3.7])
def test_scaling_the_scene_scales_means_and_scales(scale):
    context = make_context(batch=1, views=3, height=32, width=32, dtype=torch.float64, seed=3)
    model = small_model(seed=3)
    with torch.no_grad():
        a = model(context)
        b = model(transform(context, torch.eye(3, dtype=torch.float64), torch.zeros(3, dtype=torch.float64), scale))
    torch.testing.assert_close(b.means, a.means * scale, atol=1e-8 * scale, rtol=1e-8)
    torch.testing.assert_close(b.scales, a.scales + math.log(scale), atol=1e-8, rtol=1e-8)
    for name in ("quats", "opacities", "features_dc", "features_rest"):
        torch.testing.assert_close(getattr(b, name), getattr(a, name), atol=1e-8, rtol=1e-8)


def test_float32_model_agrees_with_its_float64_copy_and_keeps_the_input_dtype():
    context = make_context(batch=1, views=3, height=32, width=32, dtype=torch.float64)
    model32 = small_model(torch.float32)
    model64 = small_model(torch.float64)
    with torch.no_grad():
        g64 = model64(context)
        g32 = model32(context)  # float64 input, float32 weights: geometry stays float64
        g32_in32 = model32(context.to(torch.float32))
    assert g32.means.dtype == torch.float64 and g32_in32.means.dtype == torch.float32
    torch.testing.assert_close(g32.means, g64.means, atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(g32_in32.means, g64.means.float(), atol=1e-3, rtol=1e-3)
    torch.testing.assert_close(g32_in32.scales, g64.scales.float(), atol=1e-3, rtol=1e-3)


# -- odd inputs ------------------------------------------------------------------------------------
def test_a_single_view_gives_sensible_gaussians():
    context = make_context(batch=2, views=1, height=32, width=32, dtype=torch.float64)
    model = small_model()
    g = model(context)
    assert g.means.shape == (2, 16 * 16, 3)
    assert all(torch.isfinite(t).all() for _, t in g.items())
    # no baseline: the focus distance falls back on the world origin, which the camera looks close to
    expected = (-context.camtoworlds[:, 0, :3, 3] * -context.camtoworlds[:, 0, :3, 2]).sum(-1)
    torch.testing.assert_close(focus_distances(context.camtoworlds)[:, 0], expected)
    ratio = depth_along_axes(g, context) / expected[:, None, None]
    assert 0.6 < ratio.median() < 1.6 and (ratio > 0).all()
    # still equivariant to a rotation about the origin and to scale
    gen = torch.Generator().manual_seed(4)
    rotation = random_rotation(gen)
    with torch.no_grad():
        moved = model(transform(context, rotation, torch.zeros(3, dtype=torch.float64), 2.0))
    torch.testing.assert_close(moved.means, 2.0 * g.means.detach() @ rotation.T, atol=1e-8, rtol=1e-8)


def test_parallel_axes_get_a_focus_ahead_of_the_cameras():
    # a forward-facing capture: one orientation, centres on a 2x2 grid in the image plane
    base = look_at(torch.tensor([0.5, 1.0, 4.0], dtype=torch.float64), torch.zeros(3, dtype=torch.float64))
    c2w = base.repeat(1, 4, 1, 1)
    for k, (dx, dy) in enumerate([(-1, -1), (1, -1), (-1, 1), (1, 1)]):
        c2w[0, k, :3, 3] += 0.3 * dx * base[:3, 0] + 0.2 * dy * base[:3, 1]
    spread = math.sqrt(0.3**2 + 0.2**2)
    focus = focus_distances(c2w, parallel_axes_focus=8.0)
    torch.testing.assert_close(focus, torch.full_like(focus, 8.0 * spread))
    # converging axes decide the focus themselves
    converging = torch.stack([look_at(c2w[0, k, :3, 3], torch.zeros(3, dtype=torch.float64)) for k in range(4)])[None]
    expected = (converging[0, :, :3, 3].norm(dim=-1))[None]
    torch.testing.assert_close(focus_distances(converging, parallel_axes_focus=8.0), expected, rtol=1e-2, atol=0)


def test_image_sides_that_are_not_multiples_of_eight_are_padded_internally():
    context = make_context(batch=1, views=2, height=34, width=42)
    g = small_model(torch.float32)(context)
    assert g.means.shape == (1, 2 * 17 * 21, 3)
    assert all(torch.isfinite(t).all() for _, t in g.items())


@pytest.mark.parametrize("height,width", [(33, 42), (134, 239), (35, 47)])
def test_odd_image_sides_get_a_gaussian_for_the_partial_edge_block(height, width):
    # real captures: 239x134 after nerfstudio's undistortion, 240x135 after downscaling 1080x1920
    model = small_model(torch.float32)
    context = make_context(batch=1, views=2, height=height, width=width)
    g = model(context)
    hb, wb = -(-height // 2), -(-width // 2)
    assert g.means.shape == (1, 2 * hb * wb, 3)
    assert all(torch.isfinite(t).all() for _, t in g.items())
    # every Gaussian sits on its block centre's ray, the partial edge blocks' centres included
    c2w = opengl_to_opencv(context.camtoworlds[0, 0])
    local = (g.means[0, : hb * wb] - c2w[:3, 3]) @ c2w[:3, :3]
    K = context.intrinsics[0, 0]
    u = K[0, 0] * local[:, 0] / local[:, 2] + K[0, 2]
    v = K[1, 1] * local[:, 1] / local[:, 2] + K[1, 2]
    rows, cols = torch.meshgrid(torch.arange(hb), torch.arange(wb), indexing="ij")
    torch.testing.assert_close(u, (2 * cols + 1).flatten().to(u), atol=1e-3, rtol=0)
    torch.testing.assert_close(v, (2 * rows + 1).flatten().to(v), atol=1e-3, rtol=0)


def test_bad_input_raises_clear_errors():
    model = small_model(torch.float32)
    good = make_context(batch=1, views=2)
    with pytest.raises(ValueError, match="compact backbone: images must be"):
        model(ContextViews(good.images[..., :2], good.intrinsics, good.camtoworlds))
    with pytest.raises(ValueError, match="compact backbone: intrinsics must be"):
        model(ContextViews(good.images, good.intrinsics[:, :1], good.camtoworlds))
    with pytest.raises(ValueError, match="compact backbone: camtoworlds must be"):
        model(ContextViews(good.images, good.intrinsics, good.camtoworlds[..., :3, :]))
    bad = good.images.clone()
    bad[0, 0, 3, 3, 0] = float("nan")
    with pytest.raises(ValueError, match="compact backbone: images contain NaN"):
        model(ContextViews(bad, good.intrinsics, good.camtoworlds))


def test_non_finite_network_output_names_the_backbone_and_the_field():
    model = small_model(torch.float32)
    with torch.no_grad():
        model.head.out.bias[1] = float("nan")  # the opacity channel
    with pytest.raises(ValueError, match="compact backbone: 'opacities' has 512 non-finite"):
        model(make_context(batch=1, views=2))


# -- budgets and checkpoints -----------------------------------------------------------------------
def test_default_budget_and_checkpoint_round_trip(tmp_path):
    torch.manual_seed(0)
    config = CompactBackboneConfig()
    model = config.setup()
    assert sum(p.numel() for p in model.parameters()) <= 5_000_000
    path = tmp_path / "compact.pt"
    save_checkpoint(path, model, extra={"step": 7})
    assert path.stat().st_size <= 20 * 1024 * 1024
    loaded, extra = load_backbone(path, expected=CompactBackboneConfig())
    assert extra == {"step": 7} and isinstance(loaded, CompactBackbone) and loaded.config == config
    context = make_context(batch=1, views=2, height=32, width=32)
    with torch.no_grad():
        a, b = model(context), loaded(context)
    for name, t in a.items():
        assert torch.equal(t, getattr(b, name)), name

    with pytest.raises(ValueError, match=r"width: checkpoint 32 vs asked 64"):
        load_backbone(path, expected=CompactBackboneConfig(width=64))

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="truncated.pt could not be read"):
        load_backbone(truncated)
