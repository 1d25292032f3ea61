"""`foresplat-bench backbone`: a checkpoint's size, parameters and prediction latency against the budget."""

from foresplat_ns.backbones import save_checkpoint
from foresplat_ns.backbones.compact import CompactBackboneConfig
from foresplat_ns.bench.backbone import BackboneBenchConfig, main


def test_reports_the_checkpoint_against_the_budget(tmp_path):
    backbone = CompactBackboneConfig(width=8, num_depth_planes=8).setup()
    save_checkpoint(tmp_path / "small.pt", backbone)
    config = BackboneBenchConfig(
        checkpoint=tmp_path / "small.pt", resolutions=(24, 32), num_context_views=2, repeats=1, threads=1,
        max_parameters=1e5, output=tmp_path / "table.md",
    )  # fmt: skip
    row = main(config)
    parameters = sum(p.numel() for p in backbone.parameters())
    assert row["parameters"] == parameters
    assert row["checkpoint_mb"] == (tmp_path / "small.pt").stat().st_size / 1e6
    assert 0 < row["seconds_24"] and 0 < row["seconds_32"]
    table = (tmp_path / "table.md").read_text()
    assert f"| parameters | {parameters:,} | 100000 | {parameters / 1e5:.3f} |" in table
    assert "| 2 views at 32² (s) |" in table and table.count("| — | — |") == 1  # the budget is at 24² only
