"""Multi-process training on CPU through `ns-train`'s own launcher.

nerfstudio 1.1.5's distributed worker asserts that CUDA is available, so `--machine.num-devices 2`
cannot run on a CPU machine even though its launcher already picks the gloo backend for CPU. ForeSplat
routes CPU jobs to a worker that does the same set-up without the CUDA checks; CUDA jobs go to
nerfstudio's worker untouched.

The switch is made when a ForeSplat trainer config is built (ns-train builds it from the command line
after `nerfstudio.scripts.train` has finished importing; our plugin module itself is imported while
that module is still half-initialised, so it cannot be done at import).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Callable, Optional

import torch.distributed as dist

_NERFSTUDIO_WORKER: Optional[Callable] = None


def cpu_capable_worker(
    local_rank: int,
    main_func: Callable,
    world_size: int,
    num_devices_per_machine: int,
    machine_rank: int,
    dist_url: str,
    config,
    timeout: timedelta = timedelta(minutes=30),
    device_type: str = "cuda",
):
    from nerfstudio.scripts import train as ns_train
    from nerfstudio.utils import comms

    if device_type != "cpu":
        worker = _NERFSTUDIO_WORKER or ns_train._distributed_worker
        return worker(local_rank, main_func, world_size, num_devices_per_machine, machine_rank, dist_url, config, timeout, device_type)
    global_rank = machine_rank * num_devices_per_machine + local_rank
    dist.init_process_group(backend="gloo", init_method=dist_url, world_size=world_size, rank=global_rank, timeout=timeout)
    for machine in range(world_size // num_devices_per_machine):
        ranks = list(range(machine * num_devices_per_machine, (machine + 1) * num_devices_per_machine))
        group = dist.new_group(ranks)
        if machine == machine_rank:
            comms.LOCAL_PROCESS_GROUP = group
    try:
        return main_func(local_rank, world_size, config, global_rank)
    finally:
        dist.destroy_process_group()


def install_cpu_launcher() -> None:
    """Point nerfstudio's launcher at `cpu_capable_worker`, once its module is fully imported (idempotent)."""
    global _NERFSTUDIO_WORKER
    ns_train = sys.modules.get("nerfstudio.scripts.train")
    worker = getattr(ns_train, "_distributed_worker", None)
    if worker is None or worker is cpu_capable_worker:
        return
    _NERFSTUDIO_WORKER = worker
    ns_train._distributed_worker = cpu_capable_worker
