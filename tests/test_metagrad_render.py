"""MetaGrad with the real rendering inner loop: the zero-step rule is plain training, anchors read the
refiner's own gradients, and a diverging inner loop is reported, not written into the weights."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from foresplat_ns.cameras import intrinsics_matrix, viewmats_from_camtoworlds
from foresplat_ns.gaussians import Gaussians, union
from foresplat_ns.metagrad import DivergedInnerLoop, MetaGradConfig, metagrad_step
from foresplat_ns.refine import RefineConfig, Refiner, View, photometric_loss, render_view

REFINE = RefineConfig(background_color="black")


def scene(n: int = 300, seed: int = 0):
    """Gaussians in front of two cameras, and target images rendered from a perturbed copy."""
    gen = torch.Generator().manual_seed(seed)
    K = intrinsics_matrix(torch.tensor(30.0), torch.tensor(30.0), torch.tensor(16.0), torch.tensor(16.0))
    c2w = torch.eye(4).repeat(2, 1, 1)
    c2w[1, 0, 3] = 0.3
    viewmats = viewmats_from_camtoworlds(c2w)
    means = torch.randn(n, 3, generator=gen) * torch.tensor([0.5, 0.5, 0.3]) + torch.tensor([0.0, 0.0, -3.0])
    truth = Gaussians.from_activated(
        means,
        torch.full((n, 3), 0.05),
        torch.randn(n, 4, generator=gen),
        torch.rand(n, generator=gen) * 0.8 + 0.1,
        torch.rand(n, 3, generator=gen),
        sh_degree=1,
    )
    with torch.no_grad():
        images = [render_view(truth, View(torch.zeros(32, 32, 3), viewmats[i], K), 0, torch.zeros(3))[0] for i in range(2)]
    views = [View(images[i], viewmats[i], K) for i in range(2)]
    start = truth.map(lambda t: t + 0.05 * torch.randn(t.shape, generator=gen))
    return start, views


def as_prediction(gaussians: Gaussians):
    """A "network" whose weights are the Gaussians themselves: the prediction is the identity of them."""
    weights = {name: torch.nn.Parameter(t.clone()) for name, t in gaussians.items()}
    return weights, Gaussians(**{name: w * 1.0 for name, w in weights.items()})


def test_zero_step_rule_equals_backprop_of_the_rendering_loss():
    start, views = scene()
    weights, prediction = as_prediction(start)
    step = metagrad_step(prediction, views[:1], REFINE, MetaGradConfig(inner_steps=0))
    step.surrogate.backward()
    via_rule = {name: w.grad.clone() for name, w in weights.items()}

    weights2, prediction2 = as_prediction(start)
    pred, _ = render_view(prediction2, views[0], 0, torch.zeros(3))
    photometric_loss(pred, views[0].image, REFINE.ssim_lambda).backward()
    for name, w in weights2.items():
        torch.testing.assert_close(via_rule[name], w.grad, rtol=1e-5, atol=1e-9, msg=name)


def _gradient(param):
    """The refiner's gradient: none (SH bands above the active degree, left out of the render) is zero."""
    return torch.zeros_like(param) if param.grad is None else param.grad


def test_anchor_gradient_is_the_gradient_at_that_state():
    """With one anchor at θ_K, g is ∇L(θ_K), the state a K-step refinement reaches."""
    start, views = scene(seed=1)
    _, prediction = as_prediction(start)
    rule = MetaGradConfig(inner_steps=3, num_anchors=1, anchor_sampler="stride")
    step = metagrad_step(prediction, views[:1], REFINE, rule)
    assert step.result.anchors == [3]

    refiner = Refiner(start, REFINE, num_train_views=1)
    for _ in range(3):
        refiner.train_step(views[0])
    refiner.loss_and_grad(views[0])
    for name, p in refiner.params.items():
        torch.testing.assert_close(step.result.gradient[name], _gradient(p), rtol=1e-5, atol=1e-9, msg=name)
    # ...and it differs from the zero-step gradient: the unroll did something.
    zero = metagrad_step(as_prediction(start)[1], views[:1], REFINE, MetaGradConfig(inner_steps=0))
    assert not torch.allclose(zero.result.gradient["means"], step.result.gradient["means"])


def test_companion_gaussians_shape_the_inner_loop_and_only_the_prediction_is_trained():
    """With Gaussians refined beside the prediction (test time's SfM start), g is the prediction's rows of
    ∇L at the state a K-step refinement of both together reaches; the companion is not back-propagated."""
    start, views = scene(seed=3)
    predicted, companion = start[:200], start[200:].detach()
    weights, prediction = as_prediction(predicted)
    rule = MetaGradConfig(inner_steps=2, num_anchors=1, anchor_sampler="stride")
    step = metagrad_step(prediction, views[:1], REFINE, rule, companion=companion)
    step.surrogate.backward()

    refiner = Refiner(union(predicted, companion), REFINE, num_train_views=1)
    for _ in range(2):
        refiner.train_step(views[0])
    refiner.loss_and_grad(views[0])
    for name, p in refiner.params.items():
        assert step.result.gradient[name].shape[0] == 300
        torch.testing.assert_close(weights[name].grad, _gradient(p)[:200], rtol=1e-5, atol=1e-9, msg=name)
    alone = metagrad_step(as_prediction(predicted)[1], views[:1], REFINE, rule)
    assert not torch.allclose(alone.result.gradient["means"], step.result.gradient["means"][:200])


def test_refinement_improves_and_metagrad_reports_psnr():
    start, views = scene(seed=2)
    _, prediction = as_prediction(start)
    step = metagrad_step(
        prediction,
        views,
        REFINE,
        MetaGradConfig(inner_steps=8, num_anchors=3),
        measure_view=views[1],
        generator=torch.Generator().manual_seed(0),
    )
    assert step.final_psnr > step.zero_step_psnr
    assert step.result.inner_losses[-1] < step.result.inner_losses[0]
    assert all(torch.isfinite(g).all() for g in step.result.gradient.values())


def test_heldout_query_needs_query_views_and_uses_them():
    start, views = scene(seed=3)
    rule = MetaGradConfig(inner_steps=2, num_anchors=-1, query="heldout")
    with pytest.raises(ValueError, match="needs query views"):
        metagrad_step(as_prediction(start)[1], views[:1], REFINE, rule)
    inner = metagrad_step(as_prediction(start)[1], views[:1], REFINE, dataclasses.replace(rule, query="inner"))
    held = metagrad_step(as_prediction(start)[1], views[:1], REFINE, rule, query_views=views[1:])
    assert not torch.allclose(inner.result.gradient["means"], held.result.gradient["means"])


def test_nan_prediction_and_diverging_inner_loop_are_refused():
    start, views = scene(seed=4)
    bad = start.map(torch.clone)
    bad.means[0, 0] = float("nan")
    with pytest.raises(ValueError, match="'means' has 1 non-finite"):
        metagrad_step(bad, views, REFINE, MetaGradConfig(inner_steps=2))
    exploding = dataclasses.replace(REFINE, lr_means=1e30, lr_scales=1e30)
    with pytest.raises(DivergedInnerLoop):
        metagrad_step(as_prediction(start)[1], views, exploding, MetaGradConfig(inner_steps=4, num_anchors=-1))
