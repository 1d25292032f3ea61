"""Argument checking, the empty scene, and dispatch to gsplat for CUDA tensors."""

from __future__ import annotations

import pytest
import torch

from foresplat_ns.render import rasterization

pytestmark = pytest.mark.usefixtures("single_thread")


def _inputs(n: int = 6, sh: bool = False):
    g = torch.Generator().manual_seed(0)
    return dict(
        means=torch.randn(n, 3, generator=g) + torch.tensor([0.0, 0.0, 4.0]),
        quats=torch.randn(n, 4, generator=g),
        scales=torch.rand(n, 3, generator=g) * 0.2,
        opacities=torch.rand(n, generator=g),
        colors=torch.rand(n, 4, 3, generator=g) if sh else torch.rand(n, 3, generator=g),
        viewmats=torch.eye(4)[None],
        Ks=torch.tensor([[[20.0, 0, 8], [0, 20.0, 6], [0, 0, 1]]]),
        width=16,
        height=12,
    )


def _nan_at(name, index):
    def corrupt(args):
        args[name] = args[name].clone()
        args[name].view(-1)[index] = float("nan")

    return corrupt


def _set(**changes):
    return lambda args: args.update(changes)


BAD_INPUTS = [
    (_nan_at("means", 4), "'means' has 1 non-finite"),
    (_nan_at("scales", 0), "'scales' has 1 non-finite"),
    (_set(scales=torch.full((6, 3), float("inf"))), "'scales' has 18 non-finite"),
    (_nan_at("quats", 2), "'quats' has 1 non-finite"),
    (_nan_at("opacities", 1), "'opacities' has 1 non-finite"),
    (_nan_at("colors", 3), "'colors' has 1 non-finite"),
    (_nan_at("viewmats", 3), "'viewmats' has 1 non-finite"),
    (lambda args: args["quats"].__setitem__(3, 0.0), "'quats' has 1 zero-norm"),
    (_set(means=torch.zeros(6, 2)), "'means' must have shape [N, 3]"),
    (_set(quats=torch.ones(5, 4)), "'quats' must have shape [6, 4]"),
    (_set(scales=torch.ones(7, 3)), "'scales' must have shape [6, 3]"),
    (_set(opacities=torch.ones(6, 1)), "'opacities' must have shape [6]"),
    (_set(colors=torch.ones(5, 3)), "'colors' must have shape [N, D] or [C, N, D]"),
    (_set(colors=torch.ones(2, 6, 3)), "'colors' must have shape [N, D] or [C, N, D]"),
    (_set(Ks=torch.eye(3)), "'Ks' must have shape [C, 3, 3]"),
    (_set(Ks=torch.eye(3)[None].repeat(2, 1, 1)), "'Ks' has 2 cameras but 'viewmats' has 1"),
    (_set(viewmats=torch.eye(4)), "'viewmats' must have shape [C, 4, 4]"),
    (_set(viewmats=torch.eye(3)[None]), "'viewmats' must have shape [C, 4, 4]"),
    (_set(width=0), "'width' must be a positive int"),
    (_set(height=-3), "'height' must be a positive int"),
    (_set(width=16.0), "'width' must be a positive int"),
    (_set(render_mode="RGBD"), "'render_mode' must be one of"),
    (_set(rasterize_mode="fancy"), "'rasterize_mode' must be one of"),
    (_set(sh_degree=1), "'colors' must have shape [N, K, 3] or [C, N, K, 3]"),
    (_set(backgrounds=torch.zeros(1, 4)), "'backgrounds' must have shape [C, D] = [1, 3]"),
    (_set(means=torch.zeros(6, 3, dtype=torch.float64)), "'quats' has dtype torch.float32 but 'means' has torch.float64"),
    (_set(opacities=[0.5] * 6), "'opacities' must be a torch.Tensor"),
    (_set(packed=True), "'packed'=True is only supported on CUDA"),
]


@pytest.mark.parametrize("corrupt, message", BAD_INPUTS, ids=[m for _, m in BAD_INPUTS])
def test_bad_inputs_raise_value_errors_naming_the_argument(corrupt, message):
    args = _inputs()
    corrupt(args)
    with pytest.raises(ValueError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rasterization(**args)


@pytest.mark.parametrize(
    "sh_degree, bands, message",
    [
        (3, 9, "'sh_degree'=3 needs 16 SH coefficients per Gaussian, but 'colors' has K=9"),
        (5, 36, "'sh_degree' must be None or an int in 0..4"),
    ],
)
def test_sh_degree_must_fit_the_coefficients(sh_degree, bands, message):
    args = _inputs()
    args["colors"] = torch.rand(6, bands, 3)
    with pytest.raises(ValueError, match=message):
        rasterization(**args, sh_degree=sh_degree)


def test_valid_inputs_render():
    image, alpha, _ = rasterization(**_inputs(sh=True), sh_degree=1, backgrounds=torch.ones(1, 3))
    assert image.shape == (1, 12, 16, 3) and float(alpha.max()) > 0


@pytest.mark.parametrize("render_mode, channels", [("RGB", 3), ("RGB+ED", 4), ("D", 1)])
def test_no_gaussians_render_the_background(render_mode, channels):
    args = _inputs(n=0)
    means = args["means"].requires_grad_(True)
    backgrounds = torch.tensor([[0.2, 0.4, 0.6]])
    image, alpha, info = rasterization(**args, backgrounds=backgrounds, render_mode=render_mode)
    expected = torch.tensor([0.2, 0.4, 0.6, 0.0][:channels] if render_mode != "D" else [0.0])
    assert image.shape == (1, 12, 16, channels)
    torch.testing.assert_close(image, expected.expand(1, 12, 16, channels))
    assert float(alpha.detach().abs().max()) == 0.0
    assert info["radii"].shape == (1, 0) and info["means2d"].shape == (1, 0, 2) and info["n_cameras"] == 1
    image.sum().backward()
    assert means.grad.shape == (0, 3)


def test_no_gaussians_and_no_background_render_zeros():
    image, alpha, _ = rasterization(**_inputs(n=0))
    assert float(image.abs().max()) == 0.0 and float(alpha.abs().max()) == 0.0


class _PretendCuda(torch.Tensor):
    """A CPU tensor that claims to live on CUDA, to check the dispatch without a GPU."""

    @property
    def is_cuda(self):
        return True


def test_cuda_tensors_are_rendered_by_gsplat_with_the_same_arguments(monkeypatch):
    import gsplat.rendering

    calls = []
    monkeypatch.setattr(gsplat.rendering, "rasterization", lambda *args, **kwargs: calls.append((args, kwargs)) or "gsplat")
    args = _inputs()
    args["means"] = args["means"].as_subclass(_PretendCuda)
    result = rasterization(
        **args, sh_degree=None, packed=True, absgrad=True, render_mode="RGB+ED", rasterize_mode="antialiased", radius_clip=1.5
    )
    assert result == "gsplat"
    ((positional, keywords),) = calls
    assert positional[0] is args["means"] and positional[7:] == (16, 12)
    expected = dict(packed=True, absgrad=True, render_mode="RGB+ED", rasterize_mode="antialiased", radius_clip=1.5, tile_size=16, eps2d=0.3)
    assert {key: keywords[key] for key in expected} == expected
