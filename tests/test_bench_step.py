"""`foresplat-bench step`: the phase-by-phase step is Refiner.train_step, and the table's rows are complete."""

from __future__ import annotations

import pytest
import torch

from foresplat_ns.bench.step import PHASES, PhaseTimer, machine_thread_scaling, prediction_workload, time_configurations, timed_step
from foresplat_ns.refine import RefineConfig, Refiner


def test_timed_step_is_a_train_step(tmp_path):
    gaussians, views = prediction_workload(32, seed=3, folder=tmp_path)
    refiners = []
    for timed in (False, True):
        torch.manual_seed(0)
        refiner = Refiner(gaussians, RefineConfig(), len(views), densify=True, generator=torch.Generator().manual_seed(0))
        for step in range(3):
            if timed:
                timed_step(refiner, views[step], PhaseTimer())
            else:
                refiner.train_step(views[step])
        refiners.append(refiner)
    for name in refiners[0].params:
        torch.testing.assert_close(refiners[0].params[name], refiners[1].params[name], rtol=0, atol=0)


def test_configurations_are_timed_in_turn_and_threads_restored(tmp_path, monkeypatch):
    from foresplat_ns.bench import step as step_module

    gaussians, views = prediction_workload(32, seed=3, folder=tmp_path)
    order = []
    original = step_module.timed_step

    def recording(refiner, view, timer):
        order.append((id(refiner), torch.get_num_threads()))
        original(refiner, view, timer)

    monkeypatch.setattr(step_module, "timed_step", recording)
    threads = torch.get_num_threads()
    configurations = [("compiled", 1), ("torch", 1), ("compiled", 2)]
    timed = time_configurations(gaussians, views, configurations, steps=2, warmup=1, seed=0)
    assert torch.get_num_threads() == threads
    # one step of each configuration per round, each on a refiner of its own, at its own thread count
    assert len(order) == 3 * 3 and [n for _, n in order] == [1, 1, 2] * 3
    refiner_ids = [refiner for refiner, _ in order]
    assert len(set(refiner_ids[:3])) == 3 and refiner_ids[3:6] == refiner_ids[:3] and refiner_ids[6:] == refiner_ids[:3]
    for ms in timed:
        assert set(ms) == {*PHASES, "total"} and all(value >= 0 for value in ms.values())
        assert ms["total"] >= 0.9 * sum(ms[phase] for phase in PHASES)


def test_machine_thread_scaling_is_measured_against_one_thread():
    threads = torch.get_num_threads()
    assert machine_thread_scaling((2,)) == {}  # nothing to compare with
    ceiling = machine_thread_scaling((1, 2))
    assert list(ceiling) == [2] and ceiling[2] > 0
    assert torch.get_num_threads() == threads


def test_timed_steps_render_the_sh_degree_asked_for_after_the_warm_up(tmp_path, monkeypatch):
    from foresplat_ns.refine import refiner as refiner_module

    gaussians, views = prediction_workload(32, seed=3, folder=tmp_path)
    degrees = []
    render_view = refiner_module.render_view
    monkeypatch.setattr(
        refiner_module, "render_view", lambda g, view, degree, *a, **k: degrees.append(degree) or render_view(g, view, degree, *a, **k)
    )
    time_configurations(gaussians, views, [("compiled", 1)], steps=2, warmup=3, seed=0, sh_degree=3)
    assert degrees == [0, 1, 2, 3, 3]
    with pytest.raises(ValueError, match="--sh-degree 3"):
        time_configurations(gaussians, views, [("compiled", 1)], steps=1, warmup=2, seed=0, sh_degree=3)
