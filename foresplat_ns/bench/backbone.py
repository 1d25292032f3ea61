"""`foresplat-bench backbone`: a backbone checkpoint against the edge budget (parameters, checkpoint size,
CPU latency of one prediction), measured in one run and printed as ratios to the budget.

Latency is the fastest of `repeats` no-grad forward passes (after one warm-up) on context views of a
generated scene: the fastest run is the one least disturbed by other processes on a shared machine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from rich.console import Console
from rich.table import Table

from foresplat_ns.backbones import load_backbone, shipped_checkpoint
from foresplat_ns.backbones.base import ContextViews
from foresplat_ns.synth import SceneConfig, render_views, sample_scene

CONSOLE = Console()


@dataclass
class BackboneBenchConfig:
    checkpoint: Path = shipped_checkpoint("compact")
    """A ForeSplat backbone checkpoint (.pt); default: the shipped compact one."""
    resolutions: Tuple[int, ...] = (128, 256)
    """Square context-view sizes in pixels."""
    num_context_views: int = 4
    repeats: int = 3
    threads: int = 2
    seed: int = 0
    max_parameters: float = 5e6
    max_checkpoint_mb: float = 20.0
    max_seconds: float = 1.0
    """The latency budget, at the first resolution."""
    output: Optional[Path] = None
    """Also write the table here (markdown)."""


def generated_scene(resolution: int, num_views: int, seed: int) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Images [V,H,W,3], intrinsics [V,3,3] and camera-to-world poses [V,4,4] of a generated scene (float32).
    Every view is rendered; the train/eval split only matters when a scene is written, so it is left at one."""
    rendered = render_views(*sample_scene(SceneConfig(seed=seed, resolution=resolution, num_views=num_views, num_eval_views=1)))
    images, c2w = rendered.images.float(), rendered.cameras.camtoworlds.float()
    return images, rendered.cameras.intrinsics.float().expand(len(images), 3, 3), c2w


def prediction_seconds(backbone: torch.nn.Module, context: ContextViews, repeats: int) -> float:
    with torch.no_grad():
        backbone(context)  # warm-up: first-touch allocations, thread pools
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            backbone(context)
            times.append(time.perf_counter() - start)
    return min(times)


def main(config: BackboneBenchConfig) -> Dict[str, float]:
    torch.set_num_threads(config.threads)
    backbone, _ = load_backbone(config.checkpoint)
    backbone.eval()
    row: Dict[str, float] = {
        "parameters": float(sum(p.numel() for p in backbone.parameters())),
        "checkpoint_mb": config.checkpoint.stat().st_size / 1e6,
    }
    budgets: List[Tuple[str, str, float, Optional[float]]] = [
        ("parameters", f"{row['parameters']:,.0f}", row["parameters"], config.max_parameters),
        ("checkpoint (MB)", f"{row['checkpoint_mb']:.2f}", row["checkpoint_mb"], config.max_checkpoint_mb),
    ]
    for i, resolution in enumerate(config.resolutions):
        images, Ks, c2w = generated_scene(resolution, config.num_context_views, config.seed)
        context = ContextViews(images[None], Ks[None], c2w[None])
        seconds = prediction_seconds(backbone, context, config.repeats)
        row[f"seconds_{resolution}"] = seconds
        budget = config.max_seconds if i == 0 else None
        budgets.append((f"{config.num_context_views} views at {resolution}² (s)", f"{seconds:.3f}", seconds, budget))

    title = f"{backbone.config.name} backbone, {config.checkpoint.name} ({config.threads} threads, best of {config.repeats})"
    table = Table(title=title)
    for col in ("measure", "value", "budget", "value / budget"):
        table.add_column(col)
    lines = ["| measure | value | budget | value / budget |", "|---|---|---|---|"]
    for name, shown, value, budget in budgets:
        cells = (name, shown, "—", "—") if budget is None else (name, shown, f"{budget:g}", f"{value / budget:.3f}")
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    CONSOLE.print(table)
    if config.output is not None:
        config.output.parent.mkdir(parents=True, exist_ok=True)
        config.output.write_text(f"{title}\n\n" + "\n".join(lines) + "\n")
    return row
