"""Procedural scenes: textured spheres and boxes on a textured ground, walls behind them, a light and a sky.

Everything is drawn from three independent random streams derived from the seed (cameras, layout, textures),
so changing, say, the number of views does not move the objects. Walls are placed beyond every camera, so all
cameras see the same side of them and the scene stays consistent across views.
"""

from __future__ import annotations

import math
from typing import List, Tuple, Union

import numpy as np

from .cameras import CameraSet, direction, sample_cameras
from .config import SceneConfig
from .primitives import Box, Primitive, Quad, Scene, Sphere, Vec3
from .textures import random_colour, random_texture

SCENE_RADIUS = 1.5
"""Objects stay within this horizontal distance (metres) of the origin."""
MIN_GAP = 0.02
"""Clearance between the bounding spheres of two objects, so they never interpenetrate."""
PLACEMENT_ATTEMPTS = 50
"""An object that finds no free spot in this many tries is left out."""


def sample_scene(config: SceneConfig) -> Tuple[Scene, CameraSet]:
    """The scene and camera set that `config.seed` stands for."""
    streams = np.random.SeedSequence(config.seed).spawn(3)
    camera_rng, layout_rng, texture_rng = (np.random.default_rng(stream) for stream in streams)
    cameras = sample_cameras(camera_rng, config)
    low, high = config.num_objects
    objects = _place_objects(layout_rng, texture_rng, int(layout_rng.integers(low, high + 1)))
    camera_positions = cameras.camtoworlds[:, :3, 3].numpy()
    reach = max(12.0, 3.0 * float(np.linalg.norm(camera_positions[:, [0, 2]], axis=-1).max()))
    wall_height = max(5.0, float(camera_positions[:, 1].max()) + 2.0)
    facings = _wall_facings(layout_rng, cameras)
    walls = [_wall(layout_rng, texture_rng, facing, camera_positions, reach, wall_height) for facing in facings]
    ground = Quad(
        center=(0.0, 0.0, 0.0),
        u_axis=(1.0, 0.0, 0.0),
        v_axis=(0.0, 0.0, 1.0),
        half_size=(reach, reach),
        texture=random_texture(texture_rng),
        tile_size=_round(layout_rng.uniform(0.5, 2.0)),
        uv_offset=_round_all(layout_rng.uniform(0, 1, size=2)),
    )
    light_azimuth = math.degrees(math.atan2(facings[0][0], facings[0][2])) + layout_rng.uniform(-70.0, 70.0)
    scene = Scene(
        primitives=(ground, *walls, *objects),
        light_direction=_round_all(direction(light_azimuth, layout_rng.uniform(30.0, 65.0))),
        ambient=_round(layout_rng.uniform(0.3, 0.5)),
        sky_horizon=tuple(random_colour(texture_rng, value=(0.8, 1.0), saturation=(0.0, 0.3))),
        sky_zenith=tuple(random_colour(texture_rng, value=(0.55, 0.95), saturation=(0.2, 0.6))),
    )
    return scene, cameras


def _place_objects(layout_rng: np.random.Generator, texture_rng: np.random.Generator, count: int) -> List[Primitive]:
    """Spheres and boxes resting on the ground or floating above it, without overlaps."""
    placed: List[Tuple[np.ndarray, float]] = []
    objects: List[Primitive] = []
    for _ in range(count):
        for _ in range(PLACEMENT_ATTEMPTS):
            kind, size, rotation, floating = _object_shape(layout_rng)
            bound = size if kind == "sphere" else float(np.linalg.norm(size))
            radius = math.sqrt(layout_rng.uniform()) * max(SCENE_RADIUS - bound, 0.0)
            angle = layout_rng.uniform(0, 2 * math.pi)
            lift = layout_rng.uniform(0.2, 0.9) + bound if floating else (size if kind == "sphere" else size[1])
            center = np.array([radius * math.cos(angle), lift, radius * math.sin(angle)])
            if all(np.linalg.norm(center - other) >= bound + other_bound + MIN_GAP for other, other_bound in placed):
                break
        else:
            continue  # no free spot: leave this object out
        placed.append((center, bound))
        texture = random_texture(texture_rng)
        if kind == "sphere":
            objects.append(Sphere(_round_all(center), _round(size), texture, texture_rotation_deg=rotation))
        else:
            tile_size, uv_offset = _round(layout_rng.uniform(0.25, 0.9)), _round_all(layout_rng.uniform(0, 1, size=2))
            objects.append(Box(_round_all(center), _round_all(size), texture, rotation, tile_size, uv_offset))
    return objects


def _object_shape(rng: np.random.Generator) -> Tuple[str, Union[float, np.ndarray], Vec3, bool]:
    """(kind, radius or half sizes, rotation in degrees, floating?) of a random object.

    Boxes resting on the ground turn about the vertical only; floating boxes may tumble freely.
    """
    if rng.random() < 0.4:
        rotation = _round_all(rng.uniform(0, 360, size=3))
        return "sphere", _round(rng.uniform(0.15, 0.5)), rotation, bool(rng.random() < 0.3)
    half_size = np.array(_round_all(rng.uniform(0.12, 0.45, size=3)))
    style = rng.integers(0, 3)
    if style == 0:
        return "box", half_size, (0.0, 0.0, 0.0), False
    if style == 1:
        return "box", half_size, (_round(rng.uniform(0, 90)), 0.0, 0.0), False
    return "box", half_size, _round_all([rng.uniform(0, 360), rng.uniform(-60, 60), rng.uniform(0, 360)]), True


def _wall_facings(rng: np.random.Generator, cameras: CameraSet) -> List[np.ndarray]:
    """Horizontal unit normals of one or two walls, pointing from the wall towards the scene.

    The back wall stands where the cameras look on average; cameras all around (orbit) leave it to chance.
    A second wall at a right angle makes a corner half of the time.
    """
    mean_forward = -cameras.camtoworlds[:, :3, 2].numpy().mean(axis=0)
    horizontal = np.array([mean_forward[0], 0.0, mean_forward[2]])
    if np.linalg.norm(horizontal) > 0.5:
        back = -horizontal / np.linalg.norm(horizontal)
    else:
        back = direction(rng.uniform(0, 360), 0.0)
    facings = [back]
    if rng.random() < 0.5:
        side = 1.0 if rng.random() < 0.5 else -1.0
        facings.append(np.array([side * back[2], 0.0, -side * back[0]]))
    return facings


def _wall(
    layout_rng: np.random.Generator,
    texture_rng: np.random.Generator,
    facing: np.ndarray,
    camera_positions: np.ndarray,
    half_width: float,
    height: float,
) -> Quad:
    """A vertical wall facing `facing`, clear of the objects and behind every camera's back."""
    farthest_camera = float((-(camera_positions @ facing)).max())
    offset = max(SCENE_RADIUS + 0.5, farthest_camera + 1.0) + layout_rng.uniform(0.0, 1.0)
    u_axis = np.cross([0.0, 1.0, 0.0], facing)
    return Quad(
        center=_round_all(-offset * facing + np.array([0.0, height / 2, 0.0])),
        u_axis=_round_all(u_axis),
        v_axis=(0.0, -1.0, 0.0),
        half_size=(_round(half_width), _round(height / 2)),
        texture=random_texture(texture_rng),
        tile_size=_round(layout_rng.uniform(1.0, 3.0)),
        uv_offset=_round_all(layout_rng.uniform(0, 1, size=2)),
    )


def _round(value: float) -> float:
    return round(float(value), 4)


def _round_all(values) -> Vec3:
    return tuple(_round(v) for v in values)
