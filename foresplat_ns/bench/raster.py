"""`foresplat-bench raster`: the CPU compositors on what refinement renders, against an arithmetic bound.

Workloads (`--workloads`):
- `predicted`: the shipped compact backbone's prediction on a generated size² scene
  (`bench.step.prediction_workload`), rendered from its first training view;
- `refined`: the same scene after `refine_steps` densifying refinement steps (`Refiner.train_step`),
  cached in `--cache` by size, seed and steps so a rerun does not refine again;
- `random` (not run by default): seeded random clouds of `counts` Gaussians of 1-8 px, the whole
  rasterisation timed against the dense brute-force compositor, as this bench did before the others.

For `predicted` and `refined`, each compositor (compiled and torch, in the same run) is timed alone on
the very inputs the real render hands it (captured from one `rasterization` call: projected means,
conics, opacities, SH-evaluated colours and the tile layout; AbsGS gradients on, as refinement runs):
forward ms, and backward ms of a fixed random upstream gradient on colour and alpha, each the best of
`repeats` after a warm-up. Projection, SH and tiling are not in these times (`foresplat-bench step`
times the whole step).

pairs: the (pixel, list entry) pairs composited, counted exactly from the per-pixel `used` counts both
compositors save for their backward: a pixel walks its block's depth-sorted list from the front up to,
not including, the first entry that would take its transmittance to 1e-4 or below (or to the list's
end). Entries skipped for alpha < 1/255 count: their alpha has to be evaluated to know. The torch
backward walks the same pairs; the compiled one only those of the entries its forward composited at some
pixel (`bwd pairs`), skipping the others whole. `lanes/pair` is what the block-wise walk costs on top: the
compiled kernels evaluate every pixel of an 8x8 block for each entry until the block's last pixel stops.

bound: pairs (forward) and bwd pairs (backward) x arithmetic per pair (`flops_per_pair`, counted from
composite_kernel.py's inner loops)
/ this machine's float32 peak, measured in the same run as the best of `repeats` 2048x2048 matmuls on
the same thread count. It is a floor, not a target the kernels can meet exactly: see `flops_per_pair`.

peak MiB: the resident-set high-water mark during the first forward and backward, above the resident
set just before them, in a fresh process (`--no-isolate`: in this one, less meaningful) once the
workload's inputs are built and a tiny render has paid for lazy initialisation. It counts what the
compositor allocates: outputs, saved tensors, gradients, scratch.
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
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple

import numpy as np
import torch

FOV_DEGREES = 60.0
DENSE_BAND_PAIRS = 1 << 23  # pixel-Gaussian pairs per dense band: ~150 MiB of autograd graph in float32
REFERENCE_SIZE = 128  # screen radii of the scene are 1-8 px at this image size
Workload = Literal["predicted", "refined", "random"]


@dataclass
class RasterBenchConfig:
    """Which workloads to time, and how."""

    workloads: Tuple[Workload, ...] = ("predicted", "refined")
    """predicted / refined: the shipped backbone's prediction on a generated scene, before and after
    `refine_steps` densifying steps; random: seeded random clouds of `counts` Gaussians against the dense
    brute-force compositor (the earlier benchmark)."""
    sizes: Tuple[int, ...] = (128, 256)
    """Square image sizes in pixels (of the generated scene, or of the random clouds' camera)."""
    refine_steps: int = 500
    """Refinement steps (densification on) from the prediction to the `refined` workload."""
    repeats: int = 5
    """Timed runs per measurement (after one warm-up); tables show the fastest, the least disturbed by
    other processes on a shared machine (the JSON rows also hold the medians)."""
    threads: int = 2
    """torch.set_num_threads for everything timed (the compiled compositor follows it)."""
    seed: int = 0
    matmul_size: int = 2048
    """Side of the float32 matmul that measures the peak flop rate."""
    cache: Path = Path("bench-raster-cache")
    """Generated scenes and the predicted and refined Gaussians, reused by later runs."""
    output: Optional[Path] = Path("bench-raster.json")
    """Where to write all rows as JSON (None: nowhere)."""
    isolate: bool = True
    """Measure each configuration in a fresh process (so peak memory is its own); off: in this process."""
    counts: Tuple[int, ...] = (5000, 20000, 100000)
    """random: numbers of Gaussians."""
    dense: bool = True
    """random: also time the dense brute-force compositor on the same scene."""
    dense_budget_s: float = 60.0
    """random: longest full-image dense run; beyond it the dense time is extrapolated from a band of rows."""
    absgrad: bool = False
    """random: also accumulate AbsGS gradients in the backward pass (predicted / refined always do, as refinement does)."""


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


def _run(isolate: bool, function, *args):
    """`function(*args)` in a fresh spawned process, or here (torch's thread count restored after)."""
    if isolate:
        return _in_fresh_process(function, *args)
    threads = torch.get_num_threads()
    try:
        return function(*args)
    finally:
        torch.set_num_threads(threads)


def flops_per_pair(depth: int = 3, exp_degree: int = 7) -> Tuple[int, int]:
    """Arithmetic per (pixel, list entry) in composite_kernel.py's inner loops: (forward, backward).

    Every add, subtract, multiply, divide, min, max, abs, compare and select counts 1 (a fused
    multiply-add 2, as the matmul measuring the peak counts it); per-entry and per-pixel set-up counts 0.
    - alpha (`alpha_of`, both passes): dx, dy 2; sigma - ln o 10; clamp to [0, 6] 2; r = u/8 - 3/8 2;
      Horner's exp(-r) as written, degree + 1 multiply-adds (`exp_degree` 7 in float32); times exp(-3/8)
      1; three squarings 3; min with 0.999 1; the 1/255 skip 2: 25 + 2 exp_degree;
    - forward: the stop test (1 - alpha, times T, compare, select) 4; weight 2; T update 3; walked and
      alive counts 2; colour 2 per channel: alpha + 11 + 2 depth (56 for RGB);
    - backward: dL/dcolour . colour 2 per channel; the walked mask 2; weight 1; light behind 2; dL/dalpha
      4 (the divide counted 1); dL/dlog(alpha) with the clamp mask 3, its sum 1; conic gradients 11;
      mean gradients 10; AbsGS sums 4; T update 2; colour gradient 2 per channel: alpha + 40 + 4 depth (91).
    Compares, selects and the divide take an instruction slot where the matmul does an FMA (2 flops),
    and the divide is slower still, so the bound is optimistic: the kernels cannot reach it exactly.
    """
    alpha = 25 + 2 * exp_degree
    return alpha + 11 + 2 * depth, alpha + 40 + 4 * depth


def measure_peak_flops(threads: int, size: int = 2048, repeats: int = 5) -> float:
    """Float32 flop/s of a size x size matmul (2 size³ flops), best of `repeats` after a warm-up, on `threads` threads."""
    torch.set_num_threads(threads)
    generator = torch.Generator().manual_seed(0)
    a, b = torch.randn(size, size, generator=generator), torch.randn(size, size, generator=generator)
    out = torch.empty(size, size)
    torch.matmul(a, b, out=out)
    return 2 * size**3 / min(_time(lambda: torch.matmul(a, b, out=out), repeats))


@dataclass
class CompositorInputs:
    """What the CPU rasteriser hands its compositor for one render (backgrounds None, as refinement renders)."""

    tensors: Tuple[torch.Tensor, ...]
    """Leaves requiring grad: means2d [C,N,2], conics [C,N,3], opacities [C,N], colors [C,N,D]."""
    layout: object
    """The tile layout (render.tiles.TileLayout)."""
    width: int
    height: int

    def zero_grad(self) -> None:
        for tensor in self.tensors:
            tensor.grad = None


def compositor_inputs(means, quats, scales, opacities, colors, viewmat, K, width: int, height: int, sh_degree=None) -> CompositorInputs:
    """The compositor's arguments captured from one real `rasterization` call (one view), so the bench
    composites exactly what a render would: same projection, SH evaluation and tiling."""
    from foresplat_ns.render import rasterize

    original, captured = rasterize.composite_compiled, []

    def capture(*args):
        captured.append(args)
        return original(*args)

    rasterize.composite_compiled = capture
    try:
        with torch.no_grad(), rasterize.use_cpu_kernels("compiled"):
            rasterize.rasterization(means, quats, scales, opacities, colors, viewmat[None], K[None], width, height, sh_degree=sh_degree)
    finally:
        rasterize.composite_compiled = original
    means2d, conics, view_opacities, view_colors, _, layout, width, height = captured[0][:8]
    leaves = tuple(t.detach().clone().requires_grad_() for t in (means2d, conics, view_opacities, view_colors))
    return CompositorInputs(leaves, layout, width, height)


def composite(inputs: CompositorInputs, compositor: str, absgrad: bool = True):
    """(render [C,H,W,D], alpha [C,H,W,1]) from the compiled or the torch compositor."""
    from foresplat_ns.render.composite import composite_blocks
    from foresplat_ns.render.composite_kernel import composite_compiled
    from foresplat_ns.render.rasterize import CHUNK_ELEMENTS, SEGMENT_LENGTH

    args = (*inputs.tensors, None, inputs.layout, inputs.width, inputs.height, absgrad)
    if compositor == "compiled":
        return composite_compiled(*args)
    if compositor == "torch":
        return composite_blocks(*args, CHUNK_ELEMENTS, SEGMENT_LENGTH)
    raise ValueError(f"unknown compositor {compositor!r}")


def _walk_counts(render: torch.Tensor) -> torch.Tensor:
    """The per-pixel `used` counts the compositor's forward saved for its backward."""
    saved = [t for t in render.grad_fn.saved_tensors if t is not None and t.dtype == torch.int32]
    if len(saved) != 1:
        raise RuntimeError("the compositor's forward saved no single int32 tensor of per-pixel counts to read")
    return saved[0]


def composited_pairs(render: torch.Tensor, inputs: CompositorInputs) -> Tuple[int, int]:
    """(pairs, lanes) of a forward: the (pixel, entry) pairs its pixels walked, from the per-pixel `used`
    counts the compositor saved for its backward (the module docstring defines them), and the pairs a
    block-wise walk evaluates (every pixel of a block, up to its longest walk)."""
    from foresplat_ns.render.composite import blocks_to_image, image_to_blocks

    used, layout = _walk_counts(render), inputs.layout
    if used.dim() == 2:
        # the torch compositor's [blocks, pixels], out-of-image pixels included, counting the padding
        # slots after a list's end too (alpha 0): a list's length caps it
        used = torch.minimum(used, layout.counts[:, None].to(used.dtype))
        used = blocks_to_image(used[..., None], layout, inputs.height, inputs.width)[..., 0]
    longest = image_to_blocks(used[..., None], layout)[..., 0].amax(dim=1)
    return int(used.sum()), int(longest.sum()) * layout.block_size**2


def backward_pairs(render: torch.Tensor, inputs: CompositorInputs) -> int:
    """The (pixel, entry) pairs the backward of `render`'s forward walks: those of `composited_pairs`,
    less, for the compiled compositor, the pairs of entries that composited at no pixel (it skips them)."""
    from foresplat_ns.render.composite import image_to_blocks

    touched = getattr(render.grad_fn, "touched", None)
    if touched is None:  # the torch compositor: every walked pair
        return composited_pairs(render, inputs)[0]
    layout = inputs.layout
    walks = image_to_blocks(_walk_counts(render)[..., None], layout)[..., 0].sort(dim=1).values.numpy()
    pixels, total = walks.shape[1], 0
    for block, (start, count) in enumerate(zip(layout.starts.tolist(), layout.counts.tolist())):
        walkers = pixels - np.searchsorted(walks[block], np.arange(count), side="right")  # pixels with used > k
        total += int((walkers * touched[start : start + count]).sum())
    return total


def _workload_path(kind: str, size: int, seed: int, refine_steps: int, cache: Path) -> Path:
    suffix = f"-{refine_steps}steps" if kind == "refined" else ""
    return cache / f"{kind}-{size}-seed{seed}{suffix}.pt"


def prepare_workload(kind: str, size: int, seed: int, refine_steps: int, threads: int, cache: Path, console=None) -> Path:
    """The cached workload file (Gaussians, the first training view and its SH degree), made if missing.

    `refined` runs `refine_steps` seeded `Refiner.train_step`s with densification on `threads` threads
    (the default compositor): at 256² 500 steps take a minute or two, hence the cache.
    """
    from foresplat_ns.atomic import torch_save_atomic
    from foresplat_ns.bench.step import prediction_workload
    from foresplat_ns.refine import RefineConfig, Refiner

    path = _workload_path(kind, size, seed, refine_steps, cache)
    if path.is_file():
        return path
    gaussians, views = prediction_workload(size, seed, cache / "scenes")
    config, step = RefineConfig(), 0
    if kind == "refined":
        previous = torch.get_num_threads()
        torch.set_num_threads(threads)
        torch.manual_seed(seed)
        refiner = Refiner(gaussians, config, len(views), densify=True, generator=torch.Generator().manual_seed(seed))
        began = time.perf_counter()
        try:
            for step in range(refine_steps):
                refiner.train_step(views[step % len(views)])
                if console is not None and (step + 1) % 100 == 0:
                    console.print(
                        f"  refining {size}x{size}: step {step + 1}/{refine_steps}, {refiner.gaussians.num_gaussians:,} Gaussians"
                    )
        finally:
            torch.set_num_threads(previous)
        gaussians, step = refiner.gaussians.detach(), refiner.step
        if console is not None:
            console.print(f"  refined {size}x{size} for {refine_steps} steps in {time.perf_counter() - began:.0f} s")
    view = views[0]
    payload = {
        "gaussians": {name: t.detach().clone() for name, t in gaussians.items()},
        "viewmat": view.viewmat,
        "K": view.K,
        "width": view.width,
        "height": view.height,
        "sh_degree": min(config.active_sh_degree(step), gaussians.sh_degree),
        "absgrad": config.use_absgrad,
    }
    torch_save_atomic(payload, path)
    return path


def load_workload(path: Path) -> Tuple[CompositorInputs, int, bool]:
    """A prepared workload's compositor inputs, its number of Gaussians and whether refinement uses AbsGS."""
    from foresplat_ns.gaussians import Gaussians

    payload = torch.load(path, weights_only=True)
    gaussians = Gaussians(**payload["gaussians"])
    inputs = compositor_inputs(
        gaussians.means, gaussians.quats, gaussians.activated_scales(), gaussians.activated_opacities(),
        gaussians.sh_coefficients(), payload["viewmat"], payload["K"], payload["width"], payload["height"],
        payload["sh_degree"],
    )  # fmt: skip
    return inputs, gaussians.num_gaussians, bool(payload["absgrad"])


def _compositor_worker(path: str, compositor: str, repeats: int, threads: int, seed: int) -> Dict[str, float]:
    """One workload and compositor: peak MiB and pairs of a first forward+backward, then timed runs."""
    from foresplat_ns.render.rasterize import use_cpu_kernels

    torch.set_num_threads(threads)
    with use_cpu_kernels(compositor):  # lazy initialisation (numba's cached kernels, torch's ops) not in the peak
        _render(make_bench_scene(8, 16, seed), 16, 16, dense=False, absgrad=True, backward=True)
    inputs, count, absgrad = load_workload(Path(path))
    generator = torch.Generator().manual_seed(seed)
    shape = (1, inputs.height, inputs.width)
    upstream = (torch.randn(*shape, inputs.tensors[3].shape[-1], generator=generator), torch.randn(*shape, 1, generator=generator))
    gc.collect()
    baseline, was_reset = _resident_mib("VmRSS"), _reset_peak()
    outputs = composite(inputs, compositor, absgrad)
    pairs, lanes = composited_pairs(outputs[0], inputs)
    walked_back = backward_pairs(outputs[0], inputs)
    torch.autograd.backward(outputs, upstream)
    peak = _peak_mib(was_reset) - baseline
    del outputs
    forward, backward = [], []
    for _ in range(repeats):
        inputs.zero_grad()
        start = time.perf_counter()
        outputs = composite(inputs, compositor, absgrad)
        middle = time.perf_counter()
        torch.autograd.backward(outputs, upstream)
        forward.append(middle - start)
        backward.append(time.perf_counter() - middle)
        del outputs
    return {
        "gaussians": count,
        "pixels": inputs.width * inputs.height,
        "list_entries": int(inputs.layout.ids.numel()),
        "pairs": pairs,
        "lanes": lanes,
        "backward_pairs": walked_back,
        "forward_s": min(forward),
        "backward_s": min(backward),
        "forward_median_s": statistics.median(forward),
        "backward_median_s": statistics.median(backward),
        "peak_mib": peak,
        "depth": int(inputs.tensors[3].shape[-1]),
    }


def run_workload_bench(config: RasterBenchConfig, console) -> Tuple[List[Dict], float]:
    """Rows (workload x size x compositor) with their bounds, the table printed; and the peak flop/s."""
    from rich.table import Table

    from foresplat_ns.render.rasterize import CPU_KERNELS

    kinds = [kind for kind in config.workloads if kind != "random"]
    paths = {
        (kind, size): prepare_workload(kind, size, config.seed, config.refine_steps, config.threads, config.cache, console)
        for size in config.sizes
        for kind in kinds
    }
    peak = _run(config.isolate, measure_peak_flops, config.threads, config.matmul_size, config.repeats)
    console.print(
        f"peak: {peak / 1e9:.1f} GFLOP/s (float32 {config.matmul_size}² matmul, best of {config.repeats}, {config.threads} thread(s))"
    )
    rows = []
    for (kind, size), path in paths.items():
        for compositor in CPU_KERNELS:
            row = _run(config.isolate, _compositor_worker, str(path), compositor, config.repeats, config.threads, config.seed)
            forward_flops, backward_flops = flops_per_pair(row["depth"])
            row.update(workload=kind, size=size, compositor=compositor, threads=config.threads, peak_flops=peak)
            row.update(flops_per_pair_forward=forward_flops, flops_per_pair_backward=backward_flops)
            row["bound_forward_s"] = row["pairs"] * forward_flops / peak
            row["bound_backward_s"] = row["backward_pairs"] * backward_flops / peak
            row["forward_over_bound"] = row["forward_s"] / row["bound_forward_s"]
            row["backward_over_bound"] = row["backward_s"] / row["bound_backward_s"]
            row["total_over_bound"] = (row["forward_s"] + row["backward_s"]) / (row["bound_forward_s"] + row["bound_backward_s"])
            rows.append(row)
            console.print(f"  done {kind} {size}x{size}, {compositor}")
    for kind, size in paths:
        counts = {row["pairs"] for row in rows if (row["workload"], row["size"]) == (kind, size)}
        if len(counts) > 1:
            console.print(f"[red]warning: the compositors walked different pair counts on {kind} {size}x{size}: {sorted(counts)}")

    forward_flops, backward_flops = flops_per_pair()
    table = Table(
        title=f"CPU compositors alone on what refinement renders (float32, best of {config.repeats}; "
        f"bound = pairs x {forward_flops} / bwd pairs x {backward_flops} flops (fwd / bwd) / peak)"
    )
    columns = ("workload", "image", "Gaussians", "compositor", "fwd ms", "bwd ms", "peak MiB", "pairs", "pairs/px",
               "lanes/pair", "bwd pairs", "bound fwd ms", "bound bwd ms", "fwd/bound", "bwd/bound", "total/bound")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            row["workload"],
            f"{row['size']}x{row['size']}",
            f"{row['gaussians']:,}",
            row["compositor"],
            f"{row['forward_s'] * 1e3:.1f}",
            f"{row['backward_s'] * 1e3:.1f}",
            f"{row['peak_mib']:.0f}",
            f"{row['pairs']:,}",
            f"{row['pairs'] / row['pixels']:.1f}",
            f"{row['lanes'] / max(row['pairs'], 1):.2f}",
            f"{row['backward_pairs']:,}",
            f"{row['bound_forward_s'] * 1e3:.2f}",
            f"{row['bound_backward_s'] * 1e3:.2f}",
            f"{row['forward_over_bound']:.1f}x",
            f"{row['backward_over_bound']:.1f}x",
            f"{row['total_over_bound']:.1f}x",
        )
    console.print(table)
    return rows, peak


def run_random_bench(
    sizes=(128, 256),
    counts=(5000, 20000, 100000),
    repeats: int = 5,
    seed: int = 0,
    dense: bool = True,
    dense_budget_s: float = 60.0,
    threads: int = 2,
    absgrad: bool = False,
    isolate: bool = True,
    console=None,
) -> List[Dict[str, float]]:
    """The random-cloud workload: time every (size, count) configuration, print a table as rows complete
    and return the rows."""
    from rich.table import Table

    console = console or _console()
    console.print(
        f"random clouds: {threads} torch thread(s) of {os.cpu_count()} CPUs, tiled times best of {repeats} runs, absgrad={absgrad}"
    )
    table = Table(title="random clouds: the CPU path vs dense brute force (float32, forward+backward to all inputs)")
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
            tiled = _run(isolate, _tiled_worker, size, count, repeats, seed, threads, absgrad)
            row = {"size": size, "count": count, **{f"tiled_{k}": v for k, v in tiled.items()}}
            cells = [
                f"{size}x{size}",
                f"{count:,}",
                f"{tiled['forward_s'] * 1e3:.0f}",
                f"{tiled['forward_backward_s'] * 1e3:.0f}",
                f"{tiled['peak_mib']:.0f}",
            ]
            if dense:
                reference = _run(isolate, _dense_worker, size, count, seed, threads, dense_budget_s)
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
    return rows


def _console():
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # piped or logged: do not squeeze the tables into 80 columns
        console = Console(width=200)
    return console


def run_raster_bench(config: RasterBenchConfig) -> Dict[str, object]:
    """Run the chosen workloads, print their tables, write the JSON; return {"rows", "random_rows", "peak_flops"}."""
    from foresplat_ns.atomic import write_json_atomic

    unknown = set(config.workloads) - {"predicted", "refined", "random"}
    if unknown:
        raise ValueError(f"unknown workloads {sorted(unknown)}; choose from predicted, refined, random")
    console = _console()
    console.print(
        f"CPU rasteriser benchmark: {config.threads} torch thread(s) of {os.cpu_count()} CPUs, "
        f"load average at start {os.getloadavg()[0]:.2f}"
    )
    result: Dict[str, object] = {"rows": [], "random_rows": [], "peak_flops": None}
    if any(kind != "random" for kind in config.workloads):
        result["rows"], result["peak_flops"] = run_workload_bench(config, console)
    if "random" in config.workloads:
        result["random_rows"] = run_random_bench(
            sizes=config.sizes, counts=config.counts, repeats=config.repeats, seed=config.seed, dense=config.dense,
            dense_budget_s=config.dense_budget_s, threads=config.threads, absgrad=config.absgrad,
            isolate=config.isolate, console=console,
        )  # fmt: skip
    console.print(f"load average at end {os.getloadavg()[0]:.2f} (timings on a shared machine vary with it)")
    if config.output is not None:
        write_json_atomic(config.output, {"config": {k: str(v) for k, v in vars(config).items()}, **result})
        console.print(f"wrote {config.output}")
    return result


def main(config: RasterBenchConfig) -> None:
    run_raster_bench(config)


if __name__ == "__main__":
    import tyro

    main(tyro.cli(RasterBenchConfig))
