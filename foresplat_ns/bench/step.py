"""`foresplat-bench step`: one refinement step, phase by phase, for both sets of CPU kernels.

The step is `Refiner.train_step` from the shipped compact backbone's prediction on a generated scene
(densification on, as `ns-train foresplat` runs), taken apart into render forward (projection, tiling,
compositing; the argument checks counted under validation), loss, backward, Adam, the densification
strategy's hooks, and validation (the rasteriser's argument checks and the refiner's finiteness checks).
Each image size and thread count times the compiled kernels (projection, SH colours, compositor, SSIM) and the PyTorch
ones in the same run, so the ratios printed compare like with like; the median over the timed steps is
reported. `--sh-degree` times the steps a refinement takes later on, rendering its higher SH bands.
"""

from __future__ import annotations

import dataclasses
import os
import statistics
import tempfile
import time
from collections import defaultdict
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Tuple

import torch

PHASES = ("render", "loss", "backward", "adam", "strategy", "validation")


@dataclass
class StepBenchConfig:
    """Which sizes and thread counts to time, and how."""

    sizes: Tuple[int, ...] = (64, 128, 256)
    """Square image sizes of the generated scene, in pixels."""
    threads: Tuple[int, ...] = (1, 2)
    """torch.set_num_threads values (the compiled kernels follow them)."""
    steps: int = 30
    """Timed refinement steps per configuration (after `warmup` untimed ones), the configurations taking turns
    step by step; the median is reported."""
    warmup: int = 5
    """Untimed steps first: the kernels' first-call set-up and the allocator's warm-up."""
    seed: int = 0
    sh_degree: int = 0
    """SH degree the timed steps render: 0 as a refinement's first 500 steps (and MetaGrad's inner loops) do,
    1-3 as its later ones (reached within the warm-up steps; nothing else about the steps changes)."""
    output: Optional[Path] = Path("bench-step.json")
    """Where to write the rows as JSON (None: nowhere)."""


class PhaseTimer:
    """Seconds per phase of the current step."""

    def __init__(self):
        self.seconds: Dict[str, float] = defaultdict(float)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] += time.perf_counter() - start


@contextmanager
def _timed_validation(timer: PhaseTimer) -> Iterator[None]:
    """Count the rasteriser's argument checks as validation (they run inside the render phase)."""
    from foresplat_ns.render import rasterize

    checks = rasterize.validate_rasterization_inputs

    def timed(*args, **kwargs):
        start = time.perf_counter()
        try:
            return checks(*args, **kwargs)
        finally:
            elapsed = time.perf_counter() - start
            timer.seconds["validation"] += elapsed
            timer.seconds["render"] -= elapsed

    rasterize.validate_rasterization_inputs = timed
    try:
        yield
    finally:
        rasterize.validate_rasterization_inputs = checks


def timed_step(refiner, view, timer: PhaseTimer) -> None:
    """`Refiner.train_step` itself, each of its phases timed through the refiner's `phase` hook."""
    untimed, refiner.phase = refiner.phase, timer.phase
    try:
        with _timed_validation(timer):
            refiner.train_step(view)
    finally:
        refiner.phase = untimed


def prediction_workload(size: int, seed: int, folder: Path):
    """The shipped compact backbone's prediction on a generated `size`² scene and the scene's training views.

    The backbone predicts from images and cameras alone, at the scene's size, as in every timing in
    docs/RESULTS.md. At the SfM points' depth, blocks filled from one neighbour share a depth exactly, and
    two correct rasterisers whose projections differ by an ulp composite such ties in different orders:
    their colours then differ by ~1% (measured: 9e-3 mean, back to 4e-8 with 1e-4 relative jitter on the
    means), which would hide a real disagreement in `scripts/gpu_check.py`'s comparison."""
    from foresplat_ns.backbones import load_backbone, shipped_checkpoint
    from foresplat_ns.data import load_scene
    from foresplat_ns.refine import RefineConfig
    from foresplat_ns.start import StartConfig, initial_gaussians
    from foresplat_ns.synth import SceneConfig, generate_scene

    scene = folder / f"scene-{size}"
    if not (scene / "transforms.json").is_file():
        generate_scene(SceneConfig(seed=seed, resolution=size), scene, overwrite=True)
    train, _ = load_scene(scene)
    backbone, _ = load_backbone(shipped_checkpoint("compact"))
    config = StartConfig(seed=seed, backbone_sees_sfm_points=False, context_max_side=size)
    start = initial_gaussians(train, backbone, config, RefineConfig(), start="prediction")
    return start.gaussians, train.views()


def time_configurations(
    gaussians, views, configurations: List[Tuple[str, int]], steps: int, warmup: int, seed: int, sh_degree: int = 0
) -> List[Dict[str, float]]:
    """Median milliseconds per phase (and in all) of each (kernels, threads) configuration over `steps` seeded,
    densifying refinement steps after `warmup` untimed ones.

    The configurations take turns, one step each per round, each on a refiner of its own: a VM whose speed
    drifts during the run (neighbours, clocks) then weighs on every configuration alike, where timing them
    one after another put the drift into their ratios (on this project's VM the same code's 2-vs-1-thread
    ratio read 1.07x in one such run and 1.56x in another)."""
    from rich.progress import track

    from foresplat_ns.refine import RefineConfig, Refiner
    from foresplat_ns.render.rasterize import use_cpu_kernels

    if not 0 <= sh_degree <= min(warmup, gaussians.sh_degree):
        raise ValueError(
            f"--sh-degree {sh_degree}: the prediction has degree {gaussians.sh_degree}, reached after one warm-up step per degree"
        )
    refine = dataclasses.replace(RefineConfig(), sh_degree=sh_degree, sh_degree_interval=1)  # one degree more each step
    threads_before = torch.get_num_threads()
    refiners = []
    for _ in configurations:
        torch.manual_seed(seed)
        generator = torch.Generator().manual_seed(seed)
        refiners.append(Refiner(gaussians, refine, len(views), densify=True, generator=generator))
    per_step: List[List[Dict[str, float]]] = [[] for _ in configurations]
    try:
        for step in track(range(warmup + steps), description="timing steps in turn", transient=True):
            for (kernels, threads), refiner, timings in zip(configurations, refiners, per_step):
                torch.set_num_threads(threads)
                with use_cpu_kernels(kernels):
                    timer = PhaseTimer()
                    began = time.perf_counter()
                    timed_step(refiner, views[step % len(views)], timer)
                    timer.seconds["total"] = time.perf_counter() - began
                if step >= warmup:
                    timings.append(dict(timer.seconds))
    finally:
        torch.set_num_threads(threads_before)
    return [{name: statistics.median(s.get(name, 0.0) for s in timings) * 1e3 for name in (*PHASES, "total")} for timings in per_step]


def run_step_bench(config: StepBenchConfig) -> List[Dict]:
    """Time every size x threads x kernels, print the table and the ratios, return the rows."""
    from rich.console import Console
    from rich.table import Table

    from foresplat_ns.atomic import write_json_atomic
    from foresplat_ns.render.rasterize import CPU_KERNELS

    console = Console()
    if not console.is_terminal:
        console = Console(width=160)
    console.print(
        f"refinement step benchmark: {os.cpu_count()} CPUs, median of {config.steps} steps after {config.warmup}, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for size in config.sizes:
            gaussians, views = prediction_workload(size, config.seed, Path(folder))
            configurations = [(kernels, threads) for threads in config.threads for kernels in CPU_KERNELS]
            timed = time_configurations(gaussians, views, configurations, config.steps, config.warmup, config.seed, config.sh_degree)
            for (kernels, threads), ms in zip(configurations, timed):
                rows.append({"size": size, "threads": threads, "kernels": kernels, "gaussians": gaussians.num_gaussians, **ms})
            done = ", ".join(f"{kernels} x{threads} {ms['total']:.1f} ms" for (kernels, threads), ms in zip(configurations, timed))
            console.print(f"  done {size}x{size}: {done}")

    table = Table(title=f"one refinement step from the shipped prediction at SH degree {config.sh_degree}, ms (median)")
    for column in ("image", "threads", "kernels", *PHASES, "total", "speed-up", "2 vs 1 thread"):
        table.add_column(column, justify="right")
    by_key = {(r["size"], r["threads"], r["kernels"]): r for r in rows}
    for row in rows:
        torch_row = by_key.get((row["size"], row["threads"], "torch"))
        single = by_key.get((row["size"], 1, row["kernels"]))
        row["speedup_vs_torch"] = torch_row["total"] / row["total"] if torch_row else None
        row["threads_speedup"] = single["total"] / row["total"] if single and row["threads"] != 1 else None
        table.add_row(
            f"{row['size']}x{row['size']}",
            str(row["threads"]),
            row["kernels"],
            *(f"{row[phase]:.1f}" for phase in PHASES),
            f"{row['total']:.1f}",
            f"{row['speedup_vs_torch']:.2f}x" if row["speedup_vs_torch"] else "-",
            f"{row['threads_speedup']:.2f}x" if row["threads_speedup"] else "-",
        )
    console.print(table)
    ceiling = machine_thread_scaling(config.threads)
    for threads, ratio in ceiling.items():
        console.print(
            f"the machine's own ceiling: a float32 matmul runs {ratio:.2f}x faster on {threads} threads than on 1 "
            "(compute-bound and perfectly parallel; '2 vs 1 thread' above can at most reach it)"
        )
    console.print(f"load average at end {os.getloadavg()[0]:.2f} (timings on a shared machine vary with it)")
    if config.output is not None:
        settings = {k: str(v) for k, v in vars(config).items()}
        write_json_atomic(config.output, {"config": settings, "rows": rows, "matmul_thread_scaling": ceiling})
        console.print(f"wrote {config.output}")
    return rows


def machine_thread_scaling(threads: Tuple[int, ...]) -> Dict[int, float]:
    """Per thread count above 1 (given 1 among `threads`): the speed-up of a matmul over one thread, measured
    now. A VM's vCPUs may be hyperthreads of one core or throttled, which no kernel of ours can outrun."""
    from foresplat_ns.bench.raster import measure_peak_flops

    if 1 not in threads:
        return {}
    before = torch.get_num_threads()
    try:
        single = measure_peak_flops(1)
        return {n: measure_peak_flops(n) / single for n in sorted(set(threads)) if n > 1}
    finally:
        torch.set_num_threads(before)


def main(config: StepBenchConfig) -> None:
    run_step_bench(config)
