"""`Refiner` (the benchmark's and MetaGrad's refinement) is `ns-train foresplat`'s refinement: the same
seeded steps through the nerfstudio model, its optimisers, schedulers and callbacks give the same
Gaussians, densification included."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from nerfstudio.engine.callbacks import TrainingCallbackAttributes, TrainingCallbackLocation
from nerfstudio.engine.optimizers import Optimizers

from foresplat_ns.data import scene_views_from_datamanager
from foresplat_ns.gaussians import Gaussians
from foresplat_ns.refine import RefineConfig, Refiner
from foresplat_ns.start import StartConfig

STEPS = 36
# Densify every 10 steps from step 5 on, everything splits: a short run that grows, splits and prunes.
# SH degree rises every 12 steps: bands above it get no gradient in the Refiner and a zero one in ns-train.
SCHEDULE = dict(
    warmup_length=5, refine_every=10, reset_alpha_every=1000, densify_grad_thresh=1e-7, background_color="black", sh_degree_interval=12
)


@pytest.mark.slow
def test_refiner_steps_equal_ns_train_foresplat_steps(small_scene):
    from test_nerfstudio import method_config

    config = method_config("foresplat")
    config.pipeline.datamanager.data = small_scene
    config.pipeline.datamanager.dataparser = NerfstudioDataParserConfig(data=small_scene, eval_mode="filename", load_3D_points=True)
    config.pipeline.backbone.name = "pointcloud"  # exact generated depth: a deterministic start
    config.pipeline.start = StartConfig(start="prediction", num_context_views=2)
    for name, value in SCHEDULE.items():
        setattr(config.pipeline.model, name, value)
    pipeline = config.pipeline.setup(device="cpu", test_mode="val")
    model = pipeline.model
    start = Gaussians(**{name: p.detach().clone() for name, p in model.gauss_params.items()})

    # ns-train foresplat: nerfstudio's optimisers and schedulers, the model's callbacks, one view per step
    optimizers = Optimizers(config.optimizers, pipeline.get_param_groups())
    callbacks = model.get_training_callbacks(
        TrainingCallbackAttributes(optimizers=optimizers, grad_scaler=None, pipeline=pipeline, trainer=None)
    )
    cached = pipeline.datamanager.cached_train
    cameras = pipeline.datamanager.train_dataset.cameras
    torch.manual_seed(0)
    for step in range(STEPS):
        index = step % len(cached)
        for callback in callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)
        optimizers.zero_grad_all()
        camera = cameras[index : index + 1]
        outputs = model.get_outputs(camera)
        batch = {"image": cached[index]["image"].float() / 255.0}
        sum(model.get_loss_dict(outputs, batch).values()).backward()
        optimizers.optimizer_step_all()
        optimizers.scheduler_step_all(step)
        for callback in callbacks:
            callback.run_callback_at_location(step, TrainingCallbackLocation.AFTER_TRAIN_ITERATION)

    # Refiner, from the same start, on the same views in the same order
    refine = dataclasses.replace(RefineConfig(), **SCHEDULE)
    views = scene_views_from_datamanager(pipeline.datamanager).views()
    refiner = Refiner(start, refine, len(views), densify=True)
    torch.manual_seed(0)
    for step in range(STEPS):
        refiner.train_step(views[step % len(views)])

    grown = refiner.gaussians.num_gaussians
    assert grown != start.num_gaussians, "densification must have changed the set for this test to mean anything"
    assert model.num_points == grown
    for name, value in refiner.gaussians.items():
        torch.testing.assert_close(model.gauss_params[name].detach(), value.detach(), atol=1e-5, rtol=1e-4, msg=name)


@pytest.mark.parametrize("earlier_gradients", [0, 2])
def test_splatfacto_adam_steps_a_parameter_without_gradient_as_torch_adam_steps_a_zero_gradient(earlier_gradients):
    """No gradient is a zero one: with zero moments only the step count moves (no pass over the values),
    with moments from earlier gradients (`earlier_gradients` steps of them) the full zero-gradient step."""
    from foresplat_ns.refine.adam import SplatfactoAdam

    start = torch.randn(50, 3, generator=torch.Generator().manual_seed(0))
    ours, reference = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    optimisers = SplatfactoAdam([ours], lr=0.1, eps=1e-15, fused=True), torch.optim.Adam([reference], lr=0.1, eps=1e-15, fused=True)
    for step in range(earlier_gradients + 4):
        gradient = torch.randn(50, 3) if step < earlier_gradients else None
        ours.grad = gradient
        reference.grad = torch.zeros(50, 3) if gradient is None else gradient.clone()
        for optimiser in optimisers:
            optimiser.step()
        assert ours.grad is gradient, "the zero gradient filled in must not stay behind"
        assert torch.equal(ours, reference)
        state, reference_state = optimisers[0].state[ours], optimisers[1].state[reference]
        assert all(torch.equal(state[key], reference_state[key]) for key in ("step", "exp_avg", "exp_avg_sq"))
    assert torch.equal(ours, start) == (earlier_gradients == 0)


def _degree_three_scene(n: int = 60):
    """Gaussians of SH degree 3 (every band non-zero) in front of the camera, and three target views."""
    from foresplat_ns.refine import View

    g = torch.Generator().manual_seed(0)
    depth = 2 + 2 * torch.rand(n, 1, generator=g)
    means = torch.cat([(torch.rand(n, 2, generator=g) - 0.5) * depth, depth], dim=-1)
    start = Gaussians.from_activated(
        means=means, scales=0.02 + 0.1 * torch.rand(n, 3, generator=g), quats=torch.randn(n, 4, generator=g),
        opacities=0.2 + 0.7 * torch.rand(n, generator=g), rgb=torch.rand(n, 3, generator=g), sh_degree=3,
        features_rest=0.1 * torch.randn(n, 15, 3, generator=g),
    )  # fmt: skip
    views = [
        View(image=torch.rand(24, 32, 3, generator=g), viewmat=torch.eye(4), K=torch.tensor([[30.0, 0, 16], [0, 30, 12], [0, 0, 1]]))
        for _ in range(3)
    ]
    return start, views


def test_leaving_sh_bands_above_the_active_degree_out_of_the_graph_changes_no_bit(monkeypatch):
    """The Refiner renders only the active SH bands and `SplatfactoAdam` steps the others without
    arithmetic; the result is bit for bit splatfacto's way (every band rendered, torch's Adam stepping their
    zero gradients), across the degree rises and densification. The slow test above checks ns-train's."""
    from foresplat_ns.refine import refiner as refiner_module

    start, views = _degree_three_scene()
    n = start.num_gaussians
    config = RefineConfig(sh_degree_interval=4, warmup_length=3, refine_every=5, densify_grad_thresh=1e-7, reset_alpha_every=1000)

    def refine(splatfactos_way: bool) -> Refiner:
        if splatfactos_way:
            render_view = refiner_module.render_view
            monkeypatch.setattr(
                refiner_module, "render_view", lambda *args, **kwargs: render_view(*args, **{**kwargs, "active_bands_only": False})
            )
            monkeypatch.setattr(refiner_module, "SplatfactoAdam", torch.optim.Adam)
        torch.manual_seed(0)  # gsplat's splits sample from the global generator
        refiner = Refiner(start, config, len(views), densify=True, generator=torch.Generator().manual_seed(1))
        for step in range(18):  # degrees 0, 1, 2, 3 and three densifications
            refiner.train_step(views[step % len(views)])
        monkeypatch.undo()
        return refiner

    ours, splatfactos = refine(splatfactos_way=False), refine(splatfactos_way=True)
    assert type(splatfactos.optimizers["features_rest"]) is torch.optim.Adam
    assert ours.gaussians.num_gaussians > n, "densification must have grown the set for this test to mean anything"
    for name in ours.params:
        assert torch.equal(ours.params[name], splatfactos.params[name]), name
        state, reference = ours.optimizers[name].state[ours.params[name]], splatfactos.optimizers[name].state[splatfactos.params[name]]
        assert state.keys() == reference.keys() and all(torch.equal(state[key], reference[key]) for key in state), name


@pytest.mark.parametrize("active_bands_only", [False, True])
def test_rendering_the_sh_bands_apart_changes_no_bit(monkeypatch, active_bands_only):
    """On CPU `render_gaussians` hands the rasteriser colours the compiled kernel read from features_dc and
    features_rest as they are (degrees 1-3): the image and every parameter's gradient are bit for bit those of
    the rasteriser evaluating the concatenated coefficients itself, at every degree."""
    from foresplat_ns.refine import render as render_module
    from foresplat_ns.refine import render_view

    start, views = _degree_three_scene()
    colours_apart = render_module.sh_colors_from_bands
    taken = []

    def recorded(*args):
        taken.append(colours_apart(*args))
        return taken[-1]

    for degree in range(4):
        results = []
        for route in (recorded, lambda *args: None):  # the bands apart, then the concatenation
            monkeypatch.setattr(render_module, "sh_colors_from_bands", route)
            params = {name: t.clone().requires_grad_(True) for name, t in start.items()}
            image, _ = render_view(Gaussians(**params), views[0], degree, torch.zeros(3), active_bands_only=active_bands_only)
            (image * views[1].image).sum().backward()
            results.append((image, {name: p.grad for name, p in params.items()}))
        (image, grads), (expected, expected_grads) = results
        assert torch.equal(image, expected), degree
        for name, grad in grads.items():
            expected_grad = expected_grads[name]
            assert (grad is None) == (expected_grad is None), (degree, name)
            assert grad is None or torch.equal(grad, expected_grad), (degree, name)
        assert (taken.pop() is not None) == (degree > 0), "the compiled kernel evaluates degrees 1-3 from the bands apart"
    monkeypatch.undo()


@pytest.mark.parametrize("kernels", ["compiled", "torch"])
@pytest.mark.parametrize("shape", [(1, 3, 128, 96), (2, 3, 9, 40), (1, 3, 11, 30)])
def test_ssim_equals_pytorch_msssim(shape, kernels):
    """The loss's SSIM, compiled (numba) and in PyTorch ops, is pytorch_msssim's: value and the gradients of
    both images, short axes included, in float64."""
    from pytorch_msssim import ssim as reference_ssim

    from foresplat_ns.refine.loss import ssim
    from foresplat_ns.render.rasterize import use_cpu_kernels

    generator = torch.Generator().manual_seed(0)
    target = torch.rand(shape, generator=generator, dtype=torch.float64).requires_grad_()
    pred = torch.rand(shape, generator=generator, dtype=torch.float64).requires_grad_()
    with use_cpu_kernels(kernels):
        ours = ssim(target, pred)
    grads = torch.autograd.grad(ours * 1.7, (target, pred))
    expected = reference_ssim(target, pred, data_range=1.0)
    expected_grads = torch.autograd.grad(expected * 1.7, (target, pred))
    torch.testing.assert_close(ours, expected)
    for grad, expected_grad in zip(grads, expected_grads):
        torch.testing.assert_close(grad, expected_grad)


def test_compiled_ssim_matches_the_reference_in_float32():
    """Training runs in float32: the compiled SSIM and its gradient agree with the PyTorch one to rounding."""
    from foresplat_ns.refine.loss import ssim, ssim_reference

    generator = torch.Generator().manual_seed(1)
    target = torch.rand(1, 3, 64, 80, generator=generator)
    pred = (target + 0.1 * torch.randn(1, 3, 64, 80, generator=generator)).clamp(0, 1).requires_grad_()
    ours, expected = ssim(target, pred), ssim_reference(target, pred)
    (grad,) = torch.autograd.grad(ours, pred)
    (expected_grad,) = torch.autograd.grad(expected, pred)
    torch.testing.assert_close(ours, expected, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(grad, expected_grad, rtol=1e-4, atol=1e-9)


def test_compiled_ssim_gradient_is_finite_where_the_ssim_terms_are_exactly_zero():
    """A rendered image is not clamped, so 2 μx μy + c1 or 2 σxy + c2 can be exactly 0 at a pixel (a real
    capture's refinement went NaN at step 604 of 2,000 that way). With c1 = c2 = 0 and x = 0 both are 0
    everywhere, and SSIM is quadratic in x there: its gradient is exactly 0, not 0 / 0."""
    from foresplat_ns.refine.loss import WINDOW_SIZE, _window
    from foresplat_ns.refine.ssim_kernel import CompiledSSIM

    generator = torch.Generator().manual_seed(2)
    x = torch.zeros(1, 3, 24, 20, dtype=torch.float64, requires_grad=True)
    y = torch.rand(1, 3, 24, 20, generator=generator, dtype=torch.float64, requires_grad=True)
    window = _window(torch.device("cpu"), torch.float64)
    assert window.numel() == WINDOW_SIZE
    grad_x, grad_y = torch.autograd.grad(CompiledSSIM.apply(x, y, window, window, 0.0, 0.0), (x, y))
    assert torch.equal(grad_x, torch.zeros_like(grad_x)) and torch.equal(grad_y, torch.zeros_like(grad_y))


def test_foresplat_starts_at_splatfactos_learning_rates_times_the_scale_and_decays_to_them():
    """`ns-train foresplat`'s optimisers (and `Refiner`'s schedule) start at splatfacto's learning rates times
    `learning_rate_scale` and end at splatfacto's; `as_splatfacto` is splatfacto's own, as nerfstudio's
    splatfacto method sets them."""
    from nerfstudio.configs.method_configs import method_configs

    splatfacto = method_configs["splatfacto"].optimizers
    refine = RefineConfig()
    assert refine.learning_rate_scale > 1
    ours, own = refine.nerfstudio_optimizers(), refine.as_splatfacto().nerfstudio_optimizers()
    for name, group in ours.items():
        lr = splatfacto[name]["optimizer"].lr
        assert own[name]["optimizer"].lr == pytest.approx(lr, rel=1e-12), name
        assert group["optimizer"].lr == pytest.approx(refine.learning_rate_scale * lr, rel=1e-12), name
        assert refine.learning_rate(name, 0) == pytest.approx(group["optimizer"].lr, rel=1e-12), name
        if name == "means":
            final = splatfacto[name]["scheduler"].lr_final
            assert own[name]["scheduler"].lr_final == pytest.approx(final, rel=1e-12)
            assert group["scheduler"].lr_final == pytest.approx(final, rel=1e-12)
            assert group["scheduler"].max_steps == refine.max_steps
            assert refine.learning_rate(name, refine.max_steps) == pytest.approx(final, rel=1e-12)
        else:
            assert own[name]["scheduler"] is None and splatfacto[name]["scheduler"] is None, name
            assert group["scheduler"].lr_final == pytest.approx(lr, rel=1e-12), name
            assert group["scheduler"].max_steps == refine.learning_rate_scale_steps
            assert refine.learning_rate(name, refine.learning_rate_scale_steps) == pytest.approx(lr, rel=1e-12), name
            assert refine.learning_rate(name, 10 * refine.learning_rate_scale_steps) == pytest.approx(lr, rel=1e-12), name
