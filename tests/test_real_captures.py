"""Captures as users have them: LLFF folders, downscaled image folders, odd and mixed image sizes, SfM
points everywhere, and the capture problems that must stop before any training step."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli, without_point_file
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from PIL import Image
from plyfile import PlyData

from foresplat_ns.cameras import viewmats_from_camtoworlds
from foresplat_ns.data import load_scene, scene_dataparser
from foresplat_ns.nerfstudio_glue.llff_dataparser import LLFFDataParserConfig


def write_llff(scene: Path, out: Path, factor: int = 2) -> Path:
    """The generated scene as an LLFF capture: poses_bounds.npy (full-size h, w, f), images_{factor}
    (downscaled copies, sorted names) and sparse/0/points3D.txt in the poses' world."""
    meta = json.loads((scene / "transforms.json").read_text())
    frames = sorted(meta["frames"], key=lambda f: f["file_path"])
    rows = []
    (out / f"images_{factor}").mkdir(parents=True)
    for frame in frames:
        c2w = np.array(frame["transform_matrix"])[:3]  # OpenGL [right, up, back]
        llff = np.stack([-c2w[:, 1], c2w[:, 0], c2w[:, 2], c2w[:, 3], [meta["h"], meta["w"], meta["fl_x"]]], 1)
        rows.append(np.concatenate([llff.reshape(-1), [0.5, 20.0]]))
        image = Image.open(scene / frame["file_path"])
        image.resize((meta["w"] // factor, meta["h"] // factor), Image.BOX).save(out / f"images_{factor}" / Path(frame["file_path"]).name)
    np.save(out / "poses_bounds.npy", np.array(rows))
    ply = PlyData.read(str(scene / meta["ply_file_path"]))["vertex"]
    (out / "sparse" / "0").mkdir(parents=True)
    lines = [
        f"{i + 1} {x} {y} {z} {r} {g} {b} 0.5"
        for i, (x, y, z, r, g, b) in enumerate(zip(ply["x"], ply["y"], ply["z"], ply["red"], ply["green"], ply["blue"]))
    ]
    (out / "sparse" / "0" / "points3D.txt").write_text("\n".join(lines) + "\n")
    return out


def project(points: torch.Tensor, scene) -> torch.Tensor:
    """Pixel coordinates [V,P,2] of world points in every view of `scene`."""
    viewmats = viewmats_from_camtoworlds(scene.camtoworlds.double())
    cam = torch.einsum("vij,pj->vpi", viewmats[:, :3, :3], points.double()) + viewmats[:, None, :3, 3]
    K = scene.intrinsics.double()
    return torch.stack(
        [K[:, None, 0, 0] * cam[..., 0] / cam[..., 2] + K[:, None, 0, 2], K[:, None, 1, 1] * cam[..., 1] / cam[..., 2] + K[:, None, 1, 2]],
        -1,
    )


@pytest.fixture(scope="module")
def llff_scene(small_scene, tmp_path_factory) -> Path:
    return write_llff(small_scene, tmp_path_factory.mktemp("llff") / "capture")


def test_llff_capture_reads_as_the_same_cameras_and_points(small_scene, llff_scene):
    """The same capture through nerfstudio's dataparser (transforms.json, full size) and ours (LLFF,
    images_2): every SfM point lands on the same pixel of the same image, at half the coordinates."""
    llff, _ = load_scene(llff_scene, LLFFDataParserConfig(eval_mode="all"))
    reference, _ = load_scene(small_scene, NerfstudioDataParserConfig(load_3D_points=True, eval_mode="all"))
    names = [Path(f).name for f in llff.filenames]
    assert names == sorted(names) and len(names) == 12  # every image (eval_mode all), in sorted order
    same = [names.index(Path(f).name) for f in reference.filenames]  # its training views (the file's split)
    assert llff.images.shape[1:3] == (24, 24) and llff.points[0].shape == reference.points[0].shape
    ours = project(llff.points[0], llff)[same]
    theirs = project(reference.points[0], reference)
    torch.testing.assert_close(2 * ours, theirs, atol=2e-3, rtol=1e-3)  # float32 poses; points near a camera plane project far out
    torch.testing.assert_close(llff.points[1], reference.points[1])


@pytest.mark.slow
@pytest.mark.parametrize("dataparser", [["llff-data"], []])
def test_llff_data_is_a_registered_dataparser_for_ns_train(llff_scene, tmp_path, dataparser):
    """Named, or found by foresplat's default dataparser (capture-data); splatfacto's start needs the SfM points."""
    run_cli(
        "ns-train", "foresplat", "--data", llff_scene, "--output-dir", tmp_path, "--timestamp", "l",
        "--vis", "tensorboard", "--max-num-iterations", 3, "--pipeline.start.start", "splatfacto", *dataparser,
    )  # fmt: skip
    assert list(tmp_path.rglob("step-*.ckpt"))


def test_scene_dataparser_reads_each_format_as_it_is(small_scene, llff_scene, tmp_path):
    assert isinstance(scene_dataparser(llff_scene), LLFFDataParserConfig)
    parser = scene_dataparser(small_scene)
    assert isinstance(parser, NerfstudioDataParserConfig) and parser.load_3D_points and parser.downscale_factor is None
    # only a downscaled copy of the images: its factor is found
    scene = tmp_path / "downscaled"
    shutil.copytree(small_scene, scene)
    shutil.move(scene / "images", scene / "images_2")
    assert scene_dataparser(scene).downscale_factor == 2
    # COLMAP: the mapper's sparse/0, or an image_undistorter workspace's sparse/
    colmap = tmp_path / "workspace"
    shutil.copytree(small_scene / "colmap" / "sparse" / "0", colmap / "sparse")
    shutil.copytree(small_scene / "images", colmap / "images")
    assert scene_dataparser(colmap).colmap_path == Path("sparse")
    # 3DGS's convert.py before undistortion: the photos in input/, their model in distorted/sparse/0
    distorted = tmp_path / "convert_py"
    shutil.copytree(small_scene / "colmap" / "sparse" / "0", distorted / "distorted" / "sparse" / "0")
    shutil.copytree(small_scene / "images", distorted / "input")
    parser = scene_dataparser(distorted)
    assert (parser.colmap_path, parser.images_path) == (Path("distorted/sparse/0"), Path("input"))
    train, held_out = load_scene(distorted)
    assert len(train.images) + len(held_out.images) == len(list((small_scene / "images").iterdir()))
    with pytest.raises(ValueError, match="not a capture ForeSplat can read"):
        scene_dataparser(tmp_path)


@pytest.mark.parametrize("problem", ["rows", "size", "factor", "missing"])
def test_llff_capture_problems_are_named(llff_scene, tmp_path, problem):
    capture = tmp_path / "bad"
    shutil.copytree(llff_scene, capture)
    images = sorted((capture / "images_2").iterdir())
    if problem == "rows":
        images[-1].unlink()
        match = r"poses_bounds\.npy has 12 pose rows but .*images_2 holds 11 images"
    elif problem == "size":
        Image.open(images[3]).resize((20, 24)).save(images[3])
        match = rf"{images[3].name} is 20x24, but {images[0].name} is 24x24: every image .* has one size"
    elif problem == "factor":
        for image in images:
            Image.open(image).resize((20, 24)).save(image)
        match = rf"{images[0].name} is 20x24, which is not the size 48x48 .* divided by one downscale factor"
    else:
        (capture / "poses_bounds.npy").unlink()
        match = "not an LLFF capture: .*poses_bounds.npy not found"
    with pytest.raises(ValueError, match=match):
        load_scene(capture, LLFFDataParserConfig())


@pytest.mark.parametrize("short_side", [23, 24])
def test_llff_downscale_rounded_either_way_keeps_the_images_pixel_grid(llff_scene, tmp_path, short_side):
    """A full height of 47 px halves to 23.5: mogrify writes 24 rows, PIL and ffmpeg 23. Both are the same
    capture; the cameras take the images' own size and the factor from the longer side."""
    capture = tmp_path / "odd"
    shutil.copytree(llff_scene, capture)
    rows = np.load(capture / "poses_bounds.npy")
    rows[:, 4] = 47.0  # the full height; the width stays 48
    np.save(capture / "poses_bounds.npy", rows)
    for image in (capture / "images_2").iterdir():
        Image.open(image).resize((24, short_side)).save(image)
    cameras = LLFFDataParserConfig(data=capture, eval_mode="all").setup().get_dataparser_outputs("train").cameras
    assert cameras.height.flatten().tolist() == [short_side] * 12 and cameras.width.flatten().tolist() == [24] * 12
    scene, _ = load_scene(capture, LLFFDataParserConfig(eval_mode="all"))
    assert scene.images.shape[1:3] == (short_side, 24)
    torch.testing.assert_close(scene.intrinsics[:, 0, 0], torch.full((12,), float(rows[0, 14]) / 2))


def test_transforms_frames_without_images_are_named(small_scene, tmp_path):
    scene = tmp_path / "gone"
    shutil.copytree(small_scene, scene)
    victims = sorted((scene / "images").iterdir())[2:4]
    for victim in victims:
        victim.unlink()
    with pytest.raises(ValueError, match=rf"image files of 2 of 12 frames are missing: .*{victims[0].name}, .*{victims[1].name}"):
        load_scene(scene)


@pytest.mark.slow
def test_mixed_portrait_and_landscape_views_train_and_the_context_shares_one_size(small_scene, tmp_path):
    """One camera per image, sizes differing (a COLMAP capture of portrait and landscape photos)."""
    scene = tmp_path / "mixed"
    shutil.copytree(small_scene, scene)
    meta = json.loads((scene / "transforms.json").read_text())
    intrinsics = {key: meta.pop(key) for key in ("fl_x", "fl_y", "cx", "cy", "w", "h")}  # per frame from here
    for frame in meta["frames"]:
        frame.update(intrinsics)
    for frame in meta["frames"][1:10:3]:  # three training views become 48 wide, 40 high
        path = scene / frame["file_path"]
        Image.open(path).crop((0, 4, 48, 44)).save(path)
        frame.update({"h": 40, "cy": intrinsics["cy"] - 4})
    (scene / "transforms.json").write_text(json.dumps(meta))
    train, _ = load_scene(scene, NerfstudioDataParserConfig(load_3D_points=True, eval_mode="filename"))
    assert isinstance(train.images, list) and {tuple(i.shape[:2]) for i in train.images} == {(48, 48), (40, 48)}
    context = train.context_indices(4)
    assert len(context) == 4 and all(train.images[i].shape[:2] == (48, 48) for i in context)
    assert train.context(context).images.shape == (1, 4, 48, 48, 3)
    with pytest.raises(ValueError, match="differ in size"):
        train.context(range(len(train)))
    run_cli(
        "ns-train", "foresplat", "--data", scene, "--output-dir", tmp_path / "runs", "--timestamp", "m",
        "--vis", "tensorboard", "--max-num-iterations", 3, "nerfstudio-data", "--eval-mode", "filename",
    )  # fmt: skip
    assert list((tmp_path / "runs").rglob("step-*.ckpt"))


def test_resized_scene_scales_the_intrinsics_with_the_images(small_scene):
    train, _ = load_scene(small_scene, NerfstudioDataParserConfig(load_3D_points=True))
    small = train.resized(24)
    assert small.images.shape[1:3] == (24, 24)
    torch.testing.assert_close(project(train.points[0], small), project(train.points[0], train) / 2)


def test_context_views_shrink_to_max_side_with_their_intrinsics_and_depths(small_scene):
    """A backbone's context at most `max_side` px: images area-averaged, intrinsics scaled so every point
    projects to the same place in the smaller image, depth maps resampled; views already small are untouched."""
    train, _ = load_scene(small_scene, NerfstudioDataParserConfig(load_3D_points=True))
    full = train.context(train.context_indices(4))
    small = full.shrunk(24)
    assert small.images.shape == (1, 4, 24, 24, 3) and small.depths.shape == (1, 4, 24, 24)
    torch.testing.assert_close(small.images[0], torch.nn.functional.avg_pool2d(full.images[0].permute(0, 3, 1, 2), 2).permute(0, 2, 3, 1))
    torch.testing.assert_close(small.depths[0], full.depths[0, :, ::2, ::2])
    at = lambda views: type(train)(train.name, views.images[0], views.intrinsics[0], views.camtoworlds[0], [])  # noqa: E731
    torch.testing.assert_close(project(train.points[0], at(small)), project(train.points[0], at(full)) / 2)
    assert full.shrunk(48) is full


def test_unknown_camera_model_is_named(small_scene, tmp_path):
    scene = tmp_path / "model"
    shutil.copytree(small_scene, scene)
    meta = json.loads((scene / "transforms.json").read_text())
    meta["camera_model"] = "THIN_PRISM_FISHEYE"
    (scene / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=r"transforms\.json: unknown camera_model 'THIN_PRISM_FISHEYE'; nerfstudio reads .*OPENCV"):
        load_scene(scene)


def test_foresplat_meta_reads_a_folder_mixing_formats(small_scene, llff_scene, tmp_path):
    """foresplat-meta's scenes: a generated nerfstudio-data scene and an LLFF capture side by side."""
    from foresplat_ns.nerfstudio_glue.meta_datamanager import MultiSceneDataManagerConfig

    root = tmp_path / "scenes"
    root.mkdir()
    (root / "generated").symlink_to(small_scene)
    (root / "llff").symlink_to(llff_scene)
    manager = MultiSceneDataManagerConfig(data=root, num_context_views=2, max_image_side=16).setup(device="cpu")
    names = sorted(train.name for train, _ in manager.train_scenes)
    assert names == ["generated", "llff"]
    assert all(max(train.images.shape[1:3]) == 16 and train.points is not None for train, _ in manager.train_scenes)
    batch = manager.next_train(0)
    assert batch.context.images.shape[:2] == (1, 2)
    assert batch.context.points is None  # the backbone learns its own depth unless told to take the points
    config = MultiSceneDataManagerConfig(data=root, num_context_views=2, max_image_side=16, backbone_sees_sfm_points=True)
    assert config.setup(device="cpu").next_train(0).context.points is not None


def _colmap_capture(small_scene: Path, out: Path) -> Path:
    """The generated scene as COLMAP output: sparse/0 (text model, SfM points) beside images/."""
    shutil.copytree(small_scene / "colmap" / "sparse" / "0", out / "sparse" / "0")
    shutil.copytree(small_scene / "images", out / "images")
    return out


@pytest.mark.parametrize("mode", ["I;16", "P", "CMYK", "LA"])
def test_images_stored_in_any_mode_are_read_as_their_pixels(small_scene, tmp_path, mode):
    """nerfstudio's own loader takes a 16-bit grey image's low bytes, a palette image's indices and a CMYK
    image's K channel as pixels, and stops on grey + alpha; every training command reads them as they look."""
    capture = _colmap_capture(small_scene, tmp_path / "capture")
    expected = {}
    for path in sorted((capture / "images").iterdir()):
        rgb = Image.open(path).convert("RGB")
        if mode == "I;16":  # 16-bit grey whose low bytes differ from its 8-bit value
            grey = np.asarray(rgb.convert("L"), dtype=np.uint16)
            Image.fromarray((grey * 257 + 100).astype(np.uint16)).save(path)
            expected[path.name] = np.repeat(grey[..., None], 3, axis=-1)
        elif mode == "P":
            stored = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=64)
            stored.save(path)
            expected[path.name] = np.asarray(stored.convert("RGB"))
        elif mode == "CMYK":  # TIFF under the listed name: PIL reads a file by its content
            stored = rgb.convert("CMYK")
            stored.save(path, format="TIFF")
            expected[path.name] = np.asarray(stored.convert("RGB"))
        else:
            stored = rgb.convert("L")
            stored.putalpha(Image.fromarray(np.full(stored.size[::-1], 200, np.uint8)))
            stored.save(path)
            expected[path.name] = np.asarray(stored.convert("RGBA"))
    train, _ = load_scene(capture)
    for image, name in zip(train.images, train.filenames):
        want = torch.from_numpy(expected[Path(name).name].astype(np.float32) / 255)
        assert image.shape == want.shape
        assert torch.allclose(image, want, atol=1e-6), f"{name} read as other pixels than it shows"


def test_images_that_do_not_decode_are_named(tmp_path):
    from foresplat_ns.data import read_image

    truncated = tmp_path / "cut.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:-400])
    with pytest.raises(ValueError, match=f"corrupt or unreadable: {truncated}"):
        read_image(truncated)
    floats = tmp_path / "depth.tif"
    Image.fromarray(np.zeros((4, 4), np.float32)).save(floats)
    with pytest.raises(ValueError, match="'F' pixels are not read"):
        read_image(floats)


@pytest.mark.parametrize("points", ["none listed", "no file", "binary cut short"])
def test_a_colmap_model_without_sfm_points_reads_without_them(small_scene, tmp_path, points):
    """COLMAP models built from known poses before triangulation hold no points; nerfstudio, asked for them, fails."""
    capture = _colmap_capture(small_scene, tmp_path / "capture")
    points_file = capture / "sparse" / "0" / "points3D.txt"
    if points == "none listed":
        points_file.write_text("# 3D point list with one line of data per point:\n# Number of points: 0\n")
    elif points == "no file":
        points_file.unlink()
    else:
        (capture / "sparse" / "0" / "points3D.bin").write_bytes(b"\x00\x01")
    if points == "binary cut short":
        with pytest.warns(UserWarning, match=r"points3D.bin is cut short \(2 bytes\): training without SfM points"):
            assert not scene_dataparser(capture).load_3D_points
    else:
        assert not scene_dataparser(capture).load_3D_points
    train, held_out = load_scene(capture)
    assert not train.has_sfm_points and len(train) + len(held_out) == 12


def test_naming_nerfstudio_data_keeps_the_sfm_points_its_transforms_lists(small_scene, tmp_path):
    """nerfstudio-data leaves a capture's points out unless asked: named on the command line (as `make demo`
    names it for the scene's split lists), it must still hand ForeSplat the capture's SfM points."""
    named = NerfstudioDataParserConfig(eval_mode="filename")
    with pytest.warns(UserWarning, match=r"loading the SfM points .*sparse_pc.ply that .*transforms.json lists"):
        train, _ = load_scene(small_scene, named)
    reference, _ = load_scene(small_scene, NerfstudioDataParserConfig(load_3D_points=True, eval_mode="filename"))
    assert train.has_sfm_points and torch.equal(train.points[0], reference.points[0])
    assert not named.load_3D_points  # the caller's config is read through a copy, as before
    # a capture that lists no point file reads without points, as nerfstudio-data reads it
    capture = without_point_file(small_scene, tmp_path / "capture")
    train, _ = load_scene(capture, NerfstudioDataParserConfig(eval_mode="filename"))
    assert not train.has_sfm_points


def test_a_transforms_capture_without_its_point_file_reads_the_points_of_its_colmap_model(small_scene, tmp_path):
    """An older ns-process-data wrote no `ply_file_path`: nerfstudio-data, asked for points, prompts (an
    EOFError in a batch run) and rewrites transforms.json. capture-data reads the COLMAP model it was made
    from instead, points included: every point lands on the pixel it lands on through the point file."""
    capture = without_point_file(small_scene, tmp_path / "capture")
    meta = json.loads((capture / "transforms.json").read_text())
    with pytest.warns(UserWarning, match=r"lists no SfM point file, but the COLMAP model it was made from .*colmap/sparse/0"):
        train, _ = load_scene(capture)
    assert json.loads((capture / "transforms.json").read_text()) == meta  # the user's file untouched
    reference, _ = load_scene(small_scene, NerfstudioDataParserConfig(load_3D_points=True, eval_mode="filename"))
    names = [Path(f).name for f in train.filenames]
    assert sorted(names) == sorted(Path(f).name for f in reference.filenames)
    same = [names.index(Path(f).name) for f in reference.filenames]
    assert train.points[0].shape == reference.points[0].shape
    torch.testing.assert_close(project(train.points[0], train)[same], project(reference.points[0], reference), atol=2e-3, rtol=1e-3)
    # without SfM points in the model either, the transforms.json is read as it is, without points and without a prompt
    (capture / "colmap" / "sparse" / "0" / "points3D.txt").write_text("# no points\n")
    assert not scene_dataparser(capture).load_3D_points
    assert not load_scene(capture)[0].has_sfm_points


def test_a_small_transforms_capture_holds_a_view_out_and_one_position_is_named(small_scene, tmp_path):
    """nerfstudio trains on ceil(0.9 n) of a transforms.json's frames: with fewer than 10, on all of them."""
    meta = json.loads((small_scene / "transforms.json").read_text())
    for key in ("train_filenames", "val_filenames", "test_filenames"):
        del meta[key]
    capture = tmp_path / "three"
    shutil.copytree(small_scene, capture)
    (capture / "transforms.json").write_text(json.dumps({**meta, "frames": meta["frames"][:3]}))
    train, held_out = load_scene(capture)
    assert (len(train), len(held_out)) == (2, 1)
    (capture / "transforms.json").write_text(json.dumps({**meta, "frames": meta["frames"][:1]}))
    with pytest.raises(ValueError, match=f"cannot read scene {capture}: its cameras all stand in one place"):
        load_scene(capture)


@pytest.mark.parametrize(
    "problem",
    [
        "name case",
        "no extension",
        "field of view only",
        "downscaled size",
        "3x4 pose",
        "no pose",
        "no size",
        "empty image",
        "sub-folder copies",
    ],
)
def test_capture_listing_problems_name_their_likely_cause(small_scene, tmp_path, problem):
    if problem == "downscaled size":  # COLMAP with only images_2, a pixel larger than 48 / 2
        capture = _colmap_capture(small_scene, tmp_path / "capture")
        (capture / "images").rename(capture / "images_2")
        for path in (capture / "images_2").iterdir():
            Image.open(path).resize((25, 25)).save(path)
        match = "images_2/.* is 25x25 but its camera says 24x24: images_2 copies must be the full-size images divided by 2, rounded down"
    elif problem == "name case":
        capture = _colmap_capture(small_scene, tmp_path / "capture")
        for path in (capture / "images").iterdir():
            path.rename(path.with_suffix(".PNG"))
        match = r"lists .*frame_00000.png, which is not there \(frame_00000.PNG is there: file names are case-sensitive\)"
    else:
        capture = tmp_path / "capture"
        shutil.copytree(small_scene, capture)
        meta = json.loads((capture / "transforms.json").read_text())
        if problem == "empty image":  # nerfstudio opens the first image before any check: a bare PIL error
            (capture / meta["frames"][0]["file_path"]).write_bytes(b"")
            match = r"cannot read scene .*: image file is corrupt or unreadable \(cannot identify image file"
        elif problem == "sub-folder copies":
            (capture / "images_2").mkdir()
            (capture / "images").rename(capture / "images_2" / "sub")
            for frame in meta["frames"]:
                frame["file_path"] = f"images/sub/{Path(frame['file_path']).name}"
            match = r"frames are missing \(images_2: nerfstudio reads a downscaled copy as images_N/<file name>, without"
        elif problem == "no extension":
            for frame in meta["frames"]:
                frame["file_path"] = str(Path(frame["file_path"]).with_suffix(""))
            match = "frames are missing: .*; frame_00000.png is there: give file_path with its extension"
        elif problem == "3x4 pose":
            meta["frames"][2]["transform_matrix"] = meta["frames"][2]["transform_matrix"][:3]
            match = r"frame 2 \(images/frame_00002.png\): transform_matrix is 3x4; nerfstudio reads 4x4"
        elif problem == "no pose":
            del meta["frames"][1]["transform_matrix"]
            match = r"frame 1 \(images/frame_00001.png\) has no transform_matrix"
        elif problem == "no size":
            del meta["h"]
            match = r"frame 0 \(images/frame_00000.png\) has no h, at the top of the file or in the frame"
        else:
            meta["camera_angle_x"] = 2 * np.arctan(meta["w"] / 2 / meta.pop("fl_x"))
            del meta["fl_y"]
            match = "gives the field of view \\(camera_angle_x\\) but no focal length"
        (capture / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=match):
        load_scene(capture)


def test_a_capture_of_over_500_images_reads_on_a_cpu(tmp_path):
    """nerfstudio caches more than 500 training images in pinned memory, which needs CUDA; on a CPU-only
    machine every capture that large (a video's frames) stopped with "Found no NVIDIA driver"."""
    from foresplat_ns.synth import SceneConfig, generate_scene

    generate_scene(SceneConfig(seed=3, resolution=8, num_views=503, num_eval_views=2), tmp_path / "video")
    train, held_out = load_scene(tmp_path / "video")
    assert (len(train), len(held_out)) == (501, 2) and train.images.shape[1:] == (8, 8, 3)
