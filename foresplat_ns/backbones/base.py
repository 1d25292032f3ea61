"""The backbone interface: context images and cameras in, Gaussians (splatfacto's parameterisation) out.

Data flows one way: `ContextViews` -> `Backbone` -> `Gaussians`, then refinement or MetaGrad. A
backbone also says which of its parameters form the prediction head (what MetaGrad fine-tunes by
default) and which the trunk. Checkpoints carry the backbone's name, config and a format version, so
a checkpoint rebuilds its own backbone and a mismatched one fails with a message that says why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, ClassVar, Dict, Iterator, Mapping, Optional, Tuple, Type

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foresplat_ns.atomic import torch_save_atomic
from foresplat_ns.cameras import scaled_intrinsics, shrunk_size
from foresplat_ns.gaussians import Gaussians

CHECKPOINT_FORMAT = "foresplat-backbone"
CHECKPOINT_VERSION = 1


def area_resized(images: Tensor, size: Tuple[int, int]) -> Tensor:
    """Images [N,H,W,C] resampled to `size` (H, W) by area averaging (for shrinking)."""
    return F.interpolate(images.permute(0, 3, 1, 2), size=size, mode="area").permute(0, 2, 3, 1)


@dataclass
class ContextViews:
    """A batch of posed context views in the dataset's frame.

    images [B,V,H,W,3] in [0,1]; intrinsics [B,V,3,3] in pixels; camtoworlds [B,V,4,4] OpenGL
    (nerfstudio's convention). `depths` [B,V,H,W] (z-depth, 0 where unknown) and `points` (the scene's SfM
    xyz [P,3], rgb [P,3] in [0,1]) are optional geometry: the non-learned initialiser reads both, the
    compact backbone takes its depth from the points.
    """

    images: Tensor
    intrinsics: Tensor
    camtoworlds: Tensor
    depths: Optional[Tensor] = None
    points: Optional[Tuple[Tensor, Tensor]] = None

    @property
    def batch_size(self) -> int:
        return self.images.shape[0]

    @property
    def num_views(self) -> int:
        return self.images.shape[1]

    def shrunk(self, max_side: int) -> "ContextViews":
        """The views shrunk (area-averaged) so their longer side is at most `max_side`, intrinsics scaled with
        them and depth maps resampled (nearest); views already that small are returned as they are."""
        size = tuple(self.images.shape[2:4])
        new_size = shrunk_size(size, max_side)
        if new_size == size:
            return self
        b, v = self.images.shape[:2]
        images = area_resized(self.images.flatten(0, 1), new_size)
        depths = None if self.depths is None else F.interpolate(self.depths.flatten(0, 1)[:, None], size=new_size, mode="nearest")
        return ContextViews(
            images=images.reshape(b, v, *new_size, -1),
            intrinsics=scaled_intrinsics(self.intrinsics, size, new_size),
            camtoworlds=self.camtoworlds,
            depths=None if depths is None else depths.reshape(b, v, *new_size),
            points=self.points,
        )

    def validate(self, source: str = "context views") -> None:
        """Raise a ValueError naming `source` when a shape or value is wrong."""
        if self.images.dim() != 5 or self.images.shape[-1] != 3:
            raise ValueError(f"{source}: images must be [B,V,H,W,3], got {tuple(self.images.shape)}")
        b, v, h, w, _ = self.images.shape
        if b == 0 or v == 0 or h == 0 or w == 0:
            raise ValueError(f"{source}: images have an empty dimension: {tuple(self.images.shape)}")
        if self.intrinsics.shape != (b, v, 3, 3):
            raise ValueError(f"{source}: intrinsics must be {(b, v, 3, 3)}, got {tuple(self.intrinsics.shape)}")
        if self.camtoworlds.shape != (b, v, 4, 4):
            raise ValueError(f"{source}: camtoworlds must be {(b, v, 4, 4)}, got {tuple(self.camtoworlds.shape)}")
        if self.depths is not None and self.depths.shape != (b, v, h, w):
            raise ValueError(f"{source}: depths must be {(b, v, h, w)}, got {tuple(self.depths.shape)}")
        for name in ("images", "intrinsics", "camtoworlds", "depths"):
            t = getattr(self, name)
            if t is not None and not torch.isfinite(t).all():
                raise ValueError(f"{source}: {name} contain NaN or inf")

    def to(self, *args, **kwargs) -> "ContextViews":
        move = lambda t: None if t is None else t.to(*args, **kwargs)  # noqa: E731
        points = None if self.points is None else (move(self.points[0]), move(self.points[1]))
        return ContextViews(move(self.images), move(self.intrinsics), move(self.camtoworlds), move(self.depths), points)


@dataclass
class BackboneConfig:
    """Base of every backbone's config; a config builds its backbone with `setup()`."""

    name: ClassVar[str] = ""

    def setup(self) -> "Backbone":
        raise NotImplementedError

    def to_dict(self) -> Dict[str, Any]:
        return dataclasses.asdict(self)


class Backbone(nn.Module):
    """Predicts Gaussians from context views. Subclasses implement `forward` and `head_parameter_names`."""

    config: BackboneConfig
    preferred_context_side: ClassVar[Optional[int]] = None
    """The longest image side this backbone predicts best from (`ns-train foresplat` shrinks larger context
    views to it); None: views as they are (it resizes them itself, or works at any size)."""
    training_record: Mapping[str, Any] = MappingProxyType({})
    """What the checkpoint it was loaded from recorded of its training (`load_backbone`'s extra: e.g. the
    refinement MetaGrad trained it for, the image side); empty for a backbone not loaded from one."""
    checkpoint_path: Optional[Path] = None
    """The checkpoint it was loaded from (`load_backbone`); None for a backbone not loaded from one."""

    def forward(self, context: ContextViews) -> Gaussians:  # pragma: no cover - interface
        """Gaussians with a leading batch dim [B,N,...], differentiable w.r.t. the backbone weights."""
        raise NotImplementedError

    def head_parameter_names(self) -> Tuple[str, ...]:
        """Names (as in `named_parameters`) of the prediction head's parameters."""
        raise NotImplementedError

    def head_parameters(self) -> Iterator[nn.Parameter]:
        head = set(self.head_parameter_names())
        return (p for n, p in self.named_parameters() if n in head)

    def trunk_parameters(self) -> Iterator[nn.Parameter]:
        head = set(self.head_parameter_names())
        return (p for n, p in self.named_parameters() if n not in head)

    @property
    def is_learned(self) -> bool:
        return any(True for _ in self.parameters())


# -- registry ------------------------------------------------------------------------------------
_REGISTRY: Dict[str, Type[BackboneConfig]] = {}


def register_backbone(config_cls: Type[BackboneConfig]) -> Type[BackboneConfig]:
    _REGISTRY[config_cls.name] = config_cls
    return config_cls


def backbone_config_class(name: str) -> Type[BackboneConfig]:
    if name not in _REGISTRY:
        raise ValueError(f"unknown backbone '{name}'; known backbones: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


def registered_backbones() -> Tuple[str, ...]:
    return tuple(sorted(_REGISTRY))


# -- checkpoints ---------------------------------------------------------------------------------
def save_checkpoint(path: Path, backbone: Backbone, extra: Optional[Dict[str, Any]] = None) -> None:
    """Write a backbone checkpoint atomically: a crash mid-write never leaves a truncated file at `path`.

    `extra` holds plain data (numbers, strings, tensors, dicts of them) such as optimiser state or
    the training step, loadable with weights_only=True.
    """
    payload = {
        "format": CHECKPOINT_FORMAT,
        "format_version": CHECKPOINT_VERSION,
        "backbone": backbone.config.name,
        "config": backbone.config.to_dict(),
        "state_dict": backbone.state_dict(),
        "extra": extra or {},
    }
    torch_save_atomic(payload, path)


def read_checkpoint(path: Path) -> Dict[str, Any]:
    """Load and check a checkpoint's envelope, naming the file and the problem on failure."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"backbone checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # truncated, corrupt or not a torch file
        # torch's own text for a file that is no checkpoint advises weights_only=False: wrong here, so not shown.
        detail = "" if "weights_only" in str(err) else f": {err}"
        raise ValueError(
            f"backbone checkpoint {path} could not be read: truncated, corrupt or not a ForeSplat checkpoint at all{detail}"
        ) from err
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path} is not a ForeSplat backbone checkpoint (no '{CHECKPOINT_FORMAT}' format tag)")
    version = payload.get("format_version")
    if version != CHECKPOINT_VERSION:
        raise ValueError(f"{path} has checkpoint format version {version}; this ForeSplat reads version {CHECKPOINT_VERSION}")
    for key in ("backbone", "config", "state_dict"):
        if key not in payload:
            raise ValueError(f"{path} lacks the '{key}' entry")
    return payload


def load_backbone(path: Path, expected: Optional[BackboneConfig] = None) -> Tuple[Backbone, Dict[str, Any]]:
    """Rebuild the backbone a checkpoint was written from, and return it with the checkpoint's `extra`
    (also its `training_record`, so every loader honours what the checkpoint recorded, e.g. its image side,
    and its `checkpoint_path`).

    With `expected`, a checkpoint of another backbone or config is refused with the differences named.
    """
    payload = read_checkpoint(path)
    name = payload["backbone"]
    if expected is not None and expected.name != name:
        raise ValueError(f"{path} holds a '{name}' backbone, but a '{expected.name}' backbone was asked for")
    config_cls = backbone_config_class(name)
    try:
        config = config_cls(**payload["config"])
    except TypeError as err:
        raise ValueError(f"{path}: its '{name}' config does not fit this version of ForeSplat: {err}") from err
    if expected is not None and config.to_dict() != expected.to_dict():
        diffs = [
            f"{k}: checkpoint {payload['config'].get(k)!r} vs asked {v!r}"
            for k, v in expected.to_dict().items()
            if payload["config"].get(k) != v
        ]
        raise ValueError(f"{path} was trained with another '{name}' config ({'; '.join(diffs)})")
    backbone = config.setup()
    missing, unexpected = backbone.load_state_dict(payload["state_dict"], strict=False)
    if missing or unexpected:
        raise ValueError(f"{path}: weights do not match the '{name}' backbone (missing: {missing[:5]}, unexpected: {unexpected[:5]})")
    backbone.training_record = payload.get("extra", {})
    backbone.checkpoint_path = Path(path)
    return backbone, backbone.training_record
