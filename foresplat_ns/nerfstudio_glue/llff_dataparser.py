"""`llff-data`: LLFF captures (`poses_bounds.npy` beside `images` or `images_N`) for every nerfstudio method.

nerfstudio 1.1.5 has no LLFF dataparser, yet many public captures ship only `poses_bounds.npy`. It is
registered through nerfstudio's dataparser entry point, so `ns-train foresplat llff-data --data DIR`
works like any other dataparser. Conventions follow LLFF's own loader: one row per image in sorted
filename order, a 3x5 matrix per row (camera-to-world with columns [down, right, back], then
[height, width, focal] of the full-resolution images) and the near/far bounds. COLMAP points in
`sparse/0` (binary or text), in the same world as the poses, are loaded as splatfacto's SfM start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Literal, Optional, Tuple, Type

import numpy as np
import torch
from nerfstudio.cameras import camera_utils
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParser, DataParserConfig, DataparserOutputs
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.data.utils.dataparsers_utils import (
    get_train_eval_split_all,
    get_train_eval_split_fraction,
    get_train_eval_split_interval,
)
from nerfstudio.plugins.registry_dataparser import DataParserSpecification
from PIL import Image

from foresplat_ns.cameras import as_homogeneous
from foresplat_ns.data import downscale_factors

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass
class LLFFDataParserConfig(DataParserConfig):
    _target: Type = field(default_factory=lambda: LLFFDataParser)
    data: Path = Path()
    """Capture folder holding poses_bounds.npy."""
    downscale_factor: Optional[int] = None
    """Read images_N; None: `images` if present, else the smallest images_N there is."""
    orientation_method: Literal["pca", "up", "vertical", "none"] = "up"
    center_method: Literal["poses", "focus", "none"] = "poses"
    auto_scale_poses: bool = True
    """Scale the cameras into [-1, 1], as nerfstudio's other dataparsers do."""
    scale_factor: float = 1.0
    """A further scale on the camera positions."""
    scene_scale: float = 1.0
    eval_mode: Literal["interval", "fraction", "all"] = "interval"
    """LLFF's convention holds out every eval_interval-th image."""
    eval_interval: int = 8
    train_split_fraction: float = 0.9
    load_3D_points: bool = True
    """Load sparse/0's COLMAP points (splatfacto's SfM start) when the capture has them."""


class LLFFDataParser(DataParser):
    config: LLFFDataParserConfig

    def _generate_dataparser_outputs(self, split: str = "train", **kwargs) -> DataparserOutputs:
        root = Path(self.config.data)
        poses_file = root / "poses_bounds.npy"
        if not poses_file.is_file():
            raise ValueError(f"{root} is not an LLFF capture: {poses_file} not found")
        try:
            rows = np.load(poses_file)
        except Exception as err:
            raise ValueError(f"{poses_file} could not be read: {err}") from err
        if rows.ndim != 2 or rows.shape[1] != 17:
            raise ValueError(f"{poses_file}: expected one row of 17 numbers per image, got an array of shape {rows.shape}")
        images_dir = self._images_dir(root)
        filenames = sorted(p for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if len(filenames) != rows.shape[0]:
            raise ValueError(f"{poses_file} has {rows.shape[0]} pose rows but {images_dir} holds {len(filenames)} images")

        mats = torch.from_numpy(rows[:, :15].reshape(-1, 3, 5)).float()
        full_h, full_w, focal = mats[0, :, 4].tolist()
        width, height = _image_size(filenames[0])
        # The longer side gives the factor to the finest precision; the shorter may be rounded either way
        # (mogrify rounds, PIL and ffmpeg floor: 2830 / 8 is 354 or 353).
        factor = max(full_w, full_h) / max(width, height)
        if abs(full_w / factor - width) > 1.0 or abs(full_h / factor - height) > 1.0:
            raise ValueError(
                f"{filenames[0]} is {width}x{height}, which is not the size {round(full_w)}x{round(full_h)} that "
                f"{poses_file} records divided by one downscale factor"
            )
        for path in filenames[1:]:
            other_width, other_height = _image_size(path)
            if (other_width, other_height) != (width, height):
                raise ValueError(
                    f"{path} is {other_width}x{other_height}, but {filenames[0].name} is {width}x{height}: "
                    "every image of an LLFF capture has one size"
                )
        # [down, right, back] columns -> OpenGL [right, up, back]
        c2w = as_homogeneous(torch.stack([mats[:, :, 1], -mats[:, :, 0], mats[:, :, 2], mats[:, :, 3]], dim=-1))
        c2w, transform = camera_utils.auto_orient_and_center_poses(
            c2w, method=self.config.orientation_method, center_method=self.config.center_method
        )
        scale = 1.0 / float(torch.max(torch.abs(c2w[:, :3, 3]))) if self.config.auto_scale_poses else 1.0
        scale *= self.config.scale_factor
        c2w[:, :3, 3] *= scale

        indices = self._split_indices(filenames, split)
        cameras = Cameras(
            camera_to_worlds=c2w[indices, :3, :].float(),
            fx=focal / factor,
            fy=focal / factor,
            cx=width / 2.0,
            cy=height / 2.0,
            width=width,
            height=height,
            camera_type=CameraType.PERSPECTIVE,
        )
        metadata = {}
        if self.config.load_3D_points:
            metadata.update(self._sfm_points(root, transform, scale))
        bound = self.config.scene_scale
        return DataparserOutputs(
            image_filenames=[filenames[i] for i in indices],
            cameras=cameras,
            scene_box=SceneBox(aabb=torch.tensor([[-bound] * 3, [bound] * 3], dtype=torch.float32)),
            dataparser_transform=transform.float(),
            dataparser_scale=scale,
            metadata=metadata,
        )

    def _images_dir(self, root: Path) -> Path:
        if self.config.downscale_factor is not None and self.config.downscale_factor > 1:
            folder = root / f"images_{self.config.downscale_factor}"
            if not folder.is_dir():
                raise ValueError(f"--downscale-factor {self.config.downscale_factor} asked for, but {folder} does not exist")
            return folder
        if (root / "images").is_dir():
            return root / "images"
        factors = downscale_factors(root)
        if not factors:
            raise ValueError(f"{root} holds poses_bounds.npy but no images, images_N folder beside it")
        return root / f"images_{factors[0]}"

    def _split_indices(self, filenames: List[Path], split: str) -> np.ndarray:
        if self.config.eval_mode == "interval":
            train, evaluation = get_train_eval_split_interval(filenames, self.config.eval_interval)
        elif self.config.eval_mode == "fraction":
            train, evaluation = get_train_eval_split_fraction(filenames, self.config.train_split_fraction)
        else:
            train, evaluation = get_train_eval_split_all(filenames)
        return train if split == "train" else evaluation

    def _sfm_points(self, root: Path, transform: torch.Tensor, scale: float) -> dict:
        """COLMAP points of sparse/0 (binary or text) moved with the poses, or nothing when there are none."""
        from nerfstudio.data.utils import colmap_parsing_utils as colmap

        sparse = root / "sparse" / "0"
        if (sparse / "points3D.bin").is_file():
            points = colmap.read_points3D_binary(sparse / "points3D.bin")
        elif (sparse / "points3D.txt").is_file():
            points = colmap.read_points3D_text(sparse / "points3D.txt")
        else:
            return {}
        if not points:
            return {}
        xyz = torch.from_numpy(np.array([p.xyz for p in points.values()])).double()
        rgb = torch.from_numpy(np.array([p.rgb for p in points.values()]).astype(np.uint8))
        transform = transform.double()
        xyz = (transform[:3, :3] @ xyz.T + transform[:3, 3:]).T * scale
        return {"points3D_xyz": xyz.float(), "points3D_rgb": rgb}


llff_data = DataParserSpecification(
    config=LLFFDataParserConfig(), description="LLFF captures: poses_bounds.npy with images or images_N (ForeSplat)"
)


def _image_size(path: Path) -> Tuple[int, int]:
    """(width, height) of an image file, or a clear error naming it."""
    try:
        with Image.open(path) as img:
            return img.size
    except Exception as err:
        raise ValueError(f"image file is corrupt or unreadable: {path} ({err})") from err
