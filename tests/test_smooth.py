"""smooth-inputs (passes/smooth.py): each 8-bit Conv's input channels evened out by a
scale moved into its weights, with the float graph's output unchanged."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from publisher.passes import PassContext
from publisher.passes.quantize import CorpusReader
from publisher.passes.ranges import channel_peaks
from publisher.passes.smooth import scaled_inputs, smooth_inputs_pass
from publisher.passes.snake import fold_snake, quantized_conv
from publisher.recipe.loader import load_recipe


@pytest.fixture
def folded(tiny, tiny_dist):
    """The tiny fp32 graph with cpu-int8's Snake fold (1/alpha left before 8-bit Convs)."""
    recipe = load_recipe("cpu-int8")
    model = onnx.load(str(tiny_dist / "fp32" / "onnx" / "model.onnx"))
    fold_snake(model, quantized_conv(recipe))
    return model, recipe, PassContext(config=tiny.config, voices=tiny.voices)


def _balance(model, pairs, feeds) -> float:
    """Over every smoothed input: the largest/smallest ratio, across its channels, of the
    activation's peak to the peak of the weight column that multiplies it."""
    from onnx import numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    peaks = channel_peaks(model, [mul.output[0] for mul, _ in pairs], feeds)
    worst = 1.0
    for mul, convs in pairs:
        w = np.max([np.abs(inits[c.input[1]]).max(axis=(0, 2)) for c in convs], axis=0)
        ratio = peaks[mul.output[0]] / w
        worst = max(worst, float(ratio.max() / ratio.min()))
    return worst


def test_smoothed_graph_computes_what_it_did_with_input_and_weight_ranges_balanced(folded):
    model, recipe, ctx = folded
    q = recipe.precision.quantize.model_copy(update={"calibration_samples": 2})
    recipe = recipe.model_copy(
        update={"precision": recipe.precision.model_copy(update={"quantize": q})}
    )
    feeds = CorpusReader(ctx, 2).feeds
    before = model.SerializeToString()
    pairs = scaled_inputs(model, quantized_conv(recipe))
    unbalanced = _balance(model, pairs, feeds)

    after = smooth_inputs_pass(model, recipe, ctx)

    # every Snake in the decoder that feeds an 8-bit Conv (cpu-int8's excludes aside)
    assert ctx.notes["smoothed_conv_inputs"] == len(pairs) > 10
    # each channel's activation peak over its weight column's peak: one value per input
    # (before: about 2 on the tiny model, moving with its random source)
    assert unbalanced > 1.5 and _balance(after, pairs, feeds) < 1.001
    want = ort.InferenceSession(before).run(None, feeds[1])
    got = ort.InferenceSession(after.SerializeToString()).run(None, feeds[1])
    np.testing.assert_array_equal(got[1], want[1])  # durations
    np.testing.assert_allclose(got[0], want[0], atol=1e-5 * np.abs(want[0]).max())


def test_convs_left_float_are_not_smoothed(folded):
    model, recipe, _ = folded
    everything = scaled_inputs(model, lambda conv: True)
    quantized = scaled_inputs(model, quantized_conv(recipe))
    # the float Snake -> Conv pairs (fold-snake folded 1/alpha into those weights) have no
    # Mul before them; what is found is exactly the quantized set
    assert [m.name for m, _ in everything] == [m.name for m, _ in quantized]
    assert not scaled_inputs(model, lambda conv: False)


def test_the_twin_through_the_same_context_gets_the_shipped_graphs_scales(folded, monkeypatch):
    """build.prepare runs the passes on the shipped graph, then on its deterministic twin
    with one PassContext: the twin must carry the shipped scales, without calibrating."""
    from publisher.passes import equalize, ranges

    model, recipe, ctx = folded
    twin = onnx.ModelProto()
    twin.CopyFrom(model)
    smooth_inputs_pass(equalize.equalize_pass(model, recipe, ctx), recipe, ctx)

    def no_more_runs(*args, **kwargs):
        raise AssertionError("the twin ran its own calibration")

    monkeypatch.setattr(ranges, "channel_peaks", no_more_runs)
    smooth_inputs_pass(equalize.equalize_pass(twin, recipe, ctx), recipe, ctx)

    weights = {t.name: t.raw_data for t in model.graph.initializer}
    changed = [t.name for t in twin.graph.initializer if weights.get(t.name) != t.raw_data]
    assert not changed, changed[:3]
