from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from publisher.onnx_edit import set_metadata
from publisher.passes import FINAL_PASSES, PASSES, PassContext
from publisher.passes.io_names import rename_tensors
from publisher.runtime.errors import PublisherError


def _tiny_graph_with_loop() -> onnx.ModelProto:
    """x -> Identity -> y, plus a Loop whose body reads the outer x."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["body_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("body_out", TensorProto.FLOAT, [1]),
        ],
    )
    body.node.append(helper.make_node("Identity", ["c"], ["c_out"]))
    nodes = [
        helper.make_node("Identity", ["x"], ["y"]),
        helper.make_node("Loop", ["n", "cond"], ["scan"], body=body),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("n", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, [1]),
            helper.make_tensor_value_info("scan", TensorProto.FLOAT, [None, 1]),
        ],
    )
    return helper.make_model(graph)


def test_every_registered_pass_resolves_to_a_function_with_the_pass_signature():
    import inspect

    assert set(FINAL_PASSES) <= set(PASSES)
    for name, spec in PASSES.items():
        fn = spec.load()
        assert list(inspect.signature(fn).parameters) == ["model", "recipe", "ctx"], name


def _matmul_graph() -> onnx.ModelProto:
    """x [1, 16] @ W [16, 16] with W skewed positive, so only an asymmetric int8 range
    needs a non-zero zero point."""
    w = np.random.default_rng(0).uniform(-0.2, 1.0, (16, 16)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"], name="mm")],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        [numpy_helper.from_array(w, "W")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("symmetric", [True, False])
def test_the_dynamic_quantizer_honours_symmetric(tmp_path, symmetric):
    from publisher.passes.quantize import quantize_dynamic_pass
    from publisher.recipe.loader import load_recipe

    path = tmp_path / "q.yaml"
    path.write_text(
        'description: "int8"\nprecision:\n  quantize:\n    type: dynamic\n'
        f"    symmetric: {str(symmetric).lower()}\npasses: [quantize-dynamic]\n"
    )
    out = quantize_dynamic_pass(_matmul_graph(), load_recipe(path), PassContext(config={}))
    inits = {t.name: numpy_helper.to_array(t) for t in out.graph.initializer}
    zero_point = inits["W_zero_point"]
    assert zero_point.dtype == np.int8
    assert (int(zero_point) == 0) == symmetric  # measured: -86 when asymmetric


def _two_matmul_graph() -> onnx.ModelProto:
    """x [1, 4, 16] -> /bert/layer/MatMul (W1) -> /decoder/MatMul (W2) -> y, plus an
    activation-by-activation MatMul (no weight) under /bert."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), n)
        for n in ("W1", "W2")
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="/bert/layer/MatMul"),
        helper.make_node("Transpose", ["h"], ["ht"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["h", "ht"], ["a"], name="/bert/layer/scores/MatMul"),
        helper.make_node("MatMul", ["a", "h"], ["ah"], name="/bert/layer/mix/MatMul"),
        helper.make_node("MatMul", ["ah", "W2"], ["y"], name="/decoder/MatMul"),
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 16])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=9)


def _cpu_int8_with(**update):
    from publisher.recipe.loader import load_recipe

    recipe = load_recipe("cpu-int8")
    q = recipe.precision.quantize.model_copy(update=update)
    return recipe.model_copy(
        update={"precision": recipe.precision.model_copy(update={"quantize": q})}
    )


def test_dynamic_include_quantizes_only_the_matching_weight_matmuls_at_run_time():
    import onnxruntime as ort

    from publisher.passes.quantize import dynamic_matmuls

    model = _two_matmul_graph()
    x = np.random.default_rng(2).standard_normal((1, 4, 16)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]

    out = dynamic_matmuls(model, _cpu_int8_with(dynamic_include=("/bert/*",)))

    ops = {n.name: n.op_type for n in out.graph.node}
    # the weight MatMul under /bert is now integer (activations quantized per run) ...
    assert "DynamicQuantizeLinear" in ops.values()
    assert "MatMulInteger" in ops.values() or "DynamicQuantizeMatMul" in ops.values()
    assert "/bert/layer/MatMul" not in ops
    # ... while activation-by-activation MatMuls and the ones outside the globs stay float
    assert ops["/bert/layer/scores/MatMul"] == ops["/decoder/MatMul"] == "MatMul"
    got = ort.InferenceSession(out.SerializeToString()).run(None, {"x": x})[0]
    assert np.abs(got - want).max() < 0.05 * np.abs(want).max()


def test_dynamic_include_that_matches_nothing_names_the_globs():
    from publisher.passes.quantize import dynamic_matmuls

    with pytest.raises(PublisherError, match=r"dynamic_include \['/albert/\*'\] matches no"):
        dynamic_matmuls(_two_matmul_graph(), _cpu_int8_with(dynamic_include=("/albert/*",)))


def test_rename_reaches_into_loop_subgraphs():
    model = rename_tensors(_tiny_graph_with_loop(), {"x": "tokens", "y": "audio"})
    assert model.graph.input[0].name == "tokens"
    assert model.graph.output[0].name == "audio"
    body = model.graph.node[1].attribute[0].g
    assert body.node[0].input[0] == "tokens"
    onnx.checker.check_model(model)


def test_rename_refuses_a_name_the_graph_does_not_have():
    with pytest.raises(PublisherError, match=r"no graph input or output named 'input_ids'"):
        rename_tensors(_tiny_graph_with_loop(), {"input_ids": "tokens"})


def test_rename_refuses_a_name_already_in_use():
    with pytest.raises(PublisherError, match=r"cannot rename to 'n': name already used"):
        rename_tensors(_tiny_graph_with_loop(), {"x": "n"})


def test_metadata_replaces_given_keys_and_keeps_the_rest():
    model = _tiny_graph_with_loop()
    set_metadata(model, {"a": "1", "b": "2"})
    set_metadata(model, {"b": "3"})
    assert {p.key: p.value for p in model.metadata_props} == {"a": "1", "b": "3"}


def test_topological_sort_puts_producers_first_including_tensors_a_loop_body_reads():
    from publisher.passes.order import topological_sort

    model = _tiny_graph_with_loop()
    loop = model.graph.node[1]
    loop.attribute[0].g.node[0].input[0] = "y"  # the body now reads y, made by Identity
    model.graph.output.append(helper.make_tensor_value_info("z", TensorProto.FLOAT, [1]))
    late = [helper.make_node("Neg", ["y"], ["z"], name="neg"), loop]
    nodes = [onnx.NodeProto() for _ in late]
    for new, old in zip(nodes, late, strict=True):
        new.CopyFrom(old)
    identity = onnx.NodeProto()
    identity.CopyFrom(model.graph.node[0])
    del model.graph.node[:]
    model.graph.node.extend([*nodes, identity])  # Neg and Loop before y's producer
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(model)

    model, moved = topological_sort(model)
    onnx.checker.check_model(model)
    assert [n.op_type for n in model.graph.node] == ["Identity", "Neg", "Loop"]
    assert moved == 3
    assert topological_sort(model)[1] == 0  # already sorted: nothing moves


def test_in_order_sees_a_loop_body_reading_an_outer_tensor_made_after_the_loop():
    from publisher.passes.order import in_order

    model = _tiny_graph_with_loop()
    assert in_order(model.graph)  # the body reads x, a graph input
    loop = model.graph.node[1]
    loop.attribute[0].g.node[0].input[0] = "late"  # now a tensor made after the Loop
    model.graph.node.append(helper.make_node("Identity", ["x"], ["late"]))
    assert not in_order(model.graph)
    swapped = [onnx.NodeProto() for _ in range(3)]
    for new, old in zip(swapped, [model.graph.node[0], model.graph.node[2], loop], strict=True):
        new.CopyFrom(old)
    del model.graph.node[:]
    model.graph.node.extend(swapped)
    assert in_order(model.graph)
