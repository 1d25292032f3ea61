"""A scene's posed images as tensors, read through nerfstudio's own datamanager so every dataparser
(nerfstudio-data, colmap, blender, ...) and its undistortion work unchanged.

Everything downstream (backbones, refinement, MetaGrad) takes `SceneViews`; bad scenes fail here,
early, with the file and the cause named.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

import torch
from PIL import Image
from torch import Tensor

from foresplat_ns.backbones.base import ContextViews
from foresplat_ns.cameras import viewmats_from_camtoworlds
from foresplat_ns.refine import View


@dataclass
class SceneViews:
    """Posed images of one scene split, in the dataparser's (normalised) frame.

    images [V,H,W,3|4] float in [0,1] (RGBA when the dataset has alpha); intrinsics [V,3,3];
    camtoworlds [V,4,4] OpenGL; depths [V,H,W] z-depth in the same frame (0 = unknown) when the
    dataset has depth maps; points: SfM points (xyz [P,3], rgb [P,3] in [0,1]) when it has them.
    """

    name: str
    images: Tensor
    intrinsics: Tensor
    camtoworlds: Tensor
    filenames: List[Path]
    depths: Optional[Tensor] = None
    points: Optional[Tuple[Tensor, Tensor]] = None

    def __len__(self) -> int:
        return self.images.shape[0]

    def context(self, indices: Sequence[int]) -> ContextViews:
        """A batch-of-one ContextViews of the chosen views (RGB; RGBA is composited over black)."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        images = self.images[idx]
        if images.shape[-1] == 4:
            images = images[..., :3] * images[..., 3:]
        depths = None if self.depths is None else self.depths[idx][None]
        return ContextViews(
            images=images[None],
            intrinsics=self.intrinsics[idx][None],
            camtoworlds=self.camtoworlds[idx][None],
            depths=depths,
            points=self.points,
        )

    def views(self, indices: Optional[Sequence[int]] = None) -> List[View]:
        """Refinement/evaluation views (rasteriser conventions) of the chosen images, all by default."""
        indices = range(len(self)) if indices is None else indices
        viewmats = viewmats_from_camtoworlds(self.camtoworlds)
        return [View(image=self.images[i], viewmat=viewmats[i], K=self.intrinsics[i]) for i in indices]

    def to(self, *args, **kwargs) -> "SceneViews":
        move = lambda t: None if t is None else t.to(*args, **kwargs)  # noqa: E731
        points = None if self.points is None else (move(self.points[0]), move(self.points[1]))
        return SceneViews(
            self.name, move(self.images), move(self.intrinsics), move(self.camtoworlds), self.filenames, move(self.depths), points
        )


def evenly_spaced(count: int, total: int) -> List[int]:
    """`count` indices spread evenly over range(total), first and last included."""
    if count <= 0 or total <= 0:
        raise ValueError(f"cannot choose {count} of {total} views")
    if count >= total:
        return list(range(total))
    if count == 1:
        return [total // 2]
    return [round(i * (total - 1) / (count - 1)) for i in range(count)]


def check_image_files(filenames: Sequence[Path], widths: Sequence[int], heights: Sequence[int]) -> None:
    """Open every image header: a missing or corrupt file, or one whose size differs from its camera's
    or from the scene's, raises a ValueError naming it, before any training starts."""
    if len(filenames) == 0:
        raise ValueError("the scene has no training images")
    first = None
    for path, width, height in zip(filenames, widths, heights):
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"image file is missing: {path}")
        try:
            with Image.open(path) as img:
                img.verify()
            with Image.open(path) as img:
                size = img.size
        except Exception as err:
            raise ValueError(f"image file is corrupt or unreadable: {path} ({err})") from err
        if first is None:
            first = (path, size)
        if size != first[1]:
            raise ValueError(
                f"images of differing sizes: {path} is {size[0]}x{size[1]} but {first[0]} is {first[1][0]}x{first[1][1]}; "
                "ForeSplat's backbones need one image size per scene"
            )


def setup_full_image_datamanager(config, device, test_mode: str = "val", **kwargs):
    """Build nerfstudio's datamanager, turning a dataparser's bare failures into errors naming the scene."""
    data = Path(config.data if config.data is not None else config.dataparser.data)
    transforms = data if data.suffix == ".json" else data / "transforms.json"
    if transforms.is_file():
        try:
            frames = json.loads(transforms.read_text()).get("frames")
        except ValueError as err:
            raise ValueError(f"{transforms} is not valid JSON: {err}") from err
        if not frames:
            raise ValueError(f"the scene has no training images: {transforms} lists no frames")
    try:
        return config.setup(device=device, test_mode=test_mode, **kwargs)
    except FileNotFoundError as err:
        raise ValueError(
            f"cannot read scene {data}: {err.filename or err} not found. A nerfstudio-data scene needs a transforms.json; "
            "for COLMAP output use the colmap dataparser (ns-train foresplat colmap --data DIR), for NeRF-synthetic "
            "scenes the blender-data one"
        ) from err
    except (AssertionError, IndexError, KeyError, RuntimeError) as err:
        raise ValueError(f"cannot read scene {data}: the dataparser failed ({type(err).__name__}: {err})") from err


def scene_views_from_datamanager(datamanager, name: str = "", split: str = "train") -> SceneViews:
    """The (undistorted) training or eval images and cameras a FullImageDatamanager holds, as tensors."""
    from nerfstudio.data.utils.data_utils import get_depth_image_from_path

    dataset = datamanager.train_dataset if split == "train" else datamanager.eval_dataset
    outputs = dataset._dataparser_outputs
    cameras = dataset.cameras
    check_image_files(outputs.image_filenames, cameras.width.flatten().tolist(), cameras.height.flatten().tolist())
    cached = datamanager.cached_train if split == "train" else datamanager.cached_eval
    images = []
    for item in cached:
        image = item["image"]
        images.append(image.float() / 255.0 if image.dtype == torch.uint8 else image.float())
    sizes = {tuple(im.shape[:2]) for im in images}
    if len(sizes) != 1:
        raise ValueError(f"scene {name or datamanager.config.data}: undistorted images have differing sizes {sorted(sizes)}")
    images_t = torch.stack(images).cpu()
    intrinsics = cameras.get_intrinsics_matrices().float().cpu()
    camtoworlds = cameras.camera_to_worlds.float().cpu()
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(camtoworlds.shape[0], 1, 4)
    camtoworlds = torch.cat([camtoworlds, bottom], dim=1)

    depths = None
    depth_files = outputs.metadata.get("depth_filenames")
    if depth_files:
        scale = outputs.metadata.get("depth_unit_scale_factor", 1e-3) * outputs.dataparser_scale
        height, width = images_t.shape[1:3]
        depths = torch.stack([get_depth_image_from_path(Path(f), height, width, scale)[..., 0] for f in depth_files])

    points = None
    if "points3D_xyz" in outputs.metadata:
        points = (outputs.metadata["points3D_xyz"].float(), outputs.metadata["points3D_rgb"].float() / 255.0)

    return SceneViews(
        name=name or str(datamanager.config.data),
        images=images_t,
        intrinsics=intrinsics,
        camtoworlds=camtoworlds,
        filenames=list(outputs.image_filenames),
        depths=depths,
        points=points,
    )


def load_scene(path: Path, dataparser_config) -> Tuple[SceneViews, SceneViews]:
    """A scene folder's training and held-out views, read with a copy of `dataparser_config`."""
    import copy

    from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig

    path = Path(path)
    # cache_images "gpu" means "on the datamanager's device", the CPU here; nerfstudio's "cpu" option
    # pins memory, which needs CUDA.
    config = FullImageDatamanagerConfig(dataparser=copy.deepcopy(dataparser_config), data=path, cache_images="gpu")
    datamanager = setup_full_image_datamanager(config, device="cpu", test_mode="val")
    train = scene_views_from_datamanager(datamanager, name=path.name, split="train")
    held_out = scene_views_from_datamanager(datamanager, name=path.name, split="eval")
    return train, held_out


SCENE_MARKERS = ("transforms.json", "transforms_train.json", "sparse", "colmap")
"""What makes a folder a scene for one of nerfstudio's dataparsers (nerfstudio-data, blender, colmap)."""


def discover_scenes(data: Path) -> List[Path]:
    """Scene folders under a root (an index.json from foresplat-synth, else every sub-folder), or listed
    one per line in a text file; a folder that is itself a scene counts as a root of one."""
    data = Path(data)
    if data.is_file():
        lines = [line.strip() for line in data.read_text().splitlines()]
        return [(data.parent / line).resolve() for line in lines if line and not line.startswith("#")]
    if not data.is_dir():
        raise ValueError(f"scenes root {data} does not exist")
    index = data / "index.json"
    if index.is_file():
        try:
            entries = json.loads(index.read_text())["scenes"]
            return [data / entry["path"] for entry in entries]
        except (ValueError, KeyError, TypeError) as err:
            raise ValueError(f"{index} is not a valid scene index: {err}") from err
    if any((data / marker).exists() for marker in SCENE_MARKERS):
        return [data]
    return sorted(p for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
