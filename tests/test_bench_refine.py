"""foresplat-bench refine: per-pair results, reuse of finished pairs from results.json, tables and plots."""

from __future__ import annotations

import json

import matplotlib.image
import numpy as np
import pytest
import torch
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

from foresplat_ns.bench.refine import RefineBenchConfig, build_initialiser, log_spaced_steps, main, parse_inits, run_pair
from foresplat_ns.data import discover_scenes, load_scene
from foresplat_ns.refine import RefineConfig
from foresplat_ns.start import StartConfig


def test_pairs_are_written_reused_and_summarised(small_corpus, tmp_path, capsys):
    config = RefineBenchConfig(
        scenes=small_corpus, init=("random", "pointcloud"), output=tmp_path, max_steps=5, start=StartConfig(num_context_views=2),
        random_gaussians=500, reference="random", max_scenes=2, refine=RefineConfig(),
    )  # fmt: skip
    summary = main(config)
    results = json.loads((tmp_path / "results.json").read_text())
    runs = results["runs"]
    assert len(runs) == 4 and all(r["steps"] == [0, 1, 2, 5] for r in runs.values())
    assert all(np.isfinite(r["psnr"]).all() for r in runs.values())
    assert "| pointcloud |" in (tmp_path / "summary.md").read_text()
    for name in ("psnr_vs_steps.png", "psnr_vs_seconds.png", "psnr_vs_steps_per_scene.png"):
        assert matplotlib.image.imread(tmp_path / name).shape[0] > 100
    assert set(summary["mean_psnr"]) == {"random", "pointcloud"}
    # a line per evaluation, with that evaluation's own numbers (a long pair is followed in a log file)
    printed = capsys.readouterr().out
    for key, run in runs.items():
        scene, label = key.split("|")
        assert f"{scene} / {label}: step 5, PSNR {run['psnr'][-1]:.2f} dB, {run['num_gaussians'][-1]:,} Gaussians" in printed
    # a second call with the same settings refines nothing again: a stale record would be kept as is
    marker = next(iter(runs))
    runs[marker]["psnr"][0] = 99.0
    (tmp_path / "results.json").write_text(json.dumps(results))
    main(config)
    assert json.loads((tmp_path / "results.json").read_text())["runs"][marker]["psnr"][0] == 99.0


def test_a_label_given_other_weights_is_refined_again(small_corpus, tmp_path):
    """Finished pairs are reused per label only while the label names the same checkpoint bytes and start."""
    from foresplat_ns.backbones import shipped_checkpoint

    def run(checkpoint):
        config = RefineBenchConfig(
            scenes=small_corpus, init=(f"learned:{checkpoint}",), output=tmp_path, max_steps=1, max_scenes=1,
            start=StartConfig(num_context_views=2), refine=RefineConfig(),
        )  # fmt: skip
        main(config)
        return next(iter(json.loads((tmp_path / "results.json").read_text())["runs"].values()))

    first = run(shipped_checkpoint("compact"))
    marker = dict(first, psnr=[99.0] * len(first["psnr"]))
    path = tmp_path / "results.json"
    results = json.loads(path.read_text())
    results["runs"] = {key: marker for key in results["runs"]}
    path.write_text(json.dumps(results))
    assert run(shipped_checkpoint("compact"))["psnr"][0] == 99.0  # same weights: reused
    other = run(shipped_checkpoint("compact", "foresplat-generated"))  # same label, other weights: redone
    assert other["psnr"][0] != 99.0 and other["init"] != first["init"]


def test_results_made_with_other_settings_or_truncated_are_refused_not_overwritten(small_corpus, tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"settings_key": "someone-else", "runs": {"a|b": {"psnr": [1.0]}}}))
    before = path.read_text()
    with pytest.raises(ValueError, match="results.json holds results made with other settings"):
        main(RefineBenchConfig(scenes=small_corpus, init=("random",), output=tmp_path, max_steps=1, max_scenes=1))
    assert path.read_text() == before
    path.write_text(before[:20])  # a truncated file: named, and left for the user to look at
    with pytest.raises(ValueError, match=f"--output {tmp_path}: .*results.json is not valid JSON"):
        main(RefineBenchConfig(scenes=small_corpus, init=("random",), output=tmp_path, max_steps=1, max_scenes=1))
    assert path.read_text() == before[:20]


def test_a_pair_does_not_depend_on_what_ran_before_it(small_corpus):
    """Densification (every Gaussian split every 2 steps, once gsplat's pause of one pass over the training
    views has passed) draws from the global RNG; a pair refined after other work in the same process must
    give exactly what it gives alone."""
    refine = RefineConfig(
        warmup_length=1, refine_every=2, reset_alpha_every=1000, densify_grad_thresh=0.0, densify_size_thresh=0.0, max_steps=26
    )  # fmt: skip
    config = RefineBenchConfig(max_steps=26, start=StartConfig(num_context_views=2), random_gaussians=300, refine=refine)
    train, held_out = load_scene(discover_scenes(small_corpus)[0], NerfstudioDataParserConfig())
    backbone = build_initialiser(parse_inits(("random",))["random"], config)
    schedule = log_spaced_steps(config.max_steps)
    alone = run_pair(train, held_out, backbone, config, refine, schedule)
    torch.randn(1000)  # other work moves the global RNG
    after = run_pair(train, held_out, backbone, config, refine, schedule)
    assert alone["num_gaussians"][-1] > alone["num_gaussians"][0]  # densification happened
    assert after["psnr"] == alone["psnr"] and after["num_gaussians"] == alone["num_gaussians"]


def test_lanes_merge_and_a_long_run_gives_each_scene_its_plateau(small_corpus, tmp_path):
    scenes = discover_scenes(small_corpus)[:2]
    for lane, scene in enumerate(scenes):
        (tmp_path / f"lane-{lane}.txt").write_text(f"{scene}\n")
    (tmp_path / "all.txt").write_text("".join(f"{s}\n" for s in scenes))

    def run(scene_list, output, **settings):
        config = RefineBenchConfig(
            scenes=tmp_path / scene_list, init=("random", "pointcloud"), output=tmp_path / output, max_steps=5,
            start=StartConfig(num_context_views=2), random_gaussians=500, refine=RefineConfig(), **settings,
        )  # fmt: skip
        return main(config)

    for lane in range(2):
        run(f"lane-{lane}.txt", f"lane-{lane}")
    marked = json.loads((tmp_path / "lane-0" / "results.json").read_text())
    marked["runs"][f"{scenes[0].name}|random"]["psnr"][0] = 99.0  # a merged pair is taken, not refined again
    (tmp_path / "lane-0" / "results.json").write_text(json.dumps(marked))
    summary = run("all.txt", "merged", merge_from=(tmp_path / "lane-0", tmp_path / "lane-1"), plateau_from=(tmp_path / "lane-1",))
    runs = json.loads((tmp_path / "merged" / "results.json").read_text())["runs"]
    assert len(runs) == 4 and runs[f"{scenes[0].name}|random"]["psnr"][0] == 99.0
    # the plateau is the reference's best in the long run (here lane-1's own run of scene 1)
    assert summary["plateaus"] == {scenes[1].name: max(runs[f"{scenes[1].name}|random"]["psnr"])}
    table = (tmp_path / "merged" / "summary.md").read_text()
    record = runs[f"{scenes[1].name}|random"]
    reach = record["steps"][record["psnr"].index(max(record["psnr"]))]
    assert "Against 'random''s plateau" in table and f"| random | {reach} | +0.00 (1/1) |" in table


def test_an_init_whose_start_is_another_inits_reuses_its_run(small_corpus, tmp_path):
    """'default' under the rule sfm-else-best starts from splatfacto's start on scenes with SfM points. One
    seeded run serves inits whose starts are the same and are refined alike; 'splatfacto' itself is refined
    with splatfacto's own learning rates, every other init with ForeSplat's."""
    config = RefineBenchConfig(
        scenes=small_corpus, init=("splatfacto", "default", "again:shipped:splatfacto"), output=tmp_path, max_steps=3,
        start=StartConfig(start="sfm-else-best", num_context_views=2), max_scenes=1, refine=RefineConfig(),
    )  # fmt: skip
    main(config)
    runs = json.loads((tmp_path / "results.json").read_text())["runs"]
    scene = discover_scenes(small_corpus)[0].name
    assert "same_as" not in runs[f"{scene}|default"] and runs[f"{scene}|again"]["same_as"] == "default"
    assert runs[f"{scene}|again"]["psnr"] == runs[f"{scene}|default"]["psnr"] != runs[f"{scene}|splatfacto"]["psnr"]
    # and the reuse is faithful: 'default' refined on its own with splatfacto's learning rates gives the very
    # curve of 'splatfacto'
    alone = RefineBenchConfig(
        **{**config.__dict__, "init": ("default",), "output": tmp_path / "alone", "refine": RefineConfig().as_splatfacto()}
    )
    main(alone)
    assert (
        json.loads((tmp_path / "alone" / "results.json").read_text())["runs"][f"{scene}|default"]["psnr"]
        == runs[f"{scene}|splatfacto"]["psnr"]
    )


def _results(folder, runs):
    """A `foresplat-bench refine` output folder holding `runs` {"scene|init": psnr list} on steps 0, 1, 5, 10."""
    folder.mkdir(parents=True)
    records = {
        key: {"steps": [0, 1, 5, 10], "psnr": psnr, "num_gaussians": [100] * 4, "seconds": [0.0, 1, 2, 3]} for key, psnr in runs.items()
    }
    (folder / "results.json").write_text(json.dumps({"settings_key": "k", "runs": records}))
    return folder


def test_pool_pairs_runs_across_folders_with_the_headline_and_each_scenes_plateau(tmp_path, capsys):
    """Two seeds x two scenes pooled as four pairs: differences, the headline (1 step against 10) and the
    plateau come from the right run of the right folder."""
    from foresplat_ns.bench.pool import PoolBenchConfig
    from foresplat_ns.bench.pool import main as pool

    seed0 = _results(tmp_path / "seed0", {"a|ref": [1, 2, 3, 4], "a|new": [2, 5, 6, 7], "b|ref": [1, 1, 1, 2], "b|new": [1, 1, 2, 2]})
    seed1 = _results(tmp_path / "seed1", {"a|ref": [1, 3, 3, 5], "a|new": [2, 5, 5, 6], "b|ref": [1, 2, 2, 3], "b|new": [0, 3, 3, 3]})
    long = _results(tmp_path / "long", {"a|ref": [1, 4, 6, 5.5], "b|ref": [1, 2, 2.5, 2]})
    summary = pool(PoolBenchConfig(runs=(seed0, seed1), reference="ref", plateau_from=(long,), output=tmp_path / "pooled"))
    table = (tmp_path / "pooled" / "summary.md").read_text()
    assert all((tmp_path / "pooled" / name).stat().st_size > 0 for name in ("psnr_vs_steps.png", "psnr_vs_steps_per_scene.png"))
    # paired over the four runs, e.g. at step 10: 7-4, 2-2, 6-5, 3-3
    assert "| new | +0.25±0.48 (2/4) | +1.50±0.65 (3/4) | +1.75±0.48 (4/4) | +1.00±0.71 (2/4) |" in table
    # the headline: new at step 1 against ref at step 10: 5-4, 1-2, 5-5, 3-3 (met where >= 0)
    assert "| new | +0.00±0.41 (3/4) |" in table
    assert summary["plateaus"] == {"a@seed0": 6, "a@seed1": 6, "b@seed0": 2.5, "b@seed1": 2.5}
    # best against the plateau: 7-6, 2-2.5, 6-6, 3-2.5
    assert "| new | 5 | 10 | — | 1 | +0.25±0.32 (3/4) |" in table
    assert "| new | +0.00±0.41 (3/4) |" in capsys.readouterr().out  # printed too

    with pytest.raises(ValueError, match="no runs of \\['other'\\]"):
        pool(PoolBenchConfig(runs=(seed0,), init=("other",), reference="ref"))
    # an init that ran on one scene only (the zero-step rule's start, made for captures with SfM points):
    # every table is over the scenes all inits ran on, the others named
    partial = _results(tmp_path / "partial", {"a|ref": [1, 2, 3, 4], "a|new": [2, 5, 6, 7], "b|ref": [9, 9, 9, 9], "b|other": [1, 1, 1, 1]})
    table = pool(PoolBenchConfig(runs=(partial,), init=("new", "ref"), reference="ref"))["markdown"]
    assert "mean ± s.e.m. over 1 scenes" in table and "left out, without a run of every init: b@partial" in table
    assert "| ref | 1.00 | 2.00 | 3.00 | 4.00 | 4.00 | 100 |" in table  # scene a alone, b@partial's 9s left out
    with pytest.raises(ValueError, match="no scene has a run of every init of new, other"):
        pool(PoolBenchConfig(runs=(partial,), init=("new", "other"), reference="new"))
    with pytest.raises(FileNotFoundError, match="no results.json"):
        pool(PoolBenchConfig(runs=(tmp_path / "nowhere",), reference="ref"))


def test_pool_names_folders_of_one_name_by_their_parents_and_reads_several_plateaus(tmp_path):
    """Seeds of two splits (fresh/seed0, fresh2/seed0) pool as four runs, each split's plateau from its own
    long run; a folder given twice and a corrupt results.json are refused with the folder named."""
    from foresplat_ns.bench.pool import PoolBenchConfig
    from foresplat_ns.bench.pool import main as pool

    runs, plateaus = [], []
    for split, offset in (("fresh", 0), ("fresh2", 10)):
        for seed in range(2):
            curves = {"a|ref": [1, 2, 3, 4 + seed], "a|new": [2, 3, 4, 5]}
            runs.append(_results(tmp_path / split / f"seed{seed}", {f"{k.replace('a', split)}": v for k, v in curves.items()}))
        plateaus.append(_results(tmp_path / split / "plateau", {f"{split}|ref": [1, 6 + offset, 5, 5]}))
    summary = pool(PoolBenchConfig(runs=tuple(runs), reference="ref", plateau_from=tuple(plateaus)))
    assert summary["plateaus"] == {
        "fresh@fresh/seed0": 6, "fresh@fresh/seed1": 6, "fresh2@fresh2/seed0": 16, "fresh2@fresh2/seed1": 16,
    }  # fmt: skip
    # new - ref at the last step over the four runs: 5-4, 5-5, 5-4, 5-5
    assert "| new | +1.00±0.00 (4/4) | +1.00±0.00 (4/4) | +1.00±0.00 (4/4) | +0.50±0.29 (2/4) |" in summary["markdown"]
    with pytest.raises(ValueError, match="a folder is given twice"):
        pool(PoolBenchConfig(runs=(runs[0], tmp_path / "fresh" / "." / "seed0"), reference="ref"))
    (runs[1] / "results.json").write_text('{"runs": {')
    with pytest.raises(ValueError, match="seed1: .*results.json is not valid JSON"):
        pool(PoolBenchConfig(runs=tuple(runs), reference="ref"))
