"""The `pi3x` backbone's own part (Gaussian head, confidence mask, frame alignment, conversion to splatfacto's
parameterisation, MetaGrad on the head) against a stand-in for Pi3X. The real model was not run here:
its package is not on PyPI and its weights are not on this machine."""

from __future__ import annotations

import importlib.util
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from test_compact_backbone import quat_to_matrix
from torch import nn

from foresplat_ns.backbones import BackboneSelection, ContextViews, build_backbone
from foresplat_ns.backbones.align import Similarity
from foresplat_ns.backbones.pi3x import Pi3XBackbone, Pi3XBackboneConfig
from foresplat_ns.cameras import pixel_grid, viewmats_from_camtoworlds
from foresplat_ns.gaussians import rgb_to_sh
from foresplat_ns.metagrad import MetaGradConfig, metagrad_step
from foresplat_ns.refine import RefineConfig, View

SIDE = 56
FOCAL = 1.2 * SIDE
OPENCV_TO_OPENGL = torch.tensor([1.0, -1.0, -1.0, 1.0])


class StandInPi3X(nn.Module):
    """Honours Pi3X's documented contract (README "Model Input & Output", pi3/models/pi3x.py at 9fa3ddb):
    images [B,N,3,H,W] in [0,1], sides multiples of 14, in; a dict out with `points` and `local_points`
    [B,N,H,W,3], `conf` logits [B,N,H,W,1] and `camera_poses` [B,N,4,4] (OpenCV camera-to-world), in a
    frame of its own; `point_decoder` gives [B*N, patch_start_idx + patches, C] tokens.

    Its geometry is known: a ring of cameras at 40 degrees elevation looking at the ground plane y = 0 of
    its frame, pinhole focal FOCAL. The left quarter of every image is unconfident (logit -4).
    """

    patch_start_idx = 5

    def __init__(self, feature_dim: int = 32):
        super().__init__()
        self.point_decoder = nn.Linear(3 * 14 * 14, feature_dim)

    @staticmethod
    def cameras(views: int) -> torch.Tensor:
        poses = []
        for v in range(views):
            azimuth, elevation = 2 * math.pi * v / views * 0.5, math.radians(40)
            eye = 3.0 * torch.tensor(
                [math.cos(elevation) * math.sin(azimuth), math.sin(elevation), math.cos(elevation) * math.cos(azimuth)]
            )
            forward = -eye / eye.norm()
            right = F.normalize(torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0])), dim=0)
            down = torch.linalg.cross(forward, right)
            pose = torch.eye(4)
            pose[:3, 0], pose[:3, 1], pose[:3, 2], pose[:3, 3] = right, down, forward, eye
            poses.append(pose)
        return torch.stack(poses)

    def forward(self, imgs: torch.Tensor) -> dict:
        b, n, _, h, w = imgs.shape
        patches = F.unfold(imgs.reshape(b * n, 3, h, w), 14, stride=14).transpose(1, 2)  # [BN,P,588]
        registers = patches.new_zeros(b * n, self.patch_start_idx, patches.shape[-1])
        self.point_decoder(torch.cat([registers, patches], 1))  # features only: the geometry below is fixed
        poses = self.cameras(n).expand(b, n, 4, 4)
        pix = pixel_grid(h, w)
        rays = torch.stack([(pix[..., 0] - w / 2) / FOCAL, (pix[..., 1] - h / 2) / FOCAL, torch.ones(h, w)], -1)  # z = 1
        world_dirs = torch.einsum("bnij,hwj->bnhwi", poses[..., :3, :3], rays)
        depth = -poses[..., 1, 3][..., None, None] / world_dirs[..., 1]  # where the ray meets y = 0
        local = rays * depth[..., None]
        points = torch.einsum("bnij,bnhwj->bnhwi", poses[..., :3, :3], local) + poses[..., None, None, :3, 3]
        conf = torch.full((b, n, h, w, 1), 4.0)
        conf[:, :, :, : w // 4] = -4.0
        return dict(points=points, local_points=local, conf=conf, camera_poses=poses)


TRUTH = Similarity(
    rotation=torch.tensor([[[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [-1.0, 0.0, 0.0]]]),
    scale=torch.tensor([0.4]),
    translation=torch.tensor([[1.0, 2.0, -0.5]]),
)
"""The dataset's frame, as seen from the stand-in's: the fit must find it."""


def small_config(**overrides) -> Pi3XBackboneConfig:
    return Pi3XBackboneConfig(**{"pixel_limit": SIDE * SIDE, "feature_dim": 32, "head_width": 16, **overrides})


def make_backbone(seed: int = 0, **overrides) -> Pi3XBackbone:
    torch.manual_seed(seed)
    return Pi3XBackbone(small_config(**overrides), StandInPi3X())


def dataset_context(views: int = 3, batch: int = 1, seed: int = 0) -> ContextViews:
    """Smooth random images, and the stand-in's cameras moved into the dataset's frame (OpenGL)."""
    gen = torch.Generator().manual_seed(seed)
    coarse = torch.rand(batch * views, 3, 8, 8, generator=gen)
    images = F.interpolate(coarse, size=(SIDE, SIDE), mode="bilinear", align_corners=False).permute(0, 2, 3, 1)
    truth = Similarity(TRUTH.rotation.expand(batch, 3, 3), TRUTH.scale.expand(batch), TRUTH.translation.expand(batch, 3))
    c2w = truth.apply_to_cameras(StandInPi3X.cameras(views).expand(batch, views, 4, 4)) * OPENCV_TO_OPENGL
    K = torch.tensor([[FOCAL, 0, SIDE / 2], [0, FOCAL, SIDE / 2], [0, 0, 1]])
    return ContextViews(images.reshape(batch, views, SIDE, SIDE, 3), K.expand(batch, views, 3, 3).clone(), c2w)


def test_confident_blocks_become_gaussians_in_the_dataset_frame():
    backbone = make_backbone()
    context = dataset_context(views=3, batch=2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # consistent cameras: no warning
        prediction = backbone.predict(context)
    torch.testing.assert_close(prediction.similarity.rotation.float(), TRUTH.rotation.expand(2, 3, 3), atol=1e-5, rtol=0)
    torch.testing.assert_close(prediction.similarity.scale.float(), TRUTH.scale.expand(2), atol=1e-5, rtol=0)
    g = prediction.gaussians
    blocks = SIDE // 2
    confident_columns = blocks - (SIDE // 4) // 2  # the left quarter of each image is unconfident
    assert g.means.shape == (2, 3 * blocks * confident_columns, 3) and g.features_rest.shape[-2:] == (15, 3)
    # every Gaussian sits on the ground plane y = 0 of the stand-in's frame, moved into the dataset's
    ground = TRUTH.apply_to_points(torch.zeros(1, 1, 3))[0, 0]
    normal = TRUTH.rotation[0] @ torch.tensor([0.0, 1.0, 0.0])
    assert ((g.means - ground) @ normal).abs().max() < 1e-4
    # and none comes from the unconfident quarter: seen from its own camera, x >= w/4
    samples, _ = backbone.predict_model_frame(context)
    camera = StandInPi3X.cameras(3)[0]
    in_camera = (samples[0].means[: blocks * confident_columns] - camera[:3, 3]) @ camera[:3, :3]
    x = FOCAL * in_camera[:, 0] / in_camera[:, 2] + SIDE / 2
    assert x.min() > SIDE / 4


def test_untrained_head_gives_a_sensible_start_in_splatfacto_parameterisation():
    backbone = make_backbone()
    context = dataset_context(views=2)
    g = backbone(context)[0]
    per_view = g.num_gaussians // 2
    first = g[:per_view]  # view 0's Gaussians come first
    # opacity logits about logit(0.5), colours the block means (as SH band 0), log-scales half the footprint
    assert first.opacities.abs().max() < 0.05
    block_rgb = F.avg_pool2d(context.images[0, 0].permute(2, 0, 1)[None], 2)[0].permute(1, 2, 0)[:, SIDE // 8 :].reshape(-1, 3)
    assert (first.features_dc - rgb_to_sh(block_rgb)).abs().max() * 0.2821 < 0.03
    centre = context.camtoworlds[0, 0, :3, 3]
    axis = -context.camtoworlds[0, 0, :3, 2]
    depth = (first.means - centre) @ axis
    footprint = depth * 2 / FOCAL
    torch.testing.assert_close(first.scales, torch.log(0.5 * footprint)[:, None].expand(-1, 3), atol=0.05, rtol=0)
    # rotations are about the camera's axes (OpenCV) in the dataset's frame
    camera_axes = context.camtoworlds[0, 0, :3, :3] * OPENCV_TO_OPENGL[:3]
    assert (quat_to_matrix(first.quats) - camera_axes).abs().max() < 0.05


def test_a_metagrad_step_changes_only_our_head():
    backbone = make_backbone()
    context = dataset_context(views=3)
    head = set(backbone.head_parameter_names())
    assert head and all(n.startswith("head.") for n in head)
    assert {n for n, _ in backbone.named_parameters()} - head == {"pi3x.point_decoder.weight", "pi3x.point_decoder.bias"}
    before = {n: p.detach().clone() for n, p in backbone.named_parameters()}
    viewmats = viewmats_from_camtoworlds(context.camtoworlds[0])
    views = [View(context.images[0, i], viewmats[i], context.intrinsics[0, i]) for i in range(3)]
    optimiser = torch.optim.Adam(backbone.head_parameters(), lr=1e-3)
    step = metagrad_step(backbone(context)[0], views, RefineConfig(), MetaGradConfig(inner_steps=2, num_anchors=2))
    step.surrogate.backward()
    assert backbone.pi3x.point_decoder.weight.grad.abs().sum() > 0  # the trunk is reachable, just not trained
    optimiser.step()
    changed = {n for n, p in backbone.named_parameters() if not torch.equal(p, before[n])}
    assert changed == head


def test_contract_violations_and_empty_masks_are_named():
    backbone = make_backbone()
    context = dataset_context(views=2)
    with pytest.raises(ValueError, match="pi3x backbone: no point of batch element 0 has confidence >= 0.99"):
        make_backbone(confidence_threshold=0.99)(context)

    class NoConfidence(StandInPi3X):
        def forward(self, imgs):
            out = super().forward(imgs)
            out["conf"] = out["conf"][..., :1, :]
            return out

    with pytest.raises(ValueError, match=r"pi3x backbone: Pi3X's 'conf' should be \(1, 2, 56, 56, 1\), got \(1, 2, 56, 1, 1\)"):
        Pi3XBackbone(small_config(), NoConfidence())(context)
    with pytest.raises(ValueError, match=r"point decoder gave tokens \(2, 16, 32\) .*expected \(2, 16, 64\)"):
        Pi3XBackbone(small_config(feature_dim=64), StandInPi3X(feature_dim=32))(context)
    with pytest.raises(ValueError, match="at least 2 context views"):
        backbone(dataset_context(views=1))


def test_missing_package_or_weights_fail_before_the_model_is_built(tmp_path, monkeypatch):
    import huggingface_hub.constants

    def build_model(self):
        raise AssertionError("the model was built before its package and weights were found")

    monkeypatch.setattr(Pi3XBackboneConfig, "build_model", build_model)
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: None if name == "pi3" else find_spec(name, *args))
    with pytest.raises(ValueError, match=r"needs the upstream Pi3 code: pip install git\+https://github.com/yyfz/Pi3"):
        build_backbone(BackboneSelection(name="pi3x"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object() if name == "pi3" else find_spec(name, *args))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(
        ValueError, match=r"Pi3X weights not found: no yyfz233/Pi3X/model.safetensors .*hf download yyfz233/Pi3X model.safetensors"
    ):
        build_backbone(BackboneSelection(name="pi3x"))


def test_released_weights_load_strictly_without_the_conditioning_branches(tmp_path, monkeypatch):
    from safetensors.torch import save_file

    source = StandInPi3X()
    state = dict(source.state_dict())
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object())
    monkeypatch.setattr(Pi3XBackboneConfig, "build_model", lambda self: StandInPi3X())
    save_file(
        {**state, "depth_encoder.blocks.0.weight": torch.zeros(2), "ray_embed.proj.bias": torch.zeros(2)},
        str(tmp_path / "model.safetensors"),
    )
    loaded = build_backbone(BackboneSelection(name="pi3x", checkpoint=tmp_path))
    assert torch.equal(loaded.pi3x.point_decoder.weight, source.point_decoder.weight)
    save_file({"point_decoder.weight": state["point_decoder.weight"]}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(
        ValueError, match=r"Pi3X weights .*partial.safetensors do not fit the model: 1 missing keys \['point_decoder.bias'\]"
    ):
        build_backbone(BackboneSelection(name="pi3x", checkpoint=tmp_path / "partial.safetensors"))


def test_build_backbone_still_builds_the_others(tmp_path):
    from foresplat_ns.backbones.compact import CompactBackbone

    assert isinstance(build_backbone(BackboneSelection()), CompactBackbone)  # the shipped checkpoint
    assert not build_backbone(BackboneSelection(name="pointcloud")).is_learned
    with pytest.raises(ValueError, match="'pointcloud' initialiser is not learned and takes no checkpoint"):
        build_backbone(BackboneSelection(name="pointcloud", checkpoint=tmp_path / "x.pt"))
    with pytest.raises(ValueError, match="'compact' backbone takes ForeSplat .pt checkpoints only"):
        build_backbone(BackboneSelection(checkpoint=tmp_path / "x.safetensors"))
    with pytest.raises(ValueError, match="unknown backbone 'nope'; known backbones: anysplat, compact, pi3x, pointcloud, random"):
        build_backbone(BackboneSelection(name="nope"))


def test_foresplat_meta_trains_our_head_on_pi3x(small_corpus, tmp_path, monkeypatch):
    """foresplat-meta on Pi3X (the stand-in, released weights from a folder): only our head trains by
    default, and --pipeline.model.trainable all reaches the trunk."""
    from conftest import meta_train_in_process
    from safetensors.torch import save_file

    torch.manual_seed(0)
    release = StandInPi3X()
    save_file(dict(release.state_dict()), str(tmp_path / "model.safetensors"))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *args: object())
    monkeypatch.setattr(Pi3XBackboneConfig, "build_model", lambda self: StandInPi3X())
    for trainable, trunk_trains in (("auto", False), ("all", True)):
        backbone = BackboneSelection(name="pi3x", pi3x=small_config(), checkpoint=tmp_path)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the stand-in's ring of cameras fits the scenes' loosely
            pipeline, metrics = meta_train_in_process(backbone, small_corpus, steps=2, trainable=trainable)
        assert metrics["skipped_scenes"] == 0.0
        trunk = pipeline.backbone.pi3x.point_decoder.weight
        assert torch.equal(trunk, release.point_decoder.weight) != trunk_trains, trainable
        assert all(p.requires_grad == trunk_trains for p in pipeline.backbone.trunk_parameters())
