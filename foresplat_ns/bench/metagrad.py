"""`foresplat-bench metagrad`: what one MetaGrad outer step costs against one zero-step step, and its
peak memory against K, measured in one run.

Each configuration runs in a fresh process so its peak resident memory is its own: the number reported
is the rise of the peak RSS during the timed outer steps over the RSS just before them (glibc returns
large tensors to the system on free, so the rise follows the largest live working set).
"""

from __future__ import annotations

import multiprocessing as mp
import resource
import time
from dataclasses import dataclass
from typing import Dict, Tuple

import torch
from rich.console import Console
from rich.table import Table

from foresplat_ns.backbones.compact import CompactBackboneConfig
from foresplat_ns.data import evenly_spaced
from foresplat_ns.metagrad import MetaGradConfig, metagrad_step
from foresplat_ns.refine import RefineConfig

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


def _current_rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def measure(config: MetaGradBenchConfig, inner_steps: int, queue=None) -> Dict[str, float]:
    """Seconds per outer step and the peak-RSS rise, for one K; meant to run in its own process."""
    from foresplat_ns.synth import SceneConfig, render_views, sample_scene
    from foresplat_ns.cameras import viewmats_from_camtoworlds
    from foresplat_ns.backbones.base import ContextViews
    from foresplat_ns.refine import View

    torch.set_num_threads(config.threads)
    torch.manual_seed(config.seed)
    rendered = render_views(*sample_scene(SceneConfig(seed=config.seed, resolution=config.resolution, num_views=config.num_views)))
    images, c2w = rendered.images.float(), rendered.cameras.camtoworlds.float()
    Ks = rendered.cameras.intrinsics.float().expand(len(images), 3, 3)
    viewmats = viewmats_from_camtoworlds(c2w)
    views = [View(images[i], viewmats[i], Ks[i]) for i in range(len(images))]
    idx = evenly_spaced(config.num_context_views, len(images))
    context = ContextViews(images[idx][None], Ks[idx][None], c2w[idx][None])
    backbone = CompactBackboneConfig(width=config.width).setup()
    rule = MetaGradConfig(inner_steps=inner_steps, num_anchors=config.num_anchors if inner_steps else 1)
    refine = RefineConfig()
    generator = torch.Generator().manual_seed(config.seed)

    def outer_step(k: int) -> None:
        backbone.zero_grad(set_to_none=True)
        prediction = backbone(context)[0]
        step = metagrad_step(prediction, views, refine, rule if k else MetaGradConfig(inner_steps=0), generator=generator)
        step.surrogate.backward()

    outer_step(inner_steps)  # warm-up: first-touch allocations, thread pools
    baseline = _current_rss_bytes()
    start = time.perf_counter()
    for _ in range(config.outer_steps):
        outer_step(inner_steps)
    seconds = (time.perf_counter() - start) / config.outer_steps
    peak_rise = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - baseline
    result = {"inner_steps": inner_steps, "seconds": seconds, "peak_rise_mb": max(peak_rise, 0) / 2**20}
    if queue is not None:
        queue.put(result)
    return result


def measure_in_fresh_process(config: MetaGradBenchConfig, inner_steps: int) -> Dict[str, float]:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=measure, args=(config, inner_steps, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main(config: MetaGradBenchConfig) -> Dict[int, Dict[str, float]]:
    rows = {k: measure_in_fresh_process(config, k) for k in config.inner_steps}
    base = rows.get(0)
    table = Table(title=f"MetaGrad outer-step cost ({config.resolution}², {config.num_context_views} context views, M={config.num_anchors})")
    for col in ("rule", "K", "s / outer step", "× zero-step", "peak RSS rise (MB)"):
        table.add_column(col)
    for k, row in rows.items():
        ratio = f"{row['seconds'] / base['seconds']:.1f}" if base else "—"
        table.add_row("zero-step" if k == 0 else "MetaGrad", str(k), f"{row['seconds']:.3f}", ratio, f"{row['peak_rise_mb']:.1f}")
    CONSOLE.print(table)
    return rows
