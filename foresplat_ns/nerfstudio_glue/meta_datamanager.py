"""`ns-train foresplat-meta`'s datamanager: many scenes, each read by any nerfstudio dataparser.

Each outer step draws a scene, its context views (evenly spaced with a random offset, the way
`ns-train foresplat` picks them but varied), its supervision views (all training views: what
test-time refinement fits) and its query views (the scene's held-out split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Literal, Optional, Tuple, Type

import torch
from nerfstudio.configs.dataparser_configs import AnnotatedDataParserUnion
from nerfstudio.data.datamanagers.base_datamanager import DataManager, DataManagerConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.utils.rich_utils import CONSOLE
from rich.progress import track

from foresplat_ns.backbones.base import ContextViews
from foresplat_ns.data import SceneViews, discover_scenes, load_scene
from foresplat_ns.gaussians import Gaussians
from foresplat_ns.refine import View
from foresplat_ns.start import StartConfig, splatfacto_start


@dataclass
class MetaBatch:
    """One outer step's data: a scene's context, supervision and query views, and the Gaussians the
    inner loop refines beside the prediction (None: the prediction alone)."""

    scene: str
    context: ContextViews
    supervision: List[View]
    query: List[View]
    companion: Optional[Gaussians] = None


@dataclass
class MultiSceneDataManagerConfig(DataManagerConfig):
    _target: Type = field(default_factory=lambda: MultiSceneDataManager)
    scene_format: Literal["auto", "dataparser"] = "auto"
    """'auto': each scene in its own format (LLFF, COLMAP, transforms.json, blender; SfM points loaded), so
    a folder may mix generated scenes and real captures; 'dataparser': every scene with `dataparser`."""
    dataparser: AnnotatedDataParserUnion = field(default_factory=NerfstudioDataParserConfig)
    """The dataparser every scene is read with where scene_format is 'dataparser' (its `data` is set per scene)."""
    max_image_side: Optional[int] = None
    """Shrink every image (area-averaged, intrinsics scaled) so its longer side is at most this; None: as read."""
    eval_data: Optional[Path] = None
    """Held-out scenes (same layout as `data`) for the evaluation nerfstudio runs during training."""
    num_context_views: int = 4
    backbone_sees_sfm_points: bool = False
    """Hand each scene's SfM points to the backbone with its context views (the compact backbone then takes
    their depth instead of its plane sweep's). False: the backbone learns its own depth, which is all it
    has on captures without SfM points."""
    refine_with_sfm_start: bool = False
    """Where a scene has SfM points, the inner loop refines the prediction together with splatfacto's start
    from them (opacity 0.1, nearest-neighbour scales), as `ns-train foresplat`'s default start does; only
    the prediction is trained. False: the prediction alone."""
    min_query_views: int = 1
    """Scenes with fewer held-out views than this are skipped (only matters for query='heldout')."""
    max_scenes: Optional[int] = None
    seed: int = 0


class MultiSceneDataManager(DataManager):
    config: MultiSceneDataManagerConfig

    def __init__(
        self,
        config: MultiSceneDataManagerConfig,
        device="cpu",
        test_mode: str = "val",
        world_size: int = 1,
        local_rank: int = 0,
        **kwargs,
    ):
        self.config = config
        self.device = device
        self.test_mode = test_mode
        self.world_size = world_size
        self.local_rank = local_rank
        self.train_scenes: List[Tuple[SceneViews, SceneViews]] = []
        self.eval_scenes: List[Tuple[SceneViews, SceneViews]] = []
        self.sfm_starts: Dict[str, Gaussians] = {}
        # Each rank draws its own scenes, reproducibly.
        self.generator = torch.Generator().manual_seed(config.seed * 1000 + local_rank)
        super().__init__()
        self.setup_train()
        self.setup_eval()

    # nerfstudio asks these to exist; the "datasets" here are lists of scenes.
    @property
    def train_dataset(self):
        return self.train_scenes

    @property
    def eval_dataset(self):
        return self.eval_scenes

    def setup_train(self):
        if self.test_mode == "inference":
            return
        # nerfstudio's own harness (tests/test_train.py) sets the data on the dataparser: accepted too.
        data = self.config.data if self.config.data is not None else self.config.dataparser.data
        if data is None or str(data) in ("", "."):
            raise ValueError("foresplat-meta needs --data: a folder of scenes (or a text file listing them)")
        self.config.data = Path(data)
        self.train_scenes = self._load_scenes(Path(data), "training")

    def setup_eval(self):
        if self.config.eval_data is not None and self.test_mode != "inference":
            self.eval_scenes = self._load_scenes(Path(self.config.eval_data), "held-out")

    def _load_scenes(self, root: Path, role: str) -> List[Tuple[SceneViews, SceneViews]]:
        paths = discover_scenes(root)
        if self.config.max_scenes is not None:
            paths = paths[: self.config.max_scenes]
        scenes, skipped = [], []
        for path in track(paths, description=f"Loading {role} scenes", transient=True):
            try:
                scenes.append(self._load_scene(path))
            except (ValueError, FileNotFoundError, OSError, AssertionError) as err:
                skipped.append(f"{path.name}: {err}")
                CONSOLE.log(f"[yellow]foresplat-meta: skipping scene {path}: {err}")
        if not scenes:
            reasons = "".join(f"\n  {reason}" for reason in skipped[:10]) + ("\n  ..." if len(skipped) > 10 else "")
            raise ValueError(f"no usable scene under {root} ({len(paths)} candidates){reasons}")
        CONSOLE.log(f"foresplat-meta: {len(scenes)} {role} scenes from {root}" + (f", {len(skipped)} skipped" if skipped else ""))
        return scenes

    def _load_scene(self, path: Path) -> Tuple[SceneViews, SceneViews]:
        dataparser = self.config.dataparser if self.config.scene_format == "dataparser" else None
        train, held_out = load_scene(path, dataparser, self.config.max_image_side)
        if isinstance(train.images, list):
            raise ValueError("its training images differ in size; MetaGrad training takes scenes of one image size")
        if len(train) < self.config.num_context_views:
            raise ValueError(f"{len(train)} training views, fewer than the {self.config.num_context_views} context views asked for")
        if len(held_out) < self.config.min_query_views:
            raise ValueError(f"{len(held_out)} held-out views, fewer than the {self.config.min_query_views} query views needed")
        return train, held_out

    def largest_image_side(self) -> int:
        """The longest image side among the training scenes: a checkpoint records the size it trained at."""
        return max(max(train.images.shape[1:3]) for train, _ in self.train_scenes)

    def context_indices(self, num_views: int) -> List[int]:
        """Evenly spaced context views, rotated by a random offset."""
        v = min(self.config.num_context_views, num_views)
        offset = int(torch.randint(num_views, (1,), generator=self.generator))
        return sorted({(offset + round(i * num_views / v)) % num_views for i in range(v)})

    def batch(self, scene: Tuple[SceneViews, SceneViews], context: Optional[List[int]] = None) -> MetaBatch:
        train, held_out = scene
        indices = context if context is not None else self.context_indices(len(train))
        return MetaBatch(
            scene=train.name,
            context=train.context(indices, with_points=self.config.backbone_sees_sfm_points).to(self.device),
            supervision=train.to(self.device).views(),
            query=held_out.to(self.device).views(),
            companion=self.sfm_start(train) if self.config.refine_with_sfm_start and train.has_sfm_points else None,
        )

    def sfm_start(self, scene: SceneViews) -> Gaussians:
        """splatfacto's start from the scene's SfM points (degree-0 colours), built once per scene."""
        key = str(scene.filenames[0])  # names repeat across corpora (scene_00000); image paths do not
        if key not in self.sfm_starts:
            self.sfm_starts[key] = splatfacto_start(scene, StartConfig(), sh_degree=0)
        return self.sfm_starts[key].to(self.device)

    def next_train(self, step: int) -> MetaBatch:
        self.train_count += 1
        index = int(torch.randint(len(self.train_scenes), (1,), generator=self.generator))
        return self.batch(self.train_scenes[index])

    def next_eval(self, step: int) -> MetaBatch:
        self.eval_count += 1
        index = int(torch.randint(len(self.eval_scenes), (1,), generator=self.generator))
        return self.batch(self.eval_scenes[index])

    def next_eval_image(self, step: int) -> MetaBatch:
        return self.next_eval(step)

    def get_train_rays_per_batch(self) -> int:
        """Pixels of one supervision view: the unit of one inner step."""
        if not self.train_scenes:
            return 1
        images = self.train_scenes[0][0].images
        return int(images.shape[1] * images.shape[2])

    def get_eval_rays_per_batch(self) -> int:
        return self.get_train_rays_per_batch()

    def get_datapath(self) -> Path:
        return Path(self.config.data)

    def get_param_groups(self) -> Dict[str, List[torch.nn.Parameter]]:
        return {}
