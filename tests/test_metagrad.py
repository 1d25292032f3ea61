"""MetaGrad on problems whose aggregated first-order gradient can be written down."""

from __future__ import annotations

import pytest
import torch

from foresplat_ns.gaussians import Gaussians
from foresplat_ns.metagrad import (
    DivergedInnerLoop,
    MetaGradConfig,
    anchor_weights,
    sample_anchors,
    surrogate_loss,
    unroll_and_aggregate,
)


class QuadraticRefiner:
    """Inner problem L_v(θ) = ½ a_v ‖θ − c_v‖², refined by plain SGD (lr η): closed forms exist."""

    def __init__(self, theta0: torch.Tensor, lr: float):
        self.params = torch.nn.ParameterDict({"x": torch.nn.Parameter(theta0.detach().clone())})
        self.lr = lr
        self.steps_applied = 0

    def loss_and_grad(self, view):
        a, c = view
        self.params["x"].grad = None
        loss = 0.5 * a * ((self.params["x"] - c) ** 2).sum()
        loss.backward()
        return loss.detach()

    def apply(self):
        with torch.no_grad():
            self.params["x"] -= self.lr * self.params["x"].grad
        self.steps_applied += 1


def closed_form_gradient(theta0, a, c, lr, weights):
    """With one view, θ_k − c = (1 − ηa)^k (θ₀ − c), so g_k = a (1 − ηa)^k (θ₀ − c)."""
    return sum(w * a * (1 - lr * a) ** k * (theta0 - c) for k, w in weights.items())


@pytest.mark.parametrize(
    "config",
    [
        MetaGradConfig(inner_steps=8, num_anchors=-1),
        MetaGradConfig(inner_steps=8, num_anchors=3, anchor_sampler="stride"),
        MetaGradConfig(inner_steps=8, num_anchors=3, anchor_sampler="uniform"),
        MetaGradConfig(inner_steps=8, num_anchors=3, anchor_sampler="late", anchor_weighting="linear"),
        MetaGradConfig(inner_steps=6, num_anchors=2, anchor_sampler="stride", zero_step_weight=0.5),
        MetaGradConfig(inner_steps=0),
    ],
    ids=["all", "stride", "uniform", "late-linear", "zero-weight", "zero-step"],
)
def test_aggregate_matches_closed_form(config):
    torch.manual_seed(0)
    theta0 = torch.randn(5, dtype=torch.float64)
    a, c, lr = 1.7, torch.randn(5, dtype=torch.float64), 0.2
    refiner = QuadraticRefiner(theta0, lr)
    result = unroll_and_aggregate(refiner, [(a, c)], config, generator=torch.Generator().manual_seed(3))
    expected = closed_form_gradient(theta0, a, c, lr, result.weights)
    torch.testing.assert_close(result.gradient["x"], expected, rtol=1e-12, atol=1e-12)
    assert abs(sum(result.weights.values()) - 1.0) < 1e-12
    # The inner loop runs exactly K steps: MetaGrad never refines past θ_K.
    assert refiner.steps_applied == config.inner_steps


def test_zero_step_rule_is_plain_gradient_at_the_prediction():
    theta0 = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    a, c = 2.0, torch.tensor([0.0, 1.0, 1.0], dtype=torch.float64)
    result = unroll_and_aggregate(QuadraticRefiner(theta0, 0.1), [(a, c)], MetaGradConfig(inner_steps=0))
    torch.testing.assert_close(result.gradient["x"], a * (theta0 - c))
    assert result.anchors == [0]


def test_anchor_gradients_come_from_the_states_they_name():
    """Two views alternate deterministically when each is listed once and the generator is replayed."""
    theta0 = torch.zeros(2, dtype=torch.float64)
    views = [(1.0, torch.tensor([1.0, 0.0], dtype=torch.float64)), (3.0, torch.tensor([0.0, 2.0], dtype=torch.float64))]
    config = MetaGradConfig(inner_steps=4, num_anchors=-1)
    gen_seed = 11
    result = unroll_and_aggregate(QuadraticRefiner(theta0, 0.1), views, config, generator=torch.Generator().manual_seed(gen_seed))

    # Replay: same generator, same draws (anchors use no draw when all states are anchors).
    gen = torch.Generator().manual_seed(gen_seed)
    theta, expected = theta0.clone(), torch.zeros(2, dtype=torch.float64)
    for k in range(config.inner_steps + 1):
        a, c = views[int(torch.randint(len(views), (1,), generator=gen))]
        grad = a * (theta - c)
        expected += grad / (config.inner_steps + 1)
        theta = theta - 0.1 * grad
    torch.testing.assert_close(result.gradient["x"], expected)


def test_anchor_samplers():
    gen = torch.Generator().manual_seed(0)
    assert sample_anchors(MetaGradConfig(inner_steps=8, num_anchors=3, anchor_sampler="stride")) == [0, 4, 8]
    assert sample_anchors(MetaGradConfig(inner_steps=8, num_anchors=1, anchor_sampler="stride")) == [8]
    assert sample_anchors(MetaGradConfig(inner_steps=4, num_anchors=-1)) == [0, 1, 2, 3, 4]
    for sampler in ("uniform", "late"):
        anchors = sample_anchors(MetaGradConfig(inner_steps=8, num_anchors=3, anchor_sampler=sampler), gen)
        assert len(set(anchors)) == 3 and all(0 <= x <= 8 for x in anchors) and anchors == sorted(anchors)
    # "late" puts more mass on late states than "uniform" does.
    late = [a for _ in range(400) for a in sample_anchors(MetaGradConfig(inner_steps=8, num_anchors=1, anchor_sampler="late"), gen)]
    uniform = [a for _ in range(400) for a in sample_anchors(MetaGradConfig(inner_steps=8, num_anchors=1), gen)]
    assert sum(late) / len(late) > sum(uniform) / len(uniform) + 1.0


def test_weights_with_zero_step_weight_and_annealing():
    config = MetaGradConfig(inner_steps=8, anchor_weighting="linear", zero_step_weight=1.0)
    w = anchor_weights(config, [2, 8])
    # linear: (2+1)/12 and (8+1)/12 of the anchor mass 1, plus λ₀ = 1 on state 0, normalised by 2.
    assert w == pytest.approx({2: 3 / 12 / 2, 8: 9 / 12 / 2, 0: 0.5})
    annealed = MetaGradConfig(inner_steps=8, zero_step_weight=0.0, zero_step_weight_start=4.0, zero_step_anneal_steps=100)
    assert annealed.lambda0(0) == 4.0 and annealed.lambda0(50) == 2.0 and annealed.lambda0(1000) == 0.0
    assert anchor_weights(annealed, [4], outer_step=100) == {4: 1.0}


def test_surrogate_backward_is_jacobian_transpose_times_aggregate():
    """For φ = W z the network gradient of the surrogate must be g zᵀ, i.e. backward(φ, g)."""
    torch.manual_seed(1)
    w = torch.nn.Parameter(torch.randn(4, 3, dtype=torch.float64))
    z = torch.randn(3, dtype=torch.float64)
    fields = {
        name: (w @ z)[:, None].expand(4, dim) * (i + 1)
        for i, (name, dim) in enumerate([("means", 3), ("scales", 3), ("quats", 4), ("opacities", 1), ("features_dc", 3)])
    }
    prediction = Gaussians(**fields, features_rest=torch.zeros(4, 0, 3, dtype=torch.float64))
    gradient = {name: torch.randn_like(t) for name, t in prediction.items()}
    surrogate_loss(prediction, gradient).backward(retain_graph=True)
    via_surrogate = w.grad.clone()
    w.grad = None
    names = [n for n in gradient if getattr(prediction, n).requires_grad]  # features_rest is a constant here
    torch.autograd.backward([getattr(prediction, n) for n in names], grad_tensors=[gradient[n] for n in names])
    torch.testing.assert_close(via_surrogate, w.grad)


def test_diverging_inner_loop_is_reported():
    class Exploding(QuadraticRefiner):
        def loss_and_grad(self, view):
            loss = super().loss_and_grad(view)
            return loss * float("inf") if self.steps_applied == 2 else loss

    with pytest.raises(DivergedInnerLoop, match="non-finite loss"):
        unroll_and_aggregate(Exploding(torch.zeros(2), 0.1), [(1.0, torch.ones(2))], MetaGradConfig(inner_steps=4))
