"""`foresplat-bench pool`: one summary over several `foresplat-bench refine` outputs, e.g. one per --seed.

A refinement seed is one more sample of the same comparison. Each folder's (scene, init) runs become the
runs "scene@folder" (the folder named by as much of its path as tells it from the others, e.g.
fresh/seed0 and fresh2/seed0), and `refine`'s tables (means, paired differences, the paper's headline and, with
--plateau-from, each init against the reference's plateau of that scene) are computed over all of them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from rich.console import Console

from foresplat_ns.bench.refine import RefineBenchConfig, plot, read_results, summarise

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
    plateau_from: Tuple[Path, ...] = ()
    """Output folders of long runs of the reference (e.g. one per split): its best PSNR per scene is that
    scene's plateau."""
    output: Optional[Path] = None
    """Folder to write summary.md and the plots (`refine`'s, over the pooled runs) into; None: print only."""


def run_names(folders: Tuple[Path, ...]) -> List[str]:
    """Each folder's shortest trailing path that no other folder shares: seed0 and seed1, or fresh/seed0
    and fresh2/seed0."""
    parts = [Path(folder).resolve().parts for folder in folders]
    if len(set(parts)) != len(parts):
        raise ValueError(f"--runs: a folder is given twice: {[str(folder) for folder in folders]}")
    for depth in itertools.count(1):  # distinct paths: their whole paths at the latest
        names = ["/".join(p[-depth:]) for p in parts]
        if len(set(names)) == len(names):
            return names


def pooled_runs(folders: Tuple[Path, ...]) -> Dict[str, Dict]:
    """{"scene@folder|init": record} over the folders' results.json files."""
    runs = {}
    for folder, name in zip(folders, run_names(folders)):
        for key, record in read_results(Path(folder), "--runs")["runs"].items():
            scene, label = key.split("|")
            runs[f"{scene}{SEPARATOR}{name}|{label}"] = record
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
        plot(runs, labels, summary["scenes"], config.output)
    return summary
