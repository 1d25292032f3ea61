"""`foresplat-bench`: benchmarks that print ratios measured in one run (speed targets live here, not in tests)."""

from __future__ import annotations

import sys
from typing import Dict, List

import tyro

from foresplat_ns.bench.backbone import BackboneBenchConfig
from foresplat_ns.bench.backbone import main as backbone_main
from foresplat_ns.bench.metagrad import MetaGradBenchConfig
from foresplat_ns.bench.metagrad import main as metagrad_main
from foresplat_ns.bench.pool import PoolBenchConfig
from foresplat_ns.bench.pool import main as pool_main
from foresplat_ns.bench.raster import RasterBenchConfig
from foresplat_ns.bench.raster import main as raster_main
from foresplat_ns.bench.refine import RefineBenchConfig
from foresplat_ns.bench.refine import main as refine_main
from foresplat_ns.bench.step import StepBenchConfig
from foresplat_ns.bench.step import main as step_main

COMMANDS = {
    "raster": (RasterBenchConfig, raster_main),
    "refine": (RefineBenchConfig, refine_main),
    "pool": (PoolBenchConfig, pool_main),
    "step": (StepBenchConfig, step_main),
    "metagrad": (MetaGradBenchConfig, metagrad_main),
    "backbone": (BackboneBenchConfig, backbone_main),
}


def merge_repeated_flags(argv: List[str]) -> List[str]:
    """`--init a --init b` as `--init a b`: tyro keeps only the last of a repeated flag, silently.

    A repeated flag's values are gathered at its first place; a repeated single-valued flag then
    gets two values and tyro refuses it, which is the point: nothing given is dropped in silence.
    """
    values: Dict[str, List[str]] = {}
    order: List[str] = []
    flag = None
    for arg in argv:
        if arg.startswith("--"):
            name, eq, value = arg.partition("=")
            flag = name
            if name not in values:
                values[name] = []
                order.append(name)
            if eq:
                values[name].append(value)
        elif flag is None:
            order.append(arg)
        else:
            values[flag].append(arg)
    merged: List[str] = []
    for item in order:
        merged += [item, *values[item]] if item in values else [item]
    return merged


def entrypoint() -> None:
    args = merge_repeated_flags(sys.argv[1:])
    config = tyro.extras.subcommand_cli_from_dict({name: cls for name, (cls, _) in COMMANDS.items()}, args=args)
    for cls, run in COMMANDS.values():
        if isinstance(config, cls):
            run(config)
            return


if __name__ == "__main__":
    entrypoint()
