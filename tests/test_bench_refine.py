"""foresplat-bench refine: per-pair results, reuse of finished pairs from results.json, tables and plots."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np

from foresplat_ns.bench.refine import RefineBenchConfig, main
from foresplat_ns.refine import RefineConfig


def test_pairs_are_written_reused_and_summarised(small_corpus, tmp_path):
    config = RefineBenchConfig(
        scenes=small_corpus, init=("random", "pointcloud"), output=tmp_path, max_steps=5, num_context_views=2,
        random_gaussians=500, reference="random", max_scenes=2, refine=RefineConfig(),
    )  # fmt: skip
    summary = main(config)
    results = json.loads((tmp_path / "results.json").read_text())
    runs = results["runs"]
    assert len(runs) == 4 and all(r["steps"] == [0, 1, 2, 5] for r in runs.values())
    assert all(np.isfinite(r["psnr"]).all() for r in runs.values())
    assert "| pointcloud |" in (tmp_path / "summary.md").read_text()
    for name in ("psnr_vs_steps.png", "psnr_vs_seconds.png"):
        assert matplotlib.image.imread(tmp_path / name).shape[0] > 100
    assert set(summary["mean_psnr"]) == {"random", "pointcloud"}
    # a second call with the same settings refines nothing again: a stale record would be kept as is
    marker = next(iter(runs))
    runs[marker]["psnr"][0] = 99.0
    (tmp_path / "results.json").write_text(json.dumps(results))
    main(config)
    assert json.loads((tmp_path / "results.json").read_text())["runs"][marker]["psnr"][0] == 99.0
