"""`pi3x`: Pi3X's point maps and cameras, with our own Gaussian head on top.

Pi3X (github.com/yyfz/Pi3; code BSD-3, weights CC BY-NC 4.0) takes images [B,V,3,H,W] in [0,1],
sides multiples of 14, and returns a dict: `points` [B,V,H,W,3] (world point maps), `local_points`
[B,V,H,W,3] (camera frame, OpenCV), `conf` [B,V,H,W,1] (confidence logits) and `camera_poses`
[B,V,4,4] (OpenCV camera-to-world), in a frame and at a scale of its own. It has no Gaussian head:

    images ──resize to about `pixel_limit` pixels, sides multiples of 14──► Pi3X ──► point maps,
        confidence, cameras; its `point_decoder` tokens (captured by a hook) are the features
    features + block colour + depth and confidence cues ──our head (a few convs)──► per block:
        opacity, log-scale residuals, rotation (in the camera's frame), colour residual
    ──world points at block centres whose confidence passes `confidence_threshold`──► cap ──
    similarity fitted from Pi3X's cameras to the dataset's──► Gaussians in the dataset's frame

MetaGrad's head is ours (`head.*`); Pi3X is the trunk. The upstream package is not on PyPI and is
imported only when the model is built (`pip install git+https://github.com/yyfz/Pi3`). Only our
part was tested, against a stand-in that honours the contract above; the real model was not run here.
"""

from __future__ import annotations

import importlib.util
import math
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from foresplat_ns.backbones.align import AlignedBackbone, PretrainedBackboneConfig
from foresplat_ns.backbones.base import ContextViews, register_backbone
from foresplat_ns.backbones.weights import find_weights, load_weights
from foresplat_ns.cameras import matrix_to_quaternion, quaternion_multiply
from foresplat_ns.gaussians import Gaussians

SOURCE = "pi3x backbone"
PATCH = 14
WEIGHTS_REPO, WEIGHTS_FILE = "yyfz233/Pi3X", "model.safetensors"
LICENCE = "non-commercial, CC BY-NC 4.0"
INSTALL = "pip install git+https://github.com/yyfz/Pi3 (BSD-3 code, not on PyPI)"
MULTIMODAL_PREFIXES = ("depth_encoder.", "depth_emb", "ray_embed.", "pose_inject_blk.")
"""Weights of Pi3X's optional pose/depth conditioning, which is built without: the release holds them."""
OUTPUT_KEYS = {"points": 3, "local_points": 3, "conf": 1}
"""Per-pixel outputs used, with their channel counts; `camera_poses` [B,V,4,4] too."""


@register_backbone
@dataclass
class Pi3XBackboneConfig(PretrainedBackboneConfig):
    name: ClassVar[str] = "pi3x"

    pixel_limit: int = 255_000
    """Images are resized to about this many pixels (sides multiples of 14), as Pi3X's own examples do."""
    stride: int = 2
    """One Gaussian per stride x stride pixel block of the resized images."""
    confidence_threshold: float = 0.1
    """Blocks whose sigmoid(conf) is below this get no Gaussian (Pi3X's own examples mask at 0.1)."""
    feature_dim: int = 1024
    """Channels of the tokens of Pi3X's point decoder, the head's features."""
    head_width: int = 64
    initial_opacity: float = 0.5
    scale_init_factor: float = 0.5
    """Initial standard deviation as a fraction of the block's metric footprint."""
    scale_residual_range: float = 4.0
    """Bound on the predicted log-scale residuals (softly, by tanh)."""

    def problems(self) -> List[str]:
        problems = super().problems()
        if self.pixel_limit < PATCH * PATCH:
            problems.append(f"pixel_limit must be at least {PATCH * PATCH}, got {self.pixel_limit}")
        if self.stride < 1:
            problems.append(f"stride must be positive, got {self.stride}")
        if not 0 <= self.confidence_threshold < 1:
            problems.append(f"confidence_threshold must be in [0, 1), got {self.confidence_threshold}")
        if not 0 < self.initial_opacity < 1:
            problems.append(f"initial_opacity must be in (0, 1), got {self.initial_opacity}")
        return problems

    def build_model(self) -> nn.Module:
        """Upstream Pi3X without its pose/depth conditioning branches, untrained weights."""
        _require_pi3()
        from pi3.models.pi3x import Pi3X

        return Pi3X(use_multimodal=False)

    def setup(self) -> "Pi3XBackbone":
        return Pi3XBackbone(self, self.build_model())

    def load_pretrained(self, checkpoint: Optional[Path]) -> "Pi3XBackbone":
        """Released Pi3X weights (model.safetensors, or a folder holding it; none: the Hugging Face
        cache) under an untrained head. Package and weights are checked before the model is built."""
        _require_pi3()
        path = find_weights(checkpoint, WEIGHTS_REPO, WEIGHTS_FILE, "Pi3X", LICENCE)
        backbone = self.setup()
        load_weights(backbone.pi3x, path, "Pi3X", ignored_prefixes=MULTIMODAL_PREFIXES)
        return backbone


def _require_pi3() -> None:
    if importlib.util.find_spec("pi3") is None:
        raise ValueError(f"the pi3x backbone needs the upstream Pi3 code: {INSTALL}")


def model_image_shape(height: int, width: int, pixel_limit: int) -> Tuple[int, int]:
    """(h, w) of about `pixel_limit` pixels at the images' aspect ratio, both multiples of the patch."""
    scale = math.sqrt(pixel_limit / (height * width))
    return tuple(max(PATCH, math.floor(side * scale / PATCH) * PATCH) for side in (height, width))


class _GaussianHead(nn.Module):
    """Decoder features (projected, upsampled to the block grid) with block colour and cues -> raw outputs."""

    OUTPUTS = 1 + 3 + 4 + 3  # opacity logit, log-scale residuals, rotation, colour residual
    CUES = 3 + 2  # block colour, relative log depth, confidence

    def __init__(self, config: Pi3XBackboneConfig):
        super().__init__()
        width = config.head_width
        self.project = nn.Conv2d(config.feature_dim, width, 1)
        self.conv1 = nn.Conv2d(width + self.CUES, width, 3, padding=1)
        self.norm = nn.GroupNorm(min(8, width), width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.out = nn.Conv2d(width, self.OUTPUTS, 1)
        with torch.no_grad():
            # An untrained head already gives a sensible start: opacity `initial_opacity`, the
            # camera's orientation, the block's colour, scales a fraction of its footprint.
            self.out.weight.mul_(0.01)
            self.out.bias.zero_()
            self.out.bias[0] = math.log(config.initial_opacity / (1 - config.initial_opacity))
            self.out.bias[4] = 1.0

    def forward(self, features: Tensor, cues: Tensor) -> Tensor:
        x = F.interpolate(self.project(features), size=cues.shape[-2:], mode="bilinear", align_corners=False)
        x = F.relu(self.norm(self.conv1(torch.cat([x, cues], 1))))
        return self.out(F.relu(self.conv2(x)))


class Pi3XBackbone(AlignedBackbone):
    source = SOURCE

    def __init__(self, config: Pi3XBackboneConfig, model: nn.Module):
        super().__init__()
        self.config = config
        self.pi3x = model
        self.head = _GaussianHead(config)

    def head_parameter_names(self) -> Tuple[str, ...]:
        return tuple(n for n, _ in self.named_parameters() if n.startswith("head."))

    def _run_pi3x(self, images: Tensor) -> Tuple[Dict[str, Tensor], Tensor]:
        """Pi3X's outputs, checked against its contract, and its point decoder's patch tokens [BV,C,h/14,w/14]."""
        b, v, _, h, w = images.shape
        captured: List[Tensor] = []
        hook = self.pi3x.point_decoder.register_forward_hook(lambda module, inputs, output: captured.append(output))
        try:
            out = self.pi3x(images)
        finally:
            hook.remove()
        for key, channels in OUTPUT_KEYS.items():
            if key not in out or tuple(out[key].shape) != (b, v, h, w, channels):
                got = tuple(out[key].shape) if key in out else "nothing"
                raise ValueError(f"{SOURCE}: Pi3X's '{key}' should be {(b, v, h, w, channels)}, got {got}")
        if "camera_poses" not in out or tuple(out["camera_poses"].shape) != (b, v, 4, 4):
            got = tuple(out["camera_poses"].shape) if "camera_poses" in out else "nothing"
            raise ValueError(f"{SOURCE}: Pi3X's 'camera_poses' should be {(b, v, 4, 4)}, got {got}")
        ph, pw = h // PATCH, w // PATCH
        tokens = captured[-1][:, self.pi3x.patch_start_idx :]
        if tokens.shape != (b * v, ph * pw, self.config.feature_dim):
            raise ValueError(
                f"{SOURCE}: Pi3X's point decoder gave tokens {tuple(tokens.shape)} after its register tokens, "
                f"expected {(b * v, ph * pw, self.config.feature_dim)} (feature_dim)"
            )
        return out, tokens.transpose(1, 2).reshape(b * v, -1, ph, pw)

    def predict_model_frame(self, context: ContextViews) -> Tuple[List[Gaussians], Tensor]:
        """Each sample's confident Gaussians in Pi3X's frame, and its OpenCV cameras [B,V,4,4]."""
        context.validate(SOURCE)
        cfg = self.config
        s = cfg.stride
        b, v, height, width, _ = context.images.shape
        h, w = model_image_shape(height, width, cfg.pixel_limit)
        if h % s or w % s:
            raise ValueError(f"{SOURCE}: the model's image size {h}x{w} is not a multiple of the stride {s}")
        net = next(self.head.parameters()).dtype
        images = context.images.to(net).reshape(b * v, height, width, 3).permute(0, 3, 1, 2)
        images = F.interpolate(images, size=(h, w), mode="bilinear", align_corners=False, antialias=True).clamp(0, 1)
        out, features = self._run_pi3x(images.reshape(b, v, 3, h, w))

        def blocks(t: Tensor) -> Tensor:  # per-pixel [B,V,H,W,C] -> block centres [B,V,H/s,W/s,C]
            return t[:, :, s // 2 :: s, s // 2 :: s]

        local = out["local_points"]
        depth = local[..., 2:3].clamp_min(1e-6)
        # Metric size of one pixel per unit depth: the spacing of neighbouring rays (Pi3X predicts no intrinsics).
        ray_x = local[..., 0] / depth[..., 0]
        ray_step = (ray_x[..., 1:] - ray_x[..., :-1]).abs().flatten(2).median(-1).values  # [B,V]
        confidence = torch.sigmoid(blocks(out["conf"]))
        block_depth = blocks(depth)
        log_depth = block_depth.log()
        relative_log_depth = log_depth - log_depth.mean((2, 3, 4), keepdim=True)
        colour = F.avg_pool2d(images, s).reshape(b, v, 3, h // s, w // s).permute(0, 1, 3, 4, 2)
        cues = torch.cat([colour - 0.5, relative_log_depth, confidence], -1)
        raw = self.head(features, cues.reshape(b * v, h // s, w // s, -1).permute(0, 3, 1, 2))
        raw = raw.permute(0, 2, 3, 1).reshape(b, v, h // s, w // s, -1)

        footprint = block_depth * (s * ray_step)[:, :, None, None, None]
        r = cfg.scale_residual_range
        scales = cfg.scale_init_factor * footprint * torch.exp(r * torch.tanh(raw[..., 1:4] / r))
        cam_quats = matrix_to_quaternion(out["camera_poses"][..., :3, :3])[:, :, None, None]
        local_quats = raw[..., 4:8] / raw[..., 4:8].norm(dim=-1, keepdim=True).clamp_min(1e-12)
        quats = quaternion_multiply(cam_quats.expand_as(local_quats), local_quats)
        keep = confidence[..., 0] >= cfg.confidence_threshold
        samples = []
        for i in range(b):
            if not keep[i].any():
                raise ValueError(
                    f"{SOURCE}: no point of batch element {i} has confidence >= {cfg.confidence_threshold}; "
                    "lower confidence_threshold or check the images"
                )
            mask = keep[i]
            samples.append(
                Gaussians.from_activated(
                    means=blocks(out["points"])[i][mask],
                    scales=scales[i][mask],
                    quats=quats[i][mask],
                    opacities=torch.sigmoid(raw[i][mask][:, 0]),
                    rgb=colour[i][mask] + raw[i][mask][:, 8:11],
                    sh_degree=cfg.sh_degree,
                )
            )
        return samples, out["camera_poses"]
