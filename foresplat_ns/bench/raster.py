"""`foresplat-bench raster`: the CPU tile rasteriser against the dense brute-force compositor.

Each configuration (image size x Gaussian count) renders the same seeded scene, a world-space cloud of
Gaussians filling a camera's view frustum, in fresh spawned processes (one for the tiled path, one for
the dense one), so peak memory is that of the configuration alone: it is the resident-set high-water
mark above the process's resident set once the scene is built (after a tiny render has paid for the
libraries' lazy initialisation). The dense reference is timed over the whole image when that would take
at most `dense_budget_s`, otherwise over rows through the middle of the image and scaled linearly to the
full height (marked "extrapolated").
"""

from __future__ import annotations

import gc
import math
import os
import resource
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from typing import Dict, List, Tuple

import torch

FOV_DEGREES = 60.0
DENSE_BAND_PAIRS = 1 << 23  # pixel-Gaussian pairs per dense band: ~150 MiB of autograd graph in float32
REFERENCE_SIZE = 128  # screen radii of the scene are 1-8 px at this image size


@dataclass
class RasterBenchConfig:
    """Which configurations to time, and how."""

    sizes: Tuple[int, ...] = (64, 128, 256)
    """Square image sizes in pixels."""
    counts: Tuple[int, ...] = (5000, 20000, 100000)
    """Numbers of Gaussians."""
    repeats: int = 5
    """Timed runs per configuration (after one warm-up); the table shows the fastest, the least disturbed
    by other processes on a shared machine (the returned rows also hold the medians)."""
    seed: int = 0
    dense: bool = True
    """Also time the dense brute-force compositor on the same scene."""
    dense_budget_s: float = 60.0
    """Longest full-image dense run; beyond it the dense time is extrapolated from a band of rows."""
    threads: int = 2
    """torch.set_num_threads in the benchmark processes."""
    absgrad: bool = False
    """Also accumulate AbsGS gradients in the backward pass, as splatfacto's use_absgrad does."""


def make_bench_scene(count: int, size: int, seed: int = 0, dtype: torch.dtype = torch.float32) -> Dict[str, torch.Tensor]:
    """A seeded scene seen by one pinhole camera (60 degree field of view) at `size` x `size` pixels.

    Gaussians fill the camera's frustum between depths 2 and 10 uniformly by volume (10% spill outside
    the image sideways), with anisotropic world scales chosen so their 3-sigma screen radii are 1-8 px at
    128 px (the same scene at another size scales them), random orientations, opacities 0.1-0.9 and RGB
    colours. The scene itself does not depend on `size`, only the camera's intrinsics do.
    """
    g = torch.Generator().manual_seed(seed)
    tan_half = math.tan(math.radians(FOV_DEGREES) / 2)
    depth = (2.0**3 + (10.0**3 - 2.0**3) * torch.rand(count, generator=g)) ** (1 / 3)
    lateral = (torch.rand(count, 2, generator=g) * 2 - 1) * 1.1 * tan_half * depth[:, None]
    means = torch.cat([lateral, depth[:, None]], dim=-1)
    reference_focal = REFERENCE_SIZE / (2 * tan_half)
    radius_px = 1 + 7 * torch.rand(count, generator=g)
    sigma = radius_px / 3 * depth / reference_focal
    scales = sigma[:, None] * (0.5 + torch.rand(count, 3, generator=g))
    focal = size / (2 * tan_half)
    return {
        "means": means.to(dtype),
        "quats": torch.randn(count, 4, generator=g).to(dtype),
        "scales": scales.to(dtype),
        "opacities": (0.1 + 0.8 * torch.rand(count, generator=g)).to(dtype),
        "colors": torch.rand(count, 3, generator=g).to(dtype),
        "viewmats": torch.eye(4, dtype=dtype)[None],
        "Ks": torch.tensor([[[focal, 0, size / 2], [0, focal, size / 2], [0, 0, 1]]], dtype=dtype),
    }


def _resident_mib(field: str) -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} missing from /proc/self/status")


def _reset_peak() -> bool:
    """Reset the kernel's resident high-water mark (Linux: write 5 to clear_refs); False if refused."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def _peak_mib(was_reset: bool) -> float:
    return _resident_mib("VmHWM") if was_reset else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _render(scene: Dict[str, torch.Tensor], size: int, height: int, dense: bool, absgrad: bool, backward: bool):
    from foresplat_ns.render.rasterize import rasterize_on_cpu

    inputs = {name: scene[name].detach().requires_grad_(name not in ("viewmats", "Ks")) for name in scene}
    image, alpha, info = rasterize_on_cpu(
        inputs["means"], inputs["quats"], inputs["scales"], inputs["opacities"], inputs["colors"],
        inputs["viewmats"], inputs["Ks"], size, height, absgrad=absgrad, dense_reference=dense,
    )  # fmt: skip
    if backward:
        (image.sum() + alpha.sum()).backward()


def _time(function, repeats: int) -> List[float]:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def _setup(size: int, count: int, seed: int, threads: int, dense: bool) -> Tuple[Dict[str, torch.Tensor], float, bool]:
    """Build the scene after one tiny render has paid for lazy library initialisation; return it, the
    resident MiB at that point (the baseline) and whether the peak counter could be reset there."""
    torch.set_num_threads(threads)
    _render(make_bench_scene(8, 16, seed), 16, 16, dense=dense, absgrad=False, backward=True)
    scene = make_bench_scene(count, size, seed)
    gc.collect()
    return scene, _resident_mib("VmRSS"), _reset_peak()


def _tiled_worker(size: int, count: int, repeats: int, seed: int, threads: int, absgrad: bool) -> Dict[str, float]:
    """In a fresh process: fastest and median forward and forward+backward seconds, and peak MiB, of the tiled path."""
    scene, baseline, was_reset = _setup(size, count, seed, threads, dense=False)
    _render(scene, size, size, dense=False, absgrad=absgrad, backward=True)  # warm-up
    forward = _time(lambda: _render(scene, size, size, False, absgrad, backward=False), repeats)
    both = _time(lambda: _render(scene, size, size, False, absgrad, backward=True), repeats)
    return {
        "forward_s": min(forward),
        "forward_backward_s": min(both),
        "forward_median_s": statistics.median(forward),
        "forward_backward_median_s": statistics.median(both),
        "peak_mib": _peak_mib(was_reset) - baseline,
    }


def _dense_band(scene: Dict[str, torch.Tensor], first_row: int) -> Dict[str, torch.Tensor]:
    """The same scene seen through rows first_row.. of the image (principal point shifted up)."""
    band = dict(scene)
    band["Ks"] = scene["Ks"].clone()
    band["Ks"][:, 1, 2] -= first_row
    return band


def _dense_worker(size: int, count: int, seed: int, threads: int, budget_s: float) -> Dict[str, float]:
    """In a fresh process: forward+backward seconds of the dense compositor and its peak MiB.

    Autograd keeps the whole dense graph until backward, so the image is rendered in bands of rows
    holding at most DENSE_BAND_PAIRS pixel-Gaussian pairs, each a full forward+backward, and their times
    add up. When all bands would take longer than `budget_s`, only the bands through the middle of the
    image that fit in a quarter of it are timed and the sum is scaled to the full height.
    """
    scene, baseline, was_reset = _setup(size, count, seed, threads, dense=True)
    band_rows = max(1, min(size, DENSE_BAND_PAIRS // (size * count)))
    starts = list(range(0, size, band_rows))

    def band_seconds(first_row: int) -> float:
        rows = min(band_rows, size - first_row)
        return _time(lambda: _render(_dense_band(scene, first_row), size, rows, True, False, True), 1)[0]

    middle = len(starts) // 2
    pilot = band_seconds(starts[middle])
    if pilot * len(starts) <= budget_s:
        seconds = pilot + sum(band_seconds(first) for i, first in enumerate(starts) if i != middle)
        rows = size
    else:
        n_bands = max(1, min(len(starts), int(0.25 * budget_s / pilot)))
        chosen = starts[max(0, middle - n_bands // 2) :][:n_bands]
        seconds = sum(band_seconds(first) for first in chosen)
        rows = sum(min(band_rows, size - first) for first in chosen)
        seconds *= size / rows
    return {"forward_backward_s": seconds, "rows": rows, "peak_mib": _peak_mib(was_reset) - baseline}


def _in_fresh_process(function, *args):
    with ProcessPoolExecutor(max_workers=1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def run_raster_bench(
    sizes=(64, 128, 256),
    counts=(5000, 20000, 100000),
    repeats: int = 5,
    seed: int = 0,
    dense: bool = True,
    dense_budget_s: float = 60.0,
    threads: int = 2,
    absgrad: bool = False,
) -> List[Dict[str, float]]:
    """Time every (size, count) configuration, print a table as rows complete and return the rows."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:  # piped or logged: do not squeeze the table into 80 columns
        console = Console(width=160)
    console.print(
        f"CPU rasteriser benchmark: {threads} torch thread(s) of {os.cpu_count()} CPUs, tiled times best of {repeats} runs, "
        f"absgrad={absgrad}, load average at start {os.getloadavg()[0]:.2f}"
    )
    table = Table(title="foresplat_ns.render CPU path vs dense brute force (float32, forward+backward to all inputs)")
    for column in (
        "image",
        "Gaussians",
        "tiled fwd ms",
        "tiled fwd+bwd ms",
        "tiled peak MiB",
        "dense fwd+bwd s",
        "dense peak MiB",
        "dense / tiled",
    ):
        table.add_column(column, justify="right")
    rows = []
    for size in sizes:
        for count in counts:
            tiled = _in_fresh_process(_tiled_worker, size, count, repeats, seed, threads, absgrad)
            row = {"size": size, "count": count, **{f"tiled_{k}": v for k, v in tiled.items()}}
            cells = [
                f"{size}x{size}",
                f"{count:,}",
                f"{tiled['forward_s'] * 1e3:.0f}",
                f"{tiled['forward_backward_s'] * 1e3:.0f}",
                f"{tiled['peak_mib']:.0f}",
            ]
            if dense:
                reference = _in_fresh_process(_dense_worker, size, count, seed, threads, dense_budget_s)
                row.update({f"dense_{k}": v for k, v in reference.items()})
                ratio = reference["forward_backward_s"] / tiled["forward_backward_s"]
                extrapolated = reference["rows"] < size
                note = f" (extrapolated from {reference['rows']} rows)" if extrapolated else ""
                cells += [f"{reference['forward_backward_s']:.1f}{note}", f"{reference['peak_mib']:.0f}", f"{ratio:.0f}x"]
                row["dense_extrapolated"] = extrapolated
            else:
                cells += ["-", "-", "-"]
            table.add_row(*cells)
            rows.append(row)
            console.print(f"  done {size}x{size}, {count:,} Gaussians")
    console.print(table)
    console.print(f"load average at end {os.getloadavg()[0]:.2f} (timings on a shared machine vary with it)")
    return rows


def main(config: RasterBenchConfig) -> None:
    run_raster_bench(
        sizes=config.sizes, counts=config.counts, repeats=config.repeats, seed=config.seed, dense=config.dense,
        dense_budget_s=config.dense_budget_s, threads=config.threads, absgrad=config.absgrad,
    )  # fmt: skip


if __name__ == "__main__":
    import tyro

    main(tyro.cli(RasterBenchConfig))
