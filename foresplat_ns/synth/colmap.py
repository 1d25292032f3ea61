"""COLMAP export: a text model (colmap/sparse/0) plus a point cloud, so nerfstudio's colmap dataparser reads a
generated scene with its default options, and splatfacto-style methods get an SfM-like initialisation.

Conventions (what nerfstudio 1.1.5's ColmapDataParser expects by default):

* The COLMAP world is the generator's world (y up, scene.json's coordinates) turned 180 degrees about x:
  (x, y, z) -> (x, -y, -z), so gravity points along +y as in a typical COLMAP reconstruction. The parser's
  `assume_colmap_world_coordinate_convention` maps that back to a z-up world, which is the generator's world
  turned +90 degrees about x: (x, y, z) -> (x, -z, y), the same frame nerfstudio's own dataparser ends up in
  when it orients transforms.json "up".
* images.txt holds world-to-camera rotations (quaternion, w first) and translations in OpenCV camera axes
  (x right, y down, z forward), image names relative to the dataparser's images_path ("images").
* The points are unprojected from the rendered z-depth of the training views (a deterministic subsample of
  the pixels that hit a surface), coloured by the written 8-bit image. Each has a track of one observation,
  the pixel it came from (listed in its image's POINTS2D line), so the parser's optional 2D-match loading
  (max_2D_matches_per_3D_point != 0) works too; held-out views have an empty POINTS2D line.
* The depth maps need no copy: ColmapDataParserConfig(depths_path=Path("depth")) finds depth/frame_XXXXX.png.
* train_list.txt / val_list.txt / test_list.txt in the scene folder make the colmap parser use the same
  split as transforms.json (it reads them whatever its eval_mode).

The same cloud is written, in the generator's world, as sparse_pc.ply: nerfstudio's own dataparser with
load_3D_points=True would otherwise stop at an interactive prompt when it sees colmap/sparse/0 without a
"ply_file_path" in transforms.json (see writer.transforms_dict).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import List, Sequence

import numpy as np
from torch import Tensor

from foresplat_ns.atomic import write_text_atomic

from .cameras import CameraSet
from .writer import frame_name

COLMAP_DIR = "colmap"
SPARSE_DIR = Path(COLMAP_DIR) / "sparse" / "0"
PLY_FILE = "sparse_pc.ply"
SPLIT_LISTS = {"train": "train_list.txt", "val": "val_list.txt", "test": "test_list.txt"}
"""Split files nerfstudio's colmap dataparser reads (names relative to its images_path)."""
CAMERA_ID = 1
POINT_STREAM = 3
"""Child of SeedSequence(seed) the point subsample draws from; 0-2 are layout.sample_scene's streams."""
COLMAP_FROM_WORLD = np.diag([1.0, -1.0, -1.0])
"""Generator world (y up) -> COLMAP world (y down); its own inverse."""
OPENCV_FROM_OPENGL = np.diag([1.0, -1.0, -1.0])
"""Camera axes: OpenGL (x right, y up, -z forward) -> OpenCV (x right, y down, +z forward); its own inverse."""


@dataclass(frozen=True)
class SurfacePoints:
    """Points on the scene's surfaces, in the generator's world, with the pixel each was seen at."""

    xyz: np.ndarray
    """[N, 3] float64 world positions (metres)."""
    rgb: np.ndarray
    """[N, 3] uint8 colours of the pixels they came from."""
    view: np.ndarray
    """[N] int64 index of the view each came from."""
    pixel: np.ndarray
    """[N, 2] int64 (column, row) of that pixel."""

    def __len__(self) -> int:
        return self.xyz.shape[0]


class SurfacePointSampler:
    """Collects a deterministic subsample of depth pixels, view by view, as views are rendered."""

    def __init__(self, seed: int, cameras: CameraSet, source_views: Sequence[int], num_points: int):
        self.cameras = cameras
        self.rng = np.random.default_rng(np.random.SeedSequence(seed).spawn(POINT_STREAM + 1)[POINT_STREAM])
        views = sorted(source_views)
        base, extra = divmod(num_points, len(views)) if views else (0, 0)
        self.quota = {view: base + (1 if k < extra else 0) for k, view in enumerate(views)}
        self.parts: List[SurfacePoints] = []

    def add(self, index: int, rgb8: np.ndarray, depth: Tensor) -> None:
        """Samples view `index` (a source view): its 8-bit image [H, W, 3] and z-depth [H, W] in metres."""
        count = self.quota.get(index, 0)
        if count == 0:
            return
        cameras = self.cameras
        flat_depth = depth.double().numpy().reshape(-1)
        hits = np.flatnonzero(flat_depth > 0)
        chosen = np.sort(self.rng.choice(hits, size=min(count, hits.size), replace=False))
        rows, cols = np.divmod(chosen, cameras.width)
        z = flat_depth[chosen]
        camera_points = np.stack([(cols + 0.5 - cameras.cx) / cameras.fx * z, -(rows + 0.5 - cameras.cy) / cameras.fy * z, -z], axis=-1)
        pose = cameras.camtoworlds[index].numpy()
        xyz = camera_points @ pose[:3, :3].T + pose[:3, 3]
        rgb = rgb8.reshape(-1, 3)[chosen]
        view = np.full(chosen.size, index, dtype=np.int64)
        self.parts.append(SurfacePoints(xyz, rgb, view, np.stack([cols, rows], axis=-1).astype(np.int64)))

    def points(self) -> SurfacePoints:
        """Everything sampled so far, in the order the views were added."""
        if not self.parts:
            empty = np.zeros((0, 3))
            return SurfacePoints(empty, empty.astype(np.uint8), np.zeros(0, np.int64), np.zeros((0, 2), np.int64))
        fields = ("xyz", "rgb", "view", "pixel")
        return SurfacePoints(*(np.concatenate([getattr(part, f) for part in self.parts]) for f in fields))


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """Unit quaternion (w, x, y, z), w >= 0, of a 3x3 rotation matrix (Shepperd's method)."""
    m = np.asarray(rotation, dtype=np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(1.0 + trace)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] >= m[1, 1] and m[0, 0] >= m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] >= m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[0] < 0 else q


def colmap_worldtocam(camtoworld: np.ndarray) -> np.ndarray:
    """COLMAP's [4, 4] world-to-camera (COLMAP world, OpenCV camera axes) of a generator camera-to-world
    (generator world, OpenGL camera axes)."""
    camtoworld = np.asarray(camtoworld, dtype=np.float64)
    rotation = COLMAP_FROM_WORLD @ camtoworld[:3, :3] @ OPENCV_FROM_OPENGL
    centre = COLMAP_FROM_WORLD @ camtoworld[:3, 3]
    worldtocam = np.eye(4)
    worldtocam[:3, :3] = rotation.T
    worldtocam[:3, 3] = -rotation.T @ centre
    return worldtocam


def _number(value: float) -> str:
    """Shortest text that reads back as the same float64 (deterministic, exact)."""
    return repr(float(value))


def cameras_text(cameras: CameraSet) -> str:
    values = [cameras.fx, cameras.fy, cameras.cx, cameras.cy]
    return (
        "# Camera list with one line of data per camera:\n"
        "#   CAMERA_ID, MODEL, WIDTH, HEIGHT, PARAMS[]\n"
        "# Number of cameras: 1\n"
        f"{CAMERA_ID} PINHOLE {cameras.width} {cameras.height} {' '.join(map(_number, values))}\n"
    )


def images_text(cameras: CameraSet, points: SurfacePoints) -> str:
    """One entry per view (IMAGE_ID = view index + 1); a point's observation is listed in its source view."""
    lines = [
        "# Image list with two lines of data per image:",
        "#   IMAGE_ID, QW, QX, QY, QZ, TX, TY, TZ, CAMERA_ID, NAME",
        "#   POINTS2D[] as (X, Y, POINT3D_ID)",
        f"# Number of images: {len(cameras)}, mean observations per image: {len(points) / len(cameras):g}",
    ]
    for index in range(len(cameras)):
        worldtocam = colmap_worldtocam(cameras.camtoworlds[index].numpy())
        pose = [*rotation_to_quaternion(worldtocam[:3, :3]), *worldtocam[:3, 3]]
        lines.append(f"{index + 1} {' '.join(map(_number, pose))} {CAMERA_ID} {frame_name(index)}")
        observed = np.flatnonzero(points.view == index)
        pixels = points.pixel[observed] + 0.5  # COLMAP's pixel centres, like nerfstudio's, are at +0.5
        lines.append(" ".join(f"{_number(x)} {_number(y)} {i + 1}" for i, (x, y) in zip(observed, pixels)))
    return "\n".join(lines) + "\n"


def points3d_text(points: SurfacePoints) -> str:
    """POINT3D_ID X Y Z R G B ERROR IMAGE_ID POINT2D_IDX: each point observed once, in its source view."""
    colmap_xyz = points.xyz @ COLMAP_FROM_WORLD.T
    point2d_index = np.zeros(len(points), dtype=np.int64)
    for view in np.unique(points.view):
        members = points.view == view
        point2d_index[members] = np.arange(members.sum())
    lines = [
        "# 3D point list with one line of data per point:",
        "#   POINT3D_ID, X, Y, Z, R, G, B, ERROR, TRACK[] as (IMAGE_ID, POINT2D_IDX)",
        f"# Number of points: {len(points)}, mean track length: 1",
    ]
    for i in range(len(points)):
        x, y, z = colmap_xyz[i]
        r, g, b = points.rgb[i]
        lines.append(f"{i + 1} {x:.6f} {y:.6f} {z:.6f} {r} {g} {b} 0 {points.view[i] + 1} {point2d_index[i]}")
    return "\n".join(lines) + "\n"


def ply_text(points: SurfacePoints) -> str:
    """ASCII PLY as nerfstudio's ns-process-data writes it (generator world), readable by open3d."""
    header = [
        "ply",
        "format ascii 1.0",
        f"element vertex {len(points)}",
        "property float x",
        "property float y",
        "property float z",
        "property uint8 red",
        "property uint8 green",
        "property uint8 blue",
        "end_header",
    ]
    body = [f"{x:.6f} {y:.6f} {z:.6f} {r} {g} {b}" for (x, y, z), (r, g, b) in zip(points.xyz, points.rgb)]
    return "\n".join(header + body) + "\n"


def write_colmap(out_dir: Path, cameras: CameraSet, eval_indices: Sequence[int], points: SurfacePoints) -> None:
    """Writes colmap/sparse/0/{cameras,images,points3D}.txt, sparse_pc.ply and the split lists."""
    sparse = Path(out_dir) / SPARSE_DIR
    sparse.mkdir(parents=True, exist_ok=True)
    write_text_atomic(sparse / "cameras.txt", cameras_text(cameras))
    write_text_atomic(sparse / "images.txt", images_text(cameras, points))
    write_text_atomic(sparse / "points3D.txt", points3d_text(points))
    write_text_atomic(Path(out_dir) / PLY_FILE, ply_text(points))
    eval_set = set(eval_indices)
    train = [frame_name(i) for i in range(len(cameras)) if i not in eval_set]
    held_out = [frame_name(i) for i in sorted(eval_set)]
    for split, names in (("train", train), ("val", held_out), ("test", held_out)):
        write_text_atomic(Path(out_dir) / SPLIT_LISTS[split], "".join(f"{name}\n" for name in names))
