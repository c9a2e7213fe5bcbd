"""publisher.inspect_graph and the ``inspect`` command: counts by (op type, dtype)."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from publisher.cli.inspect import inspect_command
from publisher.inspect_graph import (
    diff_ops,
    format_diff,
    format_table,
    inspect_model,
    to_json,
)
from publisher.runtime.errors import PublisherError

F32 = TensorProto.FLOAT


def _save(tmp_path, name, nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    path = tmp_path / f"{name}.onnx"
    onnx.save(model, str(path))
    return path


def _row(stats, op, dtype):
    matches = [r for r in stats.rows if (r.op_type, r.dtype) == (op, dtype)]
    assert len(matches) == 1, (op, dtype, stats.rows)
    return matches[0]


def _two_matmuls(tmp_path, name="mm"):
    w = numpy_helper.from_array(np.ones((4, 8), np.float32), "W")
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["y1"]),
        helper.make_node("MatMul", ["x", "W"], ["y2"]),
        helper.make_node("Add", ["y1", "y2"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", F32, [1, 4])
    y = helper.make_tensor_value_info("y", F32, [1, 8])
    return _save(tmp_path, name, nodes, [x], [y], [w])


def test_shared_initializer_used_by_two_matmuls_is_counted_once(tmp_path):
    stats = inspect_model(_two_matmuls(tmp_path))
    mm = _row(stats, "MatMul", "float32")
    assert (mm.nodes, mm.params, mm.bytes) == (2, 32, 128)
    add = _row(stats, "Add", "-")
    assert (add.nodes, add.params, add.bytes) == (1, 0, 0)
    assert (stats.totals.nodes, stats.totals.params, stats.totals.bytes) == (3, 32, 128)
    assert stats.opset == 17
    assert [(s.name, s.dtype, s.shape) for s in stats.inputs] == [("x", "float32", "[1, 4]")]


def test_constant_node_value_is_counted_once_in_its_own_row_despite_two_consumers(tmp_path):
    value = numpy_helper.from_array(np.arange(6, dtype=np.float32).reshape(2, 3), "c")
    nodes = [
        helper.make_node("Constant", [], ["c"], value=value),
        helper.make_node("Mul", ["x", "c"], ["m"]),
        helper.make_node("Add", ["m", "c"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", F32, [2, 3])
    y = helper.make_tensor_value_info("y", F32, [2, 3])
    stats = inspect_model(_save(tmp_path, "const", nodes, [x], [y]))
    const = _row(stats, "Constant", "float32")
    assert (const.nodes, const.params, const.bytes) == (1, 6, 24)
    # consumers take the constant's dtype but not its params
    assert (_row(stats, "Mul", "float32").nodes, _row(stats, "Mul", "float32").params) == (1, 0)
    assert (_row(stats, "Add", "float32").nodes, _row(stats, "Add", "float32").params) == (1, 0)
    assert stats.totals.params == 6 and stats.totals.nodes == 3


def test_fp16_conv_weights_make_a_conv_float16_row(tmp_path):
    w = numpy_helper.from_array(np.zeros((8, 3, 3, 3), np.float16), "W")
    b = numpy_helper.from_array(np.zeros((8,), np.float16), "B")
    nodes = [helper.make_node("Conv", ["x", "W", "B"], ["y"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT16, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT16, None)
    stats = inspect_model(_save(tmp_path, "conv", nodes, [x], [y], [w, b]))
    conv = _row(stats, "Conv", "float16")
    assert (conv.nodes, conv.params, conv.bytes) == (1, 8 * 27 + 8, (8 * 27 + 8) * 2)
    assert "| Conv | float16 | 1 | 224 | 0.000 |" in format_table(stats)


def test_node_with_mixed_weight_dtypes_counts_once_under_its_largest_weight(tmp_path):
    data = numpy_helper.from_array(np.zeros((16, 4), np.int8), "q")
    scale = numpy_helper.from_array(np.ones((4,), np.float32), "s")
    nodes = [helper.make_node("DequantizeLinear", ["q", "s"], ["y"], axis=1)]
    y = helper.make_tensor_value_info("y", F32, [16, 4])
    stats = inspect_model(_save(tmp_path, "dq", nodes, [], [y], [data, scale]))
    q = _row(stats, "DequantizeLinear", "int8")
    s = _row(stats, "DequantizeLinear", "float32")
    assert (q.nodes, q.params, q.bytes) == (1, 64, 64)
    assert (s.nodes, s.params, s.bytes) == (0, 4, 16)
    assert stats.totals.nodes == 1


def test_int4_weights_take_half_a_byte_each(tmp_path):
    w = helper.make_tensor("W", TensorProto.INT4, [4, 6], np.zeros(24, np.int8).tolist())
    nodes = [helper.make_node("DequantizeLinear", ["W", "s"], ["y"])]
    s = numpy_helper.from_array(np.array(1.0, np.float32), "s")
    y = helper.make_tensor_value_info("y", F32, [4, 6])
    stats = inspect_model(_save(tmp_path, "int4", nodes, [], [y], [w, s], opset=21))
    row = _row(stats, "DequantizeLinear", "int4")
    assert (row.nodes, row.params, row.bytes) == (1, 24, 12)


def test_loop_body_nodes_and_their_weights_are_counted(tmp_path):
    bias = numpy_helper.from_array(np.ones((5,), np.float32), "bias")
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "bias"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", F32, [5]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", F32, [5]),
        ],
        initializer=[bias],
    )
    trips = numpy_helper.from_array(np.array(3, np.int64), "M")
    cond = numpy_helper.from_array(np.array(True), "cond")
    nodes = [helper.make_node("Loop", ["M", "cond", "x"], ["y"], body=body)]
    x = helper.make_tensor_value_info("x", F32, [5])
    y = helper.make_tensor_value_info("y", F32, [5])
    stats = inspect_model(_save(tmp_path, "loop", nodes, [x], [y], [trips, cond]))
    add = _row(stats, "Add", "float32")
    assert (add.nodes, add.params, add.bytes) == (1, 5, 20)
    assert _row(stats, "Identity", "-").nodes == 1
    assert stats.graphs == 2
    assert stats.totals.nodes == 3
    assert stats.totals.params == 5 + 1 + 1


def test_subgraph_node_consuming_an_outer_initializer_gets_its_params(tmp_path):
    w = numpy_helper.from_array(np.ones((3,), np.float32), "w")
    branch = helper.make_graph(
        [helper.make_node("Mul", ["x", "w"], ["out"])],
        "then",
        [],
        [helper.make_tensor_value_info("out", F32, [3])],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["out2"])],
        "else",
        [],
        [helper.make_tensor_value_info("out2", F32, [3])],
    )
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=other)]
    c = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    x = helper.make_tensor_value_info("x", F32, [3])
    y = helper.make_tensor_value_info("y", F32, [3])
    stats = inspect_model(_save(tmp_path, "if", nodes, [c, x], [y], [w]))
    assert _row(stats, "Mul", "float32").params == 3
    assert _row(stats, "If", "-").nodes == 1
    assert stats.graphs == 3


def test_unconsumed_initializer_still_counts_in_the_totals(tmp_path):
    w = numpy_helper.from_array(np.ones((10,), np.float32), "dead")
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    x = helper.make_tensor_value_info("x", F32, [2])
    y = helper.make_tensor_value_info("y", F32, [2])
    stats = inspect_model(_save(tmp_path, "dead", nodes, [x], [y], [w]))
    unused = _row(stats, "(unused)", "float32")
    assert (unused.nodes, unused.params) == (0, 10)
    assert stats.totals.params == 10


def test_external_data_sizes_come_from_dims_without_reading_the_data(tmp_path):
    w = numpy_helper.from_array(np.ones((256, 64), np.float32), "W")
    nodes = [helper.make_node("MatMul", ["x", "W"], ["y"])]
    x = helper.make_tensor_value_info("x", F32, [1, 256])
    y = helper.make_tensor_value_info("y", F32, [1, 64])
    graph = helper.make_graph(nodes, "ext", [x], [y], initializer=[w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "ext.onnx"
    onnx.save(model, str(path), save_as_external_data=True, location="ext.data", size_threshold=0)
    stats = inspect_model(path)
    (tmp_path / "ext.data").unlink()  # the counts must not depend on the data file
    again = inspect_model(path)
    row = _row(again, "MatMul", "float32")
    assert (row.params, row.bytes) == (256 * 64, 256 * 64 * 4)
    assert stats.external_data and stats.file_bytes > 256 * 64 * 4
    assert again.file_bytes < 256 * 64 * 4


def _matmul_integer_model(tmp_path):
    w = numpy_helper.from_array(np.ones((4, 8), np.int8), "W")
    nodes = [
        helper.make_node("MatMulInteger", ["x", "W"], ["y1"]),
        helper.make_node("MatMulInteger", ["x", "W"], ["y2"]),
        helper.make_node("Add", ["y1", "y2"], ["y"]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.INT8, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.INT32, [1, 8])
    return _save(tmp_path, "mmi", nodes, [x], [y], [w])


def test_op_diff_lists_only_changed_ops_by_largest_delta(tmp_path):
    a = inspect_model(_two_matmuls(tmp_path))
    b = inspect_model(_matmul_integer_model(tmp_path))
    assert _row(b, "MatMulInteger", "int8").params == 32
    rows = diff_ops(a, b)
    assert rows == [("MatMul", 2, 0, -2), ("MatMulInteger", 0, 2, 2)]
    text = format_diff(a, b, rows)
    assert "| MatMul | 2 | 0 | -2 |" in text
    assert "| MatMulInteger | 0 | 2 | +2 |" in text
    assert diff_ops(a, a) == []
    assert "no op-count differences" in format_diff(a, a, [])


@pytest.mark.parametrize("content", [b"\xff\xfe not a protobuf at all \x00\x01", b""])
def test_invalid_file_raises_a_one_line_publisher_error(tmp_path, content):
    path = tmp_path / "bad.onnx"
    path.write_bytes(content)
    with pytest.raises(PublisherError) as info:
        inspect_model(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}: not an ONNX model (") and msg.endswith(")")
    assert "\n" not in msg


def test_cli_prints_the_markdown_table(tmp_path):
    path = _two_matmuls(tmp_path)
    result = CliRunner().invoke(inspect_command, [str(path)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "| op | dtype | nodes | params | MiB |"
    assert lines[2] == "| MatMul | float32 | 2 | 32 | 0.000 |"
    assert "| **total** | | 3 | 32 | 0.000 |" in lines
    assert "opset 17" in result.output and "x: float32[1, 4]" in result.output


def test_cli_json_is_machine_readable(tmp_path):
    path = _two_matmuls(tmp_path)
    result = CliRunner().invoke(inspect_command, [str(path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["totals"] == {"nodes": 3, "params": 32, "bytes": 128}
    assert {"op_type": "MatMul", "dtype": "float32", "nodes": 2, "params": 32, "bytes": 128} in (
        data["rows"]
    )
    assert json.loads(to_json(inspect_model(path))) == data


def test_cli_with_two_models_shows_the_op_diff_as_text_and_json(tmp_path):
    a, b = _two_matmuls(tmp_path), _matmul_integer_model(tmp_path)
    text = CliRunner().invoke(inspect_command, [str(a), str(b)])
    assert text.exit_code == 0, text.output
    assert "| op | a | b | delta |" in text.output
    assert "| MatMulInteger | 0 | 2 | +2 |" in text.output
    out = CliRunner().invoke(inspect_command, [str(a), str(b), "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["diff"][0] == {"op": "MatMul", "a": 2, "b": 0, "delta": -2}
    assert data["b"]["totals"]["params"] == 32


def test_cli_invalid_file_raises_publisher_error_for_the_group_to_report(tmp_path):
    path = tmp_path / "bad.onnx"
    path.write_text("definitely not onnx\n")
    result = CliRunner().invoke(inspect_command, [str(path)])
    assert result.exit_code != 0
    assert isinstance(result.exception, PublisherError)
    assert "not an ONNX model" in str(result.exception)


def _weight_elements(graph) -> int:
    """Initializer + Constant value elements over every graph, via numpy_helper."""
    total = 0
    for t in graph.initializer:
        total += numpy_helper.to_array(t).size
    for node in graph.node:
        for a in node.attribute:
            if node.op_type == "Constant" and a.name == "value":
                total += numpy_helper.to_array(a.t).size
            elif node.op_type == "Constant" and a.name in ("value_floats", "value_ints"):
                total += len(a.floats) + len(a.ints)
            elif node.op_type == "Constant" and a.name in ("value_float", "value_int"):
                total += 1
            elif a.type == onnx.AttributeProto.GRAPH:
                total += _weight_elements(a.g)
            elif a.type == onnx.AttributeProto.GRAPHS:
                total += sum(_weight_elements(g) for g in a.graphs)
    return total


def _node_count(graph) -> int:
    total = len(graph.node)
    for node in graph.node:
        for a in node.attribute:
            total += _node_count(a.g) if a.type == onnx.AttributeProto.GRAPH else 0
            if a.type == onnx.AttributeProto.GRAPHS:
                total += sum(_node_count(g) for g in a.graphs)
    return total


def test_tiny_kokoro_export_totals_match_its_weights(tiny):
    from publisher.export.fp32 import export_fp32
    from publisher.recipe.loader import load_recipe

    path = export_fp32(tiny, load_recipe("fp32"))
    stats = inspect_model(path)
    expected = _weight_elements(onnx.load(str(path)).graph)
    assert abs(stats.totals.params - expected) <= 0.01 * expected
    assert stats.totals.params > 1e6
    assert stats.totals.nodes == _node_count(onnx.load(str(path)).graph)
    assert [s.name for s in stats.inputs] == ["input_ids", "style", "speed"]
    table = format_table(stats)
    assert table.splitlines()[0] == "| op | dtype | nodes | params | MiB |"
