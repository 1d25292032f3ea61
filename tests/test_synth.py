"""foresplat-synth: determinism, nerfstudio compatibility, geometry, camera sets, anti-aliasing, corpus and CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from foresplat_ns.synth.cameras import (
    LOOK_AT,
    CameraSet,
    look_at,
    orbit_poses,
    pinhole_intrinsics,
    sample_cameras,
)
from foresplat_ns.synth.cli import entrypoint
from foresplat_ns.synth.config import ConfigError, SceneConfig
from foresplat_ns.synth.generate import generate_corpus, generate_scene, scene_seed
from foresplat_ns.synth.layout import SCENE_RADIUS, sample_scene
from foresplat_ns.synth.primitives import Quad, Scene, Sphere
from foresplat_ns.synth.raycast import render_view, render_views, trace
from foresplat_ns.synth.textures import COLOUR_PHOTOS, GREY_PHOTOS, PATTERNS, Texture, pattern_texture, photo_texture
from foresplat_ns.synth.writer import OutputNotEmptyError

TINY = dict(resolution=32, num_views=4, num_eval_views=1)


def _files(root: Path) -> dict:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _camera_set(poses: np.ndarray, width: int, height: int, fov_deg: float = 50.0) -> CameraSet:
    return CameraSet(torch.from_numpy(poses), width, height, *pinhole_intrinsics(width, height, fov_deg))


def _flat_scene(*primitives, background=(0.0, 0.0, 0.0)) -> Scene:
    """Unshaded scene (ambient 1): every hit shows its texture colour exactly, every miss the background."""
    return Scene(primitives=tuple(primitives), ambient=1.0, sky_horizon=background, sky_zenith=background)


def _unproject(depth: torch.Tensor, camtoworld: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """World points [H, W, 3] of a z-depth map, OpenGL camera axes, pixel centres at +0.5."""
    height, width = depth.shape
    rows, cols = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    depth = depth.double()
    x = (cols - intrinsics[0, 2]) / intrinsics[0, 0] * depth
    y = -(rows - intrinsics[1, 2]) / intrinsics[1, 1] * depth
    camera_points = torch.stack([x, y, -depth, torch.ones_like(depth)], dim=-1)
    return (camera_points @ camtoworld.T)[..., :3]


def _project(points: torch.Tensor, camtoworld: torch.Tensor, intrinsics: torch.Tensor):
    """(column, row, z-depth) of world points [N, 3] seen from an OpenGL camera."""
    worldtocam = torch.linalg.inv(camtoworld)
    camera_points = points @ worldtocam[:3, :3].T + worldtocam[:3, 3]
    depth = -camera_points[:, 2]
    cols = intrinsics[0, 0] * camera_points[:, 0] / depth + intrinsics[0, 2]
    rows = -intrinsics[1, 1] * camera_points[:, 1] / depth + intrinsics[1, 2]
    return cols, rows, depth


def test_same_seed_gives_identical_files_and_another_seed_a_different_scene(tmp_path):
    config = SceneConfig(seed=3, **TINY)
    first = generate_scene(config, tmp_path / "a")
    generate_scene(config, tmp_path / "b")
    generate_scene(SceneConfig(seed=4, **TINY), tmp_path / "c")
    files_a, files_b, files_c = _files(tmp_path / "a"), _files(tmp_path / "b"), _files(tmp_path / "c")
    # images, depths, transforms.json, scene.json; colmap/sparse/0/*.txt, sparse_pc.ply, 3 split lists
    assert len(files_a) == 2 * 4 + 2 + 3 + 1 + 3
    assert files_a == files_b
    assert files_a.keys() == files_c.keys()
    assert files_a["scene.json"] != files_c["scene.json"]
    assert files_a["images/frame_00000.png"] != files_c["images/frame_00000.png"]
    assert first == {"seed": 3, "num_views": 4, "num_train_views": 3, "num_eval_views": 1}
    assert json.loads(files_a["scene.json"])["seed"] == 3

    # Without the COLMAP export the nerfstudio-format files are the same, and transforms.json lacks only the
    # two keys that keep nerfstudio's own dataparser from mistaking the scene for ns-process-data output.
    generate_scene(dataclasses.replace(config, colmap=False), tmp_path / "d")
    files_d = _files(tmp_path / "d")
    assert sorted(files_d) == sorted(k for k in files_a if k.startswith(("images/", "depth/"))) + [
        "scene.json",
        "transforms.json",
    ]
    assert all(files_d[k] == files_a[k] for k in files_d if k.startswith(("images/", "depth/")))
    with_colmap, without = json.loads(files_a["transforms.json"]), json.loads(files_d["transforms.json"])
    assert with_colmap.pop("ply_file_path") == "sparse_pc.ply"
    assert with_colmap.pop("applied_transform") == np.eye(4)[:3].tolist()
    assert with_colmap == without


def test_written_images_and_depths_match_the_in_memory_render(tmp_path):
    config = SceneConfig(seed=5, **TINY)
    generate_scene(config, tmp_path)
    scene, cameras = sample_scene(config)
    views = render_views(scene, cameras, config.supersample)
    assert views.images.shape == (4, 32, 32, 3) and views.depths.shape == (4, 32, 32)
    for index in range(4):
        rgb = np.asarray(Image.open(tmp_path / f"images/frame_{index:05d}.png"))
        depth_mm = np.asarray(Image.open(tmp_path / f"depth/frame_{index:05d}.png"))
        assert rgb.dtype == np.uint8 and rgb.shape == (32, 32, 3)
        assert depth_mm.dtype == np.uint16
        np.testing.assert_array_equal(rgb, (views.images[index].numpy() * 255).round().astype(np.uint8))
        np.testing.assert_allclose(depth_mm / 1000.0, views.depths[index].numpy(), atol=5e-4)


def test_nerfstudio_dataparser_reads_the_scene(tmp_path):
    from nerfstudio.cameras.cameras import CameraType
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
    from nerfstudio.data.utils.data_utils import get_depth_image_from_path

    config = SceneConfig(seed=7, resolution=48, width=64, num_views=8, num_eval_views=2, fov_deg=60.0)
    generate_scene(config, tmp_path)
    fx, fy, cx, cy = pinhole_intrinsics(64, 48, 60.0)
    for eval_mode in ("fraction", "filename"):
        parser = NerfstudioDataParserConfig(data=tmp_path, eval_mode=eval_mode).setup()
        counts = {}
        for split in ("train", "val", "test"):
            outputs = parser.get_dataparser_outputs(split)
            cameras = outputs.cameras
            counts[split] = len(outputs.image_filenames)
            assert len(outputs.metadata["depth_filenames"]) == counts[split]
            assert int(cameras.width[0]) == 64 and int(cameras.height[0]) == 48
            assert float(cameras.fx[0]) == pytest.approx(fx) and float(cameras.fy[0]) == pytest.approx(fy)
            assert float(cameras.cx[0]) == pytest.approx(cx) and float(cameras.cy[0]) == pytest.approx(cy)
            assert cameras.camera_type[0].item() == CameraType.PERSPECTIVE.value
            assert torch.all(cameras.distortion_params == 0)
        assert counts == {"train": 6, "val": 2, "test": 2}
        val_names = [p.name for p in parser.get_dataparser_outputs("val").image_filenames]
        assert val_names == ["frame_00002.png", "frame_00006.png"]

    # nerfstudio's own depth loader, with its default unit scale, gives our depths in metres.
    scene, cameras = sample_scene(config)
    _, depth = render_view(scene, cameras, 2, config.supersample)
    loaded = get_depth_image_from_path(tmp_path / "depth/frame_00002.png", 48, 64, scale_factor=1e-3)[..., 0]
    assert torch.allclose(loaded, depth, atol=5e-4)
    assert (loaded > 0).float().mean() > 0.5


def test_transforms_json_holds_the_raw_camera_geometry(tmp_path):
    config = SceneConfig(seed=2, num_views=6, num_eval_views=2, resolution=32, camera_distance=5.0)
    generate_scene(config, tmp_path)
    meta = json.loads((tmp_path / "transforms.json").read_text())
    _, cameras = sample_scene(config)
    assert meta["camera_model"] == "OPENCV" and (meta["w"], meta["h"]) == (32, 32)
    assert [f["file_path"] for f in meta["frames"]] == [f"images/frame_{i:05d}.png" for i in range(6)]
    assert [f["depth_file_path"] for f in meta["frames"]] == [f"depth/frame_{i:05d}.png" for i in range(6)]
    assert set(meta["train_filenames"]).isdisjoint(meta["val_filenames"])
    assert len(meta["train_filenames"]) + len(meta["val_filenames"]) == 6
    for frame, pose in zip(meta["frames"], cameras.camtoworlds):
        matrix = np.array(frame["transform_matrix"])
        np.testing.assert_allclose(matrix, pose.numpy())
        assert np.linalg.norm(matrix[:3, 3] - LOOK_AT) == pytest.approx(5.0)
        forward = -matrix[:3, 2]
        to_target = (LOOK_AT - matrix[:3, 3]) / 5.0
        assert forward @ to_target == pytest.approx(1.0)
        np.testing.assert_array_equal(matrix[3], [0, 0, 0, 1])


def test_plane_facing_the_camera_has_constant_z_depth_not_ray_length():
    wall = Quad((0.0, 0.0, -3.0), (1.0, 0.0, 0.0), (0.0, -1.0, 0.0), (20.0, 20.0), Texture.solid((0.5, 0.5, 0.5)))
    cameras = _camera_set(look_at((0, 0, 0), (0, 0, -1))[None], 40, 30, fov_deg=90.0)
    image, depth = render_view(_flat_scene(wall), cameras, 0, supersample=2)
    assert torch.allclose(depth, torch.full_like(depth, 3.0), atol=1e-4)
    assert torch.allclose(image, torch.full_like(image, 0.5), atol=1e-6)


def test_sphere_at_the_origin_appears_at_the_image_centre_of_orbit_cameras():
    sphere = Sphere((0.0, 0.0, 0.0), 0.5, Texture.solid((1.0, 1.0, 1.0)))
    cameras = _camera_set(orbit_poses(6, 4.0, 20.0, target=(0.0, 0.0, 0.0), start_azimuth_deg=10.0), 48, 48)
    for index in range(6):
        _, depth = render_view(_flat_scene(sphere), cameras, index, supersample=1)
        rows, cols = torch.nonzero(depth > 0, as_tuple=True)
        assert len(rows) > 20
        assert (cols.float() + 0.5).mean().item() == pytest.approx(24.0, abs=0.25)
        assert (rows.float() + 0.5).mean().item() == pytest.approx(24.0, abs=0.25)
        assert depth[23:25, 23:25].min().item() == pytest.approx(3.5, abs=0.02)


def test_camera_axes_are_x_right_y_up_looking_down_minus_z():
    right = Sphere((1.0, 0.0, 0.0), 0.3, Texture.solid((1.0, 0.0, 0.0)))
    up = Sphere((0.0, 1.0, 0.0), 0.3, Texture.solid((0.0, 1.0, 0.0)))
    cameras = _camera_set(look_at((0, 0, 5), (0, 0, 0))[None], 64, 64)
    np.testing.assert_allclose(cameras.camtoworlds[0, :3, :3].numpy(), np.eye(3), atol=1e-12)
    image, _ = render_view(_flat_scene(right, up), cameras, 0, supersample=1)
    red_rows, red_cols = torch.nonzero(image[..., 0] > 0.5, as_tuple=True)
    green_rows, green_cols = torch.nonzero(image[..., 1] > 0.5, as_tuple=True)
    assert red_cols.float().mean() > 40 and abs(red_rows.float().mean() - 31.5) < 1
    assert green_rows.float().mean() < 24 and abs(green_cols.float().mean() - 31.5) < 1


def test_depth_reprojected_into_a_neighbouring_view_lands_on_the_same_surface():
    config = SceneConfig(seed=11, resolution=64, num_views=12, num_eval_views=2)
    scene, cameras = sample_scene(config)
    views = render_views(scene, cameras, config.supersample)
    intrinsics = cameras.intrinsics
    for source, target in [(0, 1), (3, 4)]:
        valid = views.depths[source] > 0
        points = _unproject(views.depths[source], cameras.camtoworlds[source], intrinsics)[valid]
        cols, rows, depth = _project(points, cameras.camtoworlds[target], intrinsics)
        inside = (cols >= 0) & (cols < 64) & (rows >= 0) & (rows < 64) & (depth > 0)
        assert inside.float().mean() > 0.5
        cols, rows, depth = cols[inside].long(), rows[inside].long(), depth[inside]
        target_depth = views.depths[target][rows, cols].double()
        agrees = (target_depth - depth).abs() < 0.02 * depth
        assert agrees.float().mean() > 0.7  # the rest: occlusions, silhouettes, grazing ground
        source_colours = views.images[source][valid][inside][agrees]
        target_colours = views.images[target][rows, cols][agrees]
        colour_error = (source_colours - target_colours).abs().mean(-1)
        shuffled = target_colours[torch.randperm(len(target_colours), generator=torch.Generator().manual_seed(0))]
        assert colour_error.median() < 0.02
        assert colour_error.mean() < 0.3 * (source_colours - shuffled).abs().mean()


@pytest.mark.parametrize("kind", ["orbit", "hemisphere", "forward-facing"])
def test_camera_sets_give_valid_poses_looking_at_the_scene(kind):
    config = SceneConfig(cameras=kind, num_views=24)
    cameras = sample_cameras(np.random.default_rng(0), config)
    poses = cameras.camtoworlds.numpy()
    assert poses.shape == (24, 4, 4)
    rotations, positions = poses[:, :3, :3], poses[:, :3, 3]
    identities = np.broadcast_to(np.eye(3), (24, 3, 3))
    np.testing.assert_allclose(rotations @ rotations.transpose(0, 2, 1), identities, atol=1e-9)
    np.testing.assert_allclose(np.linalg.det(rotations), 1.0, atol=1e-9)
    to_target = np.asarray(LOOK_AT) - positions
    to_target /= np.linalg.norm(to_target, axis=-1, keepdims=True)
    alignment = np.einsum("ni,ni->n", -rotations[:, :, 2], to_target)
    assert alignment.min() > (0.999 if kind != "forward-facing" else 0.97)
    assert np.all(rotations[:, 1, 0] == pytest.approx(0.0, abs=1e-9))  # no roll: the x axis stays horizontal
    assert positions[:, 1].min() > 0.2  # above the ground
    assert np.linalg.norm(positions[:, None] - positions[None], axis=-1)[~np.eye(24, dtype=bool)].min() > 0.05
    assert np.linalg.norm(positions - LOOK_AT, axis=-1).min() >= config.camera_distance - 1e-9
    beside_objects = np.linalg.norm(positions[:, [0, 2]], axis=-1) > SCENE_RADIUS + 0.5
    assert np.all(beside_objects | (positions[:, 1] > 3.0))  # never inside the object region
    if kind == "hemisphere":
        elevation = np.degrees(np.arcsin(to_target[:, 1] * -1))
        assert elevation.min() >= 10.0 - 1e-6 and elevation.max() <= 70.0 + 1e-6 and np.ptp(elevation) > 40.0
    if kind == "forward-facing":
        np.testing.assert_allclose(rotations, np.broadcast_to(rotations[0], rotations.shape), atol=1e-12)


def test_supersampling_gives_intermediate_values_on_edges():
    sphere = Sphere((0.0, 0.0, 0.0), 1.0, Texture.solid((1.0, 1.0, 1.0)))
    cameras = _camera_set(look_at((0, 0, 4), (0, 0, 0))[None], 32, 32)
    aliased, _ = render_view(_flat_scene(sphere), cameras, 0, supersample=1)
    smooth, depth = render_view(_flat_scene(sphere), cameras, 0, supersample=3)
    partial = ((smooth > 0.01) & (smooth < 0.99)).all(-1)
    assert not ((aliased > 0) & (aliased < 1)).any()
    assert partial.sum() > 20
    assert torch.all((depth[partial] == 0) | (depth[partial] > 2.9))  # the centre ray's surface, not a blend
    assert smooth.mean().item() == pytest.approx(aliased.mean().item(), rel=0.1)


def test_textures_load_offline_and_tile_as_declared():
    rng = np.random.default_rng(0)
    textures = [photo_texture(rng, name) for name in COLOUR_PHOTOS + GREY_PHOTOS]
    textures += [pattern_texture(rng, name) for name in PATTERNS]
    for texture in textures:
        assert texture.image.shape == (256, 256, 3)
        assert 0.0 <= texture.image.min() and texture.image.max() <= 1.0
        assert texture.image.std() > 0.02, texture.description
    uv = torch.rand(100, 2, generator=torch.Generator().manual_seed(0)) * 0.8 + 0.1
    checker = pattern_texture(np.random.default_rng(1), "checker")
    assert not checker.mirrored
    assert torch.allclose(checker.sample(uv), checker.sample(uv + torch.tensor([3.0, -2.0])), atol=1e-5)
    photo = textures[0]
    assert photo.mirrored
    mirrored_uv = torch.stack([2.0 - uv[:, 0], uv[:, 1]], dim=-1)
    assert torch.allclose(photo.sample(uv), photo.sample(mirrored_uv), atol=1e-5)
    assert not torch.allclose(photo.sample(uv), photo.sample(uv + torch.tensor([0.37, 0.0])), atol=1e-2)


def test_sampled_scenes_hold_ground_walls_and_non_overlapping_objects_in_the_region():
    kinds_seen = set()
    for seed in range(6):
        config = SceneConfig(seed=seed, num_objects=(5, 8), cameras="orbit" if seed % 2 else "forward-facing")
        scene, cameras = sample_scene(config)
        ground, *rest = scene.primitives
        assert isinstance(ground, Quad) and ground.center[1] == 0.0
        walls = [p for p in rest if isinstance(p, Quad)]
        objects = [p for p in rest if not isinstance(p, Quad)]
        assert 1 <= len(walls) <= 2 and 5 <= len(objects) <= 8
        positions = cameras.camtoworlds[:, :3, 3].numpy()
        for wall in walls:
            normal = np.cross(wall.u_axis, wall.v_axis)
            sides = np.sign((positions - np.asarray(wall.center)) @ normal)
            assert np.all(sides == sides[0])  # every camera sees the same face
        bounds = []
        for obj in objects:
            center = np.asarray(obj.center)
            bound = obj.radius if isinstance(obj, Sphere) else float(np.linalg.norm(obj.half_size))
            assert np.linalg.norm(center[[0, 2]]) + bound <= SCENE_RADIUS + 1e-3
            assert center[1] - (bound if isinstance(obj, Sphere) else 0.0) >= -1e-3
            bounds.append((center, bound))
            kinds_seen.add("sphere" if isinstance(obj, Sphere) else ("rotated box" if any(obj.rotation_deg) else "box"))
        for i, (ci, bi) in enumerate(bounds):
            for cj, bj in bounds[i + 1 :]:
                assert np.linalg.norm(ci - cj) >= bi + bj
        described = json.loads(json.dumps(scene.describe()))
        assert len(described["primitives"]) == len(scene.primitives)
    assert kinds_seen == {"sphere", "box", "rotated box"}


def test_corpus_writes_every_scene_and_an_index_last(tmp_path):
    entries = generate_corpus(SceneConfig(seed=9, **TINY), tmp_path, num_scenes=3)
    index = json.loads((tmp_path / "index.json").read_text())
    assert index["root_seed"] == 9 and index["scenes"] == entries
    assert [e["name"] for e in entries] == ["scene_00000", "scene_00001", "scene_00002"]
    assert [e["seed"] for e in entries] == [scene_seed(9, i) for i in range(3)]
    assert len({e["seed"] for e in entries}) == 3
    for entry in entries:
        folder = tmp_path / entry["path"]
        meta = json.loads((folder / "transforms.json").read_text())
        assert len(meta["frames"]) == entry["num_views"] == 4
        assert len(meta["train_filenames"]) == entry["num_train_views"] == 3
        provenance = json.loads((folder / "scene.json").read_text())
        assert provenance["seed"] == entry["seed"] and provenance["origin"]["index"] == int(entry["name"][-5:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.json", "scene_00000", "scene_00001", "scene_00002"]
    scene_0 = _files(tmp_path / "scene_00000")
    alone = tmp_path.parent / "alone"
    generate_scene(SceneConfig(seed=scene_seed(9, 0), **TINY), alone, origin={"root_seed": 9, "index": 0})
    assert _files(alone) == scene_0


def test_non_empty_output_is_refused_unless_overwrite(tmp_path, capsys):
    generate_corpus(SceneConfig(seed=1, **TINY), tmp_path, num_scenes=3)
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(OutputNotEmptyError, match="--overwrite"):
        generate_scene(SceneConfig(**TINY), tmp_path)
    small = ["--resolution", "16", "--num-views", "2", "--num-eval-views", "1"]
    with pytest.raises(SystemExit) as exit_info:
        entrypoint(["--output", str(tmp_path), *small])
    assert exit_info.value.code == 2
    assert "not empty" in capsys.readouterr().err
    entrypoint(["--output", str(tmp_path), "--overwrite", *small])
    names = sorted(p.name for p in tmp_path.iterdir())
    scene_files = ["colmap", "depth", "images", "notes.txt", "scene.json", "sparse_pc.ply", "test_list.txt"]
    assert names == [*scene_files, "train_list.txt", "transforms.json", "val_list.txt"]  # the old corpus is gone
    assert (tmp_path / "notes.txt").read_text() == "keep me"
    entrypoint(["--output", str(tmp_path), "--overwrite", "--no-colmap", *small])
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["depth", "images", "notes.txt", "scene.json", "transforms.json"]  # no stale COLMAP model
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_cli_writes_a_corpus_end_to_end(tmp_path, capsys):
    out = tmp_path / "corpus"
    entrypoint(
        ["--output", str(out), "--num-scenes", "2", "--seed", "4", "--resolution", "24", "--width", "32",
         "--num-views", "5", "--num-eval-views", "2", "--cameras", "hemisphere", "--no-depth", "--supersample", "1",
         "--num-objects", "2", "3", "--colmap-points", "300"]
    )  # fmt: skip
    index = json.loads((out / "index.json").read_text())
    assert [s["name"] for s in index["scenes"]] == ["scene_00000", "scene_00001"]
    assert index["config"]["cameras"] == "hemisphere" and index["config"]["num_objects"] == [2, 3]
    meta = json.loads((out / "scene_00001" / "transforms.json").read_text())
    assert (meta["w"], meta["h"]) == (32, 24) and len(meta["val_filenames"]) == 2
    assert all("depth_file_path" not in frame for frame in meta["frames"])
    assert not (out / "scene_00001" / "depth").exists()
    points = (out / "scene_00001" / "colmap/sparse/0/points3D.txt").read_text().splitlines()
    assert len([line for line in points if not line.startswith("#")]) == 300  # sampled from depth not written
    assert Image.open(out / "scene_00001" / "images" / "frame_00004.png").size == (32, 24)
    assert "wrote 2 scenes" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        entrypoint(["--output", str(tmp_path / "bad"), "--num-views", "3", "--num-eval-views", "3"])
    assert exit_info.value.code == 2 and "--num-eval-views" in capsys.readouterr().err


@pytest.mark.slow
def test_console_script_writes_a_scene(tmp_path):
    script = Path(sys.executable).with_name("foresplat-synth")
    command = [str(script), "--output", str(tmp_path), "--resolution", "16", "--num-views", "2", "--num-eval-views=1"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / "transforms.json").read_text())
    assert len(meta["frames"]) == 2 and meta["val_filenames"] == ["images/frame_00001.png"]


def test_config_rejects_values_the_generator_cannot_honour():
    for bad in (
        dict(num_views=1),
        dict(num_views=4, num_eval_views=0),
        dict(num_objects=(3, 2)),
        dict(supersample=0),
        dict(resolution=4),
        dict(camera_distance=1.0),
        dict(seed=-1),
        dict(colmap_points=0),
    ):
        with pytest.raises(ConfigError):
            SceneConfig(**bad)
    assert SceneConfig(resolution=48, width=64).image_size == (48, 64)
    assert math.isclose(pinhole_intrinsics(64, 48, 90.0)[0], 32.0)


# -- COLMAP export -------------------------------------------------------------------------------
COLMAP_CONFIG = SceneConfig(seed=7, resolution=48, width=64, num_views=8, num_eval_views=2, fov_deg=60.0)
COLMAP_TO_NERFSTUDIO = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])
"""Generator world (y up) -> the colmap dataparser's default world (z up): +90 degrees about x."""
NO_NORMALISATION = dict(orientation_method="none", center_method="none", auto_scale_poses=False)


@pytest.fixture(scope="module")
def colmap_scene(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colmap") / "scene"
    generate_scene(COLMAP_CONFIG, root)
    return root


def _data_lines(path: Path) -> list:
    return [line for line in path.read_text().splitlines() if not line.startswith("#")]


def _poses(outputs) -> torch.Tensor:
    return outputs.cameras.camera_to_worlds.double()


def test_colmap_model_loads_with_nerfstudios_colmap_dataparser(colmap_scene):
    from nerfstudio.cameras.cameras import CameraType
    from nerfstudio.data.dataparsers.colmap_dataparser import ColmapDataParserConfig

    sparse = colmap_scene / "colmap/sparse/0"
    fx, fy, cx, cy = pinhole_intrinsics(64, 48, 60.0)
    assert _data_lines(sparse / "cameras.txt") == [f"1 PINHOLE 64 48 {fx!r} {fy!r} {cx!r} {cy!r}"]
    image_lines = _data_lines(sparse / "images.txt")
    assert len(image_lines) == 2 * 8
    assert [line.split()[8:] for line in image_lines[::2]] == [["1", f"frame_{i:05d}.png"] for i in range(8)]
    assert image_lines[2 * 2 + 1] == image_lines[2 * 6 + 1] == ""  # held-out views observe no points
    num_points = len(_data_lines(sparse / "points3D.txt"))
    assert num_points == COLMAP_CONFIG.colmap_points == 4000

    meta = json.loads((colmap_scene / "transforms.json").read_text())
    parser = ColmapDataParserConfig(data=colmap_scene).setup()  # every option at its default
    for split, key in (("train", "train_filenames"), ("val", "val_filenames"), ("test", "test_filenames")):
        outputs = parser.get_dataparser_outputs(split)
        assert [f"images/{p.name}" for p in outputs.image_filenames] == meta[key]  # the same split
        cameras = outputs.cameras
        assert torch.all(cameras.width == 64) and torch.all(cameras.height == 48)
        assert torch.allclose(cameras.fx, torch.tensor(fx)) and torch.allclose(cameras.fy, torch.tensor(fy))
        assert torch.all(cameras.cx == cx) and torch.all(cameras.cy == cy)
        assert torch.all(cameras.camera_type == CameraType.PERSPECTIVE.value)
        assert torch.all(cameras.distortion_params == 0)
        assert outputs.metadata["depth_filenames"] is None
        assert outputs.metadata["points3D_xyz"].shape == (num_points, 3)
        assert outputs.metadata["points3D_rgb"].shape == (num_points, 3)

    # The depth maps are found where they are, and the one-observation tracks load as 2D matches.
    outputs = ColmapDataParserConfig(data=colmap_scene, depths_path=Path("depth"), max_2D_matches_per_3D_point=-1)
    outputs = outputs.setup().get_dataparser_outputs("train")
    depth_files = outputs.metadata["depth_filenames"]
    assert [p.name for p in depth_files] == [p.name for p in outputs.image_filenames]
    assert all(p.is_file() and p.parent.name == "depth" for p in depth_files)
    assert outputs.metadata["points3D_image_ids"].shape == (num_points, 1)
    assert set(outputs.metadata["points3D_image_ids"][:, 0].tolist()) == {1, 2, 4, 5, 6, 8}  # the train views
    xy = outputs.metadata["points3D_points2D_xy"]
    assert xy.shape == (num_points, 1, 2) and torch.all((xy % 1) == 0.5)  # pixel centres


def test_colmap_cameras_and_points_match_transforms_json(colmap_scene):
    from nerfstudio.data.dataparsers.colmap_dataparser import ColmapDataParserConfig
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    _, cameras = sample_scene(COLMAP_CONFIG)
    train = [0, 1, 3, 4, 5, 7]
    # Unnormalised: nerfstudio's parser gives the generator's poses, the colmap one the same turned z-up.
    # load_3D_points=True also checks that the COLMAP folder does not send nerfstudio's parser to its prompt.
    ours = NerfstudioDataParserConfig(data=colmap_scene, load_3D_points=True, **NO_NORMALISATION)
    ours = ours.setup().get_dataparser_outputs("train")
    colmap = ColmapDataParserConfig(data=colmap_scene, **NO_NORMALISATION).setup().get_dataparser_outputs("train")
    expected = cameras.camtoworlds[train, :3]
    assert torch.allclose(_poses(ours), expected, atol=1e-6)
    turn = torch.from_numpy(COLMAP_TO_NERFSTUDIO)
    centres, directions = _poses(colmap)[:, :, 3], -_poses(colmap)[:, :, 2]
    assert torch.allclose(centres, expected[:, :, 3] @ turn.T, atol=1e-5)
    assert torch.allclose(directions, -expected[:, :, 2] @ turn.T, atol=1e-6)
    assert torch.allclose(_poses(colmap)[:, :, :3], turn @ expected[:, :, :3], atol=1e-6)
    bottom = torch.tensor([[[0.0, 0.0, 0.0, 1.0]]], dtype=torch.float64).expand(len(train), 1, 4)
    square = [torch.cat([poses, bottom], 1) for poses in (_poses(colmap), expected)]
    relative = [torch.linalg.inv(poses[:1]) @ poses for poses in square]  # poses relative to the first camera
    assert torch.allclose(relative[0], relative[1], atol=1e-5)  # whatever the world frame
    our_points, colmap_points = ours.metadata["points3D_xyz"].double(), colmap.metadata["points3D_xyz"].double()
    assert our_points.shape == colmap_points.shape == (4000, 3)
    assert torch.allclose(colmap_points, our_points @ turn.T, atol=1e-5)
    assert torch.equal(ours.metadata["points3D_rgb"], colmap.metadata["points3D_rgb"])

    # With their default normalisation (orient up, centre, scale) both parsers agree outright on orbit scenes.
    ours = NerfstudioDataParserConfig(data=colmap_scene, load_3D_points=True).setup().get_dataparser_outputs("train")
    colmap = ColmapDataParserConfig(data=colmap_scene).setup().get_dataparser_outputs("train")
    assert ours.dataparser_scale == pytest.approx(colmap.dataparser_scale)
    assert torch.allclose(_poses(ours), _poses(colmap), atol=1e-5)
    assert torch.allclose(ours.metadata["points3D_xyz"], colmap.metadata["points3D_xyz"], atol=1e-5)


def test_colmap_points_lie_on_the_rendered_surfaces(colmap_scene):
    from nerfstudio.data.utils.colmap_parsing_utils import read_images_text, read_points3D_text

    scene, cameras = sample_scene(COLMAP_CONFIG)
    intrinsics = cameras.intrinsics
    points = read_points3D_text(colmap_scene / "colmap/sparse/0/points3D.txt")
    images = read_images_text(colmap_scene / "colmap/sparse/0/images.txt")
    ids = sorted(points)
    assert ids == list(range(1, 4001))
    xyz = torch.tensor(np.array([points[i].xyz for i in ids])) * torch.tensor([1.0, -1.0, -1.0])  # y-up world
    rgb = np.array([points[i].rgb for i in ids])
    source = np.array([points[i].image_ids[0] - 1 for i in ids])
    assert np.bincount(source, minlength=8).tolist() == [667, 667, 0, 667, 667, 666, 0, 666]  # train views only
    depths = [np.asarray(Image.open(colmap_scene / f"depth/frame_{i:05d}.png")) / 1000.0 for i in range(8)]
    depths = [torch.from_numpy(depth) for depth in depths]
    for view in (0, 5):
        # Each point is seen by its source view at the pixel its track names, at the depth and colour written there.
        members = np.flatnonzero(source == view)
        track = [images[view + 1].xys[points[ids[m]].point2D_idxs[0]] for m in members]
        pixels = torch.tensor(np.array(track))
        cols, rows, depth = _project(xyz[members], cameras.camtoworlds[view], intrinsics)
        assert torch.allclose(torch.stack([cols, rows], -1), pixels, atol=1e-3)
        rows_i, cols_i = (pixels[:, 1] - 0.5).long(), (pixels[:, 0] - 0.5).long()
        assert torch.allclose(depth, depths[view][rows_i, cols_i], atol=1e-3)
        image = np.asarray(Image.open(colmap_scene / f"images/frame_{view:05d}.png"))
        np.testing.assert_array_equal(rgb[members], image[rows_i.numpy(), cols_i.numpy()])
    # From the held-out views (never a source), traced against the scene's analytic shapes, every point is
    # either on the first surface its ray hits or hidden behind one: none floats in free space, except the odd
    # point on a sphere's silhouette that a ray from elsewhere grazes and misses by the file's 1e-6 m rounding.
    # The visible ones sit at about the depth the held-out depth map holds at their pixel.
    for view in (2, 6):
        eye = cameras.camtoworlds[view, :3, 3]
        distance = (xyz - eye).norm(dim=-1)
        hit, _ = trace(scene.primitives, eye[None].float(), ((xyz - eye) / distance[:, None]).float())
        relative = (hit.double() - distance) / distance
        visible = relative.abs() < 1e-3
        assert visible.float().mean() > 0.6
        assert (relative > 1e-3).sum() <= 4
        cols, rows, depth = _project(xyz, cameras.camtoworlds[view], intrinsics)
        in_view = visible & (cols >= 0) & (cols < 64) & (rows >= 0) & (rows < 48) & (depth > 0)
        assert in_view.sum() > 1000
        observed = depths[view][rows[in_view].long(), cols[in_view].long()]
        relative_error = (observed - depth[in_view]).abs() / depth[in_view]
        assert relative_error.median() < 0.02  # a point's depth varies across its pixel on slanted surfaces
        assert (relative_error < 0.05).float().mean() > 0.9  # beyond: silhouettes, grazing ground


def test_rotation_to_quaternion_inverts_colmaps_qvec2rotmat():
    from nerfstudio.data.utils.colmap_parsing_utils import qvec2rotmat

    from foresplat_ns.synth.colmap import rotation_to_quaternion

    rng = np.random.default_rng(0)
    quaternions = rng.normal(size=(200, 4))
    quaternions = np.concatenate([quaternions, np.eye(4), [[0.0, 1.0, 1.0, 0.0], [0.0, 0.0, 1.0, -1.0]]])
    for q in quaternions / np.linalg.norm(quaternions, axis=-1, keepdims=True):
        rotation = qvec2rotmat(q)
        recovered = rotation_to_quaternion(rotation)
        assert recovered[0] >= 0 and np.linalg.norm(recovered) == pytest.approx(1.0)
        np.testing.assert_allclose(qvec2rotmat(recovered), rotation, atol=1e-12)
