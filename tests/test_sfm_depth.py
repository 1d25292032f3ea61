"""Depth from a capture's SfM points: the dense map of one view, and the compact backbone placing its
Gaussians at that depth when (and only when) the context views come with the points."""

from __future__ import annotations

import pytest
import torch
from test_compact_backbone import depth_along_axes, make_context, small_model

from foresplat_ns.backbones.sfm_depth import MIN_POINTS_IN_VIEW, sfm_depth_map
from foresplat_ns.cameras import pixel_grid, project_points, unproject_depth
from foresplat_ns.data import load_scene
from foresplat_ns.refine import RefineConfig
from foresplat_ns.start import StartConfig, initial_gaussians

HEIGHT, WIDTH = 24, 32
K = torch.tensor([[30.0, 0, WIDTH / 2], [0, 30.0, HEIGHT / 2], [0, 0, 1]], dtype=torch.float64)
POSE = torch.eye(4, dtype=torch.float64)  # OpenGL: looking down -z


def points_at(depth: torch.Tensor, fraction: float, seed: int = 0) -> torch.Tensor:
    """World points of a random `fraction` of the cells of a z-depth map [H,W] seen from POSE."""
    world = unproject_depth(depth, K, POSE).reshape(-1, 3)
    keep = torch.rand(world.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64) < fraction
    return world[keep]


def tilted_plane() -> torch.Tensor:
    ys, xs = torch.meshgrid(torch.arange(HEIGHT, dtype=torch.float64), torch.arange(WIDTH, dtype=torch.float64), indexing="ij")
    return 2.0 + 0.03 * xs + 0.02 * ys


def test_projecting_unprojected_pixels_gives_them_back():
    pose = POSE.clone()
    pose[:3, :3] = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(4), dtype=torch.float64))[0]
    pose[:3, 3] = torch.tensor([0.3, -1.0, 2.0], dtype=torch.float64)
    depth = tilted_plane()
    xy, z = project_points(unproject_depth(depth, K, pose).reshape(-1, 3), K, pose)
    assert torch.allclose(xy, pixel_grid(HEIGHT, WIDTH, dtype=torch.float64).reshape(-1, 2), atol=1e-9)
    assert torch.allclose(z, depth.reshape(-1), atol=1e-12)


def test_a_sparsely_sampled_surface_is_recovered_everywhere():
    """A cell is off by at most the surface's change over its distance to the
    nearest hit (Chebyshev, in cells) plus one, the median's reach; the distance is found by brute force."""
    truth = tilted_plane()
    points = points_at(truth, 0.1)
    dense = sfm_depth_map(points, K, POSE, HEIGHT, WIDTH)
    cells = torch.cartesian_prod(torch.arange(HEIGHT), torch.arange(WIDTH)).double()
    hit_cells = (points[:, :2] / -points[:, 2:] * torch.tensor([30.0, -30.0]) + torch.tensor([WIDTH / 2, HEIGHT / 2])).floor()
    gap = torch.cdist(cells, hit_cells.flip(-1), p=float("inf")).min(-1).values.reshape(HEIGHT, WIDTH)
    step = 0.03 / truth.min()  # the largest relative change of depth from one cell to the next
    relative = (dense / truth - 1).abs()
    assert (relative <= step * (gap + 1)).all(), f"max relative depth error {relative.max():.4f}"


def test_a_cell_takes_the_nearest_surface_not_what_it_occludes():
    front = torch.full((HEIGHT, WIDTH), 1.5, dtype=torch.float64)
    points = torch.cat([points_at(front, 1.0, seed=1), points_at(tilted_plane(), 0.5, seed=2)])
    dense = sfm_depth_map(points, K, POSE, HEIGHT, WIDTH)
    assert torch.allclose(dense, front, rtol=1e-9)


def test_a_lone_floater_in_front_of_a_surface_is_ignored():
    truth = torch.full((HEIGHT, WIDTH), 3.0, dtype=torch.float64)
    floater = unproject_depth(torch.full((HEIGHT, WIDTH), 0.5, dtype=torch.float64), K, POSE)[10, 12]
    dense = sfm_depth_map(torch.cat([points_at(truth, 1.0), floater[None]]), K, POSE, HEIGHT, WIDTH)
    assert torch.allclose(dense, truth, rtol=1e-9)


def test_too_few_points_in_view_give_no_depth():
    truth = torch.full((HEIGHT, WIDTH), 3.0, dtype=torch.float64)
    points = points_at(truth, 1.0)[: MIN_POINTS_IN_VIEW - 1]
    behind = points * torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64)  # z > 0 in OpenGL: behind the camera
    assert sfm_depth_map(points, K, POSE, HEIGHT, WIDTH) is None
    assert sfm_depth_map(torch.cat([points, behind.repeat(5, 1)]), K, POSE, HEIGHT, WIDTH) is None
    assert sfm_depth_map(points_at(truth, 1.0)[:MIN_POINTS_IN_VIEW], K, POSE, HEIGHT, WIDTH) is not None


def test_the_compact_backbone_puts_its_gaussians_at_the_sfm_depth():
    context = make_context(views=3, height=64, width=64, dtype=torch.float64)
    model = small_model(stride=2).eval()
    # SfM points on a sphere around the cameras' target: every view sees its near side.
    gen = torch.Generator().manual_seed(3)
    directions = torch.randn(20000, 3, generator=gen, dtype=torch.float64)
    centre = torch.tensor([0.2, 0.3, -0.1], dtype=torch.float64)
    points = centre + 0.8 * directions / directions.norm(dim=-1, keepdim=True)
    with torch.no_grad():
        own = model(context)
        with_points = model(
            type(context)(context.images, context.intrinsics, context.camtoworlds, points=(points, torch.rand_like(points)))
        )
    for gaussians in (own, with_points):
        assert gaussians.means.shape == own.means.shape
    # Each Gaussian whose block ray meets the sphere well inside its silhouette now lies on it, to within
    # the depth the sphere spans across one block there (a block takes its nearest point's depth).
    centres = context.camtoworlds[0, :, :3, 3][:, None]
    rays = own.means[0].reshape(3, -1, 3) - centres
    rays = rays / rays.norm(dim=-1, keepdim=True)
    miss_distance = torch.linalg.cross(centre - centres, rays).norm(dim=-1)
    inside = miss_distance < 0.5 * 0.8
    assert inside.sum() > 100
    on_sphere = ((with_points.means[0].reshape(3, -1, 3) - centre).norm(dim=-1) - 0.8).abs() < 0.05
    assert on_sphere[inside].all(), f"{on_sphere[inside].float().mean():.2f} of the Gaussians on the SfM surface"
    assert not ((own.means[0].reshape(3, -1, 3) - centre).norm(dim=-1) - 0.8).abs()[inside].lt(0.05).all()
    # Only the depth moved: the other fields are the network's, and each mean stays on its block's ray.
    for name in ("quats", "opacities", "features_dc"):
        assert torch.equal(getattr(own, name), getattr(with_points, name))
    ratio = depth_along_axes(with_points, context) / depth_along_axes(own, context)
    scaled = centres + (own.means[0].reshape(3, -1, 3) - centres) * ratio[0][..., None]
    assert torch.allclose(scaled, with_points.means[0].reshape(3, -1, 3), atol=1e-9)
    assert torch.allclose(with_points.scales - own.scales, ratio.log().reshape(1, -1, 1).expand_as(own.scales), atol=1e-9)


def test_the_start_hands_the_points_to_the_backbone_unless_told_not_to(small_scene):
    train, _ = load_scene(small_scene)
    assert train.has_sfm_points
    model = small_model(dtype=torch.float32, stride=2)
    seen = initial_gaussians(train, model, StartConfig(start="prediction"), RefineConfig()).gaussians
    blind = initial_gaussians(train, model, StartConfig(start="prediction", backbone_sees_sfm_points=False), RefineConfig()).gaussians
    assert not torch.allclose(seen.means, blind.means)
    assert torch.equal(seen.opacities, blind.opacities)


@pytest.mark.parametrize("with_points", [True, False])
def test_a_scene_context_carries_its_points_only_when_asked(small_scene, with_points):
    train, _ = load_scene(small_scene)
    context = train.context([0, 1], with_points=with_points)
    assert (context.points is not None) == with_points
