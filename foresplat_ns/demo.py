"""`foresplat-demo` (what `make demo` runs): a generated scene, `ns-train foresplat` on it, `ns-eval`.

It runs the real commands a user would type, prints them, and ends with PSNR/SSIM and where the
outputs are. Everything is local: the scene is generated, the backbone weights ship with the package.
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

CONSOLE = Console()


@dataclass
class DemoConfig:
    output: Path = Path("demo")
    """Folder for the scene, the run and the evaluation."""
    resolution: int = 128
    steps: int = 500
    """Refinement steps of ns-train foresplat."""
    backbone: str = "compact"
    seed: int = 0


def _bin(name: str) -> str:
    """A console script of this environment (next to the running Python), else from PATH."""
    local = Path(sys.executable).parent / name
    return str(local) if local.exists() else name


def _run(command: list) -> None:
    CONSOLE.print(f"[bold cyan]$ {shlex.join(command)}")
    subprocess.run(command, check=True)


def main(config: DemoConfig) -> dict:
    scene = config.output / "scene"
    if not (scene / "transforms.json").is_file():
        _run([_bin("foresplat-synth"), "--output", str(scene), "--resolution", str(config.resolution), "--seed", str(config.seed), "--overwrite"])
    runs = config.output / "outputs"
    _run([
        _bin("ns-train"), "foresplat",
        "--data", str(scene),
        "--output-dir", str(runs),
        "--timestamp", "demo",
        "--vis", "tensorboard",
        "--max-num-iterations", str(config.steps),
        "--steps-per-eval-all-images", str(config.steps + 1),
        "--pipeline.backbone", config.backbone,
        "--machine.seed", str(config.seed),
        "nerfstudio-data", "--eval-mode", "filename",
    ])  # fmt: skip
    run_config = runs / scene.name / "foresplat" / "demo" / "config.yml"
    metrics_file = config.output / "eval.json"
    _run([_bin("ns-eval"), "--load-config", str(run_config), "--output-path", str(metrics_file)])
    results = json.loads(metrics_file.read_text())["results"]

    table = Table(title=f"ForeSplat demo: {config.backbone} init + {config.steps} refinement steps, eval views")
    for key in ("psnr", "ssim", "lpips"):
        if key in results:
            table.add_column(key.upper())
    table.add_row(*[f"{results[k]:.4f}" for k in ("psnr", "ssim", "lpips") if k in results])
    CONSOLE.print(table)
    CONSOLE.print(f"scene: {scene}\nrun: {run_config.parent}\nmetrics: {metrics_file}")
    CONSOLE.print(f"view it: ns-viewer --load-config {run_config}")
    return results


def entrypoint() -> None:
    main(tyro.cli(DemoConfig))


if __name__ == "__main__":
    entrypoint()
