"""`anysplat`: AnySplat (Jiang et al., SIGGRAPH Asia 2025) through the optional `ffgs` package.

ffgs (Apache-2.0 core) ships AnySplat's model code and processor; those files and the released
weights are non-commercial (CC BY-NC 4.0 / CC BY-NC-SA 4.0), so ffgs is an optional extra
(`pip install 'foresplat-ns[anysplat]'`) imported only when this backbone is built, and none of
its code is copied here.

    images ──ffgs processor (resize to a multiple of 14, centre crop)──► AnySplat ──► per-pixel
    Gaussians merged per voxel, in AnySplat's frame (its first predicted camera, its own scale),
    and the cameras it predicts ──splatfacto's parameterisation, SH cut to `sh_degree`──► cap ──
    similarity fitted from its cameras to the dataset's──► Gaussians in the dataset's frame

This runs ffgs's differentiable path (processor.preprocess -> model -> processor.postprocess);
`ffgs.GSPipeline.__call__` runs under no_grad and could not train. MetaGrad's head is AnySplat's
Gaussian head (`encoder.gaussian_param_head`, a DPT head: opacity, scales, rotation, SH and
confidence per pixel); the trunk (VGGT aggregator, camera and depth heads) places the Gaussians.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Dict, List, Optional, Tuple

import torch
from torch import Tensor, nn
from tyro.conf import Suppress

from foresplat_ns.backbones.align import AlignedBackbone, PretrainedBackboneConfig
from foresplat_ns.backbones.base import ContextViews, register_backbone
from foresplat_ns.backbones.weights import find_weights, load_weights
from foresplat_ns.gaussians import Gaussians, num_sh_bases, sh_to_rgb

SOURCE = "anysplat backbone"
RELEASED = "anysplat/default"
"""ffgs's zoo entry of the released model: its weights' Hub repo and file, and its constructor arguments."""
LICENCE = "non-commercial, CC BY-NC 4.0 via VGGT-1B"
PATCH = 14


def _ffgs():
    """ffgs's `anysplat` model package and zoo, or a ValueError saying how to install them."""
    try:
        from ffgs import zoo
        from ffgs.models import anysplat
    except ImportError as err:
        raise ValueError(
            f"the anysplat backbone needs the optional ffgs package ({err}): pip install 'foresplat-ns[anysplat]'. "
            "AnySplat's code and weights are for non-commercial use only"
        ) from err
    return anysplat, zoo


@register_backbone
@dataclass
class AnySplatBackboneConfig(PretrainedBackboneConfig):
    name: ClassVar[str] = "anysplat"

    architecture: Suppress[Optional[Dict[str, Any]]] = None
    """Keyword arguments of ffgs's `AnySplat`; None is the released model (about 1.19 B parameters). Not on the
    command line: other architectures have no released weights (tests build a tiny one)."""
    image_size: int = 448
    """Longer image side the model sees (the shorter one keeps the aspect ratio); multiples of 14, as
    AnySplat's patches. The released model was trained at 448x448. (AnySplat merges pixels per voxel, so
    its Gaussian counts vary with the scene before the cap.)"""

    def problems(self) -> List[str]:
        problems = super().problems()
        if self.image_size < PATCH or self.image_size % PATCH:
            problems.append(f"image_size must be a positive multiple of {PATCH}, got {self.image_size}")
        return problems

    def build_model(self) -> nn.Module:
        """ffgs's AnySplat with this architecture and untrained weights."""
        anysplat, zoo = _ffgs()
        kwargs = self.architecture if self.architecture is not None else zoo.get_entry(RELEASED).model
        return anysplat.AnySplat(**kwargs)

    def setup(self) -> "AnySplatBackbone":
        return AnySplatBackbone(self, self.build_model())

    def load_pretrained(self, checkpoint: Optional[Path]) -> "AnySplatBackbone":
        """The released weights from `checkpoint` (model.safetensors, or a folder holding it) or the
        Hugging Face cache. They are found before the model is built (seconds for the full model),
        and loaded strictly: ffgs's own folder loading would skip missing keys silently."""
        _, zoo = _ffgs()
        weights = zoo.get_entry(RELEASED).weights
        path = find_weights(checkpoint, weights.repo, weights.file, "AnySplat", LICENCE)
        backbone = self.setup()
        load_weights(backbone.anysplat, path, "AnySplat")
        return backbone


def model_image_shape(height: int, width: int, long_side: int) -> Tuple[int, int]:
    """(h, w) with the longer side `long_side` and the aspect ratio kept, both multiples of the patch."""
    scale = long_side / max(height, width)
    return tuple(max(PATCH, round(side * scale / PATCH) * PATCH) for side in (height, width))


class AnySplatBackbone(AlignedBackbone):
    source = SOURCE

    HEAD_PREFIX = "anysplat.encoder.gaussian_param_head."

    def __init__(self, config: AnySplatBackboneConfig, model: nn.Module):
        super().__init__()
        self.config = config
        self.anysplat = model

    def head_parameter_names(self) -> Tuple[str, ...]:
        return tuple(n for n, _ in self.named_parameters() if n.startswith(self.HEAD_PREFIX))

    def predict_model_frame(self, context: ContextViews) -> Tuple[List[Gaussians], Tensor]:
        """Each sample's Gaussians in AnySplat's frame (splatfacto's parameterisation, `sh_degree`),
        and the OpenCV camera-to-world matrices [B,V,4,4] it predicts for the context views."""
        from ffgs import Views

        anysplat, _ = _ffgs()
        context.validate(SOURCE)
        _, _, height, width, _ = context.images.shape
        shape = model_image_shape(height, width, self.config.image_size)
        processor = anysplat.AnySplatProcessor(dict(image_shape=list(shape)))
        device = next(self.parameters()).device
        prepared = processor.preprocess(Views(context.images.permute(0, 1, 4, 2, 3).float()), device)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="CUDA is not available")  # its bfloat16 autocast, off on CPU
            raw = self.anysplat(prepared.model_input)
        predicted = processor.postprocess(raw)
        counts = raw.infos["num_gaussians"].tolist()
        keep = num_sh_bases(self.config.sh_degree)
        samples = []
        for b, count in enumerate(counts):
            sh = predicted.colors[b, :count, :keep]
            if sh.shape[-2] < keep:
                sh = torch.cat([sh, sh.new_zeros((count, keep - sh.shape[-2], 3))], -2)
            samples.append(
                Gaussians.from_activated(
                    means=predicted.means[b, :count],
                    scales=predicted.scales[b, :count],
                    quats=predicted.quats[b, :count],
                    opacities=predicted.opacities[b, :count],
                    rgb=sh_to_rgb(sh[:, 0]),
                    sh_degree=self.config.sh_degree,
                    features_rest=sh[:, 1:],
                )
            )
        return samples, raw.pred_context_pose["extrinsic"]
