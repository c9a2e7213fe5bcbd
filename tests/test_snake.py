"""The AdaIN/Snake fold (passes/snake.py) against the graph it rewrites: onnxruntime runs
both, so the unfolded graph is the oracle."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from publisher.passes.snake import fold_snake

C, T, K = 8, 64, 3


def _adain_snake_graph(alpha: np.ndarray, inv_alpha: np.ndarray | None = None) -> onnx.ModelProto:
    """Kokoro's resblock head as torch exports it: InstanceNormalization -> * (1 + gamma)
    -> + beta -> Snake (Mul, Sin, Pow, Mul, Add) -> Conv; a second AdaIN shares the norm
    (as onnxruntime's simplifier leaves it) and feeds a LeakyRelu, not a Snake."""
    rng = np.random.default_rng(0)
    inv_alpha = 1 / alpha if inv_alpha is None else inv_alpha
    inits = [
        numpy_helper.from_array(rng.normal(1, 0.1, C).astype(np.float32), "ns"),
        numpy_helper.from_array(rng.normal(0, 0.1, C).astype(np.float32), "nb"),
        numpy_helper.from_array(alpha.reshape(1, C, 1).astype(np.float32), "alpha"),
        numpy_helper.from_array(inv_alpha.reshape(1, C, 1).astype(np.float32), "inv_alpha"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(rng.normal(0, 0.3, (C, C, K)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.1, C).astype(np.float32), "b"),
    ]
    nodes = [
        helper.make_node("InstanceNormalization", ["x", "ns", "nb"], ["n"], name="/r/norm"),
        helper.make_node("Mul", ["gain", "n"], ["m"], name="/r/adain1/Mul"),
        helper.make_node("Add", ["m", "beta"], ["xt"], name="/r/adain1/Add"),
        helper.make_node("Mul", ["alpha", "xt"], ["ax"], name="/r/Mul"),
        helper.make_node("Sin", ["ax"], ["s"], name="/r/Sin"),
        helper.make_node("Pow", ["s", "two"], ["p"], name="/r/Pow"),
        helper.make_node("Mul", ["inv_alpha", "p"], ["q"], name="/r/Mul_1"),
        helper.make_node("Add", ["xt", "q"], ["snake"], name="/r/Add"),
        helper.make_node(
            "Conv", ["snake", "w", "b"], ["y"], name="/r/conv/Conv", pads=[1, 1], dilations=[1]
        ),
        helper.make_node("Mul", ["gain2", "n"], ["m2"], name="/r/adain2/Mul"),
        helper.make_node("Add", ["m2", "beta2"], ["xt2"], name="/r/adain2/Add"),
        helper.make_node("LeakyRelu", ["xt2"], ["y2"], name="/r/LeakyRelu", alpha=0.2),
    ]
    col = [1, C, 1]
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, T])] + [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, col)
        for n in ("gain", "beta", "gain2", "beta2")
    ]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, C, T]) for n in "y"] + [
        helper.make_tensor_value_info("y2", TensorProto.FLOAT, [1, C, T])
    ]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _run(model: onnx.ModelProto) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    feeds = {"x": rng.normal(0, 2, (1, C, T)).astype(np.float32)}
    for name in ("gain", "beta", "gain2", "beta2"):
        feeds[name] = rng.normal(1 if "gain" in name else 0, 0.3, (1, C, 1)).astype(np.float32)
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


ALPHA = np.linspace(0.05, 1.6, C)


@pytest.mark.parametrize("quantized", [False, True], ids=["float-conv", "quantized-conv"])
def test_fold_snake_computes_what_the_unfolded_graph_computes(quantized):
    original = _adain_snake_graph(ALPHA)
    expected = _run(original)
    folded = onnx.ModelProto.FromString(original.SerializeToString())
    assert fold_snake(folded, lambda conv: quantized) == (2, 1)
    onnx.checker.check_model(folded)
    got = _run(folded)
    for want, have in zip(expected, got, strict=True):
        np.testing.assert_allclose(have, want, rtol=2e-5, atol=2e-5)


def test_fold_snake_removes_the_elementwise_passes_over_the_activation():
    folded = _adain_snake_graph(ALPHA)
    fold_snake(folded)
    ops = _ops(folded)
    assert "Pow" not in ops
    # one norm per AdaIN (the shared one is split), then Sin, Mul(s, s), Add over [C, T];
    # the rest of the Mul/Add work on [1, C, 1] vectors
    assert ops["InstanceNormalization"] == 2 and ops["Sin"] == 1
    big = [n for n in folded.graph.node if n.op_type in ("Mul", "Add") and "adain" not in n.name]
    assert [n.op_type for n in big] == ["Mul", "Add"]


def test_a_float_conv_takes_the_snake_scale_and_a_quantized_one_keeps_its_weights():
    float_conv = _adain_snake_graph(ALPHA)
    fold_snake(float_conv, lambda conv: False)
    conv = next(n for n in float_conv.graph.node if n.op_type == "Conv")
    weight = numpy_helper.to_array(
        next(t for t in float_conv.graph.initializer if t.name == conv.input[1])
    )
    original = numpy_helper.to_array(_adain_snake_graph(ALPHA).graph.initializer[5])
    np.testing.assert_allclose(weight, original / ALPHA.reshape(1, C, 1), rtol=1e-6)

    quantized = _adain_snake_graph(ALPHA)
    fold_snake(quantized, lambda conv: True)
    conv = next(n for n in quantized.graph.node if n.op_type == "Conv")
    assert conv.input[1] == "w"  # the weights an 8-bit quantizer sees are the model's own


def test_a_snake_with_a_zero_alpha_is_left_as_it_is():
    alpha = ALPHA.copy()
    alpha[3] = 0.0
    model = _adain_snake_graph(alpha, inv_alpha=np.ones(C))  # 1/0 is no number
    assert fold_snake(model) == (2, 0)
    assert _ops(model)["Pow"] == 1
