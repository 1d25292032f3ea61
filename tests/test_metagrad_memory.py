"""MetaGrad keeps only the running anchor sum: its peak memory must not grow with the unroll length K."""

from foresplat_ns.bench.metagrad import MetaGradBenchConfig, measure


def test_peak_memory_does_not_grow_with_inner_steps():
    config = MetaGradBenchConfig(resolution=32, num_views=5, num_context_views=3, outer_steps=1, width=8, threads=2)
    short, long = measure(config, 4), measure(config, 32)
    assert short["peak_mb"] > 1.0, "the measurement saw the rendering's tensors"
    assert long["peak_mb"] <= 1.15 * short["peak_mb"], (short, long)
    # the unroll really ran: a loss at θ₀..θ_{K-1}, and at θ_K when it is an anchor
    assert short["inner_losses"] in (4, 5) and long["inner_losses"] in (32, 33), (short, long)
