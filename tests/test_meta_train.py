"""`ns-train foresplat-meta` through its console script: bad scene roots, two CPU processes, kill and resume."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import torch
from conftest import console_script, run_cli

from foresplat_ns.backbones import load_backbone, save_checkpoint
from foresplat_ns.backbones.compact import CompactBackboneConfig


def meta_args(corpus: Path, out: Path, name: str, steps: int, *extra) -> list:
    return [
        "foresplat-meta", "--data", corpus, "--output-dir", out, "--experiment-name", "meta", "--timestamp", name,
        "--max-num-iterations", steps, "--steps-per-save", 2, "--vis", "tensorboard",
        "--machine.device-type", "cpu", "--pipeline.datamanager.num-context-views", 2,
        "--pipeline.metagrad.inner-steps", 2, "--pipeline.backbone.compact.width", 8,
        "--pipeline.backbone.compact.num-depth-planes", 8, *extra,
    ]  # fmt: skip


def run_dir(out: Path, name: str) -> Path:
    return out / "meta" / "foresplat-meta" / name


def saved_steps(checkpoints: Path) -> list:
    return [int(path.stem.split("-")[1]) for path in checkpoints.glob("step-*.ckpt")]


def ns_train(*args, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "COLUMNS": "1000"}  # rich: one message, one line
    return subprocess.run([console_script("ns-train"), *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def test_empty_scene_root_is_named(tmp_path):
    empty = tmp_path / "no-scenes"
    empty.mkdir()
    proc = ns_train(*meta_args(empty, tmp_path / "out", "t", 2))
    assert proc.returncode != 0
    assert "no usable scene" in proc.stdout + proc.stderr and str(empty) in proc.stdout + proc.stderr


def test_scenes_with_too_few_views_are_skipped_and_named(small_corpus, tmp_path):
    """Asking for more context views than any scene has leaves nothing to train on: each scene is named."""
    proc = ns_train(*meta_args(small_corpus, tmp_path / "out", "t", 2, "--pipeline.datamanager.num-context-views", 50))
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "fewer than the 50 context views" in output and "no usable scene" in output


@pytest.mark.slow
def test_two_cpu_processes_train_one_backbone(small_corpus, tmp_path):
    """nerfstudio's own launcher, gloo on CPU: two ranks train from a given start, rank 0 saves."""
    start = CompactBackboneConfig(width=8, num_depth_planes=8).setup()
    save_checkpoint(tmp_path / "start.pt", start)
    run_cli(
        "ns-train", *meta_args(small_corpus, tmp_path, "ddp", 4, "--machine.num-devices", 2,
                               "--pipeline.backbone.checkpoint", tmp_path / "start.pt"), timeout=900,
    )  # fmt: skip
    run = run_dir(tmp_path, "ddp")
    saved = torch.load(run / "nerfstudio_models" / "step-000000003.ckpt", weights_only=True)["pipeline"]
    assert all(k.startswith("_model.module.") for k in saved), "the model was not wrapped in DistributedDataParallel"
    trained, extra = load_backbone(run / "backbone.pt")
    assert extra["step"] == 3 and extra["image_side"] == 32  # the corpus's size: the context size follows it
    before = start.state_dict()
    changed = [k for k, v in trained.state_dict().items() if not torch.equal(v, before[k])]
    assert changed, "two-process training left the backbone unchanged"


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_save(small_corpus, tmp_path):
    """SIGKILL mid-training; --load-dir continues from the newest complete checkpoint, none is truncated."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    args = meta_args(small_corpus, tmp_path, "kill", 10_000)
    proc = subprocess.Popen(
        [console_script("ns-train"), *map(str, args)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    checkpoints = run_dir(tmp_path, "kill") / "nerfstudio_models"
    deadline = time.time() + 600
    try:
        # only the latest checkpoint is kept, so step 6's file may already be replaced by step 8's
        while max(saved_steps(checkpoints), default=-1) < 6:
            assert proc.poll() is None, "training stopped before it was killed"
            assert time.time() < deadline, "no checkpoint at step 6 or later within 10 minutes"
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    saved = sorted(checkpoints.glob("step-*.ckpt"))
    last = int(saved[-1].stem.split("-")[1])
    for path in saved:  # every checkpoint left behind is whole
        torch.load(path, weights_only=True)
    shutil.copytree(checkpoints, tmp_path / "at-kill")

    # nerfstudio counts --max-num-iterations from the step after the loaded one
    resumed = run_cli("ns-train", *meta_args(small_corpus, tmp_path, "resume", 4, "--load-dir", checkpoints))
    assert f"step-{last:09d}.ckpt" in resumed.stdout.replace("\n", "")
    final = sorted((run_dir(tmp_path, "resume") / "nerfstudio_models").glob("step-*.ckpt"))[-1]
    assert int(final.stem.split("-")[1]) == last + 4
    _, extra = load_backbone(run_dir(tmp_path, "resume") / "backbone.pt")
    assert extra["step"] == last + 4


@pytest.mark.slow
def test_meta_checkpoint_initialises_ns_train_foresplat(small_corpus, small_scene, tmp_path):
    run_cli("ns-train", *meta_args(small_corpus, tmp_path, "meta", 2))
    backbone = run_dir(tmp_path, "meta") / "backbone.pt"
    run_cli(
        "ns-train", "foresplat", "--data", small_scene, "--output-dir", tmp_path, "--timestamp", "init",
        "--max-num-iterations", 2, "--vis", "tensorboard", "--pipeline.backbone.checkpoint", backbone,
    )  # fmt: skip
    assert list(tmp_path.glob("**/init/nerfstudio_models/step-*.ckpt"))


@pytest.mark.slow
def test_checkpoint_of_another_config_is_refused(small_corpus, tmp_path):
    run_cli("ns-train", *meta_args(small_corpus, tmp_path, "narrow", 2))
    proc = ns_train(*meta_args(small_corpus, tmp_path, "wide", 2, "--pipeline.backbone.compact.width", 16,
                               "--pipeline.backbone.checkpoint", run_dir(tmp_path, "narrow") / "backbone.pt"))  # fmt: skip
    assert proc.returncode != 0
    assert "backbone.pt" in proc.stdout + proc.stderr and "width" in proc.stdout + proc.stderr


def test_load_dir_mistakes_are_named(tmp_path):
    from foresplat_ns.nerfstudio_glue.trainer import check_load_dir

    with pytest.raises(ValueError, match=r"--load-dir .*typo does not exist"):
        check_load_dir(tmp_path / "typo")
    run = tmp_path / "run"
    (run / "nerfstudio_models").mkdir(parents=True)
    (run / "backbone.pt").write_bytes(b"")
    with pytest.raises(ValueError, match=r"is a run folder: give its checkpoints, --load-dir .*run/nerfstudio_models"):
        check_load_dir(run)
    with pytest.raises(ValueError, match=r"holds no step-\*\.ckpt checkpoint \(was the run stopped before its first save\?\)"):
        check_load_dir(run / "nerfstudio_models")
    (run / "nerfstudio_models" / "step-000000004.ckpt").write_bytes(b"x")
    check_load_dir(run / "nerfstudio_models")


def test_a_partial_file_left_by_a_kill_mid_save_is_cleared_at_the_next_save(tmp_path):
    from foresplat_ns.nerfstudio_glue.trainer import atomic_torch_save

    models = tmp_path / "run" / "nerfstudio_models"
    models.mkdir(parents=True)
    staging = tmp_path / "run" / ".nerfstudio_models.staging"
    staging.mkdir()
    (staging / "tmpkilled.tmp").write_bytes(b"half a checkpoint")
    atomic_torch_save({"step": 3}, models / "step-000000003.ckpt")
    assert list(staging.iterdir()) == []
    assert torch.load(models / "step-000000003.ckpt")["step"] == 3


def test_a_resumed_run_continues_exactly_where_it_stopped(small_corpus):
    """Checkpoint after 3 steps, rebuild everything, load, 3 more: the same weights as 6 uninterrupted steps
    (the scene, view and inner-loop random streams are saved with the weights)."""
    from nerfstudio.engine.optimizers import Optimizers

    from foresplat_ns.nerfstudio_glue.method_configs import foresplat_meta_trainer_config

    def fresh():
        torch.manual_seed(0)  # as ns-train seeds from --machine.seed: the same initial weights every time
        config = foresplat_meta_trainer_config()
        config.pipeline.datamanager.data = small_corpus
        config.pipeline.datamanager.num_context_views = 2
        config.pipeline.metagrad.inner_steps = 2
        pipeline = config.pipeline.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
        return pipeline, Optimizers(config.optimizers, pipeline.get_param_groups())

    def train(pipeline, optimizers, steps):
        for step in steps:
            _, losses, _ = pipeline.get_train_loss_dict(step)
            optimizers.zero_grad_all()
            losses["surrogate"].backward()
            optimizers.optimizer_step_all()

    whole, whole_opt = fresh()
    train(whole, whole_opt, range(6))
    first, first_opt = fresh()
    train(first, first_opt, range(3))
    saved = {"pipeline": first.state_dict(), "optimizers": {k: o.state_dict() for k, o in first_opt.optimizers.items()}}
    resumed, resumed_opt = fresh()
    resumed.load_pipeline(saved["pipeline"], 2)
    resumed_opt.load_optimizers(saved["optimizers"])
    train(resumed, resumed_opt, range(3, 6))
    for (name, a), b in zip(whole.backbone.state_dict().items(), resumed.backbone.state_dict().values()):
        torch.testing.assert_close(b, a, rtol=0, atol=0, msg=name)


def test_inner_loop_refines_the_sfm_start_beside_the_prediction_where_asked(small_corpus):
    """refine_with_sfm_start: each batch carries splatfacto's start from the scene's SfM points (one Gaussian
    per point, opacity 0.1); off, none."""
    from foresplat_ns.nerfstudio_glue.meta_datamanager import MultiSceneDataManagerConfig

    def batch(**flags):
        config = MultiSceneDataManagerConfig(data=small_corpus, num_context_views=2, **flags)
        return config.setup(device="cpu").next_train(0)

    assert batch().companion is None
    with_start = batch(refine_with_sfm_start=True)
    scene = next(path for path in small_corpus.rglob("sparse_pc.ply") if path.parent.name == with_start.scene)
    num_points = int(next(line for line in scene.read_text(errors="ignore").splitlines() if line.startswith("element vertex")).split()[-1])
    assert with_start.companion.num_gaussians == num_points > 0
    torch.testing.assert_close(with_start.companion.activated_opacities(), torch.full((num_points,), 0.1))
