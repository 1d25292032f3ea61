"""What the large backbones share: the similarity fit, moving Gaussians with it, the cap, upstream weights."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

from foresplat_ns.backbones.align import (
    Similarity,
    align_to_dataset,
    fit_similarity,
    sh_rotation_matrix,
    stack_capped,
    transform_gaussians,
)
from foresplat_ns.backbones.weights import find_weights, load_weights
from foresplat_ns.cameras import intrinsics_matrix, viewmats_from_camtoworlds
from foresplat_ns.gaussians import Gaussians
from foresplat_ns.refine import render_gaussians
from foresplat_ns.render.sh import evaluate_sh


def random_rotation(gen: torch.Generator, batch=()) -> torch.Tensor:
    q, r = torch.linalg.qr(torch.randn(*batch, 3, 3, generator=gen, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r, dim1=-2, dim2=-1))[..., None, :]
    return q * torch.sign(torch.linalg.det(q))[..., None, None]  # proper rotations


def random_cameras(gen: torch.Generator, batch: int, views: int) -> torch.Tensor:
    c2w = torch.eye(4, dtype=torch.float64).repeat(batch, views, 1, 1)
    c2w[..., :3, :3] = random_rotation(gen, (batch, views))
    c2w[..., :3, 3] = torch.randn(batch, views, 3, generator=gen, dtype=torch.float64) * 2
    return c2w


def known_similarity(gen: torch.Generator, batch: int) -> Similarity:
    return Similarity(
        rotation=random_rotation(gen, (batch,)),
        scale=torch.rand(batch, generator=gen, dtype=torch.float64) * 3 + 0.2,
        translation=torch.randn(batch, 3, generator=gen, dtype=torch.float64) * 4,
    )


# -- the fit -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("views", [2, 5])
def test_fit_recovers_a_known_similarity_exactly(views):
    gen = torch.Generator().manual_seed(views)
    predicted = random_cameras(gen, batch=2, views=views)
    truth = known_similarity(gen, batch=2)
    fitted, residuals = fit_similarity(predicted, truth.apply_to_cameras(predicted), "test")
    torch.testing.assert_close(fitted.rotation, truth.rotation, atol=1e-9, rtol=0)
    torch.testing.assert_close(fitted.scale, truth.scale, atol=1e-9, rtol=1e-9)
    torch.testing.assert_close(fitted.translation, truth.translation, atol=1e-9, rtol=1e-9)
    assert residuals.rotation_deg.shape == (2, views)
    assert residuals.rotation_deg.max() < 1e-5 and residuals.relative_centre_error.max() < 1e-9


def test_residuals_point_at_the_camera_that_disagrees():
    gen = torch.Generator().manual_seed(3)
    predicted = random_cameras(gen, batch=1, views=6)
    given = known_similarity(gen, batch=1).apply_to_cameras(predicted)
    given[0, 2, :3, 3] += torch.tensor([1.0, -0.5, 0.5], dtype=torch.float64)
    tilt = torch.tensor([[1, 0, 0], [0, math.cos(0.3), -math.sin(0.3)], [0, math.sin(0.3), math.cos(0.3)]], dtype=torch.float64)
    given[0, 4, :3, :3] = given[0, 4, :3, :3] @ tilt
    _, residuals = fit_similarity(predicted, given, "test")
    assert int(residuals.centre_error[0].argmax()) == 2
    assert int(residuals.rotation_deg[0].argmax()) == 4 and 10 < float(residuals.rotation_deg[0, 4]) < 18
    assert (residuals.centre_error > 0).all()


def test_fit_refuses_what_it_cannot_fit():
    gen = torch.Generator().manual_seed(0)
    cams = random_cameras(gen, batch=1, views=3)
    with pytest.raises(ValueError, match="some backbone: .*at least 2 context views, got 1"):
        fit_similarity(cams[:, :1], cams[:, :1], "some backbone")
    same_place = cams.clone()
    same_place[..., :3, 3] = 1.0
    with pytest.raises(ValueError, match="predicted camera centres coincide"):
        fit_similarity(same_place, cams, "some backbone")
    with pytest.raises(ValueError, match=r"must both be \[B,V,4,4\]"):
        fit_similarity(cams, cams[:, :2], "some backbone")
    mirrored = cams.clone()
    mirrored[..., :3, 3] = -cams[..., :3, 3]
    mirrored[..., :3, :3] = cams[..., :3, :3]
    with pytest.raises(ValueError, match="do not fit the dataset's poses"):
        fit_similarity(cams, mirrored, "some backbone")


# -- moving Gaussians ------------------------------------------------------------------------------------
def test_sh_rotation_turns_the_colour_field_with_the_scene():
    gen = torch.Generator().manual_seed(1)
    rotation = random_rotation(gen, (1,))
    coeffs = torch.randn(50, 25, 3, generator=gen, dtype=torch.float64)
    dirs = torch.nn.functional.normalize(torch.randn(50, 3, generator=gen, dtype=torch.float64), dim=-1)
    matrix = sh_rotation_matrix(rotation, 4)[0]
    rotated = torch.cat([coeffs[:, :1], matrix @ coeffs[:, 1:]], 1)
    torch.testing.assert_close(evaluate_sh(4, dirs @ rotation[0].T, rotated), evaluate_sh(4, dirs, coeffs), atol=1e-9, rtol=0)


def test_moved_gaussians_render_like_the_original_from_moved_cameras():
    """Means, scales, rotations and view-dependent colour all move consistently: renders are equal."""
    gen = torch.Generator().manual_seed(2)
    n = 300
    gaussians = Gaussians(
        means=torch.randn(1, n, 3, generator=gen) * 0.4,
        scales=torch.log(torch.rand(1, n, 3, generator=gen) * 0.08 + 0.02),
        quats=torch.randn(1, n, 4, generator=gen),
        opacities=torch.randn(1, n, 1, generator=gen),
        features_dc=torch.randn(1, n, 3, generator=gen) * 0.5,
        features_rest=torch.randn(1, n, 15, 3, generator=gen) * 0.3,
    )
    eye = torch.tensor([0.3, 0.4, 3.0])
    forward = -eye / eye.norm()
    right = torch.nn.functional.normalize(torch.linalg.cross(forward, torch.tensor([0.0, 1.0, 0.0])), dim=0)
    up = torch.linalg.cross(right, forward)
    c2w = torch.eye(4)
    c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, up, -forward, eye
    truth = known_similarity(gen, batch=1)
    truth = Similarity(truth.rotation.float(), torch.tensor([1.7]), truth.translation.float())
    K = intrinsics_matrix(torch.tensor(30.0), torch.tensor(30.0), torch.tensor(16.0), torch.tensor(16.0))[None]
    background = torch.zeros(3)

    def render(g, cams):
        return render_gaussians(g[0], viewmats_from_camtoworlds(cams), K, 32, 32, 3, background)[0]

    before = render(gaussians, c2w[None])
    after = render(transform_gaussians(gaussians, truth), truth.apply_to_cameras(c2w[None, None])[0])
    assert before.std() > 0.05
    torch.testing.assert_close(after, before, atol=2e-4, rtol=0)


def test_transform_keeps_gradients_flowing_to_the_prediction():
    gen = torch.Generator().manual_seed(4)
    means = torch.randn(1, 10, 3, generator=gen, requires_grad=True)
    rest = torch.randn(1, 10, 3, 3, generator=gen, requires_grad=True)
    g = Gaussians(means, torch.zeros(1, 10, 3), torch.randn(1, 10, 4, generator=gen), torch.zeros(1, 10, 1), torch.zeros(1, 10, 3), rest)
    moved = transform_gaussians(g, known_similarity(gen, 1))
    (moved.means.sum() + moved.features_rest.sum()).backward()
    assert means.grad.abs().sum() > 0 and rest.grad.abs().sum() > 0


# -- the cap and the whole alignment -------------------------------------------------------------------------
def gaussians_with(count: int, opacity_logits: torch.Tensor) -> Gaussians:
    return Gaussians.from_activated(
        means=torch.randn(count, 3),
        scales=torch.full((count, 3), 0.1),
        quats=torch.tensor([1.0, 0, 0, 0]).expand(count, 4),
        opacities=torch.sigmoid(opacity_logits),
        rgb=torch.rand(count, 3),
        sh_degree=1,
    )


def test_stack_capped_gives_a_common_count_and_drops_transparent_gaussians_first():
    transparent = torch.full((40,), -12.0)
    a = gaussians_with(100, torch.cat([torch.zeros(60), transparent]))
    b = gaussians_with(70, torch.zeros(70))
    stacked = stack_capped([a, b], max_count=500, generator=torch.Generator().manual_seed(0))
    assert stacked.means.shape == (2, 70, 3) and stacked.features_rest.shape == (2, 70, 3, 3)
    assert (stacked.activated_opacities()[0] > 0.4).sum() == 60  # all 60 opaque ones kept
    assert stack_capped([a, b], max_count=30).means.shape == (2, 30, 3)


def test_align_to_dataset_moves_the_samples_and_warns_when_cameras_disagree():
    gen = torch.Generator().manual_seed(5)
    predicted = random_cameras(gen, batch=1, views=3)
    truth = known_similarity(gen, batch=1)
    given_gl = truth.apply_to_cameras(predicted) * torch.tensor([1.0, -1.0, -1.0, 1.0], dtype=torch.float64)
    sample = gaussians_with(50, torch.zeros(50)).to(torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        aligned = align_to_dataset([sample], predicted, given_gl, 1000, 0, "test backbone", 0.1, 10.0)
    torch.testing.assert_close(aligned.gaussians.means, truth.apply_to_points(sample.means[None]))
    torch.testing.assert_close(aligned.gaussians.scales, sample.scales[None] + truth.scale.log())
    noisy = given_gl.clone()
    noisy[0, 0, :3, 3] += 5.0
    with pytest.warns(UserWarning, match="test backbone: its predicted cameras fit the dataset's poses loosely"):
        align_to_dataset([sample], predicted, noisy, 1000, 0, "test backbone", 0.1, 10.0)


# -- upstream weights ------------------------------------------------------------------------------------------
def test_find_weights_names_the_missing_file_and_how_to_get_it(tmp_path, monkeypatch):
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    with pytest.raises(
        ValueError, match=r"Model weights not found: no owner/model/w.safetensors in .*hub.*hf download owner/model w.safetensors"
    ):
        find_weights(None, "owner/model", "w.safetensors", "Model", "CC BY-NC")
    with pytest.raises(ValueError, match=r"Model weights not found: .*folder/w.safetensors does not exist"):
        (tmp_path / "folder").mkdir()
        find_weights(tmp_path / "folder", "owner/model", "w.safetensors", "Model", "CC BY-NC")
    (tmp_path / "folder" / "w.safetensors").write_bytes(b"x")
    assert find_weights(tmp_path / "folder", "owner/model", "w.safetensors", "Model", "x") == tmp_path / "folder" / "w.safetensors"
    # the Hugging Face cache layout: models--owner--model/{refs/main, snapshots/<commit>/file}
    repo = tmp_path / "hub" / "models--owner--model"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    (repo / "snapshots" / "abc123").mkdir(parents=True)
    (repo / "snapshots" / "abc123" / "w.safetensors").write_bytes(b"x")
    assert find_weights(None, "owner/model", "w.safetensors", "Model", "x") == repo / "snapshots" / "abc123" / "w.safetensors"


def test_load_weights_is_strict_and_names_the_keys(tmp_path):
    from safetensors.torch import save_file

    source = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    full = {k: v.contiguous() for k, v in source.state_dict().items()}
    save_file(full, str(tmp_path / "full.safetensors"))
    target = nn.Sequential(nn.Linear(2, 3), nn.Linear(3, 1))
    load_weights(target, tmp_path / "full.safetensors", "Model")
    assert torch.equal(target[0].weight, source[0].weight)

    save_file({k: v for k, v in full.items() if k != "1.bias"}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(ValueError, match=r"Model weights .*partial.safetensors do not fit the model: 1 missing keys \['1.bias'\]"):
        load_weights(target, tmp_path / "partial.safetensors", "Model")
    torch.save({**full, "extra.branch.weight": torch.zeros(1)}, tmp_path / "extra.pt")
    with pytest.raises(ValueError, match=r"1 unexpected keys \['extra.branch.weight'\]"):
        load_weights(target, tmp_path / "extra.pt", "Model")
    load_weights(target, tmp_path / "extra.pt", "Model", ignored_prefixes=("extra.",))
    (tmp_path / "broken.safetensors").write_bytes(b"not weights")
    with pytest.raises(ValueError, match="broken.safetensors could not be read"):
        load_weights(target, tmp_path / "broken.safetensors", "Model")
