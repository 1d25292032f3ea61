"""gsplat's DefaultStrategy runs a densify/prune cycle on CPU from our rasteriser's info dict, and the
Gaussian count changes exactly as the strategy's rules say it should for the gradients we produced."""

from __future__ import annotations

import math

import pytest
import torch
from gsplat.strategy import DefaultStrategy

from foresplat_ns.render import rasterization

WIDTH, HEIGHT = 32, 24
GROW_SCALE3D = 0.01
PRUNE_OPACITY = 0.005


pytestmark = pytest.mark.usefixtures("single_thread")


def _params(n: int = 40):
    """Splatfacto-style raw parameters: log scales (half below GROW_SCALE3D, half above), logit
    opacities (six below PRUNE_OPACITY) and colours."""
    g = torch.Generator().manual_seed(0)
    depth = 2 + 3 * torch.rand(n, generator=g)
    means = torch.cat([(torch.rand(n, 2, generator=g) * 2 - 1) * 0.5 * depth[:, None], depth[:, None]], dim=-1)
    scale = torch.where(torch.arange(n) % 2 == 0, 0.005, 0.05)
    scales = torch.log(scale[:, None] * (0.8 + 0.4 * torch.rand(n, 3, generator=g)))
    opacity = 0.3 + 0.6 * torch.rand(n, generator=g)
    opacity[::7] = 0.002
    return {
        "means": means,
        "scales": scales,
        "quats": torch.randn(n, 4, generator=g),
        "opacities": torch.logit(opacity),
        "features_dc": torch.rand(n, 3, generator=g),
    }


def _cameras():
    angle = 0.2
    turned = torch.tensor(
        [[math.cos(angle), 0, -math.sin(angle), 0.2], [0, 1, 0, 0], [math.sin(angle), 0, math.cos(angle), 0.1], [0, 0, 0, 1]]
    )
    viewmats = torch.stack([torch.eye(4), turned])
    Ks = torch.tensor([[25.0, 0, 16.0], [0, 25.0, 12.0], [0, 0, 1]]).expand(2, 3, 3)
    return viewmats, Ks


@pytest.mark.parametrize("absgrad", [False, True])
def test_default_strategy_cycle_changes_the_count_as_its_rules_say(absgrad):
    torch.manual_seed(0)  # split() samples offsets from the global generator
    params = {name: torch.nn.Parameter(value) for name, value in _params().items()}
    optimizers = {name: torch.optim.Adam([param], lr=1e-3) for name, param in params.items()}
    strategy = DefaultStrategy(
        prune_opa=PRUNE_OPACITY, grow_scale3d=GROW_SCALE3D, refine_start_iter=0, refine_every=1,
        refine_stop_iter=10, reset_every=10**6, absgrad=absgrad,
    )  # fmt: skip
    strategy.check_sanity(params, optimizers)
    state = strategy.initialize_state(scene_scale=1.0)
    step = 1
    viewmats, Ks = _cameras()

    image, _, info = rasterization(
        params["means"], params["quats"], torch.exp(params["scales"]), torch.sigmoid(params["opacities"]),
        params["features_dc"], viewmats, Ks, WIDTH, HEIGHT, packed=False, absgrad=absgrad,
    )  # fmt: skip
    strategy.step_pre_backward(params, optimizers, state, step, info)
    target = torch.rand(image.shape, generator=torch.Generator().manual_seed(1))
    (image - target).abs().mean().backward()
    for optimizer in optimizers.values():
        optimizer.step()

    # The strategy's rules, applied by hand to the gradients our backward produced.
    grads = (info["means2d"].absgrad if absgrad else info["means2d"].grad).clone()
    grads[..., 0] *= WIDTH / 2.0 * 2
    grads[..., 1] *= HEIGHT / 2.0 * 2
    visible = info["radii"] > 0
    norm_sum = (grads.norm(dim=-1) * visible).sum(0)
    average = norm_sum / visible.sum(0).clamp_min(1)
    ranked = torch.sort(average[visible.any(0)]).values
    strategy.grow_grad2d = float(ranked[len(ranked) // 2 - 1] + ranked[len(ranked) // 2]) / 2  # half grow
    with torch.no_grad():
        grow = average > strategy.grow_grad2d
        small = torch.exp(params["scales"]).max(dim=-1).values <= GROW_SCALE3D
        duplicated, split = grow & small, grow & ~small
        pruned = torch.sigmoid(params["opacities"]) < PRUNE_OPACITY
        split_scales = params["scales"][split & ~pruned] - math.log(1.6)
        duplicated_means = params["means"][duplicated & ~pruned].clone()
    assert int(duplicated.sum()) > 0 and int(split.sum()) > 0 and int(pruned.sum()) > 0
    copies = 1 + (duplicated | split).long()  # duplicated: original + copy; split: two children
    expected = int((copies * ~pruned).sum())

    strategy.step_post_backward(params, optimizers, state, step, info, packed=False)

    assert {len(param) for param in params.values()} == {expected} != {40}
    for name, param in params.items():
        assert optimizers[name].param_groups[0]["params"][0] is param
        assert optimizers[name].state[param]["exp_avg"].shape == param.shape
    children = (params["scales"][:, None, :] - split_scales[None]).abs().amax(-1).lt(1e-6).sum(0)
    assert children.tolist() == [2] * len(split_scales)
    copies_found = (params["means"][:, None, :] == duplicated_means[None]).all(-1).sum(0)
    assert copies_found.tolist() == [2] * len(duplicated_means)


def _refiner_on_opaque_gaussians(config, num_train_views: int = 1):
    from foresplat_ns.gaussians import Gaussians
    from foresplat_ns.refine import Refiner, View

    params = _params()
    gaussians = Gaussians.from_activated(
        means=params["means"], scales=params["scales"].exp(), quats=torch.tensor([[1.0, 0, 0, 0]]).expand(40, 4),
        opacities=torch.full((40,), 0.9), rgb=torch.rand(40, 3, generator=torch.Generator().manual_seed(1)), sh_degree=0,
    )  # fmt: skip
    K = torch.tensor([[30.0, 0, WIDTH / 2], [0, 30.0, HEIGHT / 2], [0, 0, 1]])
    view = View(image=torch.rand(HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(2)), viewmat=torch.eye(4), K=K)
    return Refiner(gaussians, config, num_train_views, densify=True, generator=torch.Generator().manual_seed(0)), view


def test_refinement_keeps_predicted_opacities_at_step_zero_and_still_resets_later():
    """gsplat 1.4 resets opacities at step 0 too; a predicted init must keep its opacities there."""
    from foresplat_ns.refine import RefineConfig

    config = RefineConfig(sh_degree=0, reset_alpha_every=1, refine_every=3, warmup_length=10)
    refiner, view = _refiner_on_opaque_gaussians(config)
    refiner.train_step(view)  # step 0: one Adam step moves a logit by at most ~lr
    after_first = torch.sigmoid(refiner.params["opacities"])
    assert after_first.min() > 0.85, "opacities were reset at step 0"
    for _ in range(3):  # steps 1, 2, 3: the reset at step 3 = reset_alpha_every * refine_every still happens
        refiner.train_step(view)
    assert torch.sigmoid(refiner.params["opacities"]).max() <= 2 * config.cull_alpha_thresh + 1e-6


@pytest.mark.parametrize("pause_after_start", [True, False])
def test_densification_waits_after_the_skipped_step_zero_reset_only_where_asked(pause_after_start):
    """splatfacto densifies only num_train_views + refine_every steps after each opacity reset, step 0's too;
    without that reset there is nothing to wait for: pause_after_start=False grows from warmup_length on,
    and still waits after the later resets."""
    from foresplat_ns.refine import RefineConfig

    config = RefineConfig(
        sh_degree=0, warmup_length=1, refine_every=2, reset_alpha_every=10, densify_grad_thresh=1e-12,
        stop_split_at=40, pause_after_start=pause_after_start,
    )  # fmt: skip
    refiner, view = _refiner_on_opaque_gaussians(config, num_train_views=6)  # waits 6 + 2 = 8 steps
    counts = []
    for _ in range(30):
        refiner.train_step(view)
        counts.append(refiner.params["means"].shape[0])
    grew_at = [step for step in range(1, 30) if counts[step] > counts[step - 1]]
    # a grad threshold of ~0 grows at every densification step: at steps 2, 4, ... past the wait
    waits = [step for step in range(2, 30, 2) if (step >= 20 or pause_after_start) and step % 20 < 8]
    assert grew_at == [step for step in range(2, 30, 2) if step not in waits]


@pytest.mark.parametrize("absgrad", [False, True])
@pytest.mark.parametrize("n_cameras", [1, 3])
def test_compiled_screen_statistics_equal_gsplats(absgrad, n_cameras):
    """PredictedInitStrategy's compiled _update_state leaves gsplat's state: grad2d and count bit for bit, and the
    largest radius too with one camera (gsplat's scatter keeps the last camera's, ours the largest)."""
    from foresplat_ns.refine.strategy import PredictedInitStrategy

    n = 3000
    params = {"means": torch.zeros(n, 3)}
    settings = dict(absgrad=absgrad, refine_scale2d_stop_iter=100)
    ours, theirs = PredictedInitStrategy(**settings), DefaultStrategy(**settings)
    state_ours, state_theirs = ours.initialize_state(), theirs.initialize_state()
    largest_radius = torch.zeros(n)
    for seed in range(3):
        g = torch.Generator().manual_seed(seed)
        means2d = torch.zeros(n_cameras, n, 2, requires_grad=True)
        means2d.grad = torch.randn(n_cameras, n, 2, generator=g) * torch.rand(n_cameras, n, 1, generator=g) * 1e-3
        means2d.absgrad = means2d.grad.abs()
        radii = torch.randint(-20, 40, (n_cameras, n), generator=g).clamp_min(0).int()
        radii[:, :10] = 0  # seen by no camera
        info = {"means2d": means2d, "radii": radii, "width": 137, "height": 91, "n_cameras": n_cameras, "gaussian_ids": None}
        ours._update_state(params, state_ours, info)
        theirs._update_state(params, state_theirs, info)
        largest_radius = torch.maximum(largest_radius, radii.amax(0) / 137.0)
    assert torch.equal(state_ours["grad2d"], state_theirs["grad2d"])
    assert torch.equal(state_ours["count"], state_theirs["count"])
    assert state_ours["count"].max() == 3 * n_cameras and (state_ours["count"] == 0).any()
    assert torch.equal(state_ours["radii"], largest_radius)
    if n_cameras == 1:
        assert torch.equal(state_ours["radii"], state_theirs["radii"])
