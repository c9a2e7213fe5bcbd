"""polyphase-upsample (passes/polyphase.py): ConvTranspose rewritten as Conv + interleave +
crop computes the same numbers, and only where the recipe quantizes."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from publisher.passes import PassContext
from publisher.passes.polyphase import eligible, polyphase_pass
from publisher.recipe.loader import load_recipe


def _transpose_model(c, o, stride, taps, pads, bias, rng, group=1, output_padding=0):
    k = taps * stride
    w = rng.standard_normal((c, o // group, k)).astype(np.float32)
    inits = [numpy_helper.from_array(w, "W")]
    inputs = ["x", "W"]
    if bias:
        inits.append(numpy_helper.from_array(rng.standard_normal(o).astype(np.float32), "B"))
        inputs.append("B")
    node = helper.make_node(
        "ConvTranspose",
        inputs,
        ["y"],
        name="/decoder/generator/ups.0/ConvTranspose",
        strides=[stride],
        kernel_shape=[k],
        pads=list(pads),
        group=group,
        output_padding=[output_padding],
    )
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _run(model, x):
    return ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]


@pytest.mark.parametrize(
    ("c", "o", "stride", "taps", "pads", "bias"),
    [
        (8, 4, 10, 2, (5, 5), True),  # Kokoro's ups.0 shape: kernel 20, stride 10
        (6, 3, 6, 2, (3, 3), False),  # ups.1: kernel 12, stride 6
        (5, 2, 5, 4, (0, 0), True),  # four taps, nothing cropped
        (4, 4, 3, 1, (1, 0), True),  # one tap, cropped on one side only
    ],
)
def test_rewritten_upsampling_computes_the_same_output(c, o, stride, taps, pads, bias):
    rng = np.random.default_rng(stride * 10 + taps)
    model = _transpose_model(c, o, stride, taps, pads, bias, rng)
    x = rng.standard_normal((1, c, 13)).astype(np.float32)
    want = _run(model, x)
    ctx = PassContext(config={}, voices={})

    got_model = polyphase_pass(model, load_recipe("cpu-int8"), ctx)

    assert ctx.notes["polyphase_upsamples"] == 1
    assert [n.op_type for n in got_model.graph.node] == [
        "Conv",
        "Reshape",
        "Transpose",
        "Reshape",
        "Slice",
    ]
    got = _run(got_model, x)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"group": 2},  # grouped (Kokoro's depthwise pools)
        {"output_padding": 1, "pads": (1, 1)},
    ],
)
def test_transposes_it_cannot_rewrite_exactly_are_left_alone(kwargs):
    rng = np.random.default_rng(1)
    args = {"c": 4, "o": 4, "stride": 2, "taps": 2, "pads": (1, 1), "bias": False, **kwargs}
    model = _transpose_model(rng=rng, **args)
    inits = {t.name: t for t in model.graph.initializer}
    assert eligible(model.graph.node[0], inits) is None


def test_upsampling_the_recipe_keeps_float_stays_a_transpose():
    rng = np.random.default_rng(2)
    model = _transpose_model(8, 4, 10, 2, (5, 5), True, rng)
    recipe = load_recipe("cpu-int8")
    q = recipe.precision.quantize.model_copy(update={"exclude": ("/decoder/generator/ups.*",)})
    recipe = recipe.model_copy(
        update={"precision": recipe.precision.model_copy(update={"quantize": q})}
    )
    out = polyphase_pass(model, recipe, PassContext(config={}, voices={}))
    assert [n.op_type for n in out.graph.node] == ["ConvTranspose"]


def test_tiny_generator_upsamples_the_same_after_the_rewrite(tiny, tiny_dist):
    from publisher.passes.quantize import CorpusReader

    model = onnx.load(str(tiny_dist / "fp32" / "onnx" / "model.onnx"))
    for node in model.graph.node:  # the same noise in both sessions' first run
        if node.op_type.startswith("Random"):
            node.attribute.append(helper.make_attribute("seed", 7.0))
    before = model.SerializeToString()
    ctx = PassContext(config=tiny.config, voices=tiny.voices)
    after = polyphase_pass(model, load_recipe("cpu-int8"), ctx)

    # both upsampling layers; the iSTFT synthesis (kept float by cpu-int8) and the
    # depthwise pools (groups: not rewritable) stay ConvTransposes
    assert ctx.notes["polyphase_upsamples"] == len(tiny.config["istftnet"]["upsample_rates"])
    kept = [n.name for n in after.graph.node if n.op_type == "ConvTranspose"]
    assert not [name for name in kept if "/ups." in name]
    assert [name for name in kept if "synthesis" in name]
    feeds = CorpusReader(ctx, 1).feeds[0]
    want = ort.InferenceSession(before).run(None, feeds)
    got = ort.InferenceSession(after.SerializeToString()).run(None, feeds)
    np.testing.assert_array_equal(got[1], want[1])  # durations
    np.testing.assert_allclose(got[0], want[0], atol=1e-5 * np.abs(want[0]).max())
