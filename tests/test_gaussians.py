"""Gaussians in splatfacto's parameterisation, the cap, camera conventions and backbone checkpoints."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Tuple

import pytest
import torch

from foresplat_ns.backbones import ContextViews, load_backbone, save_checkpoint
from foresplat_ns.backbones.base import Backbone, BackboneConfig, register_backbone
from foresplat_ns.backbones.pointcloud import PointCloudInitConfig, RandomInitConfig
from foresplat_ns.cameras import intrinsics_matrix, opengl_to_opencv, unproject_depth, viewmats_from_camtoworlds
from foresplat_ns.gaussians import Gaussians, cap_gaussians, rgb_to_sh, sh_to_rgb


def random_gaussians(n: int, sh_degree: int = 1, seed: int = 0) -> Gaussians:
    gen = torch.Generator().manual_seed(seed)
    return Gaussians.from_activated(
        means=torch.randn(n, 3, generator=gen),
        scales=torch.rand(n, 3, generator=gen) * 0.1 + 0.01,
        quats=torch.randn(n, 4, generator=gen),
        opacities=torch.rand(n, generator=gen) * 0.98 + 0.01,
        rgb=torch.rand(n, 3, generator=gen),
        sh_degree=sh_degree,
    )


def test_from_activated_round_trips_to_what_the_rasteriser_takes():
    gen = torch.Generator().manual_seed(0)
    scales, opac, rgb = torch.rand(7, 3, generator=gen) + 0.1, torch.rand(7, generator=gen) * 0.9 + 0.05, torch.rand(7, 3, generator=gen)
    g = Gaussians.from_activated(torch.randn(7, 3), scales, torch.randn(7, 4), opac, rgb, sh_degree=2)
    torch.testing.assert_close(g.activated_scales(), scales)
    torch.testing.assert_close(g.activated_opacities(), opac)
    torch.testing.assert_close(g.rgb(), rgb)
    torch.testing.assert_close(g.quats.norm(dim=-1), torch.ones(7))
    assert g.opacities.shape == (7, 1) and g.features_rest.shape == (7, 8, 3) and g.sh_degree == 2
    assert g.sh_coefficients().shape == (7, 9, 3)
    torch.testing.assert_close(sh_to_rgb(rgb_to_sh(rgb)), rgb)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda g: setattr(g, "means", g.means.clone().index_fill_(0, torch.tensor([3]), float("nan"))), "'means' has 1 non-finite"),
        (lambda g: setattr(g, "scales", g.scales[:5]), "'scales' has shape"),
        (lambda g: setattr(g, "quats", g.quats * 0), "zero-norm"),
        (lambda g: setattr(g, "features_rest", torch.zeros(10, 2, 3)), "features_rest"),
    ],
)
def test_validate_names_the_source_and_the_field(corrupt, message):
    g = random_gaussians(10)
    corrupt(g)
    with pytest.raises(ValueError, match="my backbone") as info:
        g.validate("my backbone")
    assert message in str(info.value)


def test_validate_rejects_an_empty_set():
    with pytest.raises(ValueError, match="zero Gaussians"):
        random_gaussians(5)[torch.zeros(5, dtype=torch.bool)].validate("init")


def test_cap_prefers_opaque_gaussians_and_stays_differentiable():
    g = random_gaussians(1000)
    opac = torch.full((1000,), 0.001)
    opac[:300] = 0.9  # 300 clearly visible ones
    g = Gaussians.from_activated(g.means, g.activated_scales(), g.quats, opac, g.rgb(), 1)
    g.means.requires_grad_(True)
    capped = cap_gaussians(g, 200, generator=torch.Generator().manual_seed(0))
    assert capped.num_gaussians == 200
    assert (capped.activated_opacities() > 0.5).all(), "near-transparent Gaussians must go first"
    capped.means.sum().backward()
    assert g.means.grad.sum() == pytest.approx(600.0)  # 200 kept rows x 3 coordinates
    again = cap_gaussians(g.detach(), 200, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(again.means, capped.means.detach())
    assert cap_gaussians(g, 5000) is g


def test_viewmats_invert_camtoworlds_and_flip_to_opencv():
    angle = torch.tensor(0.7)
    c2w = torch.eye(4)
    c2w[:3, :3] = torch.tensor([[torch.cos(angle), 0, torch.sin(angle)], [0, 1, 0], [-torch.sin(angle), 0, torch.cos(angle)]])
    c2w[:3, 3] = torch.tensor([0.3, -0.2, 2.0])
    viewmat = viewmats_from_camtoworlds(c2w)
    torch.testing.assert_close(viewmat @ opengl_to_opencv(c2w), torch.eye(4), atol=1e-6, rtol=0)
    # A point straight ahead of an OpenGL camera (its -z) has positive OpenCV depth.
    ahead = c2w[:3, 3] - 1.5 * c2w[:3, 2]
    cam = viewmat[:3, :3] @ ahead + viewmat[:3, 3]
    torch.testing.assert_close(cam, torch.tensor([0.0, 0.0, 1.5]), atol=1e-6, rtol=0)


def test_unproject_depth_of_a_fronto_parallel_plane():
    K = intrinsics_matrix(torch.tensor(40.0), torch.tensor(40.0), torch.tensor(16.0), torch.tensor(12.0))
    c2w = torch.eye(4)
    points = unproject_depth(torch.full((24, 32), 3.0), K, c2w)
    torch.testing.assert_close(points[..., 2], torch.full((24, 32), -3.0))  # OpenGL: in front is -z
    torch.testing.assert_close(points[12, 16, :2], torch.tensor([0.5 * 3 / 40, -0.5 * 3 / 40]))


def _plane_context(stride_check: bool = False) -> ContextViews:
    K = intrinsics_matrix(torch.tensor(30.0), torch.tensor(30.0), torch.tensor(16.0), torch.tensor(16.0))
    images = torch.rand(1, 2, 32, 32, 3, generator=torch.Generator().manual_seed(0))
    c2w = torch.eye(4).expand(1, 2, 4, 4).clone()
    c2w[0, 1, 0, 3] = 0.5
    depths = torch.full((1, 2, 32, 32), 2.0)
    depths[0, 0, :4] = 0.0  # unknown depth: no Gaussian there
    return ContextViews(images, K.expand(1, 2, 3, 3), c2w, depths=depths)


def test_pointcloud_initialiser_unprojects_depth_onto_the_plane():
    context = _plane_context()
    g = PointCloudInitConfig(stride=2).setup()(context)[0]
    assert g.num_gaussians == 2 * 16 * 16 - 2 * 16  # the first two block rows of view 0 have no depth
    torch.testing.assert_close(g.means[:, 2], torch.full((g.num_gaussians,), -2.0))
    # Block centre pixel (1,1) of view 0's third block row sits at pixel (1.5, 5.5) of the full image.
    expected_x = (1.5 - 16) / 30 * 2.0
    assert torch.isclose(g.means[:, 0], torch.tensor(expected_x)).any()
    torch.testing.assert_close(g.rgb()[0], context.images[0, 0, 5, 1], atol=1e-6, rtol=0)
    g.validate("pointcloud")


def test_pointcloud_initialiser_needs_geometry():
    context = _plane_context()
    context.depths = None
    with pytest.raises(ValueError, match="neither depth maps nor SfM points"):
        PointCloudInitConfig().setup()(context)
    with pytest.raises(ValueError, match="no depth maps"):
        PointCloudInitConfig(source="depth").setup()(context)
    context.points = (torch.randn(50, 3), torch.rand(50, 3))
    assert PointCloudInitConfig().setup()(context).num_gaussians == 50


def test_random_initialiser_is_seeded():
    context = _plane_context()
    a = RandomInitConfig(num_gaussians=100, seed=3).setup()(context)
    b = RandomInitConfig(num_gaussians=100, seed=3).setup()(context)
    torch.testing.assert_close(a.means, b.means)
    assert a.means.shape == (1, 100, 3)


@register_backbone
@dataclass
class TinyLinearConfig(BackboneConfig):
    """A two-layer backbone just big enough to exercise checkpoints."""

    name: ClassVar[str] = "test-tiny-linear"
    width: int = 4

    def setup(self):
        return TinyLinear(self)


class TinyLinear(Backbone):
    def __init__(self, config: TinyLinearConfig):
        super().__init__()
        self.config = config
        self.trunk = torch.nn.Linear(3, config.width)
        self.head = torch.nn.Linear(config.width, 14)

    def head_parameter_names(self) -> Tuple[str, ...]:
        return ("head.weight", "head.bias")

    def forward(self, context):
        x = self.head(torch.relu(self.trunk(context.images.mean(dim=(1, 2, 3)))))
        b = x.shape[0]
        return Gaussians(x[:, None, :3], x[:, None, 3:6], x[:, None, 6:10], x[:, None, 10:11], x[:, None, 11:14], x.new_zeros(b, 1, 0, 3))


def test_checkpoint_round_trip_and_mismatches(tmp_path):
    backbone = TinyLinearConfig(width=4).setup()
    path = tmp_path / "ckpt" / "tiny.pt"
    save_checkpoint(path, backbone, extra={"step": 7})
    loaded, extra = load_backbone(path)
    assert extra == {"step": 7}
    for (n1, p1), (n2, p2) in zip(backbone.state_dict().items(), loaded.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2)
    assert [p.shape for p in loaded.head_parameters()] == [torch.Size([14, 4]), torch.Size([14])]
    assert list(tmp_path.joinpath("ckpt").iterdir()) == [path], "no temporary file is left behind"

    with pytest.raises(ValueError, match=r"width: checkpoint 4 vs asked 8"):
        load_backbone(path, expected=TinyLinearConfig(width=8))
    with pytest.raises(ValueError, match="holds a 'test-tiny-linear' backbone, but a 'pointcloud'"):
        load_backbone(path, expected=PointCloudInitConfig())

    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(path.read_bytes()[:200])
    with pytest.raises(ValueError, match=r"truncated\.pt could not be read"):
        load_backbone(truncated)
    noise = tmp_path / "noise.pt"
    noise.write_bytes(bytes(range(256)) * 8)  # not a torch file at all: torch's weights_only advice would mislead
    with pytest.raises(ValueError, match=r"noise\.pt could not be read: truncated, corrupt or not a ForeSplat checkpoint at all$"):
        load_backbone(noise)
    other = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, other)
    with pytest.raises(ValueError, match="not a ForeSplat backbone checkpoint"):
        load_backbone(other)
    with pytest.raises(FileNotFoundError, match="missing.pt"):
        load_backbone(tmp_path / "missing.pt")
