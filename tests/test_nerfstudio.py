"""`ns-train foresplat` and the nerfstudio tools on its outputs, on CPU, through the real console scripts."""

from __future__ import annotations

import copy
import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import LEGO, console_script, register_fixed_backbone, run_cli
from PIL import Image
from plyfile import PlyData

from foresplat_ns.gaussians import Gaussians
from foresplat_ns.refine import RefineConfig

STEPS = 30


def method_config(name: str):
    from nerfstudio.plugins.registry import discover_methods

    methods, _ = discover_methods()
    return copy.deepcopy(methods[name])


# -- nerfstudio's own smoke test, for our methods ---------------------------------------------------
def reduced_config(config, output_dir: Path):
    """nerfstudio's tests/test_train.py settings: CPU, 2 iterations, the blender lego fixture."""
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig

    config.machine.device_type = "cpu"
    config.max_num_iterations = 2
    config.pipeline.datamanager.dataparser = BlenderDataParserConfig(data=LEGO)
    config.vis = "tensorboard"
    config.output_dir = output_dir
    config.viewer.quit_on_train_completion = True
    config.set_timestamp()
    return config


def test_nerfstudio_smoke_foresplat(tmp_path):
    from nerfstudio.scripts.train import train_loop

    config = reduced_config(method_config("foresplat"), tmp_path)
    train_loop(local_rank=0, world_size=1, config=config)
    assert list(tmp_path.rglob("step-*.ckpt"))


def test_nerfstudio_smoke_foresplat_meta(tmp_path):
    from nerfstudio.scripts.train import train_loop

    # nerfstudio's harness sets the data on the dataparser only (reduced_config): foresplat-meta takes it there
    config = reduced_config(method_config("foresplat-meta"), tmp_path)
    config.pipeline.datamanager.num_context_views = 1
    config.pipeline.metagrad.inner_steps = 2
    train_loop(local_rank=0, world_size=1, config=config)
    assert list(tmp_path.rglob("backbone.pt"))


# -- ns-train foresplat on a generated scene, then every tool on its output ---------------------
@pytest.fixture(scope="module")
def trained_run(small_scene, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs")
    run_cli(
        "ns-train", "foresplat", "--data", small_scene, "--output-dir", out, "--timestamp", "t0",
        "--vis", "tensorboard", "--max-num-iterations", STEPS, "--steps-per-save", 10,
        "--pipeline.backbone.name", "pointcloud", "nerfstudio-data", "--eval-mode", "filename",
    )  # fmt: skip
    config = out / small_scene.name / "foresplat" / "t0" / "config.yml"
    assert config.is_file()
    return config


@pytest.mark.slow
def test_training_logs_to_tensorboard_and_saves(trained_run):
    run_dir = trained_run.parent
    assert list(run_dir.glob("events.out.tfevents.*")), "tensorboard event file missing"
    checkpoints = sorted((run_dir / "nerfstudio_models").glob("step-*.ckpt"))
    assert checkpoints and checkpoints[-1].name == f"step-{STEPS - 1:09d}.ckpt"
    assert not list(run_dir.glob(".*staging/*.tmp")), "no partial checkpoint may be left behind"


@pytest.mark.slow
def test_ns_eval_reports_psnr_and_ssim(trained_run, tmp_path):
    out = tmp_path / "eval.json"
    run_cli("ns-eval", "--load-config", trained_run, "--output-path", out)
    results = json.loads(out.read_text())["results"]
    assert {"psnr", "ssim"} <= set(results)
    assert 10.0 < results["psnr"] < 60.0 and 0.0 < results["ssim"] <= 1.0


@pytest.mark.slow
def test_ns_render_interpolate_writes_frames(trained_run, tmp_path):
    out = tmp_path / "frames"
    run_cli(
        "ns-render", "interpolate", "--load-config", trained_run, "--output-path", out,
        "--output-format", "images", "--interpolation-steps", 2, "--frame-rate", 4,
    )  # fmt: skip
    frames = sorted(out.glob("*.jpg")) + sorted(out.glob("*.png"))
    assert len(frames) >= 2
    assert np.asarray(Image.open(frames[0])).std() > 5, "rendered frame is blank"


@pytest.mark.slow
def test_ns_render_camera_path_writes_video(trained_run, tmp_path):
    c2w = np.eye(4)
    c2w[:3, 3] = [0.0, 0.0, 0.9]  # inside the normalised scene box, looking down -z at the objects
    path = {
        "camera_type": "perspective",
        "render_height": 32,
        "render_width": 32,
        "seconds": 1.0,
        "fps": 3,
        "camera_path": [{"camera_to_world": c2w.flatten().tolist(), "fov": 50.0, "aspect": 1.0}] * 3,
    }
    path_file = tmp_path / "path.json"
    path_file.write_text(json.dumps(path))
    out = tmp_path / "video.mp4"
    run_cli("ns-render", "camera-path", "--load-config", trained_run, "--camera-path-filename", path_file, "--output-path", out)
    assert out.is_file() and out.stat().st_size > 0


@pytest.mark.slow
def test_ns_export_gaussian_splat_holds_the_trained_gaussians(trained_run, tmp_path):
    from plyfile import PlyData

    run_cli("ns-export", "gaussian-splat", "--load-config", trained_run, "--output-dir", tmp_path)
    ply = PlyData.read(str(tmp_path / "splat.ply"))
    checkpoint = sorted((trained_run.parent / "nerfstudio_models").glob("*.ckpt"))[-1]
    trained = torch.load(checkpoint, map_location="cpu", weights_only=False)["pipeline"]["_model.gauss_params.means"]
    assert ply["vertex"].count == trained.shape[0] > 0
    names = ply["vertex"].data.dtype.names
    assert {"x", "y", "z", "opacity", "scale_0", "rot_0", "f_dc_0"} <= set(names)


@pytest.mark.slow
def test_ns_viewer_starts_answers_and_stops(trained_run):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [console_script("ns-viewer"), "--load-config", str(trained_run), "--viewer.websocket-port", str(port),
         "--viewer.websocket-host", "127.0.0.1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline, answer = time.time() + 180, None
        while time.time() < deadline and answer is None:
            assert proc.poll() is None, "ns-viewer exited early"
            try:
                answer = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2).status
            except OSError:
                time.sleep(1)
        assert answer == 200
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert proc.returncode is not None


def test_viewer_renders_a_view_on_cpu(trained_run):
    """The viewer's own render path (the one a browser client triggers) on our model."""
    from nerfstudio.cameras.cameras import CameraType
    from nerfstudio.utils.eval_utils import eval_setup
    from nerfstudio.viewer.render_state_machine import RenderStateMachine
    from nerfstudio.viewer.utils import CameraState
    from nerfstudio.viewer.viewer import VISER_NERFSTUDIO_SCALE_RATIO, Viewer

    config, pipeline, _, _ = eval_setup(trained_run, test_mode="test")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        config.viewer.websocket_port = s.getsockname()[1]
    config.viewer.websocket_host = "127.0.0.1"
    viewer = Viewer(config.viewer, log_filename=trained_run.parent / "viewer_log.txt", datapath=trained_run.parent, pipeline=pipeline)
    try:
        machine = RenderStateMachine(viewer, VISER_NERFSTUDIO_SCALE_RATIO, client=None)
        c2w = torch.eye(4)[:3]
        c2w[2, 3] = 0.9
        outputs = machine._render_img(CameraState(fov=0.9, aspect=1.0, c2w=c2w, camera_type=CameraType.PERSPECTIVE))
        assert outputs["rgb"].shape[-1] == 3 and outputs["rgb"].shape[0] > 8
        assert torch.isfinite(outputs["rgb"]).all() and outputs["rgb"].std() > 0.01
    finally:
        viewer.viser_server.stop()


# -- dataparsers -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("layout", ["colmap", "undistorted-workspace"])
def test_foresplat_trains_on_a_colmap_scene(small_scene, tmp_path, layout):
    """With `colmap` named, and with no dataparser named on COLMAP image_undistorter's layout (the model in
    sparse/, which nerfstudio's colmap dataparser does not look for): foresplat's default, capture-data,
    finds it. The pointcloud backbone needs the SfM points, so they were read too."""
    scene = tmp_path / "colmap_scene"
    shutil.copytree(small_scene, scene)
    (scene / "transforms.json").unlink()  # only the COLMAP model is left to read
    dataparser = ["colmap"]
    if layout == "undistorted-workspace":
        shutil.move(scene / "colmap" / "sparse" / "0", scene / "sparse")
        dataparser = []
    run_cli(
        "ns-train", "foresplat", "--data", scene, "--output-dir", tmp_path / "runs", "--timestamp", "c",
        "--vis", "tensorboard", "--max-num-iterations", 3, "--pipeline.backbone.name", "pointcloud", *dataparser,
    )  # fmt: skip
    assert list((tmp_path / "runs").rglob("step-*.ckpt"))


# -- bad input -----------------------------------------------------------------------------------
def setup_pipeline(scene: Path, backbone="pointcloud", **settings):
    """`ns-train foresplat`'s pipeline on `scene` as training builds it: `backbone` a name or a whole
    BackboneSelection, `settings` other pipeline fields."""
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    from foresplat_ns.backbones import BackboneSelection

    config = method_config("foresplat")
    config.pipeline.datamanager.data = scene
    config.pipeline.datamanager.dataparser = NerfstudioDataParserConfig(data=scene, eval_mode="filename")
    config.pipeline.backbone = backbone if isinstance(backbone, BackboneSelection) else BackboneSelection(name=backbone)
    for name, value in settings.items():
        setattr(config.pipeline, name, value)
    return config.pipeline.setup(device="cpu", test_mode="val")


def test_scene_without_transforms_json_is_named(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match=r"empty.*transforms\.json"):
        setup_pipeline(tmp_path / "empty")


def test_corrupt_or_missing_image_is_named(small_scene, tmp_path):
    scene = tmp_path / "broken"
    shutil.copytree(small_scene, scene)
    victim = sorted((scene / "images").iterdir())[1]
    victim.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=f"corrupt or unreadable: .*{victim.name}"):
        setup_pipeline(scene)
    victim.unlink()
    with pytest.raises(ValueError, match=f"missing: .*{victim.name}"):
        setup_pipeline(scene)


def test_a_backbone_trained_for_another_refinement_is_warned_about(small_scene):
    from foresplat_ns.start import StartConfig

    config = method_config("foresplat")
    config.pipeline.datamanager.data = small_scene
    config.pipeline.start = StartConfig(start="prediction", num_context_views=2)
    config.pipeline.model.ssim_lambda = 0.3  # the shipped checkpoint was trained for splatfacto's 0.2
    with pytest.warns(UserWarning, match=r"trained for another refinement: ssim_lambda: trained for 0\.2, refining with 0\.3"):
        config.pipeline.setup(device="cpu", test_mode="val")


def test_a_model_option_refinement_does_not_honour_is_refused(small_scene):
    config = method_config("foresplat")
    config.pipeline.datamanager.data = small_scene
    config.pipeline.model.rasterize_mode = "antialiased"
    with pytest.raises(ValueError, match="rasterize-mode antialiased is not supported by ForeSplat"):
        config.pipeline.setup(device="cpu", test_mode="val")


def test_sh_degree_0_colours_are_the_rendered_ones(small_scene):
    """splatfacto's sh_degree 0 stores sigmoid logits; ForeSplat keeps SH band 0 at every degree (as the
    Refiner and MetaGrad do), so the colours ns-export writes (`colors`, `shs_0`) are the rendered ones."""
    from foresplat_ns.render.sh import evaluate_sh

    config = method_config("foresplat")
    config.pipeline.datamanager.data = small_scene
    config.pipeline.backbone.name = "pointcloud"
    config.pipeline.model.sh_degree = 0
    model = config.pipeline.setup(device="cpu", test_mode="val").model
    assert model.features_rest.shape[1] == 0
    rendered = evaluate_sh(0, torch.randn(model.num_points, 3), model.features_dc[:, None]) + 0.5
    torch.testing.assert_close(model.colors, rendered)
    torch.testing.assert_close(model.shs_0, model.features_dc)
    assert 0.05 < float(model.colors.mean()) < 0.95  # image colours, not sigmoid(SH coefficients)


def test_corrupt_held_out_image_is_named_before_training(small_scene, tmp_path):
    """The held-out images are read at the first evaluation (step 100), after the first save: checked at set-up."""
    scene = tmp_path / "broken-eval"
    shutil.copytree(small_scene, scene)
    victim = scene / json.loads((scene / "transforms.json").read_text())["val_filenames"][0]
    victim.write_bytes(b"not a png")
    with pytest.raises(ValueError, match=f"corrupt or unreadable: .*{victim.name}"):
        setup_pipeline(scene)


def test_image_of_another_size_than_its_camera_is_named(small_scene, tmp_path):
    scene = tmp_path / "sizes"
    shutil.copytree(small_scene, scene)
    meta = json.loads((scene / "transforms.json").read_text())
    victim = scene / meta["frames"][1]["file_path"]  # a training view; the global w/h still say 48x48
    Image.open(victim).resize((40, 40)).save(victim)
    with pytest.raises(ValueError, match=f"{victim.name} is 40x40 but its camera says 48x48"):
        setup_pipeline(scene)


def test_scene_without_training_images(small_scene, tmp_path):
    scene = tmp_path / "noframes"
    shutil.copytree(small_scene, scene)
    meta = json.loads((scene / "transforms.json").read_text())
    meta["frames"], meta["train_filenames"], meta["val_filenames"], meta["test_filenames"] = [], [], [], []
    (scene / "transforms.json").write_text(json.dumps(meta))
    with pytest.raises(ValueError, match="noframes"):
        setup_pipeline(scene)


register_fixed_backbone(
    "test-nan",
    Gaussians.from_activated(
        torch.full((1, 5, 3), float("nan")),
        torch.ones(1, 5, 3),
        torch.ones(1, 5, 4),
        torch.full((1, 5), 0.5),
        torch.rand(1, 5, 3),
        sh_degree=0,
    ),
)


def test_initialiser_producing_nan_is_refused(small_scene):
    with pytest.raises(ValueError, match="'test-nan' backbone's prediction .* 'means' has 5 non-finite"):
        setup_pipeline(small_scene, backbone="test-nan")


@pytest.mark.slow
def test_demo_shows_foresplat_beside_splatfactos_start(tmp_path):
    proc = run_cli("foresplat-demo", "--output", tmp_path / "demo", "--resolution", 32, "--steps", 3)
    assert "splatfacto (SfM points, its learning rates)" in proc.stdout and "ForeSplat (compact" in proc.stdout
    assert "ForeSplat vs splatfacto after 3 steps:" in proc.stdout
    assert "ns-train foresplat with no flags uses the start 'sfm-union-else-best'" in proc.stdout
    # both runs start from the scene's SfM points: splatfacto's start is them alone, ForeSplat's the union
    num_points = PlyData.read(str(tmp_path / "demo" / "scene" / "sparse_pc.ply"))["vertex"].count
    starts = dict(re.findall(r"ForeSplat: starting from '(\w[\w-]*)',\s+(\d+) Gaussians", proc.stdout))
    assert set(starts) == {"splatfacto", "union"} and int(starts["splatfacto"]) == num_points < int(starts["union"])
    for start in ("splatfacto", "sfm-union-else-best"):
        assert json.loads((tmp_path / "demo" / f"eval-{start}.json").read_text())["results"]["psnr"] > 5
    # each start refined as its own method refines it: splatfacto's learning rates, and ForeSplat's
    refine = RefineConfig()
    for start, expected in (("splatfacto", refine.as_splatfacto()), ("sfm-union-else-best", refine)):
        saved = next((tmp_path / "demo" / "outputs").glob(f"*/foresplat/{start}/config.yml"))
        optimizers = yaml.load(saved.read_text(), Loader=yaml.Loader).optimizers
        for name, lr in expected.learning_rates().items():
            assert optimizers[name]["optimizer"].lr == pytest.approx(lr), (start, name)
        assert optimizers["means"]["scheduler"].lr_final == pytest.approx(expected.lr_means_final)


def test_every_command_names_its_backbone_the_same_way(tmp_path):
    """One BackboneSelection: `--pipeline.backbone.*` in both ns-train methods, `--teacher.*`/`--student.*` in
    foresplat-distill, with the same fields and the same choice of names as the registry's."""
    import typing

    import tyro

    from foresplat_ns.backbones import BackboneSelection, registered_backbones
    from foresplat_ns.distill import DistillConfig

    shipped = {name for name in registered_backbones() if not name.startswith("test-")}  # tests register stand-ins
    assert set(typing.get_args(typing.get_type_hints(BackboneSelection)["name"])) == shipped
    flags = ["--backbone.name", "pointcloud", "--backbone.pointcloud.source", "sfm", "--backbone.checkpoint", "x.pt"]
    for method in ("foresplat", "foresplat-meta"):
        pipeline = tyro.cli(type(method_config(method).pipeline), args=flags)
        assert pipeline.backbone == BackboneSelection(name="pointcloud", checkpoint=Path("x.pt"), pointcloud=pipeline.backbone.pointcloud)
        assert pipeline.backbone.pointcloud.source == "sfm"
    distill = tyro.cli(DistillConfig, args=["--data", str(tmp_path), "--teacher.name", "pi3x", "--student.compact.width", "16"])
    assert distill.teacher.name == "pi3x" and distill.student.name == "compact" and distill.student.compact.width == 16
