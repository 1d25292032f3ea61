"""`foresplat-bench pool`: one summary over several `foresplat-bench refine` outputs, e.g. one per --seed.

A refinement seed is one more sample of the same comparison. Each folder's (scene, init) runs become the
runs "scene@folder", and `refine`'s tables (means, paired differences, the paper's headline and, with
--plateau-from, each init against the reference's plateau of that scene) are computed over all of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

from rich.console import Console

from foresplat_ns.bench.refine import RefineBenchConfig, summarise

SEPARATOR = "@"
"""Between a run's scene and its folder in the pooled names."""


@dataclass
class PoolBenchConfig:
    runs: Tuple[Path, ...] = ()
    """Output folders of `foresplat-bench refine` (--runs a b c), made with the same step schedule."""
    init: Tuple[str, ...] = ()
    """Inits to summarise, in this order; none given: every init of the folders, in the order first met."""
    reference: str = "splatfacto"
    """Init the paired differences, the headline and the plateau are measured against."""
    plateau_from: Optional[Path] = None
    """Output folder of a long run of the reference: its best PSNR per scene is that scene's plateau."""
    output: Optional[Path] = None
    """Folder to write summary.md into; None: print only."""


def pooled_runs(folders: Tuple[Path, ...]) -> Dict[str, Dict]:
    """{"scene@folder|init": record} over the folders' results.json files."""
    names = [folder.name for folder in folders]
    if len(set(names)) != len(names):
        raise ValueError(f"--runs: folder names must differ (they name the pooled runs): {names}")
    runs = {}
    for folder in folders:
        path = Path(folder) / "results.json"
        if not path.is_file():
            raise FileNotFoundError(f"--runs {folder}: no results.json there (an output folder of foresplat-bench refine?)")
        for key, record in json.loads(path.read_text())["runs"].items():
            scene, label = key.split("|")
            runs[f"{scene}{SEPARATOR}{folder.name}|{label}"] = record
    return runs


def main(config: PoolBenchConfig) -> Dict:
    if not config.runs:
        raise ValueError("--runs: give the output folders of foresplat-bench refine to pool")
    runs = pooled_runs(config.runs)
    labels = list(config.init) or list(dict.fromkeys(key.split("|")[1] for key in runs))
    missing = [label for label in [*labels, config.reference] if not any(key.endswith(f"|{label}") for key in runs)]
    if missing:
        raise ValueError(f"no runs of {missing} in {[str(f) for f in config.runs]}")
    if config.reference not in labels:
        labels.append(config.reference)
    schedules = {tuple(run["steps"]) for key, run in runs.items() if key.split("|")[1] in labels}
    if len(schedules) != 1:
        raise ValueError(f"the runs were made with different step schedules ({len(schedules)}); pool like with like")
    scene_names = sorted({key.split("|")[0] for key in runs})
    steps = next(iter(schedules))
    settings = RefineBenchConfig(reference=config.reference, max_steps=steps[-1], plateau_from=config.plateau_from)
    summary = summarise(runs, labels, scene_names, settings, capture_of=lambda name: name.split(SEPARATOR)[0])
    Console(width=200).print(summary["markdown"])
    if config.output is not None:
        config.output.mkdir(parents=True, exist_ok=True)
        (config.output / "summary.md").write_text(summary["markdown"])
    return summary
