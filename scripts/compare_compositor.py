"""This checkout's compiled compositor against another git revision's, in one process (run by hand).

Timings on a shared 2-core machine drift by a third between runs minutes apart, more than most kernel
changes are worth, so comparing two `foresplat-bench` runs misleads. Here the other revision's
`foresplat_ns/render/composite_kernel.py` is loaded beside ours (under another module name; numba caches
this script's kernels in a folder of the system's temporary directory) and the two are called alternately
on the same inputs: drift hits both
alike, and the printed ratios (this checkout / REV) are measured in one run. Only the compositor comes
from REV: projection, tiling and the rest are this checkout's.

- compositor: `foresplat-bench raster`'s workloads (the shipped backbone's prediction on a generated
  scene, and after 500 refinement steps; cached in --cache), forward and backward alternately, medians;
  the largest relative difference of images and gradients;
- step (--steps N > 0): two `Refiner`s from the same prediction and seed, one step of each in turn
  (densification on), medians of the step time.

    .venv/bin/python scripts/compare_compositor.py --against 64a60ea --threads 2 --sizes 128 256 --steps 60
"""

from __future__ import annotations

import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Tuple

import torch
import tyro

KERNEL = "foresplat_ns/render/composite_kernel.py"
ROOT = Path(__file__).resolve().parent.parent
CACHE = Path(tempfile.gettempdir()) / "foresplat-compare-compositor"
os.environ.setdefault("NUMBA_CACHE_DIR", str(CACHE))  # read when numba is first imported, below


@dataclass
class CompareConfig:
    against: str
    """The git revision whose compositor is compared with this checkout's."""
    threads: int = 2
    sizes: Tuple[int, ...] = (128,)
    repeats: int = 40
    """Forward+backward pairs per compositor and workload (after one warm-up)."""
    steps: int = 0
    """Refinement steps per compositor at each size (0: no step comparison)."""
    cache: Path = Path("bench-raster-cache")
    seed: int = 0


def load_revision_kernel(revision: str, folder: Path):
    """REV's composite_kernel.py, written into `folder`, as module foresplat_ns.render.composite_kernel_rev
    (its relative imports resolve to this checkout's render package)."""
    source = subprocess.run(["git", "show", f"{revision}:{KERNEL}"], cwd=ROOT, check=True, capture_output=True, text=True).stdout
    path = folder / "composite_kernel_rev.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("foresplat_ns.render.composite_kernel_rev", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def compare_compositors(path: Path, ours: Callable, theirs: Callable, repeats: int) -> Dict[str, float]:
    from foresplat_ns.bench.raster import load_workload

    inputs, _, _ = load_workload(path)
    generator = torch.Generator().manual_seed(0)
    shape = (1, inputs.height, inputs.width)
    upstream = (torch.randn(*shape, 3, generator=generator), torch.randn(*shape, 1, generator=generator))
    seconds: Dict[str, List[Tuple[float, float]]] = {"ours": [], "theirs": []}
    results = {}
    for repeat in range(repeats + 1):
        for name, composite in (("ours", ours), ("theirs", theirs)):
            inputs.zero_grad()
            start = time.perf_counter()
            outputs = composite(*inputs.tensors, None, inputs.layout, inputs.width, inputs.height, True)
            middle = time.perf_counter()
            torch.autograd.backward(outputs, upstream)
            if repeat:
                seconds[name].append((middle - start, time.perf_counter() - middle))
            else:
                results[name] = [t.detach() for t in outputs] + [t.grad for t in inputs.tensors] + [inputs.tensors[0].absgrad]
    forward = {name: statistics.median(f for f, _ in rows) for name, rows in seconds.items()}
    backward = {name: statistics.median(b for _, b in rows) for name, rows in seconds.items()}
    difference = max(float((a - b).abs().max() / b.abs().max().clamp_min(1e-30)) for a, b in zip(results["ours"], results["theirs"]))
    return {
        "forward_ms": (forward["ours"] * 1e3, forward["theirs"] * 1e3),
        "backward_ms": (backward["ours"] * 1e3, backward["theirs"] * 1e3),
        "total_ratio": (forward["ours"] + backward["ours"]) / (forward["theirs"] + backward["theirs"]),
        "max_relative_difference": difference,
    }


def compare_steps(size: int, seed: int, cache: Path, steps: int, ours: Callable, theirs: Callable) -> Tuple[float, float]:
    """Median seconds of a refinement step with our compositor and with theirs, stepped in turn."""
    from foresplat_ns.bench.step import prediction_workload
    from foresplat_ns.refine import RefineConfig, Refiner
    from foresplat_ns.render import rasterize

    gaussians, views = prediction_workload(size, seed, cache / "scenes")
    refiners, seconds = {}, {"ours": [], "theirs": []}
    for name in seconds:
        torch.manual_seed(seed)
        refiners[name] = Refiner(gaussians, RefineConfig(), len(views), densify=True, generator=torch.Generator().manual_seed(seed))
    original = rasterize.composite_compiled
    try:
        for step in range(steps + 5):
            for name, composite in (("ours", ours), ("theirs", theirs)):
                rasterize.composite_compiled = composite
                torch.manual_seed(seed + step)  # the strategy's draws, alike for both
                start = time.perf_counter()
                refiners[name].train_step(views[step % len(views)])
                if step >= 5:
                    seconds[name].append(time.perf_counter() - start)
    finally:
        rasterize.composite_compiled = original
    return statistics.median(seconds["ours"]), statistics.median(seconds["theirs"])


def main(config: CompareConfig) -> None:
    from rich.console import Console

    from foresplat_ns.bench.raster import prepare_workload
    from foresplat_ns.render.composite_kernel import composite_compiled

    console = Console()
    torch.set_num_threads(config.threads)
    CACHE.mkdir(parents=True, exist_ok=True)
    theirs = load_revision_kernel(config.against, CACHE).composite_compiled
    for size in config.sizes:
        for kind in ("predicted", "refined"):
            path = prepare_workload(kind, size, config.seed, 500, config.threads, config.cache, console)
            row = compare_compositors(path, composite_compiled, theirs, config.repeats)
            (f_ours, f_theirs), (b_ours, b_theirs) = row["forward_ms"], row["backward_ms"]
            console.print(
                f"{kind} {size}², {config.threads} thread(s): forward {f_ours:.2f} vs {f_theirs:.2f} ms, backward {b_ours:.2f} "
                f"vs {b_theirs:.2f} ms (medians, this checkout vs {config.against}); forward+backward ratio "
                f"{row['total_ratio']:.3f}; largest relative difference {row['max_relative_difference']:.1e}"
            )
        if config.steps:
            ours_s, theirs_s = compare_steps(size, config.seed, config.cache, config.steps, composite_compiled, theirs)
            console.print(
                f"refinement step {size}², {config.threads} thread(s): {ours_s * 1e3:.1f} vs {theirs_s * 1e3:.1f} ms "
                f"(medians of {config.steps}), ratio {ours_s / theirs_s:.3f}"
            )


if __name__ == "__main__":
    main(tyro.cli(CompareConfig))
