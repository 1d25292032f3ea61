"""Projection, covariances and spherical harmonics agree with gsplat's own pure-torch reference functions."""

from __future__ import annotations

import math

import pytest
import torch
from gsplat.cuda._torch_impl import _fully_fused_projection, _quat_scale_to_covar_preci, _spherical_harmonics

from foresplat_ns.render.projection import camera_centres, covariance_factor, project_gaussians
from foresplat_ns.render.projection_kernel import project_gaussians_compiled
from foresplat_ns.render.sh import evaluate_sh
from foresplat_ns.render.sh_kernel import sh_colors_compiled

WIDTH, HEIGHT = 64, 48


def _cameras(generator: torch.Generator):
    """Two cameras: identity and one turned about y and shifted, with off-centre principal points."""
    angle = 0.3
    turned = torch.tensor(
        [[math.cos(angle), 0, math.sin(angle), 0.2], [0, 1, 0, -0.1], [-math.sin(angle), 0, math.cos(angle), 0.5], [0, 0, 0, 1]],
        dtype=torch.float64,
    )
    viewmats = torch.stack([torch.eye(4, dtype=torch.float64), turned])
    Ks = torch.tensor([[[50.0, 0, 30.5], [0, 52.0, 25.0], [0, 0, 1]], [[45.0, 0, 33.0], [0, 45.0, 22.5], [0, 0, 1]]], dtype=torch.float64)
    return viewmats, Ks


def _gaussians(n: int, generator: torch.Generator):
    """Gaussians in front of, beside and behind the cameras, some far off-screen, some degenerate."""
    means = torch.rand(n, 3, generator=generator, dtype=torch.float64) * torch.tensor([8.0, 8.0, 10.0]) - torch.tensor([4.0, 4.0, 2.0])
    quats = torch.randn(n, 4, generator=generator, dtype=torch.float64)
    scales = torch.rand(n, 3, generator=generator, dtype=torch.float64) * 0.3
    scales[:5] = 0.0  # degenerate: a point
    scales[5:10, 0] = 1e-9
    return means, quats, scales


def test_covariance_matches_gsplat():
    generator = torch.Generator().manual_seed(0)
    quats = torch.randn(50, 4, generator=generator, dtype=torch.float64)
    scales = torch.rand(50, 3, generator=generator, dtype=torch.float64)
    expected, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    factor = covariance_factor(quats, scales)
    torch.testing.assert_close(factor @ factor.transpose(-1, -2), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("eps2d", [0.3, 0.0])
def test_projection_matches_gsplat(eps2d):
    generator = torch.Generator().manual_seed(1)
    means, quats, scales = _gaussians(400, generator)
    viewmats, Ks = _cameras(generator)
    ours = project_gaussians(means, quats, scales, viewmats, Ks, WIDTH, HEIGHT, eps2d=eps2d, near_plane=0.2, with_compensations=True)
    covars, _ = _quat_scale_to_covar_preci(quats, scales, compute_preci=False)
    radii, means2d, depths, conics, compensations = _fully_fused_projection(
        means, covars, viewmats, Ks, WIDTH, HEIGHT, eps2d=eps2d, near_plane=0.2, calc_compensations=True
    )
    if eps2d == 0.0:
        # gsplat's torch reference clamps det to 1e-10 and so never culls a singular covariance; the
        # CUDA kernel (and we) cull det <= 0, which is what points with zero scale give without blur
        radii = torch.where(scales[:, :2].prod(-1) == 0, 0, radii)
    torch.testing.assert_close(ours.radii, radii, rtol=0, atol=0)
    visible = radii > 0
    assert 0 < int(visible.sum()) < visible.numel()  # the scene exercises both
    assert bool((ours.depths <= 0.2).any())  # some Gaussians are behind the near plane
    torch.testing.assert_close(ours.means2d[visible], means2d[visible], rtol=1e-10, atol=1e-9)
    torch.testing.assert_close(ours.conics[visible], conics[visible], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours.compensations[visible], compensations[visible], rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(ours.depths, depths, rtol=1e-12, atol=1e-12)


def test_projection_radius_clip_and_culled_values():
    generator = torch.Generator().manual_seed(2)
    means, quats, scales = _gaussians(200, generator)
    viewmats, Ks = _cameras(generator)
    unclipped = project_gaussians(means, quats, scales, viewmats, Ks, WIDTH, HEIGHT)
    clipped = project_gaussians(means, quats, scales, viewmats, Ks, WIDTH, HEIGHT, radius_clip=4.0)
    small = (unclipped.radii > 0) & (unclipped.radii <= 4)
    assert bool(small.any())
    torch.testing.assert_close(clipped.radii, torch.where(small, 0, unclipped.radii))
    culled = clipped.radii == 0
    assert bool((clipped.means2d[culled] == 0).all()) and bool((clipped.conics[culled] == 0).all())


def test_projection_gradients_are_finite_for_culled_and_degenerate_gaussians():
    generator = torch.Generator().manual_seed(3)
    means, quats, scales = _gaussians(100, generator)
    means[0] = torch.tensor([0.0, 0.0, 0.0], dtype=torch.float64)  # at the camera centre: z = 0
    viewmats, Ks = _cameras(generator)
    inputs = [t.clone().requires_grad_(True) for t in (means, quats, scales, viewmats)]
    result = project_gaussians(*inputs[:3], inputs[3], Ks, WIDTH, HEIGHT, with_compensations=True)
    loss = result.means2d.sum() + result.conics.sum() + result.compensations.sum() + result.depths.sum()
    for grad in torch.autograd.grad(loss, inputs):
        assert bool(torch.isfinite(grad).all())


def test_camera_centres_invert_the_view_matrices():
    viewmats, _ = _cameras(torch.Generator().manual_seed(0))
    torch.testing.assert_close(camera_centres(viewmats), torch.inverse(viewmats)[:, :3, 3])


@pytest.mark.parametrize("degree", [0, 1, 2, 3, 4])
def test_spherical_harmonics_match_gsplat(degree):
    generator = torch.Generator().manual_seed(degree)
    dirs = torch.randn(2, 30, 3, generator=generator, dtype=torch.float64) * 3  # not normalised
    coeffs = torch.randn(2, 30, 25, 3, generator=generator, dtype=torch.float64)
    ours_inputs = [dirs.clone().requires_grad_(True), coeffs.clone().requires_grad_(True)]
    their_inputs = [dirs.clone().requires_grad_(True), coeffs.clone().requires_grad_(True)]
    ours = evaluate_sh(degree, *ours_inputs)
    theirs = _spherical_harmonics(degree, *their_inputs)
    torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    weights = torch.randn(ours.shape, generator=generator, dtype=torch.float64)
    mine = torch.autograd.grad((ours * weights).sum(), ours_inputs, allow_unused=True, materialize_grads=True)
    reference = torch.autograd.grad((theirs * weights).sum(), their_inputs, allow_unused=True, materialize_grads=True)
    for grad, expected in zip(mine, reference):
        torch.testing.assert_close(grad, expected, rtol=1e-10, atol=1e-12)


def _sh_colours_inputs(degree: int, n_cameras: int, dtype=torch.float64):
    """Gaussians around cameras, one exactly at the first camera's centre (a zero direction), 16 bands."""
    generator = torch.Generator().manual_seed(10 + degree)
    means = torch.randn(300, 3, generator=generator, dtype=torch.float64) * 3
    coeffs = torch.randn(300, 16, 3, generator=generator, dtype=torch.float64)
    centres = torch.randn(n_cameras, 3, generator=generator, dtype=torch.float64)
    means[0] = centres[0]
    return [t.to(dtype) for t in (means, coeffs, centres)]


def _sh_colours_reference(degree, means, coeffs, centres):
    return torch.clamp_min(evaluate_sh(degree, means[None] - centres[:, None], coeffs) + 0.5, 0.0)


@pytest.mark.parametrize("degree, n_cameras", [(1, 1), (2, 3), (3, 2)])
def test_compiled_sh_colours_match_torch_values_and_gradients(degree, n_cameras):
    """The numba SH colours and their hand-written backward against evaluate_sh + 0.5 clamped at 0 (autograd),
    float64: clamped and unclamped colours, bands the degree does not read (zero gradients), a Gaussian at a
    camera centre, gradients into the means, the coefficients and the camera centres."""
    results = []
    for colours in (_sh_colours_reference, sh_colors_compiled):
        inputs = [t.clone().requires_grad_(True) for t in _sh_colours_inputs(degree, n_cameras)]
        value = colours(degree, *inputs)
        weights = torch.randn(value.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
        results.append((value, *torch.autograd.grad((value * weights).sum(), inputs)))
    reference, ours = results
    assert bool((reference[0] == 0).any()) and bool((reference[0] > 0).any()), "both sides of the clamp must be tested"
    assert bool((reference[2][:, (degree + 1) ** 2 :] == 0).all())
    for value, expected in zip(ours, reference):
        torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-12)


def test_compiled_sh_colours_float32_match_torch():
    means, coeffs, centres = _sh_colours_inputs(3, 2, torch.float32)
    torch.testing.assert_close(
        sh_colors_compiled(3, means, coeffs, centres), _sh_colours_reference(3, means, coeffs, centres), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_compiled_sh_colours_read_bands_apart_as_their_concatenation(degree):
    """Band 0 and the others given apart (splatfacto's features_dc[:, None] and features_rest) give the
    concatenation's colours and gradients bit for bit, in float32 as training renders; the bands beyond the
    degree get zero gradients."""
    means, coeffs, centres = _sh_colours_inputs(degree, 2, torch.float32)
    weights = torch.randn(2, 300, 3, generator=torch.Generator().manual_seed(2))
    together = [t.clone().requires_grad_(True) for t in (means, coeffs)]
    value = sh_colors_compiled(degree, together[0], together[1], centres)
    grads = torch.autograd.grad((value * weights).sum(), together)
    apart = [t.clone().requires_grad_(True) for t in (means, coeffs[:, :1], coeffs[:, 1:])]
    value_apart = sh_colors_compiled(degree, apart[0], apart[1], centres, apart[2])
    grads_apart = torch.autograd.grad((value_apart * weights).sum(), apart)
    assert torch.equal(value_apart, value)
    assert torch.equal(grads_apart[0], grads[0])
    assert torch.equal(torch.cat(grads_apart[1:], dim=1), grads[1])
    assert bool((grads[1][:, (degree + 1) ** 2 :] == 0).all()) and bool((grads[1][:, : (degree + 1) ** 2] != 0).any())
    with pytest.raises(ValueError, match="reads 16 bands, the coefficients hold 9"):
        sh_colors_compiled(3, means, coeffs[:, :1], centres, coeffs[:, 1:9])


@pytest.mark.parametrize("with_compensations", [False, True])
def test_compiled_projection_matches_torch_values_and_gradients(with_compensations):
    """The numba projection and its hand-written backward against the PyTorch projection (autograd), float64,
    on a scene with culled, clamped, behind-the-camera and degenerate Gaussians and a Gaussian at z = 0."""
    generator = torch.Generator().manual_seed(4)
    means, quats, scales = _gaussians(400, generator)
    means[0] = 0.0
    viewmats, Ks = _cameras(generator)
    results = []
    for project in (project_gaussians, project_gaussians_compiled):
        inputs = [t.clone().requires_grad_(True) for t in (means, quats, scales, viewmats)]
        result = project(*inputs, Ks, WIDTH, HEIGHT, eps2d=0.3, near_plane=0.2, radius_clip=1.0, with_compensations=with_compensations)
        weights = torch.Generator().manual_seed(5)
        outputs = [result.means2d, result.depths, result.conics] + ([result.compensations] if with_compensations else [])
        loss = sum((out * torch.randn(out.shape, generator=weights, dtype=torch.float64)).sum() for out in outputs)
        results.append((result.radii, *outputs, *torch.autograd.grad(loss, inputs)))
    ours, reference = results[1], results[0]
    assert 0 < int((reference[0] > 0).sum()) < reference[0].numel()
    torch.testing.assert_close(ours[0], reference[0], rtol=0, atol=0)
    for value, expected in zip(ours[1:], reference[1:]):
        torch.testing.assert_close(value, expected, rtol=1e-10, atol=1e-10)


def test_compiled_projection_float32_matches_torch():
    generator = torch.Generator().manual_seed(6)
    means, quats, scales = (t.float() for t in _gaussians(300, generator))
    viewmats, Ks = (t.float() for t in _cameras(generator))
    reference = project_gaussians(means, quats, scales, viewmats, Ks, WIDTH, HEIGHT)
    ours = project_gaussians_compiled(means, quats, scales, viewmats, Ks, WIDTH, HEIGHT)
    visible = (reference.radii > 0) & (ours.radii > 0)
    assert float((reference.radii != ours.radii).float().mean()) < 0.01  # ceil() of a float32 vs float64 radius
    torch.testing.assert_close(ours.means2d[visible], reference.means2d[visible], rtol=1e-5, atol=1e-4)
    torch.testing.assert_close(ours.conics[visible], reference.conics[visible], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(ours.depths, reference.depths)
