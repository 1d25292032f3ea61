"""A scene's posed images as tensors, read through nerfstudio's own datamanager so every dataparser
(nerfstudio-data, colmap, blender, ...) and its undistortion work unchanged.

Everything downstream (backbones, refinement, MetaGrad) takes `SceneViews`; bad scenes fail here,
early, with the file and the cause named.
"""

from __future__ import annotations

import glob
import json
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from foresplat_ns.backbones.base import ContextViews, area_resized
from foresplat_ns.cameras import scaled_intrinsics, shrunk_size, viewmats_from_camtoworlds
from foresplat_ns.refine import View


@dataclass
class SceneViews:
    """Posed images of one scene split, in the dataparser's (normalised) frame.

    images [V,H,W,3|4] float in [0,1] (RGBA when the dataset has alpha), or a list of [H,W,3|4] when the
    views differ in size (one camera per image, portrait and landscape mixed); intrinsics [V,3,3];
    camtoworlds [V,4,4] OpenGL; depths [V,H,W] z-depth in the same frame (0 = unknown) when the
    dataset has depth maps; points: SfM points (xyz [P,3], rgb [P,3] in [0,1]) when it has them.
    """

    name: str
    images: Union[Tensor, List[Tensor]]
    intrinsics: Tensor
    camtoworlds: Tensor
    filenames: List[Path]
    depths: Optional[Tensor] = None
    points: Optional[Tuple[Tensor, Tensor]] = None

    def __len__(self) -> int:
        return len(self.images)

    @property
    def has_sfm_points(self) -> bool:
        return self.points is not None and self.points[0].shape[0] > 0

    def context_indices(self, count: int) -> List[int]:
        """`count` views spread evenly over the scene, among those of its most common image size (a
        backbone sees views of one size)."""
        sizes = [tuple(image.shape[:2]) for image in self.images]
        common = Counter(sizes).most_common(1)[0][0]
        candidates = [i for i, size in enumerate(sizes) if size == common]
        return [candidates[i] for i in evenly_spaced(count, len(candidates))]

    def context(self, indices: Sequence[int], with_points: bool = True) -> ContextViews:
        """A batch-of-one ContextViews of the chosen views (RGB; RGBA is composited over black), with the
        scene's SfM points unless `with_points` is False."""
        idx = torch.as_tensor(list(indices), dtype=torch.long)
        chosen = [self.images[i] for i in idx.tolist()]
        if len({tuple(image.shape) for image in chosen}) != 1:
            raise ValueError(f"scene {self.name}: context views {list(indices)} differ in size; use context_indices()")
        images = torch.stack(chosen)
        if images.shape[-1] == 4:
            images = images[..., :3] * images[..., 3:]
        depths = None if self.depths is None else self.depths[idx][None]
        return ContextViews(
            images=images[None],
            intrinsics=self.intrinsics[idx][None],
            camtoworlds=self.camtoworlds[idx][None],
            depths=depths,
            points=self.points if with_points else None,
        )

    def resized(self, max_side: int) -> "SceneViews":
        """The scene with every image shrunk (area-averaged) so its longer side is at most `max_side`, the
        intrinsics scaled with it; depth maps are dropped (they would need their own resampling)."""
        images, intrinsics = [], self.intrinsics.clone()
        for i, image in enumerate(self.images):
            size = shrunk_size(tuple(image.shape[:2]), max_side)
            if size != tuple(image.shape[:2]):
                intrinsics[i] = scaled_intrinsics(intrinsics[i], tuple(image.shape[:2]), size)
                image = area_resized(image[None], size)[0]
            images.append(image)
        return SceneViews(self.name, stack_if_one_size(images), intrinsics, self.camtoworlds, self.filenames, None, self.points)

    def views(self, indices: Optional[Sequence[int]] = None) -> List[View]:
        """Refinement/evaluation views (rasteriser conventions) of the chosen images, all by default."""
        indices = range(len(self)) if indices is None else indices
        viewmats = viewmats_from_camtoworlds(self.camtoworlds)
        return [View(image=self.images[i], viewmat=viewmats[i], K=self.intrinsics[i]) for i in indices]

    def to(self, *args, **kwargs) -> "SceneViews":
        move = lambda t: None if t is None else t.to(*args, **kwargs)  # noqa: E731
        points = None if self.points is None else (move(self.points[0]), move(self.points[1]))
        images = [move(image) for image in self.images] if isinstance(self.images, list) else move(self.images)
        return SceneViews(self.name, images, move(self.intrinsics), move(self.camtoworlds), self.filenames, move(self.depths), points)


def stack_if_one_size(images: List[Tensor]) -> Union[Tensor, List[Tensor]]:
    """Views of one size as one [V,H,W,C] tensor; of several sizes, the list as it is (SceneViews.images)."""
    return torch.stack(images) if len({tuple(image.shape) for image in images}) == 1 else images


def evenly_spaced(count: int, total: int) -> List[int]:
    """`count` indices spread evenly over range(total), first and last included."""
    if count <= 0 or total <= 0:
        raise ValueError(f"cannot choose {count} of {total} views")
    if count >= total:
        return list(range(total))
    if count == 1:
        return [total // 2]
    return [round(i * (total - 1) / (count - 1)) for i in range(count)]


_AS_RGB = {**dict.fromkeys(("1", "L", "CMYK", "YCbCr", "LAB", "HSV", "RGBX"), "RGB"), **dict.fromkeys(("LA", "PA", "RGBa", "La"), "RGBA")}
"""PIL modes read by converting to RGB or RGBA. nerfstudio's own loader takes their raw bytes as pixels: CMYK's
K channel becomes alpha, a palette image's indices grey levels."""


def _unreadable(path: Path, err: Exception) -> ValueError:
    return ValueError(f"image file is corrupt or unreadable: {path} ({err})")


def read_image(path: Path) -> Image.Image:
    """An image file as RGB or RGBA, whatever PIL mode it is stored in: grey, palette and CMYK images are
    converted, 16-bit grey scaled to 8 bits (not cut to its low byte). A file that does not decode, or
    holds float pixels, raises a ValueError naming it."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            if mode in ("RGB", "RGBA"):
                return img.copy()
            if mode == "P":
                return img.convert("RGBA" if "transparency" in img.info else "RGB")
            if mode in _AS_RGB:
                return img.convert(_AS_RGB[mode])
            if mode.startswith("I"):  # 16-bit grey (I;16, I;16B; I where PIL widens it)
                grey = np.asarray(img, dtype=np.float64) * (255.0 / 65535.0)
                return Image.fromarray(np.clip(np.rint(grey), 0, 255).astype(np.uint8)).convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as err:
        raise _unreadable(path, err) from err
    raise ValueError(f"{path}: images with {mode!r} pixels are not read (RGB, RGBA, grey, palette, CMYK or 16-bit grey are)")


def check_image_files(filenames: Sequence[Path], split: str = "training", scene: str = "the scene") -> None:
    """Open every image of a split: none, or a missing or corrupt file, raises a ValueError naming it, before
    any training starts."""
    if len(filenames) == 0:
        raise ValueError(f"{scene} has no {split} images")
    for path in filenames:
        path = Path(path)
        if not path.is_file():
            raise ValueError(f"image file is missing: {path}")
        try:
            with Image.open(path) as img:
                img.verify()
        except Exception as err:
            raise _unreadable(path, err) from err


def setup_full_image_datamanager(config, device, test_mode: str = "val", **kwargs):
    """Build nerfstudio's datamanager, turning a dataparser's bare failures into errors naming the scene."""
    from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanager
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    from foresplat_ns.nerfstudio_glue.capture_dataparser import CaptureDataParserConfig
    from foresplat_ns.nerfstudio_glue.datamanager import CaptureImageDatamanager

    data = Path(config.data if config.data is not None else config.dataparser.data)
    if config._target is FullImageDatamanager:
        config._target = CaptureImageDatamanager  # the same, reading images with `read_image`
    if isinstance(config.dataparser, CaptureDataParserConfig):
        config.dataparser.data = data
        config.dataparser = config.dataparser.concrete()
    transforms = data if data.suffix == ".json" else data / "transforms.json"
    if transforms.is_file():
        try:
            meta = json.loads(transforms.read_text())
        except ValueError as err:
            raise ValueError(f"{transforms} is not valid JSON: {err}") from err
        frames = meta.get("frames")
        if not frames:
            raise ValueError(f"the scene has no training images: {transforms} lists no frames")
        _check_listed_images(transforms, frames, getattr(config.dataparser, "downscale_factor", None))
        if isinstance(config.dataparser, NerfstudioDataParserConfig):
            _check_frames(transforms, meta, frames)
            _load_listed_sfm_points(config.dataparser, transforms, meta)
        _check_camera_model(transforms, meta.get("camera_model", "OPENCV"))
    try:
        return config.setup(device=device, test_mode=test_mode, **kwargs)
    except FileNotFoundError as err:
        missing = Path(err.filename or str(err))
        if missing.name != "transforms.json":
            same_but_case = [p.name for p in missing.parent.glob("*") if p.name.lower() == missing.name.lower()]
            hint = f" ({same_but_case[0]} is there: file names are case-sensitive)" if same_but_case else ""
            raise ValueError(f"cannot read scene {data}: the capture lists {missing}, which is not there{hint}") from err
        raise ValueError(
            f"cannot read scene {data}: {missing} not found. A nerfstudio-data scene needs a transforms.json; "
            "name no dataparser (ns-train foresplat --data DIR: capture-data reads COLMAP, LLFF, transforms.json and "
            "NeRF-synthetic captures as they are) or the one for its format (colmap, llff-data, blender-data)"
        ) from err
    except Image.UnidentifiedImageError as err:  # nerfstudio opens the first image to choose a downscale factor
        raise ValueError(f"cannot read scene {data}: image file is corrupt or unreadable ({err})") from err
    except ZeroDivisionError as err:  # nerfstudio scales a scene by the largest camera position, from their centre
        raise ValueError(
            f"cannot read scene {data}: its cameras all stand in one place (one image, or every view from the same spot); "
            "a capture needs views from at least two places"
        ) from err
    except (AssertionError, IndexError, KeyError, RuntimeError) as err:
        raise ValueError(f"cannot read scene {data}: the dataparser failed ({type(err).__name__}: {err})") from err


def _load_listed_sfm_points(dataparser_config, transforms: Path, meta: dict) -> None:
    """Turn on nerfstudio-data's `load_3D_points` where the transforms.json names a point file that is there.

    Every ForeSplat command uses a capture's SfM points wherever it has them (its default start is built on
    them); nerfstudio-data leaves them out unless asked, so naming it on the command line would silently
    drop them. A listed file that is missing is left to nerfstudio, whose own loader names it."""
    listed = meta.get("ply_file_path")
    if dataparser_config.load_3D_points or not listed or not (transforms.parent / listed).is_file():
        return
    dataparser_config.load_3D_points = True
    warnings.warn(
        f"loading the SfM points {transforms.parent / listed} that {transforms} lists (nerfstudio-data's load_3D_points was off)",
        stacklevel=3,
    )


def _name_image_of_wrong_size(dataparser_config, data: Path) -> None:
    """After nerfstudio's bare size assertion: raise naming the first image whose size is not its camera's."""
    import copy

    parser_config = copy.deepcopy(dataparser_config)
    parser_config.data = data
    for split in ("train", "test"):
        outputs = parser_config.setup().get_dataparser_outputs(split=split)
        sizes = zip(outputs.image_filenames, outputs.cameras.width.flatten().tolist(), outputs.cameras.height.flatten().tolist())
        for path, width, height in sizes:
            with Image.open(path) as img:
                if img.size != (width, height):
                    factor = getattr(parser_config, "downscale_factor", None)
                    if factor and factor > 1:
                        fix = f"images_{factor} copies must be the full-size images divided by {factor}, rounded down"
                    elif (data / "transforms.json").is_file():
                        fix = "give each frame its own w/h (and intrinsics) in transforms.json, or use images of the size the intrinsics describe"
                    else:
                        fix = "use the images the camera model was made from"
                    raise ValueError(f"{path} is {img.size[0]}x{img.size[1]} but its camera says {width}x{height}: {fix}")


def _check_frames(transforms: Path, meta: dict, frames: List[dict]) -> None:
    """What nerfstudio's transforms.json parser needs of every frame, named where it would fail bare (a
    KeyError, an assertion, a shape error): a 4x4 pose, intrinsics and an image size."""
    if "fl_x" not in meta and "fl_x" not in frames[0] and "camera_angle_x" in meta:
        raise ValueError(
            f"{transforms} gives the field of view (camera_angle_x) but no focal length, which nerfstudio's parser "
            "needs: add fl_x and fl_y = w / 2 / tan(camera_angle_x / 2), with w, h, cx and cy; or, for a NeRF-synthetic "
            "scene, name its per-split files transforms_train/val/test.json"
        )
    for index, frame in enumerate(frames):
        name = f"{transforms}: frame {index} ({frame.get('file_path', 'no file_path')})"
        pose = frame.get("transform_matrix")
        if pose is None:
            raise ValueError(f"{name} has no transform_matrix")
        if not (isinstance(pose, list) and len(pose) in (3, 4) and all(isinstance(row, list) and len(row) == 4 for row in pose)):
            raise ValueError(f"{name}: transform_matrix must be 4x4 camera-to-world, got {pose!r:.80}")
        if len(pose) == 3:
            raise ValueError(f"{name}: transform_matrix is 3x4; nerfstudio reads 4x4 (add the row [0, 0, 0, 1])")
        for key in ("w", "h", "fl_x", "fl_y", "cx", "cy"):
            if key not in meta and key not in frame:
                raise ValueError(f"{name} has no {key}, at the top of the file or in the frame")


def _check_camera_model(transforms: Path, model: str) -> None:
    """A camera model nerfstudio does not know is named with the ones it does (else a bare KeyError)."""
    from nerfstudio.cameras.cameras import CAMERA_MODEL_TO_TYPE

    if model not in CAMERA_MODEL_TO_TYPE:
        raise ValueError(f"{transforms}: unknown camera_model {model!r}; nerfstudio reads {', '.join(sorted(CAMERA_MODEL_TO_TYPE))}")


def _check_listed_images(transforms: Path, frames: List[dict], downscale_factor: Optional[int]) -> None:
    """Every frame of a transforms.json must have its image (where nerfstudio looks for it: images_N/<file
    name> when downscaled); the missing ones are named, before nerfstudio's bare FileNotFoundError."""
    missing = []
    for frame in frames:
        path = transforms.parent / frame.get("file_path", "")
        if downscale_factor is not None and downscale_factor > 1:
            path = transforms.parent / f"images_{downscale_factor}" / path.name
        if not path.is_file():
            missing.append(str(path))
    if missing:
        if downscale_factor:
            where = f" (downscale factor {downscale_factor}: nerfstudio reads images_{downscale_factor}/<file name>)"
        else:  # downscaled copies in sub-folders are not read: nerfstudio looks for images_N/<file name> only
            folders = ", ".join(f"images_{n}" for n in downscale_factors(transforms.parent))
            where = (
                f" ({folders}: nerfstudio reads a downscaled copy as images_N/<file name>, without file_path's folders)" if folders else ""
            )
        first = Path(missing[0])
        with_suffix = sorted(first.parent.glob(glob.escape(first.name) + ".*")) if not first.suffix else []
        hint = f"; {with_suffix[0].name} is there: give file_path with its extension" if with_suffix else ""
        raise ValueError(
            f"{transforms}: the image files of {len(missing)} of {len(frames)} frames are missing{where}: {', '.join(missing[:5])}"
            + (" ..." if len(missing) > 5 else "")
            + hint
        )


def scene_views_from_datamanager(datamanager, name: str = "", split: str = "train") -> SceneViews:
    """The (undistorted) training or eval images and cameras a FullImageDatamanager holds, as tensors."""
    from nerfstudio.data.utils.data_utils import get_depth_image_from_path

    dataset = datamanager.train_dataset if split == "train" else datamanager.eval_dataset
    outputs = dataset._dataparser_outputs
    cameras = dataset.cameras
    check_image_files(outputs.image_filenames, "training" if split == "train" else "held-out", name or "the scene")
    try:  # nerfstudio caches (and undistorts) the images on first access, asserting their sizes bare
        cached = datamanager.cached_train if split == "train" else datamanager.cached_eval
    except AssertionError as err:
        data = Path(datamanager.config.data if datamanager.config.data is not None else datamanager.config.dataparser.data)
        _name_image_of_wrong_size(datamanager.config.dataparser, data)
        raise ValueError(f"cannot read scene {data}: {err}") from err
    images = []
    for item in cached:
        image = item["image"]
        images.append((image.float() / 255.0 if image.dtype == torch.uint8 else image.float()).cpu())
    images = stack_if_one_size(images)
    intrinsics = cameras.get_intrinsics_matrices().float().cpu()
    camtoworlds = cameras.camera_to_worlds.float().cpu()
    bottom = torch.tensor([0.0, 0.0, 0.0, 1.0]).expand(camtoworlds.shape[0], 1, 4)
    camtoworlds = torch.cat([camtoworlds, bottom], dim=1)

    depths = None
    depth_files = outputs.metadata.get("depth_filenames")
    if depth_files and isinstance(images, Tensor):  # depth maps serve the pointcloud initialiser, which wants one size
        scale = outputs.metadata.get("depth_unit_scale_factor", 1e-3) * outputs.dataparser_scale
        height, width = images[0].shape[:2]
        depths = torch.stack([get_depth_image_from_path(Path(f), height, width, scale)[..., 0] for f in depth_files])

    points = None
    if "points3D_xyz" in outputs.metadata:
        points = (outputs.metadata["points3D_xyz"].float(), outputs.metadata["points3D_rgb"].float() / 255.0)

    return SceneViews(
        name=name or str(datamanager.config.data),
        images=images,
        intrinsics=intrinsics,
        camtoworlds=camtoworlds,
        filenames=list(outputs.image_filenames),
        depths=depths,
        points=points,
    )


def downscale_factors(root: Path, images: str = "images") -> List[int]:
    """The N of every `images`_N folder under `root` (the downscaled copies nerfstudio's dataparsers read), ascending."""
    prefix = f"{images}_"
    return sorted(int(p.name[len(prefix) :]) for p in Path(root).glob(prefix + "*") if p.is_dir() and p.name[len(prefix) :].isdigit())


def _downscaled_folder(root: Path, names: Sequence[str], images: str = "images") -> Optional[int]:
    """The smallest N for which root/`images`_N holds every file name of `names` (None: no such folder)."""
    return next((n for n in downscale_factors(root, images) if all((root / f"{images}_{n}" / name).is_file() for name in names)), None)


_COLMAP_LAYOUTS = (
    ("colmap/sparse/0", "images"),
    ("sparse/0", "images"),
    ("sparse", "images"),
    ("distorted/sparse/0", "input"),
)
"""(model, images) folders of the COLMAP layouts `scene_dataparser` reads, in the order it looks for them."""

_NS_PROCESS_DATA_MODEL = "colmap/sparse/0"
"""Where ns-process-data keeps the COLMAP model its transforms.json was made from (nerfstudio-data's colmap_path)."""


def scene_dataparser(path: Path):
    """The nerfstudio dataparser config that reads a capture folder as it is, SfM points included.

    LLFF (poses_bounds.npy), NeRF-synthetic (transforms_train.json), nerfstudio-data / instant-ngp
    (transforms.json) or COLMAP (`_COLMAP_LAYOUTS`); where only downscaled copies of the images exist
    (images_N), that factor is used.
    """
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    from foresplat_ns.nerfstudio_glue.llff_dataparser import LLFFDataParserConfig

    path = Path(path)
    if (path / "poses_bounds.npy").is_file():
        return LLFFDataParserConfig()
    if (path / "transforms_train.json").is_file():
        return BlenderDataParserConfig()
    if (path / "transforms.json").is_file():
        try:
            meta = json.loads((path / "transforms.json").read_text())
            frames = meta.get("frames") or []
        except ValueError as err:
            raise ValueError(f"{path / 'transforms.json'} is not valid JSON: {err}") from err
        listed_points = "ply_file_path" in meta
        if not listed_points and _has_sfm_points(path / _NS_PROCESS_DATA_MODEL):
            # An older ns-process-data wrote no point file: nerfstudio-data, asked for points, would stop at
            # an interactive prompt (EOFError in a batch run) and then rewrite the user's transforms.json.
            warnings.warn(
                f"{path / 'transforms.json'} lists no SfM point file, but the COLMAP model it was made from "
                f"({path / _NS_PROCESS_DATA_MODEL}) holds SfM points: reading the capture from that model, points included "
                "(name nerfstudio-data to read the transforms.json without them)",
                stacklevel=2,
            )
            return _colmap_dataparser(path, _NS_PROCESS_DATA_MODEL, "images")
        files = [path / frame["file_path"] for frame in frames if "file_path" in frame]
        factor = None
        if files and not all(f.is_file() for f in files):
            factor = _downscaled_folder(path, [f.name for f in files])
        config = NerfstudioDataParserConfig(load_3D_points=listed_points, downscale_factor=factor)
        if 2 <= len(frames) < 10 and not any(key in meta for key in ("train_filenames", "val_filenames", "test_filenames")):
            # nerfstudio trains on ceil(0.9 n) frames: with fewer than 10, on all, and nothing is held out to evaluate
            config.train_split_fraction = (len(frames) - 1.5) / len(frames)
        return config
    # COLMAP's mapper writes sparse/0 (colmap/sparse/0 under ns-process-data); its image_undistorter's
    # workspace holds the model in sparse itself. 3DGS's convert.py keeps the mapper's model of the photos in
    # input/ as distorted/sparse/0: read where nothing undistorted is there (nerfstudio undistorts the views).
    for sparse, images in _COLMAP_LAYOUTS:
        if any((path / sparse / f"cameras.{ext}").is_file() for ext in ("bin", "txt")):
            return _colmap_dataparser(path, sparse, images)
    raise ValueError(
        f"{path} is not a capture ForeSplat can read: no poses_bounds.npy (LLFF), transforms.json (nerfstudio-data), "
        "transforms_train.json (blender), or cameras.bin|txt in " + ", ".join(sparse for sparse, _ in _COLMAP_LAYOUTS) + " (COLMAP)"
    )


def _colmap_dataparser(path: Path, sparse: str, images: str):
    """nerfstudio's colmap dataparser for the model `sparse` and the images `images` (else its images_N) of a capture."""
    from nerfstudio.data.dataparsers.colmap_dataparser import ColmapDataParserConfig

    factor = None if (path / images).is_dir() else _downscaled_folder(path, [], images)
    return ColmapDataParserConfig(
        colmap_path=Path(sparse), images_path=Path(images), downscale_factor=factor, load_3D_points=_has_sfm_points(path / sparse)
    )


def _has_sfm_points(model: Path) -> bool:
    """Whether a COLMAP model holds SfM points: one built from known poses before triangulation has none
    (an empty or absent points3D file), and nerfstudio's parser, asked for points, then fails."""
    binary, text = model / "points3D.bin", model / "points3D.txt"
    if binary.is_file():  # nerfstudio reads the binary model where both exist
        with open(binary, "rb") as f:
            count = f.read(8)  # the number of points, a uint64
        if len(count) < 8:
            warnings.warn(f"{binary} is cut short ({len(count)} bytes): training without SfM points", stacklevel=2)
        return len(count) == 8 and int.from_bytes(count, "little") > 0
    if text.is_file():
        with open(text) as f:
            return any(line.strip() and not line.startswith("#") for line in f)
    return False


def load_scene(path: Path, dataparser_config=None, max_image_side: Optional[int] = None) -> Tuple[SceneViews, SceneViews]:
    """A scene folder's training and held-out views, read with a copy of `dataparser_config` (None: the
    capture's own format, `scene_dataparser`), shrunk to `max_image_side` where given (`SceneViews.resized`)."""
    import copy

    from nerfstudio.data.datamanagers.full_images_datamanager import FullImageDatamanagerConfig

    path = Path(path)
    if dataparser_config is None:
        dataparser_config = scene_dataparser(path)
    # cache_images "gpu" means "on the datamanager's device", the CPU here; nerfstudio's "cpu" option
    # pins memory, which needs CUDA.
    config = FullImageDatamanagerConfig(dataparser=copy.deepcopy(dataparser_config), data=path, cache_images="gpu")
    datamanager = setup_full_image_datamanager(config, device="cpu", test_mode="val")
    train = scene_views_from_datamanager(datamanager, name=path.name, split="train")
    held_out = scene_views_from_datamanager(datamanager, name=path.name, split="eval")
    if max_image_side is not None:
        train, held_out = train.resized(max_image_side), held_out.resized(max_image_side)
    return train, held_out


SCENE_MARKERS = ("transforms.json", "transforms_train.json", "sparse", "colmap", "poses_bounds.npy")
"""What makes a folder a scene for one of the dataparsers (nerfstudio-data, blender, colmap, llff-data)."""


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
