"""Scene folders and corpora on disk, from a seed."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional

import numpy as np

from foresplat_ns.atomic import write_json_atomic

from .. import __version__
from .colmap import PLY_FILE, SurfacePointSampler, write_colmap
from .config import SceneConfig
from .layout import sample_scene
from .raycast import render_view
from .writer import (
    INDEX_FILE,
    SCENE_FILE,
    TRANSFORMS_FILE,
    eval_view_indices,
    prepare_output_dir,
    transforms_dict,
    write_view,
)

GENERATOR = "foresplat-synth"
GENERATOR_VERSION = 2
"""Bumped whenever the same seed and options would produce different files."""


def scene_seed(root_seed: int, index: int) -> int:
    """Seed of scene `index` of a corpus: independent streams for neighbouring indices and root seeds."""
    return int(np.random.SeedSequence([root_seed, index]).generate_state(1)[0])


def generate_scene(
    config: SceneConfig,
    out_dir: Path,
    *,
    overwrite: bool = False,
    on_view: Optional[Callable[[int], None]] = None,
    origin: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """Writes the scene of `config.seed` to `out_dir` in nerfstudio format (and, with `config.colmap`, as a
    COLMAP model) and returns its summary.

    `on_view(i)` is called after each view is written; `origin` (how the seed was derived) goes into scene.json.
    """
    out_dir = Path(out_dir)
    prepare_output_dir(out_dir, overwrite)
    scene, cameras = sample_scene(config)
    eval_indices = eval_view_indices(config.num_views, config.num_eval_views)
    provenance = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "package_version": __version__,
        "seed": config.seed,
        "origin": origin,
        "config": dataclasses.asdict(config),
        "cameras": cameras.description,
        "eval_views": eval_indices,
        **scene.describe(),
    }
    write_json_atomic(out_dir / SCENE_FILE, provenance)
    train_indices = sorted(set(range(len(cameras))) - set(eval_indices))
    sampler = SurfacePointSampler(config.seed, cameras, train_indices, config.colmap_points) if config.colmap else None
    for index in range(len(cameras)):
        image, depth = render_view(scene, cameras, index, config.supersample, config.shadows)
        rgb8 = write_view(out_dir, index, image, depth if config.depth else None)
        if sampler is not None:
            sampler.add(index, rgb8, depth)
        if on_view is not None:
            on_view(index)
    if sampler is not None:
        write_colmap(out_dir, cameras, eval_indices, sampler.points())
    ply_file = PLY_FILE if config.colmap else None
    write_json_atomic(out_dir / TRANSFORMS_FILE, transforms_dict(cameras, eval_indices, config.depth, ply_file))
    return {
        "seed": config.seed,
        "num_views": config.num_views,
        "num_train_views": config.num_views - len(eval_indices),
        "num_eval_views": len(eval_indices),
    }


def generate_corpus(
    config: SceneConfig,
    root: Path,
    num_scenes: int,
    *,
    overwrite: bool = False,
    on_scene: Optional[Callable[[int], None]] = None,
    on_view: Optional[Callable[[int], None]] = None,
) -> List[Dict[str, Any]]:
    """Writes `num_scenes` scenes to root/scene_XXXXX, seeded from (config.seed, index), then root/index.json.

    The index is written last and atomically, so a corpus with an index is complete. Returns its entries.
    """
    if num_scenes < 1:
        raise ValueError("a corpus needs at least one scene")
    root = Path(root)
    prepare_output_dir(root, overwrite)
    entries = []
    for index in range(num_scenes):
        name = f"scene_{index:05d}"
        scene_config = dataclasses.replace(config, seed=scene_seed(config.seed, index))
        origin = {"root_seed": config.seed, "index": index}
        summary = generate_scene(scene_config, root / name, on_view=on_view, origin=origin)
        entries.append({"name": name, "path": name, **summary})
        if on_scene is not None:
            on_scene(index)
    index_data = {
        "generator": GENERATOR,
        "generator_version": GENERATOR_VERSION,
        "root_seed": config.seed,
        "config": dataclasses.asdict(config),
        "scenes": entries,
    }
    write_json_atomic(root / INDEX_FILE, index_data)
    return entries
