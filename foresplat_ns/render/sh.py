"""Real spherical harmonics up to degree 4, in the basis order and sign convention of 3DGS and gsplat.

Colours are `sum_k basis_k(dir) * coeff_k` over the first (degree+1)^2 coefficients, with `dir` the
unit vector from the camera centre to the Gaussian. Plain torch ops, so autograd differentiates it.
"""

from __future__ import annotations

from typing import List

import torch
from torch import Tensor

MAX_SH_DEGREE = 4

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)
_C4 = (
    2.5033429417967046,
    -1.7701307697799304,
    0.9461746957575601,
    -0.6690465435572892,
    0.10578554691520431,
    -0.6690465435572892,
    0.47308734787878004,
    -1.7701307697799304,
    0.6258357354491761,
)


def num_sh_bases(degree: int) -> int:
    return (degree + 1) ** 2


def sh_bases(degree: int, dirs: Tensor) -> Tensor:
    """Basis values [..., (degree+1)^2] at unit directions [..., 3]."""
    if not 0 <= degree <= MAX_SH_DEGREE:
        raise ValueError(f"'sh_degree' must be in 0..{MAX_SH_DEGREE}, got {degree}")
    x, y, z = dirs.unbind(-1)
    bases: List[Tensor] = [torch.full_like(x, _C0)]
    if degree >= 1:
        bases += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        bases += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        bases += [
            _C3[0] * y * (3 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4 * zz - xx - yy),
            _C3[3] * z * (2 * zz - 3 * xx - 3 * yy),
            _C3[4] * x * (4 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3 * yy),
        ]
    if degree >= 4:
        bases += [
            _C4[0] * x * y * (xx - yy),
            _C4[1] * y * z * (3 * xx - yy),
            _C4[2] * x * y * (7 * zz - 1),
            _C4[3] * y * z * (7 * zz - 3),
            _C4[4] * (zz * (35 * zz - 30) + 3),
            _C4[5] * x * z * (7 * zz - 3),
            _C4[6] * (xx - yy) * (7 * zz - 1),
            _C4[7] * x * z * (xx - 3 * yy),
            _C4[8] * (xx * (xx - 3 * yy) - yy * (3 * xx - yy)),
        ]
    return torch.stack(bases, dim=-1)


def evaluate_sh(degree: int, dirs: Tensor, coeffs: Tensor) -> Tensor:
    """Colours [..., 3] from SH coefficients [..., K, 3] (K >= (degree+1)^2) seen along dirs [..., 3].

    Directions need not be normalised; only the first (degree+1)^2 coefficients are used. Degree 0 does
    not depend on the direction, so it is not computed (the first 500 refinement steps render degree 0).
    """
    if degree == 0:
        return _C0 * coeffs[..., 0, :].expand(*torch.broadcast_shapes(dirs.shape[:-1], coeffs.shape[:-2]), coeffs.shape[-1])
    unit = torch.nn.functional.normalize(dirs, p=2, dim=-1)
    bases = sh_bases(degree, unit)
    return (bases[..., None] * coeffs[..., : bases.shape[-1], :]).sum(dim=-2)
