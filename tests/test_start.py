"""Where refinement starts: splatfacto's own start, the union, the zero-step choice, and the benchmark's
`--init default` being exactly `ns-train foresplat`'s start."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import tyro
from conftest import register_fixed_backbone, without_point_file
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

from foresplat_ns.backbones import BackboneSelection, build_backbone, shipped_checkpoint
from foresplat_ns.backbones.base import save_checkpoint
from foresplat_ns.backbones.compact import CompactBackboneConfig
from foresplat_ns.backbones.pointcloud import PointCloudInitConfig
from foresplat_ns.bench.cli import COMMANDS, merge_repeated_flags
from foresplat_ns.bench.refine import RefineBenchConfig, build_initialiser, parse_inits
from foresplat_ns.cameras import scaled_intrinsics
from foresplat_ns.data import load_scene
from foresplat_ns.gaussians import Gaussians, union
from foresplat_ns.refine import RefineConfig
from foresplat_ns.start import StartConfig, initial_gaussians, probe_view_indices, splatfacto_start


@pytest.fixture(scope="module")
def scene(small_scene):
    train, _ = load_scene(small_scene, NerfstudioDataParserConfig(load_3D_points=True, eval_mode="filename"))
    return train


# A useless prediction: a few opaque black Gaussians far behind the scene.
FarAwayConfig = register_fixed_backbone(
    "test-far-away",
    Gaussians.from_activated(
        torch.full((1, 7, 3), 50.0), torch.full((1, 7, 3), 0.01), torch.tensor([[[1.0, 0, 0, 0]]]).expand(1, 7, 4),
        torch.full((1, 7), 0.9), torch.zeros(1, 7, 3), sh_degree=3,
    ),
)  # fmt: skip


# A harmful prediction: one opaque green Gaussian larger than the scene, hiding it from every camera.
BlindingConfig = register_fixed_backbone(
    "test-blinding",
    Gaussians.from_activated(
        torch.zeros(1, 1, 3), torch.full((1, 1, 3), 20.0), torch.tensor([[[1.0, 0, 0, 0]]]), torch.full((1, 1), 0.99),
        torch.tensor([[[0.0, 1.0, 0.0]]]), sh_degree=3,
    ),
)  # fmt: skip


def test_splatfacto_start_is_the_sfm_points_at_splatfacto_opacity(scene):
    g = splatfacto_start(scene, StartConfig())
    xyz, rgb = scene.points
    torch.testing.assert_close(g.means, xyz)
    torch.testing.assert_close(g.activated_opacities().flatten(), torch.full((xyz.shape[0],), 0.1))
    torch.testing.assert_close(g.rgb(), rgb.clamp(0, 1), atol=1e-5, rtol=0)


def test_without_sfm_points_splatfacto_starts_from_its_random_cube(scene):
    bare = type(scene)(scene.name, scene.images, scene.intrinsics, scene.camtoworlds, scene.filenames)
    g = splatfacto_start(bare, StartConfig(num_random=1000, random_scale=10.0))
    assert g.num_gaussians == 1000
    assert g.means.abs().max() <= 5.0 and g.means.abs().max() > 4.0


def test_union_holds_both_and_pads_sh_bands():
    a = Gaussians.from_activated(torch.rand(3, 3), torch.rand(3, 3), torch.rand(3, 4), torch.rand(3), torch.rand(3, 3), sh_degree=3)
    b = Gaussians.from_activated(torch.rand(2, 3), torch.rand(2, 3), torch.rand(2, 4), torch.rand(2), torch.rand(2, 3), sh_degree=1)
    both = union(a, b)
    assert both.num_gaussians == 5 and both.features_rest.shape == (5, 15, 3)
    torch.testing.assert_close(both.means, torch.cat([a.means, b.means]))
    assert (both.features_rest[3:, 3:] == 0).all()


def test_probe_views_avoid_the_context_views():
    assert probe_view_indices(10, [0, 3, 6, 9], 3) == [1, 4, 8]
    assert probe_view_indices(4, [0, 1, 2, 3], 2) == [0, 3]  # every view was context: fall back to all


def test_auto_keeps_the_candidate_with_the_lowest_zero_step_loss(scene):
    refine = RefineConfig()
    useless = FarAwayConfig().setup()
    chosen = initial_gaussians(scene, useless, StartConfig(start="auto", num_context_views=2), refine)
    assert set(chosen.probe_losses) == {"prediction", "splatfacto", "union"}
    assert chosen.name == min(chosen.probe_losses, key=chosen.probe_losses.get)
    assert chosen.name != "prediction"  # black blobs far away explain nothing
    good = build_backbone(BackboneSelection(name="pointcloud"))  # exact generated depth: the best zero-step render by far
    chosen = initial_gaussians(scene, good, StartConfig(start="auto", num_context_views=4), refine)
    assert chosen.name in ("prediction", "union")
    assert chosen.probe_losses[chosen.name] < chosen.probe_losses["splatfacto"]


def test_the_backbone_predicts_from_context_views_shrunk_to_context_max_side(scene):
    """context_max_side 24 on a 48 px capture: the depth backbone gets 24 px views (a quarter of the
    Gaussians) and, its intrinsics scaled with them, still places them on the scene: each lies as close to a
    full-size one as those lie to each other (with unscaled intrinsics: 4x farther)."""
    depth = build_backbone(BackboneSelection(name="pointcloud", pointcloud=PointCloudInitConfig(source="depth")))
    assert depth.preferred_context_side is None
    starts = {
        side: initial_gaussians(
            scene, depth, StartConfig(start="prediction", num_context_views=2, context_max_side=side), RefineConfig()
        ).gaussians
        for side in (None, 24)
    }
    assert starts[24].num_gaussians * 4 == starts[None].num_gaussians
    full = starts[None].means
    spacing = (torch.cdist(full, full) + torch.eye(len(full)) * 1e9).min(1).values.median()
    assert torch.cdist(starts[24].means, full).min(1).values.median() < 1.5 * spacing


def test_the_compact_backbone_sees_large_captures_at_its_preferred_size(scene):
    """The shipped compact backbone predicts a 288 px capture from 240 px context views by default (one
    Gaussian per 2x2 block of those), from the views as they are when context_max_side says so."""
    large = type(scene)(
        scene.name,
        torch.nn.functional.interpolate(scene.images.permute(0, 3, 1, 2), size=(288, 288), mode="bilinear").permute(0, 2, 3, 1),
        scaled_intrinsics(scene.intrinsics, (48, 48), (288, 288)),
        scene.camtoworlds,
        scene.filenames,
    )
    compact = build_backbone(BackboneSelection())
    assert compact.preferred_context_side == 240
    counts = {
        side: initial_gaussians(
            large, compact, StartConfig(start="prediction", context_max_side=side), RefineConfig()
        ).gaussians.num_gaussians
        for side in (None, 288)
    }
    assert counts == {None: 4 * 120 * 120, 288: 4 * 144 * 144}


def test_a_compact_checkpoint_sees_context_views_at_one_and_a_half_times_the_side_it_trained_at(tmp_path):
    """The side a checkpoint records (`image_side`, written by foresplat-meta and distill) sets the context
    size, in ns-train foresplat and in the benchmark's checkpoint inits alike; a checkpoint without one is
    taken to be trained at 160 px, as the shipped ones were."""
    config = CompactBackboneConfig(width=8, num_depth_planes=8)
    save_checkpoint(tmp_path / "trained-320.pt", config.setup(), extra={"image_side": 320})
    save_checkpoint(tmp_path / "unrecorded.pt", config.setup())
    names = ("trained-320.pt", "unrecorded.pt")
    in_ns_train = {
        name: build_backbone(BackboneSelection(name="compact", checkpoint=tmp_path / name, compact=config)).preferred_context_side
        for name in names
    }
    inits = parse_inits(tuple(f"{name}:{tmp_path / name}" for name in names))
    in_the_bench = {name: build_initialiser(inits[name], RefineBenchConfig()).preferred_context_side for name in names}
    assert in_ns_train == in_the_bench == {"trained-320.pt": 480, "unrecorded.pt": 240}


def test_each_start_is_what_it_says(scene):
    refine, backbone = RefineConfig(), FarAwayConfig().setup()
    sizes = {
        name: initial_gaussians(scene, backbone, StartConfig(start=name), refine).gaussians.num_gaussians
        for name in ("prediction", "splatfacto", "union")
    }
    assert sizes == {"prediction": 7, "splatfacto": scene.points[0].shape[0], "union": 7 + scene.points[0].shape[0]}
    with pytest.raises(ValueError, match="needs a backbone"):
        initial_gaussians(scene, None, StartConfig(start="union"), refine)


@pytest.mark.parametrize("with_points", [True, False])
def test_bench_default_is_ns_train_foresplats_start(small_scene, scene, with_points, tmp_path):
    """`--init default` builds with the shipped checkpoint for the capture (the one made for SfM points where
    the backbone sees them) and StartConfig(), as the pipeline does with no flags."""
    from test_nerfstudio import method_config

    folder = small_scene if with_points else without_point_file(small_scene, tmp_path / "capture")
    config = method_config("foresplat")
    config.pipeline.datamanager.data = folder
    config.pipeline.datamanager.dataparser = NerfstudioDataParserConfig(data=folder, eval_mode="filename")
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    init = parse_inits(("default",))["default"]
    assert init.start == StartConfig().start == config.pipeline.start.start
    capture = scene if with_points else type(scene)(scene.name, scene.images, scene.intrinsics, scene.camtoworlds, scene.filenames)
    sees = RefineBenchConfig().start.backbone_sees_points_of(capture)
    assert sees == with_points
    assert init.checkpoint_for(sees).name == ("compact-foresplat-sfm.pt" if with_points else "compact-foresplat.pt")
    bench = initial_gaussians(
        capture, build_initialiser(init, RefineBenchConfig(), sees), RefineBenchConfig().start, RefineConfig(), start=init.start
    )
    for name, value in bench.gaussians.items():
        torch.testing.assert_close(pipeline.model.gauss_params[name].detach(), value.float(), msg=name)


def test_the_shipped_checkpoint_for_sfm_points_is_taken_where_the_backbone_sees_them(tmp_path):
    """One rule for ns-train foresplat and the bench: the -sfm checkpoint where shipped and the points are
    seen, else the plain one; the bench's default init is redone when either file changes."""
    plain, with_sfm = shipped_checkpoint("compact"), shipped_checkpoint("compact", with_sfm_points=True)
    assert (plain.name, with_sfm.name) == ("compact-foresplat.pt", "compact-foresplat-sfm.pt")
    assert shipped_checkpoint("compact", "foresplat-generated", with_sfm_points=True).name == "compact-foresplat-generated.pt"
    assert build_backbone(BackboneSelection(), with_sfm_points=True).checkpoint_path == with_sfm
    assert build_backbone(BackboneSelection()).checkpoint_path == plain
    default = parse_inits(("default",))["default"]
    copy = tmp_path / "copy.pt"
    copy.write_bytes(with_sfm.read_bytes())
    assert dataclasses.replace(default, checkpoint_with_sfm_points=copy).identity() == default.identity()
    copy.write_bytes(plain.read_bytes())
    assert dataclasses.replace(default, checkpoint_with_sfm_points=copy).identity() != default.identity()


def test_repeated_init_flag_keeps_every_value(tmp_path):
    args = merge_repeated_flags(["refine", "--init", "splatfacto", "--max-steps", "3", "--init", "default", "x:shipped:union"])
    config = tyro.extras.subcommand_cli_from_dict({name: cls for name, (cls, _) in COMMANDS.items()}, args=args)
    assert config.init == ("splatfacto", "default", "x:shipped:union") and config.max_steps == 3
    inits = parse_inits(config.init)
    assert [(i.label, i.start) for i in inits.values()] == [("splatfacto", "splatfacto"), ("default", StartConfig().start), ("x", "union")]
    with pytest.raises(SystemExit):  # a single-valued flag given twice is refused, not silently overwritten
        tyro.extras.subcommand_cli_from_dict(
            {name: cls for name, (cls, _) in COMMANDS.items()},
            args=merge_repeated_flags(["refine", "--max-steps", "3", "--max-steps", "4"]),
        )


def test_sfm_else_prediction_follows_the_capture(scene):
    refine, backbone = RefineConfig(), FarAwayConfig().setup()
    config = StartConfig(start="sfm-else-prediction")
    assert initial_gaussians(scene, backbone, config, refine).name == "splatfacto"
    bare = type(scene)(scene.name, scene.images, scene.intrinsics, scene.camtoworlds, scene.filenames)
    assert initial_gaussians(bare, backbone, config, refine).name == "prediction"


def test_sfm_else_best_never_starts_from_a_prediction_that_renders_worse_than_splatfactos_start(scene):
    """sfm-else-best: the SfM points where there are some; else the prediction only where its zero-step loss
    beats splatfacto's random start (a prediction hiding the scene loses, exact depth wins)."""
    refine, config = RefineConfig(), StartConfig(start="sfm-else-best", num_context_views=2, num_random=2000)
    useless, good = (
        BlindingConfig().setup(),
        build_backbone(BackboneSelection(name="pointcloud", pointcloud=PointCloudInitConfig(source="depth"))),
    )
    assert initial_gaussians(scene, useless, config, refine).name == "splatfacto"
    bare = type(scene)(scene.name, scene.images, scene.intrinsics, scene.camtoworlds, scene.filenames, depths=scene.depths)
    for backbone, expected in ((useless, "splatfacto"), (good, "prediction")):
        chosen = initial_gaussians(bare, backbone, config, refine)
        assert set(chosen.probe_losses) == {"prediction", "splatfacto"} and chosen.name == expected
        assert chosen.gaussians.num_gaussians == (
            2000 if expected == "splatfacto" else good(bare.context(bare.context_indices(2)))[0].num_gaussians
        )


def test_the_default_takes_the_union_only_where_the_capture_has_sfm_points(scene):
    """sfm-union-else-best (the default): prediction and SfM points together where there are SfM points, else
    'best', which never takes a prediction that renders worse than splatfacto's random start."""
    refine, config = RefineConfig(), StartConfig(num_context_views=2, num_random=2000)
    assert config.start == "sfm-union-else-best"
    backbone = FarAwayConfig().setup()
    chosen = initial_gaussians(scene, backbone, config, refine)
    assert chosen.name == "union" and chosen.gaussians.num_gaussians == 7 + scene.points[0].shape[0]
    bare = type(scene)(scene.name, scene.images, scene.intrinsics, scene.camtoworlds, scene.filenames)
    chosen = initial_gaussians(bare, BlindingConfig().setup(), config, refine)  # no SfM points: 'best'
    assert chosen.name == "splatfacto" and set(chosen.probe_losses) == {"prediction", "splatfacto"}
