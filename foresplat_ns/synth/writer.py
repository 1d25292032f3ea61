"""Files on disk: nerfstudio-format scene folders, JSON written atomically, and guarding of output folders.

A scene folder holds images/frame_XXXXX.png (8-bit RGB), depth/frame_XXXXX.png (16-bit z-depth in millimetres,
0 where nothing was hit: nerfstudio's default depth_unit_scale_factor of 1e-3 turns it into metres),
scene.json (provenance) and transforms.json, written last so that its presence marks a complete folder.
With the COLMAP export on (colmap.py), also colmap/sparse/0/, sparse_pc.ply and {train,val,test}_list.txt.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any, List, Optional, Sequence

import numpy as np
from PIL import Image
from torch import Tensor

from .cameras import CameraSet

IMAGE_DIR = "images"
DEPTH_DIR = "depth"
TRANSFORMS_FILE = "transforms.json"
SCENE_FILE = "scene.json"
INDEX_FILE = "index.json"
MAX_DEPTH_MM = np.iinfo(np.uint16).max
"""Depths beyond 65.535 m are clipped to it."""
_GENERATED_ENTRY = re.compile(
    rf"^({IMAGE_DIR}|{DEPTH_DIR}|{TRANSFORMS_FILE}|{SCENE_FILE}|{INDEX_FILE}|scene_\d{{5}}"
    r"|colmap|sparse_pc\.ply|(train|val|test)_list\.txt)$"
)


class OutputNotEmptyError(FileExistsError):
    """The output folder already holds files and overwriting was not asked for."""


def prepare_output_dir(path: Path, overwrite: bool) -> None:
    """Creates `path`, refusing a non-empty folder unless `overwrite`.

    Overwriting removes only what this generator writes (images/, depth/, transforms.json, scene.json,
    index.json, scene_XXXXX/, colmap/, sparse_pc.ply, {train,val,test}_list.txt), so stale views or scenes
    of an earlier, larger run cannot linger; other files stay.
    """
    if path.exists() and not path.is_dir():
        raise OutputNotEmptyError(f"output path {path} exists and is not a directory")
    if path.is_dir() and any(path.iterdir()):
        if not overwrite:
            raise OutputNotEmptyError(f"output directory {path} is not empty; pass --overwrite to replace its contents")
        for entry in path.iterdir():
            if not _GENERATED_ENTRY.match(entry.name):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry)
            else:
                entry.unlink()
    path.mkdir(parents=True, exist_ok=True)


def frame_name(index: int) -> str:
    return f"frame_{index:05d}.png"


def eval_view_indices(num_views: int, num_eval_views: int) -> List[int]:
    """Held-out views spread evenly over the sequence, e.g. 3, 9, 15, 21 of 24, each flanked by train views."""
    return [int((k + 0.5) * num_views / num_eval_views) for k in range(num_eval_views)]


def to_rgb8(image: Tensor) -> np.ndarray:
    """Image [H, W, 3] in [0, 1] as the 8-bit RGB array that is written."""
    return (image.numpy() * 255.0).round().clip(0, 255).astype(np.uint8)


def write_view(out_dir: Path, index: int, image: Tensor, depth: Optional[Tensor]) -> np.ndarray:
    """Writes image [H, W, 3] in [0, 1] as 8-bit PNG and, if given, z-depth [H, W] in metres as 16-bit PNG (mm).

    Returns the 8-bit image written."""
    rgb = to_rgb8(image)
    (out_dir / IMAGE_DIR).mkdir(exist_ok=True)
    Image.fromarray(rgb).save(out_dir / IMAGE_DIR / frame_name(index))
    if depth is not None:
        millimetres = (depth.double().numpy() * 1000.0).round().clip(0, MAX_DEPTH_MM).astype(np.uint16)
        (out_dir / DEPTH_DIR).mkdir(exist_ok=True)
        Image.fromarray(millimetres).save(out_dir / DEPTH_DIR / frame_name(index))
    return rgb


def transforms_dict(cameras: CameraSet, eval_indices: Sequence[int], with_depth: bool, ply_file: Optional[str] = None) -> dict:
    """nerfstudio's transforms.json: shared OPENCV intrinsics without distortion, OpenGL poses, explicit splits.

    nerfstudio reads the split lists whatever its eval_mode; val and test are the same held-out views.
    `ply_file` (set when a COLMAP model is written beside it) adds "ply_file_path" and an identity
    "applied_transform": without them nerfstudio's dataparser, seeing colmap/sparse/0, would assume an
    ns-process-data world transform and, with load_3D_points, stop at an interactive prompt.
    """
    frames = []
    for index in range(len(cameras)):
        frame: dict[str, Any] = {
            "file_path": f"{IMAGE_DIR}/{frame_name(index)}",
            "transform_matrix": cameras.camtoworlds[index].tolist(),
        }
        if with_depth:
            frame["depth_file_path"] = f"{DEPTH_DIR}/{frame_name(index)}"
        frames.append(frame)
    eval_set = set(eval_indices)
    eval_files = [f"{IMAGE_DIR}/{frame_name(i)}" for i in sorted(eval_set)]
    extra: dict[str, Any] = {}
    if ply_file is not None:
        extra = {"ply_file_path": ply_file, "applied_transform": np.eye(4)[:3].tolist()}
    return {
        "camera_model": "OPENCV",
        "fl_x": cameras.fx,
        "fl_y": cameras.fy,
        "cx": cameras.cx,
        "cy": cameras.cy,
        "w": cameras.width,
        "h": cameras.height,
        "k1": 0.0,
        "k2": 0.0,
        "p1": 0.0,
        "p2": 0.0,
        "frames": frames,
        "train_filenames": [f"{IMAGE_DIR}/{frame_name(i)}" for i in range(len(cameras)) if i not in eval_set],
        "val_filenames": eval_files,
        "test_filenames": eval_files,
        **extra,
    }
