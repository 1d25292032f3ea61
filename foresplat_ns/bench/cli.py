"""`foresplat-bench`: benchmarks that print ratios measured in one run (speed targets live here, not in tests)."""

from __future__ import annotations

import tyro

from foresplat_ns.bench.backbone import BackboneBenchConfig
from foresplat_ns.bench.backbone import main as backbone_main
from foresplat_ns.bench.metagrad import MetaGradBenchConfig
from foresplat_ns.bench.metagrad import main as metagrad_main
from foresplat_ns.bench.raster import RasterBenchConfig
from foresplat_ns.bench.raster import main as raster_main
from foresplat_ns.bench.refine import RefineBenchConfig
from foresplat_ns.bench.refine import main as refine_main

COMMANDS = {
    "raster": (RasterBenchConfig, raster_main),
    "refine": (RefineBenchConfig, refine_main),
    "metagrad": (MetaGradBenchConfig, metagrad_main),
    "backbone": (BackboneBenchConfig, backbone_main),
}


def entrypoint() -> None:
    config = tyro.extras.subcommand_cli_from_dict({name: cls for name, (cls, _) in COMMANDS.items()})
    for cls, run in COMMANDS.values():
        if isinstance(config, cls):
            run(config)
            return


if __name__ == "__main__":
    entrypoint()
