"""`foresplat-distill`: the compact backbone learns a tiny random-weight AnySplat's renders on generated
scenes, resumes exactly where a killed run stopped, and writes a checkpoint both ns-train methods take."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from conftest import console_script
from test_anysplat import tiny_config

from foresplat_ns.backbones import BackboneSelection, build_backbone, load_backbone, save_checkpoint
from foresplat_ns.backbones.compact import CompactBackbone, CompactBackboneConfig
from foresplat_ns.distill import RESUME_FILE, STUDENT_FILE, DistillConfig, distill
from foresplat_ns.nerfstudio_glue.meta_datamanager import MultiSceneDataManagerConfig

STUDENT = CompactBackboneConfig(width=8, num_depth_planes=8)
pytestmark = pytest.mark.filterwarnings("ignore:anysplat backbone. its predicted cameras fit the dataset's poses loosely")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """Two 28x28 generated scenes (5 views, 1 held out) and a tiny AnySplat teacher in our checkpoint format."""
    from foresplat_ns.synth import SceneConfig, generate_corpus

    root = tmp_path_factory.mktemp("distill")
    generate_corpus(SceneConfig(seed=3, resolution=28, num_views=5, num_eval_views=1), root / "scenes", num_scenes=2)
    torch.manual_seed(0)
    save_checkpoint(root / "teacher.pt", tiny_config(image_size=28).setup())
    return root


def config(corpus: Path, output: Path, **overrides) -> DistillConfig:
    settings = dict(
        data=corpus / "scenes",
        output=output,
        teacher=BackboneSelection(name="anysplat", checkpoint=corpus / "teacher.pt"),
        student=BackboneSelection(compact=STUDENT),
        lr=1e-2,
        views_per_step=4,
    )
    return DistillConfig(**{**settings, **overrides})


def test_the_student_learns_the_teachers_renders(corpus, tmp_path):
    # A random-weight teacher's cameras fit some scenes' poses and not others (those steps are skipped,
    # as a real teacher's failures would be); this scene fits for every context.
    (corpus / "fits.txt").write_text("scenes/scene_00001\n")
    history = distill(config(corpus, tmp_path / "run", data=corpus / "fits.txt", steps=20, save_every=20))
    assert len(history) == 20
    first, last = history[:5], history[-5:]
    mean = lambda rows, key: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    assert mean(last, "loss") < 0.8 * mean(first, "loss")
    assert mean(last, "depth") < 0.6 * mean(first, "depth") and mean(last, "opacity") < mean(first, "opacity")


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(corpus, tmp_path):
    straight = distill(config(corpus, tmp_path / "straight", steps=6, save_every=3))
    distill(config(corpus, tmp_path / "killed", steps=4, save_every=2))
    resumed = distill(config(corpus, tmp_path / "killed", steps=6, save_every=2))
    assert all(row["step"] > 4 for row in resumed)
    assert [row["loss"] for row in straight if row["step"] > 4] == pytest.approx([row["loss"] for row in resumed], abs=1e-6)
    a, _ = load_backbone(tmp_path / "straight" / STUDENT_FILE)
    b, extra = load_backbone(tmp_path / "killed" / STUDENT_FILE)
    assert (
        extra["step"] == 6
        and extra["teacher"] == "anysplat"
        and extra["image_side"] == 28
        and (tmp_path / "killed" / RESUME_FILE).is_file()
    )
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        torch.testing.assert_close(q, p, msg=name)


def test_the_checkpoint_is_what_both_ns_train_methods_take(corpus, tmp_path):
    """`--pipeline.backbone.checkpoint student.pt` (ns-train foresplat and foresplat-meta, one rule): the
    checkpoint's own settings without repeating them, and settings that contradict it refused."""
    distill(config(corpus, tmp_path, steps=2, datamanager=MultiSceneDataManagerConfig(num_context_views=3)))
    path = tmp_path / STUDENT_FILE
    for without_checkpoint in ("shipped", "fresh"):
        loaded = build_backbone(BackboneSelection(checkpoint=path), without_checkpoint)
        assert isinstance(loaded, CompactBackbone) and loaded.config == STUDENT
    assert build_backbone(BackboneSelection(checkpoint=path, compact=STUDENT)).config == STUDENT
    with pytest.raises(ValueError, match="width: checkpoint 8 vs asked 16"):
        build_backbone(BackboneSelection(checkpoint=path, compact=CompactBackboneConfig(width=16)))


@pytest.mark.slow
def test_the_console_script_rejects_bad_settings_with_a_message(corpus, tmp_path):
    proc = subprocess.run(
        [console_script("foresplat-distill"), "--data", str(corpus / "scenes"), "--output", str(tmp_path), "--steps", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--steps must be positive" in proc.stderr
