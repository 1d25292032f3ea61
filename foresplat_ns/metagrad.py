"""MetaGrad, the ForeSplat training rule (arXiv 2605.22020), independent of nerfstudio.

    φ = backbone(context)                 the prediction, differentiable w.r.t. the network
    θ₀ = φ detached (leaf tensors)        start of an inner refinement identical to test time
    θ₀ → θ₁ → … → θ_K                     K Adam steps, one random supervision view each
    gₐ = ∇θ L(θₐ) for anchors a ⊂ {0..K}  plain first-order gradients (no create_graph)
    g  = Σ wₐ gₐ (+ λ₀ g₀)                the aggregate, normalised to total weight 1
    backward(φ, g)                        back-propagated as if it were dL/dφ

K = 0 is the zero-step rule (g = ∇L(θ₀)), i.e. ordinary "vanilla" training of a feed-forward
predictor, from the same code. Only the running anchor sum is kept, so memory does not grow with K.
Where test time refines the prediction together with Gaussians it did not predict (`ns-train
foresplat`'s default start adds splatfacto's SfM start), the inner loop does too (`companion`): they
shape the trajectory, and only the prediction's rows of g are back-propagated.

The inner loop talks to a refiner through three members (`params`, `loss_and_grad(view)`,
`apply()`), which `foresplat_ns.refine.Refiner` provides for rendering; tests use tiny
quadratic refiners whose aggregate gradient can be written down.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Literal, Optional, Protocol, Sequence

import torch
from torch import Tensor

from foresplat_ns.gaussians import Gaussians, union
from foresplat_ns.refine import RefineConfig, Refiner, View, background_for_step, composite_over, psnr, render_view


class InnerRefiner(Protocol):
    params: "torch.nn.ParameterDict"

    def loss_and_grad(self, view) -> Tensor: ...

    def apply(self) -> None: ...


@dataclass
class MetaGradConfig:
    """The rule's knobs. Defaults follow the paper's description: a short unroll, a few anchors, plain mean."""

    inner_steps: int = 8
    """K, the length of the unrolled inner refinement. 0 gives the zero-step (vanilla) rule."""
    num_anchors: int = 3
    """M, how many states of {θ₀..θ_K} give a gradient; -1 (or more than K+1) means all of them."""
    anchor_sampler: Literal["uniform", "stride", "late"] = "uniform"
    """uniform: M distinct states at random; stride: evenly spaced, θ_K included; late: random, P(a) ∝ a+1."""
    anchor_weighting: Literal["uniform", "linear"] = "uniform"
    """uniform: equal weights; linear: wₐ ∝ a+1, trusting later states more."""
    zero_step_weight: float = 0.0
    """λ₀, extra weight on the zero-step gradient ∇L(θ₀), relative to the anchors' total weight of 1."""
    zero_step_weight_start: Optional[float] = None
    """Variant (ours): start λ₀ here and move it linearly to `zero_step_weight` over `zero_step_anneal_steps`
    outer steps: first learn a good zero-step prediction cheaply, then make it optimisation-aware."""
    zero_step_anneal_steps: int = 1000
    query: Literal["inner", "heldout"] = "inner"
    """Where anchor gradients are taken: the inner step's own supervision view (free: the inner Adam
    computes it anyway), or a random held-out query view (one extra pass per anchor)."""

    def is_zero_step(self) -> bool:
        return self.inner_steps == 0

    def lambda0(self, outer_step: int) -> float:
        if self.zero_step_weight_start is None:
            return self.zero_step_weight
        t = min(max(outer_step / max(self.zero_step_anneal_steps, 1), 0.0), 1.0)
        return (1 - t) * self.zero_step_weight_start + t * self.zero_step_weight


def sample_anchors(config: MetaGradConfig, generator: Optional[torch.Generator] = None) -> List[int]:
    """Sorted distinct anchor states from {0..K}."""
    k = config.inner_steps
    m = config.num_anchors
    if m < 0 or m >= k + 1:
        return list(range(k + 1))
    if m == 0:
        raise ValueError("num_anchors must be positive (or -1 for all states)")
    if config.anchor_sampler == "stride":
        if m == 1:
            return [k]
        return sorted({round(i * k / (m - 1)) for i in range(m)})
    if config.anchor_sampler == "uniform":
        weights = torch.ones(k + 1)
    elif config.anchor_sampler == "late":
        weights = torch.arange(1, k + 2, dtype=torch.float)
    else:
        raise ValueError(f"unknown anchor sampler '{config.anchor_sampler}'")
    picked = torch.multinomial(weights, m, replacement=False, generator=generator)
    return sorted(int(a) for a in picked)


def anchor_weights(config: MetaGradConfig, anchors: Sequence[int], outer_step: int = 0) -> Dict[int, float]:
    """Weights per state (anchors, plus state 0 when λ₀ > 0), summing to 1."""
    if config.anchor_weighting == "uniform":
        raw = {a: 1.0 for a in anchors}
    elif config.anchor_weighting == "linear":
        raw = {a: float(a + 1) for a in anchors}
    else:
        raise ValueError(f"unknown anchor weighting '{config.anchor_weighting}'")
    total = sum(raw.values())
    weights = {a: w / total for a, w in raw.items()}
    lam = config.lambda0(outer_step)
    if lam > 0:
        weights[0] = weights.get(0, 0.0) + lam
    norm = sum(weights.values())
    return {a: w / norm for a, w in weights.items()}


class DivergedInnerLoop(FloatingPointError):
    """The inner refinement produced a non-finite loss or gradient; the caller skips this scene."""


@dataclass
class MetaGradResult:
    gradient: Dict[str, Tensor]
    """The aggregate g, one tensor per prediction field, shaped like the prediction."""
    anchors: List[int]
    weights: Dict[int, float]
    inner_losses: List[float] = field(default_factory=list)
    """Loss at θ₀..θ_K on the view each step used (θ_K's only when it is an anchor)."""


def _pick(views: Sequence, generator: Optional[torch.Generator]):
    return views[int(torch.randint(len(views), (1,), generator=generator))]


def unroll_and_aggregate(
    refiner: InnerRefiner,
    supervision_views: Sequence,
    config: MetaGradConfig,
    query_views: Optional[Sequence] = None,
    generator: Optional[torch.Generator] = None,
    outer_step: int = 0,
) -> MetaGradResult:
    """Run the K-step inner loop on `refiner` and return the weighted sum of the anchor gradients."""
    if len(supervision_views) == 0:
        raise ValueError("MetaGrad needs at least one supervision view")
    if config.query == "heldout" and not query_views:
        raise ValueError("MetaGrad query='heldout' needs query views")
    anchors = sample_anchors(config, generator)
    weights = anchor_weights(config, anchors, outer_step)
    total: Dict[str, Tensor] = {name: torch.zeros_like(p) for name, p in refiner.params.items()}
    losses: List[float] = []

    def accumulate(state: int) -> None:
        w = weights[state]
        for name, p in refiner.params.items():
            if p.grad is None:
                continue
            if not torch.isfinite(p.grad).all():
                raise DivergedInnerLoop(f"non-finite gradient of '{name}' at inner state {state}")
            total[name].add_(p.grad, alpha=w)

    def checked_loss(view) -> float:
        loss = float(refiner.loss_and_grad(view))
        if not torch.isfinite(torch.tensor(loss)):
            raise DivergedInnerLoop(f"non-finite loss {loss} at inner state {len(losses)}")
        losses.append(loss)
        return loss

    for state in range(config.inner_steps + 1):
        is_anchor = state in weights
        if is_anchor and config.query == "heldout":
            try:
                refiner.loss_and_grad(_pick(query_views, generator))
            except FloatingPointError as err:
                raise DivergedInnerLoop(str(err)) from err
            accumulate(state)
        if state == config.inner_steps and not (is_anchor and config.query == "inner"):
            break  # θ_K is only evaluated when it is an inner-query anchor
        try:
            checked_loss(_pick(supervision_views, generator))
        except FloatingPointError as err:
            raise DivergedInnerLoop(str(err)) from err
        if is_anchor and config.query == "inner":
            accumulate(state)
        if state < config.inner_steps:
            try:
                refiner.apply()
            except FloatingPointError as err:
                raise DivergedInnerLoop(str(err)) from err
    return MetaGradResult(gradient=total, anchors=anchors, weights=weights, inner_losses=losses)


def surrogate_loss(prediction: Gaussians, gradient: Dict[str, Tensor]) -> Tensor:
    """Σ ⟨φ, g⟩ with g detached: its gradient w.r.t. the network is exactly backward(φ, g), in a
    form any trainer that calls `loss.backward()` (nerfstudio's) can use."""
    terms = [(getattr(prediction, name) * g.detach()).sum() for name, g in gradient.items()]
    return torch.stack(terms).sum()


@dataclass
class MetaGradStep:
    """What one outer step produced, for the caller to log and back-propagate."""

    surrogate: Tensor
    result: MetaGradResult
    zero_step_psnr: Optional[float] = None
    final_psnr: Optional[float] = None


def metagrad_step(
    prediction: Gaussians,
    supervision_views: Sequence[View],
    refine: RefineConfig,
    config: MetaGradConfig,
    query_views: Optional[Sequence[View]] = None,
    generator: Optional[torch.Generator] = None,
    outer_step: int = 0,
    measure_view: Optional[View] = None,
    companion: Optional[Gaussians] = None,
) -> MetaGradStep:
    """One MetaGrad outer step on rendered Gaussians (unbatched prediction, differentiable).

    `companion`: Gaussians refined together with the prediction, as test time refines them, whose own
    gradient rows are dropped. With `measure_view`, the PSNR of θ₀ and of θ_K on it are reported (no
    grad; θ_K costs the inner loop's last step, which the zero-step rule does not run anyway).
    """
    prediction.validate("the backbone's prediction")
    start = prediction if companion is None else union(prediction, companion)
    refiner = Refiner(start, refine, num_train_views=len(supervision_views), densify=False, generator=generator)
    zero_psnr = _measure(refiner, measure_view, refine) if measure_view is not None else None
    result = unroll_and_aggregate(refiner, supervision_views, config, query_views, generator, outer_step)
    final_psnr = None
    if measure_view is not None:
        final_psnr = zero_psnr if config.is_zero_step() else _measure(refiner, measure_view, refine)
    predicted_rows = {name: g[tuple(slice(0, n) for n in getattr(prediction, name).shape)] for name, g in result.gradient.items()}
    return MetaGradStep(surrogate_loss(prediction, predicted_rows), result, zero_psnr, final_psnr)


@torch.no_grad()
def _measure(refiner: Refiner, view: View, refine: RefineConfig) -> float:
    background = background_for_step(refine, False, None, view.image.device, view.image.dtype)
    pred, _ = render_view(refiner.gaussians, view, refine.active_sh_degree(refiner.step), background)
    return float(psnr(pred, composite_over(view.image, background)))
