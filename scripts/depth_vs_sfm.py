"""How far a backbone's own depth is from a capture's SfM points, per context view (run by hand).

For each capture with SfM points: the compact checkpoint predicts from the context views `ns-train
foresplat` would use, without the points (`backbone_sees_sfm_points=False`), and every SfM point that
lands in a context view is compared with the predicted depth of its pixel block. Printed per view: the
points seen, the SfM and predicted depths there (10th/50th/90th percentiles), their log ratio, and the
correlation of the two log depths (near 0: the prediction does not follow the scene's depth at all).

    .venv/bin/python scripts/depth_vs_sfm.py ../shared/data/real-captures/yhuoyuh_db --max-image-side 240
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Tuple

import torch
import tyro
from rich.console import Console
from rich.table import Table

from foresplat_ns.backbones import BackboneSelection, build_backbone
from foresplat_ns.backbones.sfm_depth import points_in_view
from foresplat_ns.cameras import project_points
from foresplat_ns.data import load_scene
from foresplat_ns.start import StartConfig


@dataclass
class DepthVsSfmConfig:
    captures: tyro.conf.Positional[Tuple[Path, ...]]
    """Capture folders (any format `foresplat-bench refine` reads); those without SfM points are skipped."""
    backbone: BackboneSelection = field(default_factory=BackboneSelection)
    max_image_side: int = 240
    num_context_views: int = StartConfig().num_context_views


def quantiles(values: torch.Tensor) -> str:
    q = torch.quantile(values, torch.tensor([0.1, 0.5, 0.9], dtype=values.dtype))
    return " / ".join(f"{v:.2f}" for v in q.tolist())


@torch.no_grad()
def main(config: DepthVsSfmConfig) -> None:
    backbone = build_backbone(config.backbone).eval()
    table = Table(title="predicted depth against the SfM points' (per context view)")
    for column in ("capture", "view", "points", "SfM depth", "predicted", "log(pred/SfM)", "corr(log)"):
        table.add_column(column)
    for capture in config.captures:
        scene, _ = load_scene(capture, max_image_side=config.max_image_side)
        if not scene.has_sfm_points:
            continue
        indices = scene.context_indices(config.num_context_views)
        context = scene.context(indices, with_points=False)
        means = backbone(context).means[0].reshape(len(indices), -1, 3)
        stride = backbone.config.stride
        height, width = context.images.shape[2:4]
        blocks_per_row = -(-width // stride)
        for v, index in enumerate(indices):
            K, camtoworld = context.intrinsics[0, v], context.camtoworlds[0, v]
            predicted = project_points(means[v], K, camtoworld)[1]
            pixel, sfm = points_in_view(scene.points[0], K, camtoworld, height, width)
            pred = predicted[(pixel // width) // stride * blocks_per_row + (pixel % width) // stride]
            corr = torch.corrcoef(torch.stack([pred.log(), sfm.log()]))[0, 1]
            row = (quantiles(sfm), quantiles(pred), quantiles((pred / sfm).log()), f"{corr:+.2f}")
            table.add_row(scene.name, str(index), str(sfm.numel()), *row)
    Console().print(table)


if __name__ == "__main__":
    main(tyro.cli(DepthVsSfmConfig))
