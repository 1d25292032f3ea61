"""`capture-data`: any capture folder, read in its own format; `ns-train foresplat`'s default dataparser.

A user's capture arrives as COLMAP output (`sparse/0` beside `images` or only `images_N`), an
instant-ngp or ns-process-data `transforms.json`, an LLFF `poses_bounds.npy` or a NeRF-synthetic
scene. nerfstudio's default, `nerfstudio-data`, reads only the second and only with `images`; this
dataparser looks at the folder (`foresplat_ns.data.scene_dataparser`) and hands it to the dataparser
that reads it as it is, SfM points included. Naming a dataparser on the command line still picks that
one with its own options.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Type

from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig
from nerfstudio.plugins.registry_dataparser import DataParserSpecification

from foresplat_ns.data import scene_dataparser


@dataclass
class CaptureDataParserConfig(DataParserConfig):
    _target: Type = field(default_factory=lambda: DataParser)
    data: Path = Path()
    """Capture folder: COLMAP, transforms.json (nerfstudio-data, instant-ngp), LLFF or NeRF-synthetic."""

    def concrete(self) -> DataParserConfig:
        """The config of the dataparser that reads `data` in its own format."""
        config = scene_dataparser(self.data)
        config.data = self.data
        return config

    def setup(self, **kwargs) -> DataParser:
        return self.concrete().setup(**kwargs)


capture_data = DataParserSpecification(
    config=CaptureDataParserConfig(),
    description="Any capture in its own format (COLMAP, transforms.json, LLFF, Blender), SfM points included (ForeSplat)",
)
