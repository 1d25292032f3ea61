"""`foresplat-bench metagrad`: what one MetaGrad outer step costs against one zero-step step, and its
peak memory against K, measured in one run.

Peak memory is the largest total of live CPU tensor memory during one outer step, from torch's
profiler (every allocation and free, in order), so it is exact and unaffected by the allocator's
caching or by other processes, unlike resident-set sizes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import torch
from rich.console import Console
from rich.table import Table

from foresplat_ns.backbones.base import ContextViews
from foresplat_ns.backbones.compact import CompactBackboneConfig
from foresplat_ns.bench.backbone import generated_scene
from foresplat_ns.cameras import viewmats_from_camtoworlds
from foresplat_ns.data import evenly_spaced
from foresplat_ns.metagrad import MetaGradConfig, metagrad_step
from foresplat_ns.refine import RefineConfig, View

CONSOLE = Console()


@dataclass
class MetaGradBenchConfig:
    resolution: int = 64
    num_views: int = 12
    num_context_views: int = 4
    inner_steps: Tuple[int, ...] = (0, 4, 8, 16, 32)
    num_anchors: int = 3
    outer_steps: int = 3
    """Timed outer steps per configuration (after one warm-up step)."""
    width: int = 32
    """Compact backbone width."""
    threads: int = 2
    seed: int = 0
    output: Optional[Path] = None
    """Also write the table here (markdown)."""


def peak_tensor_memory(fn) -> int:
    """Bytes: the high-water mark of live CPU tensor memory allocated while `fn()` runs."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    live = peak = 0
    for event in sorted(prof.events(), key=lambda e: e.time_range.start):
        live += event.self_cpu_memory_usage
        peak = max(peak, live)
    return peak


def measure(config: MetaGradBenchConfig, inner_steps: int) -> Dict[str, float]:
    """Seconds per outer step (timed without the profiler), peak tensor memory and the inner losses the
    last outer step evaluated (θ₀..θ_K: the unroll really ran K steps), for one K."""
    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    images, Ks, c2w = generated_scene(config.resolution, config.num_views, config.seed)
    viewmats = viewmats_from_camtoworlds(c2w)
    views = [View(images[i], viewmats[i], Ks[i]) for i in range(len(images))]
    idx = evenly_spaced(config.num_context_views, len(images))
    context = ContextViews(images[idx][None], Ks[idx][None], c2w[idx][None])
    backbone = CompactBackboneConfig(width=config.width).setup()
    rule = MetaGradConfig(inner_steps=inner_steps, num_anchors=config.num_anchors if inner_steps else 1)
    refine = RefineConfig()
    generator = torch.Generator().manual_seed(config.seed)

    losses_seen: List[int] = []

    def outer_step() -> None:
        backbone.zero_grad(set_to_none=True)
        step = metagrad_step(backbone(context)[0], views, refine, rule, generator=generator)
        step.surrogate.backward()
        losses_seen.append(len(step.result.inner_losses))

    outer_step()  # warm-up: first-touch allocations, thread pools
    start = time.perf_counter()
    for _ in range(config.outer_steps):
        outer_step()
    seconds = (time.perf_counter() - start) / config.outer_steps
    peak = peak_tensor_memory(outer_step)
    return {"inner_steps": inner_steps, "seconds": seconds, "peak_mb": peak / 2**20, "inner_losses": losses_seen[-1]}


def main(config: MetaGradBenchConfig) -> Dict[int, Dict[str, float]]:
    rows = {k: measure(config, k) for k in config.inner_steps}
    base = rows.get(0)
    table = Table(
        title=f"MetaGrad outer-step cost ({config.resolution}², {config.num_context_views} context views, M={config.num_anchors})"
    )
    for col in ("rule", "K", "s / outer step", "× zero-step", "peak tensor memory (MB)"):
        table.add_column(col)
    lines = ["| rule | K | s / outer step | × zero-step | peak tensor memory (MB) |", "|---|---|---|---|---|"]
    for k, row in rows.items():
        ratio = f"{row['seconds'] / base['seconds']:.1f}" if base else "—"
        cells = ("zero-step" if k == 0 else "MetaGrad", str(k), f"{row['seconds']:.3f}", ratio, f"{row['peak_mb']:.1f}")
        table.add_row(*cells)
        lines.append("| " + " | ".join(cells) + " |")
    CONSOLE.print(table)
    if config.output is not None:
        config.output.parent.mkdir(parents=True, exist_ok=True)
        config.output.write_text(f"{table.title}\n\n" + "\n".join(lines) + "\n")
    return rows
