"""Shared fixtures: small generated scenes (made once per session) and helpers to run console scripts."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

torch.set_num_threads(2)
REPO = Path(__file__).resolve().parent.parent
LEGO = REPO / "tests" / "data" / "lego_test"


def console_script(name: str) -> str:
    """A console script of the running environment (next to its python)."""
    path = Path(sys.executable).parent / name
    if not path.exists():
        raise FileNotFoundError(f"{name} is not installed next to {sys.executable}; run `make test` (pip install -e .)")
    return str(path)


def run_cli(name: str, *args, cwd=None, timeout: int = 600) -> subprocess.CompletedProcess:
    """Run a console script; on failure show its output in the assertion."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run([console_script(name), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, (
        f"{name} {' '.join(map(str, args))} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
    )
    return proc


@pytest.fixture(scope="session")
def small_scene(tmp_path_factory) -> Path:
    """A 48x48 generated scene with 12 views (3 held out) and depth maps."""
    from foresplat_ns.synth import SceneConfig, generate_scene

    root = tmp_path_factory.mktemp("scene")
    generate_scene(SceneConfig(seed=5, resolution=48, num_views=12, num_eval_views=3), root / "scene")
    return root / "scene"


def without_point_file(scene: Path, dest: Path) -> Path:
    """A copy of a generated scene whose transforms.json lists no SfM point file and whose .ply is gone, as
    a capture without points (or an older ns-process-data's, beside its COLMAP model) has it."""
    import json
    import shutil

    shutil.copytree(scene, dest)
    meta = json.loads((dest / "transforms.json").read_text())
    (dest / meta.pop("ply_file_path")).unlink()
    (dest / "transforms.json").write_text(json.dumps(meta))
    return dest


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    """Four 32x32 generated scenes with 10 views each, for multi-scene (foresplat-meta) tests."""
    from foresplat_ns.synth import SceneConfig, generate_corpus

    root = tmp_path_factory.mktemp("corpus") / "scenes"
    generate_corpus(SceneConfig(seed=11, resolution=32, num_views=10, num_eval_views=2), root, num_scenes=4)
    return root


@pytest.fixture
def single_thread():
    """Tiny inputs: one thread is as fast and spares thread-pool wake-ups when another process keeps the
    other core busy (modules opt in with `pytestmark = pytest.mark.usefixtures("single_thread")`)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def register_fixed_backbone(name: str, gaussians):
    """Register (under `name`) a backbone that ignores its input and predicts `gaussians`: a stand-in for a
    bad or useless prediction. Returns its config class."""
    from dataclasses import dataclass

    from foresplat_ns.backbones.base import Backbone, BackboneConfig, register_backbone

    class Fixed(Backbone):
        def __init__(self, config):
            super().__init__()
            self.config = config

        def head_parameter_names(self):
            return ()

        def forward(self, context):
            return gaussians

    config_class = dataclass(type(f"Fixed{name.title()}Config", (BackboneConfig,), {"name": name, "setup": lambda self: Fixed(self)}))
    return register_backbone(config_class)


def meta_train_in_process(backbone, corpus: Path, steps: int, trainable: str = "auto"):
    """`ns-train foresplat-meta`'s pipeline and optimisers on the BackboneSelection `backbone`, stepped here
    (for backbones a console script can't build, such as test-sized large models): returns the pipeline and
    the last step's metrics."""
    from nerfstudio.engine.optimizers import Optimizers

    from foresplat_ns.nerfstudio_glue.method_configs import foresplat_meta_trainer_config

    config = foresplat_meta_trainer_config()
    config.pipeline.backbone = backbone
    config.pipeline.model.trainable = trainable
    config.pipeline.datamanager.data = corpus
    config.pipeline.datamanager.num_context_views = 2
    config.pipeline.metagrad.inner_steps = 2
    pipeline = config.pipeline.setup(device="cpu", test_mode="val", world_size=1, local_rank=0)
    optimizers = Optimizers(config.optimizers, pipeline.get_param_groups())
    metrics = {}
    for step in range(steps):
        _, losses, metrics = pipeline.get_train_loss_dict(step)
        optimizers.zero_grad_all()
        losses["surrogate"].backward()
        optimizers.optimizer_step_all()
    return pipeline, metrics
