"""`foresplat-bench refine`: how fast and how far each initialisation refines, scene by scene.

For every scene and initialisation it builds the start as `ns-train foresplat` does (`initial_gaussians`),
refines it the same way (same RefineConfig: optimisers, loss, SH schedule, densification) and records
held-out-view PSNR/SSIM (LPIPS when its weights are local), the Gaussian count and the wall time (the
start's construction included, and reported beside) on a log-spaced step schedule. Each scene is read in
its own format (LLFF, COLMAP, transforms.json, blender), SfM points included. Results are written after
every scene/init pair, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from foresplat_ns.atomic import write_json_atomic
from foresplat_ns.backbones import Backbone, load_backbone, shipped_checkpoint
from foresplat_ns.backbones.pointcloud import PointCloudInitConfig, RandomInitConfig
from foresplat_ns.data import discover_scenes, evenly_spaced, load_scene
from foresplat_ns.refine import RefineConfig, Refiner
from foresplat_ns.start import PROBED, RULES, START_NAMES, StartConfig, initial_gaussians, resolve_rule

CONSOLE = Console()


def log_spaced_steps(max_steps: int) -> List[int]:
    """0 and a 1-2.5-5 sequence (plus 10, 25, 50, ... as the evidence asks), up to max_steps."""
    steps = {0, max_steps}
    decade = 1
    while decade <= max_steps:
        steps.update(s for s in (decade, 2 * decade, int(2.5 * decade), 5 * decade) if s <= max_steps)
        decade *= 10
    return sorted(steps)


@dataclass
class RefineBenchConfig:
    scenes: Path = Path("data/heldout")
    """Root of the scenes (index.json, sub-folders, or a list file); any nerfstudio-data scenes."""
    init: Tuple[str, ...] = ()
    """Initialisations (--init a b c; a repeated --init adds to the list): 'default' (exactly what
    `ns-train foresplat` does with no flags), 'splatfacto' (splatfacto's own start: SfM points, else
    random), 'random', 'pointcloud' (oracle geometry when fed generated depth), or
    'LABEL:CHECKPOINT[:START]' with START one of prediction (the default), union, auto, and CHECKPOINT a
    .pt file or 'shipped'. None given: random, and the shipped compact vanilla and ForeSplat checkpoints."""
    output: Path = Path("bench-refine")
    max_steps: int = 500
    start: StartConfig = field(default_factory=StartConfig)
    """Context views, cap and splatfacto-start settings shared by every init (as --pipeline.start in ns-train)."""
    max_image_side: Optional[int] = None
    """Shrink every image (area-averaged, intrinsics scaled) so its longer side is at most this; None: as read."""
    max_eval_views: Optional[int] = None
    """Evaluate on at most this many held-out views (evenly chosen); None: all."""
    random_gaussians: int = 20_000
    """Gaussians of the random initialisation (splatfacto's default is 50k)."""
    densify: bool = True
    """Densify during refinement, as ns-train foresplat does."""
    reference: Optional[str] = None
    """Init the speed-up and the paired differences are measured against; None: 'splatfacto' where it is
    one of the inits, else the first."""
    target_psnr: Optional[float] = None
    """PSNR whose first crossing gives 'steps/seconds to target'; default: the reference's mean final PSNR."""
    max_scenes: Optional[int] = None
    plateau_from: Tuple[Path, ...] = ()
    """Output folders of long runs of the reference init (e.g. splatfacto's start for 7,000 steps): its best
    PSNR per scene is that scene's plateau, and the summary adds each init's steps to reach it and its best
    against it (the paper's headline, measured directly). Several folders (e.g. one per split) are read as
    one; a scene long-run in more than one gets its best over them."""
    merge_from: Tuple[Path, ...] = ()
    """Output folders of other runs (e.g. parallel lanes over parts of the scenes) whose finished pairs are
    taken as done, where they were made with the same settings."""
    seed: int = 0
    refine: RefineConfig = field(default_factory=RefineConfig)
    """How every init is refined: `ns-train foresplat`'s refinement."""
    splatfacto_own_learning_rates: bool = True
    """Refine 'splatfacto' with splatfacto's own learning rates (`RefineConfig.as_splatfacto`), as `ns-train
    splatfacto` would; --no-splatfacto-own-learning-rates refines it as every other init (a control: what the
    learning rates alone buy)."""

    def refinement_of(self, init: "Init") -> RefineConfig:
        if init.label == "splatfacto" and self.splatfacto_own_learning_rates:
            return self.refine.as_splatfacto()
        return self.refine


@dataclass(frozen=True)
class Init:
    """One initialisation of the benchmark: a backbone (None for splatfacto's start) and the start rule."""

    label: str
    checkpoint: Optional[Path]
    start: str
    checkpoint_with_sfm_points: Optional[Path] = None
    """Where the backbone sees a scene's SfM points, these weights instead ('default': the shipped ones for it)."""

    def checkpoint_for(self, sees_sfm_points: bool) -> Optional[Path]:
        return self.checkpoint_with_sfm_points if sees_sfm_points and self.checkpoint_with_sfm_points else self.checkpoint

    def identity(self) -> str:
        """What a run of this init depends on besides the settings: its start rule and its checkpoints'
        bytes, so that a finished pair is reused only while the label still means the same weights."""
        files = [f for f in (self.checkpoint, self.checkpoint_with_sfm_points) if f is not None]
        digests = [hashlib.sha1(Path(f).read_bytes()).hexdigest()[:12] for f in files]
        return f"{self.start}:{'+'.join(digests) or '-'}"


NON_LEARNED = ("random", "pointcloud")


def parse_inits(specs: Tuple[str, ...], config: Optional[StartConfig] = None) -> Dict[str, Init]:
    """Label -> Init, in the order given."""
    if not specs:
        specs = ("random", f"vanilla:{shipped_checkpoint('compact', 'vanilla')}", f"foresplat:{shipped_checkpoint('compact')}")
    inits: Dict[str, Init] = {}
    for spec in specs:
        label, _, rest = spec.partition(":")
        path, start = rest, "prediction"
        if rest.rpartition(":")[2] in START_NAMES + RULES and ":" in rest:
            path, _, start = rest.rpartition(":")
        if label == "default" and not rest:
            with_sfm = shipped_checkpoint("compact", with_sfm_points=True)
            init = Init(label, shipped_checkpoint("compact"), (config or StartConfig()).start, with_sfm)
        elif label == "splatfacto" and not rest:
            init = Init(label, None, "splatfacto")
        elif label in NON_LEARNED and not rest:
            init = Init(label, None, "prediction")
        elif not rest:
            raise ValueError(f"--init {spec!r}: use default, splatfacto, random, pointcloud or LABEL:CHECKPOINT[:START]")
        else:
            checkpoint = shipped_checkpoint("compact") if path == "shipped" else Path(path)
            if not checkpoint.is_file():
                raise ValueError(f"--init {spec!r}: checkpoint {checkpoint} not found")
            init = Init(label, checkpoint, start)
        if label in inits:
            raise ValueError(f"--init label {label!r} given twice")
        inits[label] = init
    return inits


def same_start_as(label: str, inits: Dict[str, Init], scene, done, config: RefineBenchConfig) -> Optional[str]:
    """An init among `done` whose start on `scene` is the very same Gaussians, refined the same way, as
    `label`'s (e.g. 'default' on a capture with SfM points is 'splatfacto'): its seeded run is reused
    instead of repeated."""

    def key(init: Init):
        start = resolve_rule(init.start, scene)
        if start in PROBED:
            return None
        scale = config.refinement_of(init).learning_rate_scale
        if start == "splatfacto":
            return (start, scale)
        checkpoint = init.checkpoint_for(config.start.backbone_sees_points_of(scene))
        return (start, scale, init.label if checkpoint is None else str(Path(checkpoint).resolve()))

    mine = key(inits[label])
    return next((other for other in done if mine is not None and key(inits[other]) == mine), None)


def build_initialiser(init: Init, config: RefineBenchConfig, sees_sfm_points: bool = False) -> Optional[Backbone]:
    """The backbone an init predicts with (None for splatfacto's start, which needs none)."""
    checkpoint = init.checkpoint_for(sees_sfm_points)
    if checkpoint is not None:
        backbone, _ = load_backbone(checkpoint)
        return backbone.eval()
    if init.label == "random":
        return RandomInitConfig(num_gaussians=config.random_gaussians, seed=config.seed).setup()
    if init.label == "pointcloud":
        return PointCloudInitConfig().setup()
    return None


def run_pair(
    train,
    held_out,
    backbone: Optional[Backbone],
    config: RefineBenchConfig,
    refine: RefineConfig,
    schedule: List[int],
    lpips=None,
    start: str = "prediction",
    on_step: Optional[Callable[[int, Optional[Dict]], None]] = None,
) -> Dict:
    """Refine one scene from one initialisation with `refine`; metrics at every scheduled step.

    `on_step(step, metrics)` is called before each step and after the last, with that step's metrics where
    it was evaluated (else None): a 5,000-step pair runs for an hour, and the caller shows how it goes."""
    # gsplat's densification draws from the global RNG: seeded here, a pair's result does not depend on
    # what ran before it in the process (other pairs, other inits' construction).
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    began = time.perf_counter()
    chosen = initial_gaussians(train, backbone, config.start, refine, start=start)
    start_seconds = time.perf_counter() - began
    refiner = Refiner(chosen.gaussians, refine, len(train), densify=config.densify, generator=generator)
    supervision = train.views()
    eval_indices = None
    if config.max_eval_views is not None and config.max_eval_views < len(held_out):
        eval_indices = evenly_spaced(config.max_eval_views, len(held_out))
    evaluation = held_out.views(eval_indices)
    record = {"steps": [], "psnr": [], "ssim": [], "seconds": [], "num_gaussians": []}
    record.update(start=chosen.name, start_seconds=start_seconds, probe_losses=chosen.probe_losses)
    if lpips is not None:
        record["lpips"] = []
    elapsed = start_seconds
    for step in range(config.max_steps + 1):
        metrics = None
        if step in schedule:
            metrics = {**refiner.evaluate(evaluation, lpips), "seconds": elapsed, "num_gaussians": refiner.gaussians.num_gaussians}
            for metric, value in metrics.items():
                record[metric].append(value)
            record["steps"].append(step)
        if on_step is not None:
            on_step(step, metrics)
        if step == config.max_steps:
            break
        tick = time.perf_counter()
        refiner.train_step(supervision[int(torch.randint(len(supervision), (1,), generator=generator))])
        elapsed += time.perf_counter() - tick
    return record


def read_results(folder: Path, flag: str) -> Dict:
    """The results.json of a `foresplat-bench refine` output folder named by `flag`, or a clear error."""
    path = folder / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{flag} {folder}: no results.json there (an output folder of foresplat-bench refine?)")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as error:
        raise ValueError(f"{flag} {folder}: {path} is not valid JSON ({error}); rerun the bench into that folder") from None


def _settings_key(config: RefineBenchConfig, inits: Dict[str, Optional[Path]]) -> str:
    """Results are reused only by a run with the same settings. The start rule is left out: it is one init's
    (`Init.identity`, checked per pair), and a file mixes inits of several rules."""
    settings = dataclasses.asdict(config)
    for key in ("output", "init", "reference", "target_psnr", "max_scenes", "scenes", "merge_from", "plateau_from"):
        settings.pop(key)
    settings["start"].pop("start")
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:12]


def main(config: RefineBenchConfig) -> Dict:
    from foresplat_ns.nerfstudio_glue.model import local_lpips

    inits = parse_inits(config.init, config.start)
    if config.reference is None:  # resolved on a copy: the caller's config stays as given
        config = dataclasses.replace(config, reference="splatfacto" if "splatfacto" in inits else next(iter(inits)))
    if config.reference not in inits:
        raise ValueError(f"--reference {config.reference!r} is not one of the inits {list(inits)}")
    scenes = discover_scenes(config.scenes)[: config.max_scenes]
    if not scenes:
        raise ValueError(f"no scenes under {config.scenes}")
    config.output.mkdir(parents=True, exist_ok=True)
    results_path = config.output / "results.json"
    key = _settings_key(config, inits)
    results = {"settings_key": key, "runs": {}}
    if results_path.is_file():
        previous = read_results(config.output, "--output")
        if previous.get("settings_key") != key:
            raise ValueError(f"{results_path} holds results made with other settings; give another --output (or move that file away)")
        results = previous
    for folder in config.merge_from:
        other = read_results(Path(folder), "--merge-from")
        if other.get("settings_key") != key:
            raise ValueError(f"--merge-from {folder}: its results were made with other settings")
        results["runs"].update({k: v for k, v in other["runs"].items() if k not in results["runs"]})
    if config.merge_from:
        write_json_atomic(results_path, results, indent=1)
    schedule = log_spaced_steps(config.max_steps)
    lpips = local_lpips()
    identities = {label: init.identity() for label, init in inits.items()}
    stale = [k for k, run in results["runs"].items() if k.split("|")[1] in inits and run.get("init") != identities[k.split("|")[1]]]
    if stale:
        CONSOLE.print(f"[yellow]redoing {len(stale)} pair(s) made with another start or checkpoint: {', '.join(stale)}")
        for k in stale:
            del results["runs"][k]
    todo = [(s, label) for s in scenes for label in inits if f"{s.name}|{label}" not in results["runs"]]
    CONSOLE.print(f"{len(scenes)} scenes x {len(inits)} inits; {len(scenes) * len(inits) - len(todo)} pairs already done")
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn())
    backbones: Dict[Tuple[str, Optional[Path]], Optional[Backbone]] = {}  # per init and weights file, built once
    with Progress(*columns, console=CONSOLE) as progress:
        task = progress.add_task("refining", total=len(todo))
        steps_task = progress.add_task("steps", total=config.max_steps)
        loaded = {}
        for scene_path, label in todo:
            progress.update(task, description=f"{scene_path.name} / {label}")
            progress.reset(steps_task)

            def on_step(step: int, metrics: Optional[Dict], pair: str = f"{scene_path.name} / {label}") -> None:
                progress.update(steps_task, completed=step)
                if metrics is not None:  # a line per evaluation: in a log file the bars show only at the end
                    progress.console.print(
                        f"  {pair}: step {step}, PSNR {metrics['psnr']:.2f} dB, "
                        f"{metrics['num_gaussians']:,} Gaussians, {metrics['seconds']:.0f} s"
                    )

            if scene_path not in loaded:
                loaded = {scene_path: load_scene(scene_path, max_image_side=config.max_image_side)}
            train, held_out = loaded[scene_path]
            finished = {other for other in inits if f"{scene_path.name}|{other}" in results["runs"]}
            twin = same_start_as(label, inits, train, finished, config)
            if twin is not None:
                record = {**results["runs"][f"{scene_path.name}|{twin}"], "same_as": twin}
            else:
                init = inits[label]
                sees = config.start.backbone_sees_points_of(train)
                key = (label, init.checkpoint_for(sees))
                if key not in backbones:
                    backbones[key] = build_initialiser(init, config, sees)
                record = run_pair(train, held_out, backbones[key], config, config.refinement_of(init), schedule, lpips, init.start, on_step)
            record["init"] = identities[label]
            results["runs"][f"{scene_path.name}|{label}"] = record
            write_json_atomic(results_path, results, indent=1)
            progress.advance(task)
    summary = summarise(results["runs"], list(inits), [s.name for s in scenes], config)
    (config.output / "summary.md").write_text(summary["markdown"])
    plot(results["runs"], list(inits), [s.name for s in scenes], config.output)
    CONSOLE.print(summary["markdown"])
    CONSOLE.print(
        f"wrote {results_path}, {config.output / 'summary.md'}, {config.output / 'psnr_vs_steps.png'}, {config.output / 'psnr_vs_seconds.png'}"
    )
    return summary


def _mean_sem(values: List[float]) -> Tuple[float, float]:
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, float("nan")
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(var / n)


def _mean_pm(mean: float, sem: float, sign: str = "") -> str:
    """'mean±sem', or the mean alone where one scene gives no standard error."""
    return f"{mean:{sign}.2f}" + ("" if math.isnan(sem) else f"±{sem:.2f}")


def _paired(diffs: List[float], ties_win: bool = False) -> str:
    """'mean±sem (wins/n)' of paired differences; a win is a difference above 0 (at least 0 with `ties_win`)."""
    mean, sem = _mean_sem(diffs)
    wins = sum(d >= 0 if ties_win else d > 0 for d in diffs)
    return f"{_mean_pm(mean, sem, '+')} ({wins}/{len(diffs)})"


def _first_crossing(record: Dict, target: float, axis: str) -> Optional[float]:
    for value, psnr in zip(record[axis], record["psnr"]):
        if psnr >= target:
            return value
    return None


def summarise(
    runs: Dict, labels: List[str], scene_names: List[str], config: RefineBenchConfig, capture_of: Callable[[str], str] = str
) -> Dict:
    """Markdown tables: mean ± s.e.m. PSNR per step, paired differences to the reference, time to target,
    the paper's headline and, given `config.plateau_from`, each init against the reference's plateau.

    `capture_of` maps a run's scene name to the scene whose long run gives its plateau (`foresplat-bench
    pool` names runs "scene@folder"). Only scenes every init ran on are summarised, so that each table
    compares means over the same scenes; the others are named."""
    left_out = [s for s in scene_names if not all(f"{s}|{label}" in runs for label in labels)]
    scene_names = [s for s in scene_names if s not in left_out]
    if not scene_names:
        raise ValueError(f"no scene has a run of every init of {', '.join(labels)}")
    per = {label: [runs[f"{s}|{label}"] for s in scene_names] for label in labels}
    steps = per[labels[0]][0]["steps"]
    lines = [f"Held-out-view PSNR (dB) after N refinement steps; mean ± s.e.m. over {len(scene_names)} scenes", ""]
    if left_out:
        lines[1:1] = [f"(left out, without a run of every init: {', '.join(left_out)})"]
    lines.append("| init | " + " | ".join(str(s) for s in steps) + " | best | Gaussians (end) |")
    lines.append("|---" * (len(steps) + 3) + "|")
    table = {}
    for label in labels:
        cells = []
        for i in range(len(steps)):
            mean, sem = _mean_sem([r["psnr"][i] for r in per[label]])
            cells.append(_mean_pm(mean, sem))
            table.setdefault(label, []).append(mean)
        best = _mean_sem([max(r["psnr"]) for r in per[label]])
        count = sum(r["num_gaussians"][-1] for r in per[label]) / len(per[label])
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {_mean_pm(*best)} | {count:.0f} |")

    other_metrics = [
        ("ssim", "SSIM", ".3f"),
        ("lpips", "LPIPS", ".3f"),
        ("num_gaussians", "Gaussians", ".0f"),
        ("seconds", "seconds (start included)", ".1f"),
    ]
    for metric, name, fmt in other_metrics:
        if not all(metric in r for records in per.values() for r in records):
            continue
        lines += [
            "",
            f"{name}, mean over scenes",
            "",
            "| init | " + " | ".join(str(s) for s in steps) + " |",
            "|---" * (len(steps) + 1) + "|",
        ]
        for label in labels:
            means = [sum(r[metric][i] for r in per[label]) / len(per[label]) for i in range(len(steps))]
            lines.append(f"| {label} | " + " | ".join(f"{m:{fmt}}" for m in means) + " |")

    ref = config.reference
    lines += ["", f"Paired difference to '{ref}' (dB), mean ± s.e.m. over scenes; wins = scenes where it is higher", ""]
    lines.append("| init | " + " | ".join(str(s) for s in steps) + " |")
    lines.append("|---" * (len(steps) + 1) + "|")
    by_scene = {label: {s: runs[f"{s}|{label}"] for s in scene_names} for label in labels}
    for label in labels:
        if label == ref:
            continue
        cells = []
        for i in range(len(steps)):
            diffs = [by_scene[label][s]["psnr"][i] - by_scene[ref][s]["psnr"][i] for s in scene_names]
            cells.append(_paired(diffs))
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    target = config.target_psnr if config.target_psnr is not None else table[ref][-1]
    lines += ["", f"Reaching {target:.2f} dB (mean curve; '—' = not within {config.max_steps} steps)", ""]
    lines.append("| init | steps | seconds | speed-up vs " + ref + " (steps) |")
    lines.append("|---|---|---|---|")
    mean_curves = {}
    for label in labels:
        mean_curves[label] = {
            "steps": steps,
            "seconds": [sum(r["seconds"][i] for r in per[label]) / len(per[label]) for i in range(len(steps))],
            "psnr": table[label],
        }
    ref_steps = _first_crossing(mean_curves[ref], target, "steps")
    for label in labels:
        s = _first_crossing(mean_curves[label], target, "steps")
        t = _first_crossing(mean_curves[label], target, "seconds")
        speedup = f"{ref_steps / s:.1f}x" if s and ref_steps else ("∞" if s == 0 and ref_steps else "—")
        lines.append(f"| {label} | {s if s is not None else '—'} | {f'{t:.1f}' if t is not None else '—'} | {speedup} |")
    lines += headline_table(by_scene, labels, ref, steps)
    plateaus = {}
    if config.plateau_from:
        best: Dict[str, float] = {}
        for folder in config.plateau_from:
            for key, record in read_results(Path(folder), "--plateau-from")["runs"].items():
                best[key] = max(best.get(key, -math.inf), max(record["psnr"]))
        plateaus = {s: best[f"{capture_of(s)}|{ref}"] for s in scene_names if f"{capture_of(s)}|{ref}" in best}
        lines += plateau_table(by_scene, labels, plateaus, ref, config.max_steps)
    return {"markdown": "\n".join(lines) + "\n", "mean_psnr": table, "target": target, "plateaus": plateaus, "scenes": scene_names}


def headline_table(by_scene: Dict, labels: List[str], ref: str, steps: List[int]) -> List[str]:
    """The paper's headline, paired per scene: each init after a tenth of the steps against the reference
    after all of them (e.g. 200 against 2,000); met where the difference is >= 0. Empty where the schedule
    has no step at a tenth."""
    last, tenth = len(steps) - 1, steps[-1] // 10
    if tenth == 0 or tenth not in steps:
        return []
    early = steps.index(tenth)
    lines = [
        "",
        f"The paper's headline: each init after {tenth} steps against '{ref}' after {steps[-1]} (dB, paired; "
        "mean ± s.e.m., scenes where it is at least as high)",
        "",
        f"| init | {tenth} against {steps[-1]} |",
        "|---|---|",
    ]
    for label in labels:
        if label == ref:
            continue
        diffs = [record["psnr"][early] - by_scene[ref][s]["psnr"][last] for s, record in by_scene[label].items()]
        lines.append(f"| {label} | {_paired(diffs, ties_win=True)} |")
    return lines


def plateau_table(by_scene: Dict, labels: List[str], plateaus: Dict[str, float], ref: str, max_steps: int) -> List[str]:
    """Per init: the steps it needs to reach each scene's plateau of the reference, and its best against it.
    `by_scene` holds every init's run on every scene (`summarise` keeps only those)."""
    lines = [
        "",
        f"Against '{ref}''s plateau (its best PSNR in the long run), per scene: steps to reach it within {max_steps} "
        "('—' never), and best within them minus the plateau (dB, mean ± s.e.m., wins)",
        "",
        "| init | " + " | ".join(plateaus) + " | best − plateau |",
        "|---" * (len(plateaus) + 2) + "|",
    ]
    for label in labels:
        reach, diffs = [], []
        for scene, plateau in plateaus.items():
            record = by_scene[label][scene]
            step = _first_crossing(record, plateau, "steps")
            reach.append("—" if step is None else str(step))
            diffs.append(max(record["psnr"]) - plateau)
        if not diffs:
            continue
        lines.append(f"| {label} | " + " | ".join(reach) + f" | {_paired(diffs, ties_win=True)} |")
    return lines


def plot(runs: Dict, labels: List[str], scene_names: List[str], output: Path) -> None:
    """PSNR against steps and against seconds: one line per init, the band is ± one s.e.m."""
    import itertools

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # Past ten inits the default cycle repeats colours: give every init its own.
    colours = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20").colors
    for axis, name in (("steps", "psnr_vs_steps.png"), ("seconds", "psnr_vs_seconds.png")):
        fig, ax = plt.subplots(figsize=(6, 4) if len(labels) <= 10 else (8, 5), dpi=120)
        for label, colour in zip(labels, itertools.cycle(colours)):
            records = [runs[f"{s}|{label}"] for s in scene_names if f"{s}|{label}" in runs]
            n = len(records[0]["steps"])
            xs = [sum(r[axis][i] for r in records) / len(records) for i in range(n)]
            stats = [_mean_sem([r["psnr"][i] for r in records]) for i in range(n)]
            mean = [m for m, _ in stats]
            sem = [0.0 if math.isnan(e) else e for _, e in stats]
            xs_plot = [max(x, 0.5) if axis == "steps" else x for x in xs]
            ax.plot(xs_plot, mean, marker="o", markersize=3, label=label, color=colour)
            ax.fill_between(xs_plot, [m - e for m, e in zip(mean, sem)], [m + e for m, e in zip(mean, sem)], alpha=0.2, color=colour)
        if axis == "steps":
            ax.set_xscale("log")
            ax.set_xlabel("refinement steps (0 plotted at 0.5)")
        else:
            ax.set_xlabel("refinement wall time (s)")
        ax.set_ylabel("held-out PSNR (dB)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small", ncol=1 if len(labels) <= 10 else 2)
        fig.tight_layout()
        fig.savefig(output / name)
        plt.close(fig)

    # One panel per scene: means over scenes hide where an init wins and where it loses.
    columns = min(len(scene_names), 4)
    rows = -(-len(scene_names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 2.8 * rows), dpi=120, squeeze=False)
    for ax, scene in zip(axes.flat, scene_names):
        for label, colour in zip(labels, itertools.cycle(colours)):
            record = runs.get(f"{scene}|{label}")
            if record is not None:
                ax.plot([max(x, 0.5) for x in record["steps"]], record["psnr"], marker="o", markersize=2, label=label, color=colour)
        ax.set_xscale("log")
        ax.set_title(scene, fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(scene_names) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("held-out PSNR (dB)")
    axes.flat[0].legend(fontsize="x-small")
    fig.supxlabel("refinement steps (0 plotted at 0.5)", fontsize="small")
    fig.tight_layout()
    fig.savefig(output / "psnr_vs_steps_per_scene.png")
    plt.close(fig)
