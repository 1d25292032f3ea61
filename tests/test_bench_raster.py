"""`foresplat-bench raster` runs end to end on a tiny configuration and reports consistent rows."""

from foresplat_ns.bench.raster import make_bench_scene, run_raster_bench


def test_bench_scene_is_seeded_and_independent_of_image_size():
    small, large = make_bench_scene(100, 64, seed=3), make_bench_scene(100, 256, seed=3)
    assert small["means"].equal(large["means"]) and small["scales"].equal(large["scales"])
    assert large["Ks"][0, 0, 0] == 4 * small["Ks"][0, 0, 0]


def test_raster_bench_times_tiled_and_dense_paths():
    (row,) = run_raster_bench(sizes=(16,), counts=(200,), repeats=1, dense_budget_s=5.0, threads=1)
    assert row["size"] == 16 and row["count"] == 200
    assert 0 < row["tiled_forward_s"] <= row["tiled_forward_backward_s"] * 1.5
    assert row["dense_forward_backward_s"] > 0 and row["dense_rows"] == 16
