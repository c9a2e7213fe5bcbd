"""The precision family built from synthetic:tiny: every recipe passes its gates, and each
file holds the conversion its recipe asks for (and not more)."""

from __future__ import annotations

import fnmatch
from collections import Counter
from pathlib import Path

import onnx
import pytest

from publisher.onnx_edit import all_graphs

FLOAT, FLOAT16, INT8, UINT8, INT64 = (
    onnx.TensorProto.FLOAT,
    onnx.TensorProto.FLOAT16,
    onnx.TensorProto.INT8,
    onnx.TensorProto.UINT8,
    onnx.TensorProto.INT64,
)
# quantized: tiny_dist
BUILT_HERE = ("fp16", "q8f16", "uint8", "uint8f16", "q4", "q4f16", "cpu-int8")
F16_RECIPES = ("fp16", "q8f16", "uint8f16", "q4f16")
CONV_POST = "/decoder/generator/conv_post/Conv"


@pytest.fixture(scope="module")
def variants(tmp_path_factory, tiny_dist) -> dict[str, Path]:
    """recipe name -> built folder (the recipes of the repository, synthetic:tiny)."""
    from publisher.build import build
    from publisher.recipe.loader import load_recipe

    out = tmp_path_factory.mktemp("precision")
    folders = {name: build(load_recipe(name), "synthetic:tiny", out).folder for name in BUILT_HERE}
    return {**folders, "quantized": tiny_dist / "quantized", "fp32": tiny_dist / "fp32"}


def _model(folder: Path) -> onnx.ModelProto:
    from publisher.manifest import read_manifest

    return onnx.load(str(folder / read_manifest(folder).model))


def _ops(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for g in all_graphs(model.graph) for n in g.node)


def _inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for g in all_graphs(model.graph) for t in g.initializer}


def _node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def _io_types(model: onnx.ModelProto) -> list[tuple[str, int]]:
    io = (*model.graph.input, *model.graph.output)
    return [(v.name, v.type.tensor_type.elem_type) for v in io]


def _out_of_order(graph: onnx.GraphProto) -> list[str]:
    """Nodes that read a tensor of this graph before the node producing it."""
    produced = {o for n in graph.node for o in n.output}
    seen: set[str] = set()
    late = []
    for n in graph.node:
        if any(i in produced and i not in seen for i in n.input):
            late.append(n.name)
        seen.update(n.output)
    return late


@pytest.mark.parametrize("name", [*BUILT_HERE, "quantized"])
def test_every_precision_recipe_builds_on_tiny_passes_its_gates_and_keeps_the_io(name, variants):
    from publisher.manifest import read_manifest

    manifest = read_manifest(variants[name])
    assert manifest.verification.passed is True
    gates = {g.gate for g in manifest.verification.gates}
    assert {"spectral_correlation", "duration_agreement", "shipped_graph_runs"} <= gates
    assert _io_types(_model(variants[name])) == [
        ("input_ids", INT64),
        ("style", FLOAT),
        ("speed", FLOAT),
        ("waveform", FLOAT),
        ("duration", INT64),
    ]


@pytest.mark.parametrize("name", [*BUILT_HERE, "quantized", "fp32"])
def test_every_variant_is_topologically_sorted_and_passes_the_onnx_checker(name, variants):
    model = _model(variants[name])
    onnx.checker.check_model(model)  # raises on a node before its producer
    assert {g.name: _out_of_order(g) for g in all_graphs(model.graph) if _out_of_order(g)} == {}


def _round_trip_casts(graph: onnx.GraphProto) -> list[str]:
    """Cast(A -> B) whose only consumer is Cast(B -> A): a pair that does nothing but round.
    The source type is read from the graph's inputs, initializers and value_info."""
    types = {v.name: v.type.tensor_type.elem_type for v in [*graph.input, *graph.value_info]}
    types |= {t.name: t.data_type for t in graph.initializer}
    producers = {o: n for n in graph.node for o in n.output}
    uses = Counter(i for n in graph.node for i in n.input)
    pairs = []
    for second in graph.node:
        first = producers.get(second.input[0]) if second.op_type == "Cast" else None
        if first is None or first.op_type != "Cast" or uses[first.output[0]] != 1:
            continue
        back_to = next(a.i for a in second.attribute if a.name == "to")
        source = types.get(first.input[0])
        if source is None:  # a Cast of a Cast's output: its own "to"
            prev = producers.get(first.input[0])
            if prev is not None and prev.op_type == "Cast":
                source = next(a.i for a in prev.attribute if a.name == "to")
        if source == back_to:
            pairs.append(f"{first.name} -> {second.name}")
    return pairs


@pytest.mark.parametrize("name", F16_RECIPES)
def test_float16_variants_hold_no_duplicate_or_round_trip_casts(name, variants):
    model = _model(variants[name])
    outputs = Counter(o for g in all_graphs(model.graph) for n in g.node for o in n.output)
    assert [o for o, k in outputs.items() if k > 1] == []
    typed = onnx.shape_inference.infer_shapes(model)  # the shipped file carries no types
    assert [p for g in all_graphs(typed.graph) for p in _round_trip_casts(g)] == []


def _cast(name: str, src: str, dst: str, to: int) -> onnx.NodeProto:
    return onnx.helper.make_node("Cast", [src], [dst], name=name, to=to)


def test_cast_cleanup_removes_exactly_the_known_round_trips_and_duplicates():
    """x(float) -> Cast16 -> Cast32 -> Relu: one round trip; x -> Cast16 twice (same output
    name, as the float16 converter writes them): one duplicate; x -> Cast16 -> Sqrt -> Cast32
    is real work and stays."""
    from onnx import TensorProto, helper

    from publisher.passes.fp16 import dedupe_casts, remove_cast_pairs

    nodes = [
        _cast("c1", "x", "x16", TensorProto.FLOAT16),
        _cast("c2", "x16", "x32", TensorProto.FLOAT),
        helper.make_node("Relu", ["x32"], ["r"], name="relu"),
        _cast("d1", "x", "x16b", TensorProto.FLOAT16),
        _cast("d1", "x", "x16b", TensorProto.FLOAT16),
        helper.make_node("Sqrt", ["x16b"], ["s16"], name="sqrt"),
        _cast("e1", "s16", "s", TensorProto.FLOAT),
    ]
    f32 = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4]) for n in ("x", "r", "s")]
    model = helper.make_model(helper.make_graph(nodes, "g", f32[:1], f32[1:]))
    assert _round_trip_casts(model.graph) == ["c1 -> c2"]  # the checker sees the known pair
    assert dedupe_casts(model) == 1
    assert remove_cast_pairs(model) == 1
    assert [n.name for n in model.graph.node] == ["relu", "d1", "sqrt", "e1"]
    assert model.graph.node[0].input[0] == "x"  # Relu reads x directly now
    assert _round_trip_casts(model.graph) == []


def test_fp16_stores_weights_in_float16_but_keeps_the_harmonic_source_float32(variants):
    model = _model(variants["fp16"])
    inits = _inits(model)
    kinds = Counter(t.data_type for t in inits.values())
    assert kinds[FLOAT16] > 10 * kinds[FLOAT]  # nearly every float weight converted
    source = [n for n in model.graph.node if fnmatch.fnmatchcase(n.name, "*/m_source/*")]
    weights = {inits[i].data_type for n in source for i in n.input if i in inits}
    assert FLOAT in weights and FLOAT16 not in weights
    assert inits[_node(model, CONV_POST).input[1]].data_type == FLOAT16


def test_dynamic_int8_converts_matmul_conv_and_lstm_but_not_the_excluded_nodes(variants):
    model = _model(variants["quantized"])
    ops = _ops(model)
    assert ops["ConvInteger"] > 0 and ops["MatMulInteger"] > 0 and ops["DynamicQuantizeLSTM"] > 0
    assert ops["LSTM"] == 0
    inits = _inits(model)
    conv_weights = Counter(
        inits[n.input[1]].data_type for n in model.graph.node if n.op_type == "ConvInteger"
    )
    assert set(conv_weights) == {UINT8}  # Conv takes uint8 weights (runtime support)
    for name in (CONV_POST, "/decoder/generator/analysis/Conv"):
        node = _node(model, name)
        assert node.op_type == "Conv" and inits[node.input[1]].data_type == FLOAT


def test_static_uint8_is_qdq_with_uint8_activations_int8_weights_and_conv_post_float(variants):
    model = _model(variants["uint8"])
    inits = _inits(model)
    q = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    assert q and {inits[n.input[2]].data_type for n in q} == {UINT8}
    weight_of = {n.input[1] for n in model.graph.node if n.op_type in ("Conv", "MatMul", "Gemm")}
    weights = [
        n
        for n in model.graph.node
        if n.op_type == "DequantizeLinear" and n.output[0] in weight_of and n.input[0] in inits
    ]
    assert weights and {inits[n.input[0]].data_type for n in weights} == {INT8}
    post = _node(model, CONV_POST)
    assert inits[post.input[1]].data_type == FLOAT  # a plain float weight, no DequantizeLinear


def test_cpu_int8_quantizes_decoder_convs_only_with_the_snakes_as_tables(variants):
    from publisher.manifest import read_manifest

    model = _model(variants["cpu-int8"])
    inits = _inits(model)
    dq_of = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    int8 = [n.name for n in convs if n.input[1] in dq_of]
    float_ = [n.name for n in convs if n.input[1] in inits]
    assert int8 and all(name.startswith("/decoder/") for name in int8)
    assert any(name.startswith("/text_encoder/") for name in float_)  # the text side is float
    assert CONV_POST in float_ and "/decoder/generator/analysis/Conv" in float_
    # every Snake folded, and each (all feed 8-bit Convs) read from a table: no Pow or Sin
    # left in the residual blocks, and the manifest says how many
    blocks = ("/decoder/generator/resblocks", "/decoder/generator/noise_res")
    in_blocks = Counter(n.op_type for n in model.graph.node if n.name.startswith(blocks))
    assert in_blocks["Pow"] == 0 and in_blocks["Sin"] == 0
    assert in_blocks["GatherElements"] == 48
    notes = read_manifest(variants["cpu-int8"]).passes["notes"]
    assert notes["folded"]["snake"] == 48 and notes["folded"]["adain"] > 48
    assert notes["snake_tables"] == 48


@pytest.mark.parametrize("name", ["q4", "q4f16"])
def test_int4_uses_4bit_blocks_and_keeps_the_duration_path_float(name, variants):
    from publisher.recipe.loader import load_recipe

    model = _model(variants[name])
    q = load_recipe(name).precision.quantize
    nbits = [n for n in model.graph.node if n.op_type == "MatMulNBits"]
    assert nbits
    for n in nbits:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
        assert (attrs["bits"], attrs["block_size"]) == (4, q.block_size)
        assert not any(fnmatch.fnmatchcase(n.name, p) for p in q.exclude), n.name
    kept = [n for n in model.graph.node if n.op_type == "MatMul" and n.name.startswith("/bert/")]
    assert kept  # the excluded text side still has float MatMuls


def test_q8f16_combines_int8_weights_with_float16_for_the_rest(variants):
    model = _model(variants["q8f16"])
    assert _ops(model)["ConvInteger"] > 0
    assert Counter(t.data_type for t in _inits(model).values())[FLOAT16] > 0
    size = {n: _model(variants[n]).ByteSize() for n in ("q8f16", "quantized")}
    assert size["q8f16"] < size["quantized"]


@pytest.mark.parametrize("name", ["quantized", "uint8", "fp16"])
def test_shipped_files_carry_no_shape_hints(name, variants):
    """strip-shapes runs after every pass that writes value_info (the quantizers, the fp16
    converter, onnx_ir's sort): 60-250 KB of hints nobody needs."""
    model = _model(variants[name])
    assert sum(len(g.value_info) for g in all_graphs(model.graph)) == 0
