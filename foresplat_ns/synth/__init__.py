"""foresplat-synth: procedural textured scenes, ray cast analytically, written in nerfstudio format (and, by
default, also as a COLMAP model that nerfstudio's colmap dataparser reads: see colmap.py).

    from foresplat_ns.synth import SceneConfig, generate_scene, generate_corpus, sample_scene, render_views

    generate_scene(SceneConfig(seed=0), Path("data/scene"))            # one scene folder
    generate_corpus(SceneConfig(seed=0), Path("data/corpus"), 100)     # scene_00000 ... + index.json
    views = render_views(*sample_scene(SceneConfig(seed=0, resolution=64)))  # in memory, nothing written
"""

from .cameras import CameraSet
from .config import ConfigError, SceneConfig
from .generate import generate_corpus, generate_scene, scene_seed
from .layout import sample_scene
from .primitives import Box, Quad, Scene, Sphere
from .raycast import RenderedViews, render_view, render_views
from .textures import Texture
from .writer import OutputNotEmptyError

__all__ = [
    "Box",
    "CameraSet",
    "ConfigError",
    "OutputNotEmptyError",
    "Quad",
    "RenderedViews",
    "Scene",
    "SceneConfig",
    "Sphere",
    "Texture",
    "generate_corpus",
    "generate_scene",
    "render_view",
    "render_views",
    "sample_scene",
    "scene_seed",
]
