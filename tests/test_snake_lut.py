"""The Snake-as-table rewrite (passes/snake_lut.py) against the graph it replaces:
onnxruntime runs both, so the Sin chain it removes is the oracle."""

from __future__ import annotations

from collections import Counter

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

from publisher.passes.snake_lut import inverse_snake, snake, snake_tables

C, T = 6, 4000
STEP, ZERO = 0.03, 120
# per-channel c: ordinary, large, negative (Snake alpha < 0), zero, tiny, huge
SCALES = np.array([1.0, 2.5, -0.7, 0.0, 1e-3, 40.0], np.float32)


def _quantized_snake_graph(extra_reader: bool = False) -> onnx.ModelProto:
    """What fold-snake and static quantization leave before an 8-bit Conv: AdaIN folded
    into InstanceNormalization's scale and bias (computed from the style at run time),
    ``u + sin(u)^2``, the per-channel ``Mul(c)``, one uint8 QuantizeLinear; the
    DequantizeLinear stands for the QLinearConv that reads it."""
    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(rng.uniform(0.5, 3, C).astype(np.float32), "ns"),
        numpy_helper.from_array(rng.normal(0, 1, C).astype(np.float32), "nb"),
        numpy_helper.from_array(SCALES.reshape(1, C, 1), "c"),
        numpy_helper.from_array(np.array(STEP, np.float32), "step"),
        numpy_helper.from_array(np.array(ZERO, np.uint8), "zero"),
    ]
    nodes = [
        helper.make_node("Mul", ["gain", "ns"], ["scale"], name="/g/scale"),
        helper.make_node("Add", ["nb", "shift"], ["bias"], name="/g/bias"),
        helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["u"], name="/g/norm"),
        helper.make_node("Sin", ["u"], ["s"], name="/g/Sin"),
        helper.make_node("Mul", ["s", "s"], ["s2"], name="/g/square"),
        helper.make_node("Add", ["u", "s2"], ["f"], name="/g/Add"),
        helper.make_node("Mul", ["f", "c"], ["g"], name="/g/Mul"),
        helper.make_node("QuantizeLinear", ["g", "step", "zero"], ["q"], name="/g/Q"),
        helper.make_node("DequantizeLinear", ["q", "step", "zero"], ["y"], name="/g/DQ"),
    ]
    outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, C, T])]
    if extra_reader:  # u read by something else too: the norm must stay, so no rewrite
        nodes.append(helper.make_node("Relu", ["u"], ["r"], name="/g/Relu"))
        outputs.append(helper.make_tensor_value_info("r", TensorProto.FLOAT, [1, C, T]))
    inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, T])] + [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, [C]) for n in ("gain", "shift")
    ]
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def _feeds() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    # growing amplitude: the last samples drive every channel past both saturation points
    x = rng.normal(0, 1, (1, C, T)) * np.linspace(0.1, 5, T)
    return {
        "x": x.astype(np.float32),
        "gain": rng.uniform(0.5, 1.5, C).astype(np.float32),
        "shift": rng.normal(0, 0.5, C).astype(np.float32),
    }


def _run(model: onnx.ModelProto) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, _feeds())


def test_table_gives_the_sin_chains_uint8_levels_within_one_level():
    model = _quantized_snake_graph()
    before = _run(model)[0]
    rewritten = onnx.ModelProto()
    rewritten.CopyFrom(model)

    assert snake_tables(rewritten) == 1
    ops = Counter(n.op_type for n in rewritten.graph.node)
    assert ops["Sin"] == 0 and ops["QuantizeLinear"] == 0 and ops["GatherElements"] == 1
    after = _run(rewritten)[0]
    levels = np.abs(after - before) / STEP
    assert levels.max() < 1.01  # never more than one uint8 level
    assert (levels > 0.5).mean() < 0.05  # and rarely that (bins of a quarter level)
    # saturation at both ends is kept where c is non-zero
    for ch in (0, 1, 2, 5):
        assert np.isclose(before[0, ch].min(), after[0, ch].min())
        assert np.isclose(before[0, ch].max(), after[0, ch].max())


def test_norm_read_elsewhere_is_left_alone():
    model = _quantized_snake_graph(extra_reader=True)
    assert snake_tables(model) == 0
    assert Counter(n.op_type for n in model.graph.node)["Sin"] == 1


def test_inverse_snake_inverts_the_snake():
    targets = np.linspace(-30, 30, 1001)
    u = inverse_snake(targets)
    assert np.allclose(snake(u), targets, atol=1e-9)
