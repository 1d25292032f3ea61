"""The `anysplat` backbone on a tiny random-weight AnySplat (ffgs): shapes, frame alignment, MetaGrad on
its head, weights that are missing or do not fit, checkpoints."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import warnings

import pytest
import torch
from test_compact_backbone import make_context

from foresplat_ns.backbones import BackboneSelection, ContextViews, build_backbone, save_checkpoint
from foresplat_ns.backbones.align import Similarity
from foresplat_ns.backbones.anysplat import AnySplatBackboneConfig
from foresplat_ns.cameras import viewmats_from_camtoworlds
from foresplat_ns.metagrad import MetaGradConfig, metagrad_step
from foresplat_ns.refine import RefineConfig, View
from foresplat_ns.start import StartConfig

TINY = dict(
    intermediate_layer_idx=[0, 1, 2, 3],
    embed_dim=64,
    img_size=112,
    aggregator=dict(depth=4, num_heads=4, patch_embed="conv"),
    camera_head=dict(trunk_depth=1, num_heads=4),
    depth_head=dict(features=32, out_channels=[16, 32, 64, 64], intermediate_layer_idx=[0, 1, 2, 3]),
    gs_head=dict(out_channels=[16, 32, 64, 64], intermediate_layer_idx=[0, 1, 2, 3]),
)
"""About 10 M parameters (9.5 M of them the Gaussian head); the released model has 1.19 B."""
OPENCV_TO_OPENGL = torch.tensor([1.0, -1.0, -1.0, 1.0])


def tiny_config(**overrides) -> AnySplatBackboneConfig:
    return AnySplatBackboneConfig(**{"architecture": TINY, "image_size": 56, **overrides})


def write_release_weights(backbone, folder) -> None:
    """`backbone`'s AnySplat weights as a release folder (model.safetensors), what `--pipeline.backbone.checkpoint DIR` takes."""
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in backbone.anysplat.state_dict().items()}, str(folder / "model.safetensors"))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    return tiny_config().setup()


def consistent_context(backbone, truth: Similarity, views: int = 3, batch: int = 1) -> ContextViews:
    """Cameras that are AnySplat's own predictions moved by `truth`: the fit must recover it exactly
    (a random-weight model's cameras need not fit any other poses)."""
    context = make_context(batch=batch, views=views, height=56, width=56)
    with torch.no_grad():
        _, predicted = backbone.predict_model_frame(context)
    truth = Similarity(truth.rotation.expand(batch, 3, 3), truth.scale.expand(batch), truth.translation.expand(batch, 3))
    given = truth.apply_to_cameras(predicted.double()) * OPENCV_TO_OPENGL.double()
    return ContextViews(context.images, context.intrinsics, given.float())


TRUTH = Similarity(
    rotation=torch.tensor([[[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]], dtype=torch.float64),
    scale=torch.tensor([2.5], dtype=torch.float64),
    translation=torch.tensor([[0.3, -1.0, 2.0]], dtype=torch.float64),
)


@pytest.mark.slow
def test_importing_foresplat_does_not_import_ffgs():
    code = "import sys, foresplat_ns, foresplat_ns.backbones; print(sorted(m for m in sys.modules if m.split('.')[0] in ('ffgs', 'pi3')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_shapes_sh_degree_and_batches(tiny):
    context = consistent_context(tiny, TRUTH, views=2, batch=2)
    g = tiny(context)
    low = tiny_config(sh_degree=1, max_gaussians=500).setup()
    low.load_state_dict(tiny.state_dict())
    g1 = low(context)
    n = g.num_gaussians
    assert g.means.shape == (2, n, 3) and g.quats.shape == (2, n, 4) and g.opacities.shape == (2, n, 1)
    assert g.features_dc.shape == (2, n, 3) and g.features_rest.shape == (2, n, 15, 3) and g.sh_degree == 3
    assert 100 < n <= 2 * 56 * 56  # voxel-merged pixels, the batch capped to a common count
    assert all(torch.isfinite(t).all() for _, t in g.items())
    torch.testing.assert_close(g.quats.norm(dim=-1), torch.ones(2, n))
    assert g1.features_rest.shape == (2, 500, 3, 3)


def test_frame_alignment_recovers_a_known_similarity(tiny):
    context = consistent_context(tiny, TRUTH)
    with torch.no_grad():
        samples, _ = tiny.predict_model_frame(context)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # consistent cameras: no warning
            prediction = tiny.predict(context)
    torch.testing.assert_close(prediction.similarity.rotation, TRUTH.rotation, atol=1e-5, rtol=0)
    torch.testing.assert_close(prediction.similarity.scale, TRUTH.scale, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(prediction.similarity.translation, TRUTH.translation, atol=1e-4, rtol=1e-4)
    assert prediction.residuals.relative_centre_error.max() < 1e-4
    model_frame = samples[0]
    assert prediction.gaussians.num_gaussians == model_frame.num_gaussians  # under the cap: nothing dropped
    expected = TRUTH.apply_to_points(model_frame.means[None].double()).float()
    torch.testing.assert_close(prediction.gaussians.means, expected, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(prediction.gaussians.scales, model_frame.scales[None] + TRUTH.scale.log().float(), atol=1e-5, rtol=0)
    torch.testing.assert_close(prediction.gaussians.opacities, model_frame.opacities[None])


def test_a_metagrad_step_changes_only_the_gaussian_head(tiny):
    backbone = tiny_config().setup()
    backbone.load_state_dict(tiny.state_dict())
    context = consistent_context(backbone, TRUTH)
    head = set(backbone.head_parameter_names())
    names = {n for n, _ in backbone.named_parameters()}
    assert head and head < names and all(n.startswith("anysplat.encoder.gaussian_param_head.") for n in head)
    before = {n: p.detach().clone() for n, p in backbone.named_parameters()}
    viewmats = viewmats_from_camtoworlds(context.camtoworlds[0])
    views = [View(context.images[0, i], viewmats[i], context.intrinsics[0, i]) for i in range(context.num_views)]
    optimiser = torch.optim.Adam(backbone.head_parameters(), lr=1e-3)
    prediction = backbone(context)[0]
    config = MetaGradConfig(inner_steps=2, num_anchors=2)
    step = metagrad_step(prediction, views, RefineConfig(), config, generator=torch.Generator().manual_seed(0))
    step.surrogate.backward()
    optimiser.step()
    changed = {n for n, p in backbone.named_parameters() if not torch.equal(p, before[n])}
    assert changed <= head and len(changed) > len(head) // 2
    assert len(step.result.inner_losses) >= 2


def test_missing_weights_fail_before_the_model_is_built(tmp_path, monkeypatch):
    import huggingface_hub.constants

    def build_model(self):
        raise AssertionError("the model was built before its weights were found")

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(AnySplatBackboneConfig, "build_model", build_model)
    with pytest.raises(
        ValueError,
        match=r"AnySplat weights not found: no lhjiang/anysplat/model.safetensors in .*empty-cache.*hf download lhjiang/anysplat model.safetensors",
    ):
        build_backbone(BackboneSelection(name="anysplat"))
    (tmp_path / "release").mkdir()
    with pytest.raises(ValueError, match=r"AnySplat weights not found: .*release/model.safetensors does not exist"):
        build_backbone(BackboneSelection(name="anysplat", checkpoint=tmp_path / "release"))


def test_released_weights_load_strictly(tiny, tmp_path):
    from safetensors.torch import save_file

    state = {k: v.contiguous() for k, v in tiny.anysplat.state_dict().items()}
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded = tiny_config().load_pretrained(tmp_path)
    context = consistent_context(tiny, TRUTH, views=2)
    with torch.no_grad():
        torch.testing.assert_close(loaded(context).means, tiny(context).means)
    missing = next(k for k in state if k.startswith("encoder.camera_head."))
    save_file({k: v for k, v in state.items() if k != missing}, str(tmp_path / "partial.safetensors"))
    with pytest.raises(ValueError, match=rf"AnySplat weights .*partial.safetensors do not fit the model: 1 missing keys \['{missing}'\]"):
        tiny_config().load_pretrained(tmp_path / "partial.safetensors")


def test_release_weights_take_the_given_settings(tiny, tmp_path):
    """`--pipeline.backbone.anysplat.*` reaches the model built on release weights; our own .pt checkpoint
    keeps the config it was saved with, and settings that contradict it are refused, naming them."""
    write_release_weights(tiny, tmp_path)
    selection = BackboneSelection(name="anysplat", checkpoint=tmp_path, anysplat=tiny_config(max_gaussians=50))
    loaded = build_backbone(selection)
    assert loaded.config == tiny_config(max_gaussians=50)
    with torch.no_grad():
        assert loaded(consistent_context(tiny, TRUTH, views=2)).num_gaussians == 50
    save_checkpoint(tmp_path / "ours.pt", tiny)
    assert build_backbone(BackboneSelection(name="anysplat", checkpoint=tmp_path / "ours.pt")).config == tiny.config
    with pytest.raises(
        ValueError, match=r"ours.pt was trained with another 'anysplat' config \(max_gaussians: checkpoint 300000 vs asked 50"
    ):
        build_backbone(dataclasses.replace(selection, checkpoint=tmp_path / "ours.pt"))


def test_ns_train_foresplat_starts_from_release_weights(tiny, small_scene, tmp_path):
    """`ns-train foresplat --pipeline.backbone.name anysplat --pipeline.backbone.checkpoint DIR`: the scene's
    training views through AnySplat (with the given settings) make splatfacto's first Gaussians."""
    from test_nerfstudio import setup_pipeline

    write_release_weights(tiny, tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: its cameras fit the scene's loosely
        pipeline = setup_pipeline(
            small_scene,
            backbone=BackboneSelection(name="anysplat", checkpoint=tmp_path, anysplat=tiny_config(max_gaussians=40)),
            start=StartConfig(start="prediction", num_context_views=2),
        )
    assert pipeline.model.num_points == 40
    assert torch.isfinite(pipeline.model.means).all()


def test_our_checkpoint_round_trip_through_build_backbone(tiny, tmp_path):
    path = tmp_path / "anysplat-tiny.pt"
    save_checkpoint(path, tiny)
    loaded = build_backbone(BackboneSelection(name="anysplat", checkpoint=path))
    assert loaded.config == tiny.config
    context = consistent_context(tiny, TRUTH, views=2)
    with torch.no_grad():
        a, b = tiny(context), loaded(context)
    for name, t in a.items():
        torch.testing.assert_close(getattr(b, name), t, msg=name)


def test_foresplat_meta_fine_tunes_the_gaussian_head_and_foresplat_loads_it(tiny, small_corpus, tmp_path):
    """foresplat-meta on AnySplat: released weights in, only the head trained (the default for a pretrained
    backbone), the written checkpoint is what `ns-train foresplat --pipeline.backbone.name anysplat` loads."""
    from conftest import meta_train_in_process

    write_release_weights(tiny, tmp_path)
    backbone = BackboneSelection(name="anysplat", anysplat=tiny_config(), checkpoint=tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # random weights: its cameras fit the scenes' loosely
        pipeline, metrics = meta_train_in_process(backbone, small_corpus, steps=2)
    assert metrics["skipped_scenes"] == 0.0 and metrics["num_gaussians"] > 0
    assert set(pipeline.get_param_groups()) == {"backbone_head"}
    before = tiny.state_dict()
    changed = {n for n, p in pipeline.backbone.state_dict().items() if not torch.equal(p, before[n])}
    assert changed and changed <= set(pipeline.backbone.head_parameter_names())
    pipeline.save_backbone(tmp_path / "backbone.pt", step=2)
    loaded = build_backbone(BackboneSelection(name="anysplat", checkpoint=tmp_path / "backbone.pt"))
    for name, p in pipeline.backbone.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], p), name
