"""`foresplat-synth`: writes one synthetic scene, or a corpus of them, in nerfstudio format."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional, Sequence

import tyro
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from .config import ConfigError, SceneConfig
from .generate import generate_corpus, generate_scene
from .writer import OutputNotEmptyError, prepare_output_dir

CONSOLE = Console(stderr=True)


@dataclass(frozen=True)
class SynthCommand:
    """Generate textured synthetic scenes (spheres, boxes, ground, walls) in nerfstudio format, plus (unless
    --no-colmap) a COLMAP model with a depth-sampled point cloud for nerfstudio's colmap dataparser.

    With --num-scenes 1 the scene is written directly into --output; with more, into --output/scene_XXXXX,
    followed by --output/index.json.
    """

    output: Path
    """Output directory; it must be empty or absent unless --overwrite is given."""
    scene: Annotated[SceneConfig, tyro.conf.arg(name="")] = SceneConfig()
    num_scenes: int = 1
    """Number of scenes; scene i is seeded from (--seed, i). A single scene uses --seed itself."""
    overwrite: bool = False
    """Write into a non-empty output directory, replacing what an earlier run of this tool wrote there."""


def run(command: SynthCommand) -> None:
    """Generates what `command` asks for, with progress bars on stderr."""
    if command.num_scenes < 1:
        raise ConfigError("--num-scenes must be at least 1")
    prepare_output_dir(command.output, command.overwrite)  # fail before any progress bar is drawn
    started = time.perf_counter()
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=CONSOLE, transient=False) as progress:
        views = progress.add_task("views", total=command.scene.num_views)

        def on_view(index: int) -> None:
            progress.update(views, completed=index + 1)

        if command.num_scenes == 1:
            generate_scene(command.scene, command.output, overwrite=command.overwrite, on_view=on_view)
        else:
            scenes = progress.add_task("scenes", total=command.num_scenes)
            generate_corpus(
                command.scene,
                command.output,
                command.num_scenes,
                overwrite=command.overwrite,
                on_scene=lambda index: progress.update(scenes, completed=index + 1),
                on_view=on_view,
            )
    noun = "scene" if command.num_scenes == 1 else "scenes"
    CONSOLE.print(f"wrote {command.num_scenes} {noun} to {command.output} in {time.perf_counter() - started:.1f} s")


def entrypoint(argv: Optional[Sequence[str]] = None) -> None:
    """Console script; `argv` (without the program name) defaults to the process arguments."""
    try:
        run(tyro.cli(SynthCommand, args=argv))
    except (ConfigError, OutputNotEmptyError) as error:
        CONSOLE.print(f"[bold red]error:[/] {error}")
        raise SystemExit(2) from None


if __name__ == "__main__":
    entrypoint()
