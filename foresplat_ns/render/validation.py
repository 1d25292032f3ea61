"""Argument checks shared by the CUDA (gsplat) and CPU paths of `rasterization`.

gsplat asserts shapes without saying which argument is wrong and silently renders NaNs from non-finite
inputs; these checks raise a ValueError that names the argument. The value checks cost one device sync
(two when they find a problem).
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from .sh import MAX_SH_DEGREE, num_sh_bases

RENDER_MODES = ("RGB", "D", "ED", "RGB+D", "RGB+ED")
RASTERIZE_MODES = ("classic", "antialiased")


def _shape(tensor: Tensor) -> str:
    return str(list(tensor.shape))


def _check_positive_int(name: str, value) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"'{name}' must be a positive int, got {value!r}")


def validate_rasterization_inputs(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    colors: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    sh_degree: Optional[int],
    backgrounds: Optional[Tensor],
    render_mode: str,
    rasterize_mode: str,
    tile_size: int,
) -> None:
    """Raise ValueError naming the first argument whose type, shape, dtype, device or values are unusable."""
    tensors = {"means": means, "quats": quats, "scales": scales, "opacities": opacities, "colors": colors}
    tensors.update({"viewmats": viewmats, "Ks": Ks})
    if backgrounds is not None:
        tensors["backgrounds"] = backgrounds
    for name, tensor in tensors.items():
        if not isinstance(tensor, Tensor):
            raise ValueError(f"'{name}' must be a torch.Tensor, got {type(tensor).__name__}")
    if not means.dtype.is_floating_point:
        raise ValueError(f"'means' must be floating point, got {means.dtype}")
    for name, tensor in tensors.items():
        if tensor.dtype != means.dtype:
            raise ValueError(f"'{name}' has dtype {tensor.dtype} but 'means' has {means.dtype}; all inputs must match")
        if tensor.device != means.device:
            raise ValueError(f"'{name}' is on {tensor.device} but 'means' is on {means.device}")

    if means.dim() != 2 or means.shape[1] != 3:
        raise ValueError(f"'means' must have shape [N, 3], got {_shape(means)}")
    n = means.shape[0]
    for name, tensor, tail in (("quats", quats, (4,)), ("scales", scales, (3,)), ("opacities", opacities, ())):
        if tuple(tensor.shape) != (n, *tail):
            raise ValueError(f"'{name}' must have shape {[n, *tail]} (N={n} from 'means'), got {_shape(tensor)}")
    if viewmats.dim() != 3 or tuple(viewmats.shape[1:]) != (4, 4):
        raise ValueError(f"'viewmats' must have shape [C, 4, 4], got {_shape(viewmats)}")
    c = viewmats.shape[0]
    if Ks.dim() != 3 or tuple(Ks.shape[1:]) != (3, 3):
        raise ValueError(f"'Ks' must have shape [C, 3, 3], got {_shape(Ks)}")
    if Ks.shape[0] != c:
        raise ValueError(f"'Ks' has {Ks.shape[0]} cameras but 'viewmats' has {c}")
    _check_positive_int("width", width)
    _check_positive_int("height", height)
    _check_positive_int("tile_size", tile_size)
    if render_mode not in RENDER_MODES:
        raise ValueError(f"'render_mode' must be one of {RENDER_MODES}, got {render_mode!r}")
    if rasterize_mode not in RASTERIZE_MODES:
        raise ValueError(f"'rasterize_mode' must be one of {RASTERIZE_MODES}, got {rasterize_mode!r}")

    if sh_degree is None:
        if not ((colors.dim() == 2 and colors.shape[0] == n) or (colors.dim() == 3 and tuple(colors.shape[:2]) == (c, n))):
            raise ValueError(f"'colors' must have shape [N, D] or [C, N, D] (N={n}, C={c}), got {_shape(colors)}")
        channels = colors.shape[-1]
    else:
        if isinstance(sh_degree, bool) or not isinstance(sh_degree, int) or not 0 <= sh_degree <= MAX_SH_DEGREE:
            raise ValueError(f"'sh_degree' must be None or an int in 0..{MAX_SH_DEGREE}, got {sh_degree!r}")
        per_gaussian = colors.dim() == 3 and colors.shape[0] == n
        per_camera = colors.dim() == 4 and tuple(colors.shape[:2]) == (c, n)
        if not (per_gaussian or per_camera) or colors.shape[-1] != 3:
            raise ValueError(f"'colors' must have shape [N, K, 3] or [C, N, K, 3] SH coefficients (N={n}, C={c}), got {_shape(colors)}")
        if colors.shape[-2] < num_sh_bases(sh_degree):
            raise ValueError(
                f"'sh_degree'={sh_degree} needs {num_sh_bases(sh_degree)} SH coefficients per Gaussian, but 'colors' has K={colors.shape[-2]}"
            )
        channels = 3
    if backgrounds is not None and tuple(backgrounds.shape) != (c, channels):
        raise ValueError(f"'backgrounds' must have shape [C, D] = {[c, channels]}, got {_shape(backgrounds)}")

    checked = {name: tensors[name] for name in ("means", "quats", "scales", "opacities", "colors", "viewmats", "Ks")}
    if backgrounds is not None:
        checked["backgrounds"] = backgrounds
    # Cheap sentinels first: a sum is non-finite whenever an element is (or when it overflows), and a
    # quaternion with a component above sqrt(tiny) cannot have a norm that underflows to 0. Only when
    # one of them fails are the exact counts taken, to pass or to word the error.
    sentinels = [tensor.sum() for tensor in checked.values()]
    if quats.shape[0]:
        sentinels.append(quats.abs().amax(dim=-1).min())
    values = torch.stack(sentinels).tolist()  # the one sync when the inputs are fine
    smallest_safe = math.sqrt(torch.finfo(quats.dtype).tiny)
    if all(math.isfinite(value) for value in values[: len(checked)]) and all(value > smallest_safe for value in values[len(checked) :]):
        return
    counts = [(~torch.isfinite(tensor)).sum() for tensor in checked.values()]
    counts.append((quats.norm(dim=-1) == 0).sum())
    counts = torch.stack(counts).tolist()
    for name, count in zip(checked, counts):
        if count:
            raise ValueError(f"'{name}' has {count} non-finite value(s)")
    if counts[-1]:
        raise ValueError(f"'quats' has {counts[-1]} zero-norm quaternion(s); rotations need a non-zero quaternion")
