"""`foresplat-demo` (what `make demo` runs): a generated scene, `ns-train foresplat` on it from ForeSplat's
start and from splatfacto's own start, `ns-eval` of both.

It runs the real commands a user would type, prints them, and ends with both runs' held-out PSNR/SSIM
side by side and where the outputs are. Everything is local: the scene is generated, the backbone
weights ship with the package.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import tyro
from rich.console import Console
from rich.table import Table

from foresplat_ns.gaussians import Gaussians
from foresplat_ns.refine import RefineConfig
from foresplat_ns.start import StartConfig

CONSOLE = Console()


@dataclass
class DemoConfig:
    output: Path = Path("demo")
    """Folder for the scene, the run and the evaluation."""
    resolution: int = 128
    steps: int = 300
    """Refinement steps of each ns-train foresplat run."""
    backbone: str = "compact"
    start: str = StartConfig().start
    """ForeSplat's start for the demo run (ns-train foresplat's default); splatfacto's own start runs beside it."""
    seed: int = 0


def _bin(name: str) -> str:
    """A console script of this environment (next to the running Python), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _run(command: list) -> None:
    CONSOLE.print(f"[bold cyan]$ {shlex.join(command)}")
    subprocess.run(command, check=True)


def learning_rate_flags(refine: RefineConfig) -> list:
    """`ns-train foresplat` flags that set every Gaussian field's learning-rate schedule to `refine`'s."""
    flags = []
    for name in Gaussians.field_names():
        first, last, steps = refine.schedule(name)
        flags += [f"--optimizers.{name}.optimizer.lr", repr(first), f"--optimizers.{name}.scheduler.lr-final", repr(last)]
        flags += [f"--optimizers.{name}.scheduler.max-steps", str(steps)]
    return flags


def train_and_evaluate(config: DemoConfig, scene: Path, start: str) -> dict:
    """`ns-train foresplat` from one start, then `ns-eval` on its held-out views: the metrics. splatfacto's
    start is refined with splatfacto's own learning rates, as `ns-train splatfacto` would refine it."""
    runs = config.output / "outputs"
    _run([
        _bin("ns-train"), "foresplat",
        "--data", str(scene),
        "--output-dir", str(runs),
        "--timestamp", start,
        "--vis", "tensorboard",
        "--max-num-iterations", str(config.steps),
        "--steps-per-eval-all-images", str(config.steps + 1),
        "--pipeline.backbone.name", config.backbone,
        "--pipeline.start.start", start,
        "--machine.seed", str(config.seed),
        *(learning_rate_flags(RefineConfig().as_splatfacto()) if start == "splatfacto" else []),
        "nerfstudio-data", "--eval-mode", "filename",
    ])  # fmt: skip
    run_config = runs / scene.name / "foresplat" / start / "config.yml"
    metrics_file = config.output / f"eval-{start}.json"
    _run([_bin("ns-eval"), "--load-config", str(run_config), "--output-path", str(metrics_file)])
    return {"config": run_config, **json.loads(metrics_file.read_text())["results"]}


def main(config: DemoConfig) -> dict:
    scene = config.output / "scene"
    if not (scene / "transforms.json").is_file():
        _run(
            [
                _bin("foresplat-synth"),
                "--output",
                str(scene),
                "--resolution",
                str(config.resolution),
                "--seed",
                str(config.seed),
                "--overwrite",
            ]
        )
    # ForeSplat's default start and splatfacto's own start (the scene's SfM points), each refined the same
    # number of steps as its own method refines it: what ForeSplat buys on this scene.
    results = {start: train_and_evaluate(config, scene, start) for start in (config.start, "splatfacto")}

    table = Table(title=f"ForeSplat demo: {config.steps} refinement steps, held-out views of {scene}")
    table.add_column("start")
    metrics = [k for k in ("psnr", "ssim", "lpips") if all(k in r for r in results.values())]
    for key in metrics:
        table.add_column(key.upper())
    labels = {config.start: f"ForeSplat ({config.backbone}, {config.start})", "splatfacto": "splatfacto (SfM points, its learning rates)"}
    for start, result in results.items():
        table.add_row(labels[start], *[f"{result[k]:.4f}" for k in metrics])
    CONSOLE.print(table)
    gain = results[config.start]["psnr"] - results["splatfacto"]["psnr"]
    CONSOLE.print(f"ForeSplat vs splatfacto after {config.steps} steps: {gain:+.2f} dB PSNR")
    refine = RefineConfig()
    CONSOLE.print(
        f"ns-train foresplat with no flags uses the start '{StartConfig().start}': on a capture with SfM points (such as "
        "this one) the prediction of the checkpoint made for them, placed at their depth, together with splatfacto's "
        "start; elsewhere the prediction or splatfacto's random start, whichever renders better before any step "
        f"(docs/RESULTS.md says why); refined with splatfacto's learning rates times {refine.learning_rate_scale:g} at "
        f"first, back to splatfacto's by step {refine.learning_rate_scale_steps} (the means' by the last step)"
    )
    CONSOLE.print(f"view it: ns-viewer --load-config {results[config.start]['config']}")
    return results


def entrypoint() -> None:
    main(tyro.cli(DemoConfig))


if __name__ == "__main__":
    entrypoint()
