"""`foresplat-bench step`: the phase-by-phase step is Refiner.train_step, and the table's rows are complete."""

from __future__ import annotations

import torch

from foresplat_ns.bench.step import PHASES, PhaseTimer, machine_thread_scaling, prediction_workload, time_steps, timed_step
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

    ms = time_steps(gaussians, views, "compiled", threads=1, steps=2, warmup=1, seed=0)
    assert set(ms) == {*PHASES, "total"} and all(value >= 0 for value in ms.values())
    assert ms["total"] >= 0.9 * sum(ms[phase] for phase in PHASES)


def test_machine_thread_scaling_is_measured_against_one_thread():
    threads = torch.get_num_threads()
    assert machine_thread_scaling((2,)) == {}  # nothing to compare with
    ceiling = machine_thread_scaling((1, 2))
    assert list(ceiling) == [2] and ceiling[2] > 0
    assert torch.get_num_threads() == threads
