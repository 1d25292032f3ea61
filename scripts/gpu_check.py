"""GPU check, run by hand (not CI): gsplat's CUDA rasteriser against ours on the CPU, and seconds per step.

On one scene (the shipped compact backbone's prediction on a generated size² scene, its first training
view) it renders with `rasterization` on CUDA tensors (which dispatches to gsplat) and on CPU tensors
(our tile rasteriser, compiled compositor), backpropagates one loss (fixed random weights on colour and
alpha) on each, and compares colours, alphas and the gradients w.r.t. means, quats, scales, opacities
and colours (SH coefficients). Then it times `Refiner.train_step` (densification on) for `--steps` steps
on each device after `--warmup` untimed ones, with torch.cuda.synchronize() around the CUDA timing.
It prints one summary table and writes JSON. Exit status: 0 all within tolerance, 1 a comparison failed,
2 no CUDA (or gsplat's CUDA path does not run). The first CUDA call may compile gsplat's kernels (minutes).

    .venv/bin/python scripts/gpu_check.py --size 256 --steps 50 --output gpu-check.json

Tolerances, float32 on both sides, each quantity taken as |ours - gsplat| over gsplat's values:
- mean |diff| / mean |gsplat| <= 1e-4 for colours and alphas, 1e-3 for gradients. The summation order
  differs (gsplat per warp and tile, ours per 8x8 block; the projection in CUDA vs torch ops) and both
  evaluate exp to a few ulps. Float32 rounds a pixel position near 256 to ~1e-5 px, which moves a
  pixel-sized Gaussian's alpha by ~1e-5: ~1e-5 is expected on colours and 1e-4 leaves 10x. Gradients
  divide by 1 - alpha (up to 1000 at the 0.999 clamp) and sum many such terms: 10x looser.
- at most 0.1% of values may differ by more than 1e-3 (colours, alphas) or 1e-2 (gradients) times
  max |gsplat|. Skipping alpha < 1/255, clamping at 0.999 and stopping at T <= 1e-4 are discontinuities
  that two float32 implementations place a rounding error apart: a pixel whose pair straddles one differs
  by up to ~1/255 (4e-3), and so do the gradients it feeds. Such flips are rare (a few per million pairs),
  while a systematic error (a convention, a missing term) would reach far more than 0.1% of values.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Dict, List, Optional

import torch

EXIT_MISMATCH, EXIT_NO_CUDA = 1, 2
NO_CUDA_MESSAGE = (
    "gpu_check: CUDA is not available (torch.cuda.is_available() is False). This script compares gsplat's "
    "CUDA rasteriser with the CPU one and needs an NVIDIA GPU; nothing was checked."
)


@dataclass(frozen=True)
class Tolerance:
    mean: float
    """Largest mean |diff| / mean |reference|."""
    point: float
    """A value is an outlier where |diff| > point * max |reference|."""
    outliers: float
    """Largest share of outliers."""


IMAGE_TOLERANCE = Tolerance(mean=1e-4, point=1e-3, outliers=1e-3)
GRADIENT_TOLERANCE = Tolerance(mean=1e-3, point=1e-2, outliers=1e-3)
INPUTS = ("means", "quats", "scales", "opacities", "colors")


def render_and_grads(
    gaussians, view, device, sh_degree: Optional[int], seed: int = 0, compositor: str = "compiled"
) -> Dict[str, torch.Tensor]:
    """Colours, alphas and the gradients of one fixed random-weight loss w.r.t. the rasteriser's inputs
    (activated scales and opacities, as refinement renders), rendered on `device`; float64 on the CPU."""
    from foresplat_ns.render.rasterize import rasterization, use_cpu_kernels

    values = {
        "means": gaussians.means,
        "quats": gaussians.quats,
        "scales": gaussians.activated_scales(),
        "opacities": gaussians.activated_opacities(),
        "colors": gaussians.sh_coefficients(),
    }
    leaves = {name: t.detach().to(device, torch.float32).contiguous().requires_grad_() for name, t in values.items()}
    camera = {"viewmats": view.viewmat[None].to(device, torch.float32), "Ks": view.K[None].to(device, torch.float32)}
    with use_cpu_kernels(compositor):
        render, alpha, _ = rasterization(**leaves, **camera, width=view.width, height=view.height, sh_degree=sh_degree)
    generator = torch.Generator().manual_seed(seed)
    colour_weights = torch.randn(render.shape, generator=generator).to(device)
    alpha_weights = torch.randn(alpha.shape, generator=generator).to(device)
    ((render * colour_weights).sum() + (alpha * alpha_weights).sum()).backward()
    results = {"colours": render, "alphas": alpha, **{f"d/d {name}": leaves[name].grad for name in INPUTS}}
    return {name: t.detach().to("cpu", torch.float64) for name, t in results.items()}


def compare(reference: Dict[str, torch.Tensor], candidate: Dict[str, torch.Tensor]) -> List[Dict]:
    """Per quantity: max and mean |candidate - reference|, the relative mean, the outlier share, pass/fail."""
    rows = []
    for name, expected in reference.items():
        tolerance = GRADIENT_TOLERANCE if name.startswith("d/d") else IMAGE_TOLERANCE
        diff = (candidate[name] - expected).abs()
        scale_max, scale_mean = float(expected.abs().max()), float(expected.abs().mean())
        mean_abs = float(diff.mean())
        mean_rel = mean_abs / scale_mean if scale_mean > 0 else (0.0 if mean_abs == 0 else float("inf"))
        outlier_share = float((diff > tolerance.point * scale_max).double().mean())
        rows.append(
            {
                "quantity": name,
                "max_abs": float(diff.max()),
                "mean_abs": mean_abs,
                "reference_max_abs": scale_max,
                "mean_rel": mean_rel,
                "outlier_share": outlier_share,
                "tolerance": asdict(tolerance),
                "passed": mean_rel <= tolerance.mean and outlier_share <= tolerance.outliers,
            }
        )
    return rows


def time_refinement(gaussians, views, device, steps: int, warmup: int, seed: int = 0) -> Dict:
    """Seconds per `Refiner.train_step` (densification on) over `steps` steps after `warmup` untimed ones."""
    from foresplat_ns.refine import RefineConfig, Refiner, View

    device = torch.device(device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    moved = [View(view.image.to(device), view.viewmat.to(device), view.K.to(device)) for view in views]
    torch.manual_seed(seed)
    refiner = Refiner(gaussians.to(device), RefineConfig(), len(views), densify=True, generator=torch.Generator().manual_seed(seed))
    for step in range(warmup):
        refiner.train_step(moved[step % len(moved)])
    sync()
    start = time.perf_counter()
    for step in range(warmup, warmup + steps):
        loss = refiner.train_step(moved[step % len(moved)])
    sync()
    seconds = (time.perf_counter() - start) / steps
    return {
        "device": str(device),
        "seconds_per_step": seconds,
        "steps": steps,
        "warmup": warmup,
        "threads": torch.get_num_threads(),
        "gaussians": refiner.gaussians.num_gaussians,
        "last_loss": float(loss),
    }


def _table(comparisons: List[Dict], timings: List[Dict], title: str):
    from rich.table import Table

    table = Table(title=title)
    for column in ("check", "measured", "tolerance", "result"):
        table.add_column(column)
    for row in comparisons:
        tolerance = row["tolerance"]
        table.add_row(
            row["quantity"],
            f"max {row['max_abs']:.2e}, mean {row['mean_abs']:.2e} (rel {row['mean_rel']:.2e}), "
            f"{row['outlier_share']:.3%} outliers; max |gsplat| {row['reference_max_abs']:.2e}",
            f"rel mean <= {tolerance['mean']:.0e}, <= {tolerance['outliers']:.1%} beyond {tolerance['point']:.0e} x max",
            "pass" if row["passed"] else "[red]FAIL",
        )
    for row in timings:
        table.add_row(
            f"s/step {row['device']}",
            f"{row['seconds_per_step'] * 1e3:.2f} ms ({row['steps']} steps after {row['warmup']}, {row['gaussians']:,} "
            f"Gaussians at the end, {row['threads']} CPU threads)",
            "-",
            "-",
        )
    if len(timings) == 2:
        cuda, cpu = timings
        table.add_row("speed-up", f"cuda {cpu['seconds_per_step'] / cuda['seconds_per_step']:.1f}x faster than cpu", "-", "-")
    return table


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=256, help="square image size of the generated scene (128 or 256)")
    parser.add_argument("--steps", type=int, default=50, help="timed refinement steps per device")
    parser.add_argument("--warmup", type=int, default=10, help="untimed refinement steps first")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--sh-degree", type=int, default=None, help="SH degree rendered (default: the Gaussians')")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", type=Path, default=None, help="folder for the generated scene (default: a temporary one)")
    parser.add_argument("--output", type=Path, default=Path("gpu-check.json"))
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print(NO_CUDA_MESSAGE, file=sys.stderr)
        return EXIT_NO_CUDA

    from rich.console import Console

    from foresplat_ns.atomic import write_json_atomic
    from foresplat_ns.bench.step import prediction_workload

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    console = Console(width=200)
    with tempfile.TemporaryDirectory() as temporary:
        gaussians, views = prediction_workload(args.size, args.seed, args.cache or Path(temporary))
    sh_degree = gaussians.sh_degree if args.sh_degree is None else args.sh_degree
    try:
        gsplat = render_and_grads(gaussians, views[0], "cuda", sh_degree, args.seed)
    except Exception as error:  # gsplat missing, its kernels failing to build or to run
        print(f"gpu_check: gsplat's CUDA rasteriser did not run: {type(error).__name__}: {error}", file=sys.stderr)
        return EXIT_NO_CUDA
    ours = render_and_grads(gaussians, views[0], "cpu", sh_degree, args.seed)
    comparisons = compare(gsplat, ours)
    timings = [time_refinement(gaussians, views, device, args.steps, args.warmup, args.seed) for device in ("cuda", "cpu")]

    device = torch.cuda.get_device_name()
    title = f"gsplat (CUDA, {device}) vs ours (CPU): {args.size}x{args.size}, {gaussians.num_gaussians:,} Gaussians, SH degree {sh_degree}"
    console.print(_table(comparisons, timings, title))
    passed = all(row["passed"] for row in comparisons)
    write_json_atomic(
        args.output,
        {
            "config": {k: str(v) for k, v in vars(args).items()},
            "device": device,
            "passed": passed,
            "comparisons": comparisons,
            "timings": timings,
        },
    )
    console.print(f"{'all checks passed' if passed else '[red]some checks FAILED'}; wrote {args.output}")
    return 0 if passed else EXIT_MISMATCH


if __name__ == "__main__":
    sys.exit(main())
