"""`foresplat-bench raster`: the workloads run, the pair count is exact on hand-countable scenes, and the
GPU check (scripts/gpu_check.py) refuses a machine without CUDA and compares renders as it will on one."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from foresplat_ns.bench.raster import (
    RasterBenchConfig,
    backward_pairs,
    composite,
    composited_pairs,
    compositor_inputs,
    flops_per_pair,
    make_bench_scene,
    run_random_bench,
    run_raster_bench,
)
from foresplat_ns.render.rasterize import CPU_KERNELS

GPU_CHECK = Path(__file__).resolve().parent.parent / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One cache folder for the module: the generated 32² scene is made once."""
    return tmp_path_factory.mktemp("raster-cache")


def test_bench_scene_is_seeded_and_independent_of_image_size():
    small, large = make_bench_scene(100, 64, seed=3), make_bench_scene(100, 256, seed=3)
    assert small["means"].equal(large["means"]) and small["scales"].equal(large["scales"])
    assert large["Ks"][0, 0, 0] == 4 * small["Ks"][0, 0, 0]


def test_random_clouds_time_tiled_and_dense_paths():
    (row,) = run_random_bench(sizes=(16,), counts=(200,), repeats=1, dense_budget_s=5.0, threads=1, isolate=False)
    assert row["size"] == 16 and row["count"] == 200
    assert 0 < row["tiled_forward_s"] <= row["tiled_forward_backward_s"] * 1.5
    assert row["dense_forward_backward_s"] > 0 and row["dense_rows"] == 16


def _pairs(opacities, depths, scale: float, centre=(8.0, 8.0), compositor="compiled"):
    """(pairs, lanes) of isotropic Gaussians on the optical axis of a 16x16 camera (focal 16), nearest first."""
    n = len(opacities)
    x, y = (centre[0] - 8) / 16, (centre[1] - 8) / 16
    inputs = compositor_inputs(
        torch.tensor([[x * z, y * z, z] for z in depths]), torch.tensor([[1.0, 0, 0, 0]] * n),
        torch.full((n, 3), scale), torch.tensor(opacities), torch.rand(n, 3, generator=torch.Generator().manual_seed(0)),
        torch.eye(4), torch.tensor([[16.0, 0, 8], [0, 16, 8], [0, 0, 1]]), 16, 16,
    )  # fmt: skip
    render, _ = composite(inputs, compositor)
    return composited_pairs(render, inputs)


@pytest.mark.parametrize("compositor", CPU_KERNELS)
def test_pairs_are_counted_exactly(compositor):
    # a pixel-sized Gaussian inside the first 8x8 block: its 64 pixels walk it (alpha < 1/255 or not), no other block lists it
    assert _pairs([0.9], [2.0], 0.01, centre=(4.0, 4.0), compositor=compositor) == (64, 64)
    # one huge opaque Gaussian (alpha clamped at 0.999 everywhere): every pixel of the 16x16 image composites it once
    assert _pairs([1.0], [2.0], 100.0, compositor=compositor) == (256, 256)
    # behind it another opaque one would take T from 1e-3 to 1e-6 <= 1e-4: not composited
    assert _pairs([1.0, 1.0], [2.0, 4.0], 100.0, compositor=compositor) == (256, 256)
    # a half-transparent one leaves T = 5e-4 > 1e-4: composited at every pixel
    assert _pairs([1.0, 0.5], [2.0, 4.0], 100.0, compositor=compositor) == (512, 512)


def test_backward_pairs_leave_out_the_entries_no_pixel_composited():
    """Four small Gaussians at the image centre, and a faint one just beyond the image's corner whose tile box
    reaches the corner block while its alpha stays below 1/255 at every pixel there: that block walks it and
    composites it nowhere, and the compiled backward skips it (the torch one walks it)."""
    depths, n = [2.0, 2.1, 2.2, 2.3, 6.0], 5
    means = torch.tensor([[0.0, 0.0, z] for z in depths[:4]] + [[0.55 * 6.0, 0.55 * 6.0, 6.0]])
    scales = torch.tensor([[0.05] * 3] * 4 + [[0.2, 0.2, 0.2]])
    opacities = torch.tensor([0.3, 0.3, 0.3, 0.3, 0.02])
    inputs = compositor_inputs(
        means, torch.tensor([[1.0, 0, 0, 0]] * n), scales, opacities, torch.rand(n, 3, generator=torch.Generator().manual_seed(0)),
        torch.eye(4), torch.tensor([[16.0, 0, 8], [0, 16, 8], [0, 0, 1]]), 16, 16,
    )  # fmt: skip
    counts = {}
    for compositor in CPU_KERNELS:
        render, _ = composite(inputs, compositor)
        counts[compositor] = (composited_pairs(render, inputs)[0], backward_pairs(render, inputs))
    assert counts["torch"][0] == counts["compiled"][0] == counts["torch"][1]
    assert counts["compiled"][1] < counts["compiled"][0]


def test_flop_count_follows_the_kernel_loops():
    assert flops_per_pair(depth=3, exp_degree=7) == (56, 91)
    assert flops_per_pair(depth=1, exp_degree=7) == (52, 83)


def test_workloads_run_and_reuse_the_cached_refinement(cache, tmp_path, monkeypatch):
    config = RasterBenchConfig(
        sizes=(32,), refine_steps=2, repeats=1, threads=1, matmul_size=128, cache=cache, output=tmp_path / "raster.json", isolate=False
    )
    rows = run_raster_bench(config)["rows"]
    assert sorted((row["workload"], row["compositor"]) for row in rows) == sorted(
        (kind, compositor) for kind in ("predicted", "refined") for compositor in CPU_KERNELS
    )
    for kind in ("predicted", "refined"):
        pairs = {row["pairs"] for row in rows if row["workload"] == kind}
        assert len(pairs) == 1 and pairs.pop() > 0  # both compositors walk the same pairs
    for row in rows:
        assert row["forward_s"] > 0 and row["backward_s"] > 0 and row["lanes"] >= row["pairs"]
        assert row["bound_forward_s"] == pytest.approx(row["pairs"] * row["flops_per_pair_forward"] / row["peak_flops"])
        assert row["bound_backward_s"] == pytest.approx(row["backward_pairs"] * row["flops_per_pair_backward"] / row["peak_flops"])
        # the torch backward walks every pair; the compiled one skips entries that composited nowhere
        assert (row["backward_pairs"] == row["pairs"]) if row["compositor"] == "torch" else (0 < row["backward_pairs"] <= row["pairs"])
        assert row["forward_over_bound"] == pytest.approx(row["forward_s"] / row["bound_forward_s"])
    assert len(json.loads((tmp_path / "raster.json").read_text())["rows"]) == 4
    assert (cache / "refined-32-seed0-2steps.pt").is_file()

    def refuse(*args, **kwargs):
        raise AssertionError("refined again despite the cache")

    monkeypatch.setattr("foresplat_ns.refine.Refiner.train_step", refuse)
    rerun = run_raster_bench(RasterBenchConfig(**{**vars(config), "workloads": ("refined",), "output": None}))
    assert [row["pairs"] for row in rerun["rows"]] == [row["pairs"] for row in rows if row["workload"] == "refined"]


def _gpu_check_module():
    spec = importlib.util.spec_from_file_location("gpu_check", GPU_CHECK)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the script is executed
    spec.loader.exec_module(module)
    return module


def test_gpu_check_refuses_without_cuda(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--output", str(tmp_path / "gpu.json")], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2, proc.stderr
    assert "CUDA is not available" in proc.stderr and not (tmp_path / "gpu.json").exists()


def test_gpu_check_comparison_on_cpu(cache):
    """The comparison as the GPU run does it, with the torch compositor standing in for gsplat."""
    from foresplat_ns.bench.step import prediction_workload

    gpu_check = _gpu_check_module()
    gaussians, views = prediction_workload(32, 0, cache / "scenes")
    reference = gpu_check.render_and_grads(gaussians, views[0], "cpu", gaussians.sh_degree, compositor="torch")
    ours = gpu_check.render_and_grads(gaussians, views[0], "cpu", gaussians.sh_degree, compositor="compiled")
    assert set(reference) == {"colours", "alphas", *(f"d/d {name}" for name in gpu_check.INPUTS)}
    rows = gpu_check.compare(reference, ours)
    assert all(row["passed"] for row in rows), rows
    shifted = {**ours, "colours": ours["colours"] + 1e-2}
    assert not next(row for row in gpu_check.compare(reference, shifted) if row["quantity"] == "colours")["passed"]
    timing = gpu_check.time_refinement(gaussians, views, "cpu", steps=1, warmup=1)
    assert timing["seconds_per_step"] > 0 and timing["gaussians"] == gaussians.num_gaussians
