"""Candidates, fake conversions and the switched graph behind ``publisher sensitivity``.

* ``find_candidates``: the main-graph nodes a recipe's precision section would convert,
  minus its exclude globs. For ``quantize.type: dynamic`` the rules are those of
  ``onnxruntime.quantization.quantize_dynamic`` (measured on the parity graph: it converts
  exactly Conv, Gemm, MatMul with an initializer B, and LSTM; ConvTranspose is left float).
* ``sensitivity_fakequant.weight_delta``: ``fake(W) - W`` in numpy, equal to what the real
  quantizer stores (see that module).
* ``instrument``: every candidate node N becomes ``If(switches[i] != 0)``: the ``then``
  branch runs N on ``W + s_i * D`` (and on a fake-quantized activation, for the kinds that
  quantize activations), the ``else`` branch runs N unchanged. With every switch 0 the graph
  computes exactly the original nodes, and an unswitched node costs no extra arithmetic.

``quantize.type: static`` is approximated: same weights, but the activation is rounded with
its own dynamic range (no calibration); ``--validate`` covers the dynamic type only.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from publisher.runtime.errors import BuildError
from publisher.sensitivity.fakequant import attr, bytes_after, numel, weight_delta

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from publisher.recipe.schema import Recipe

SWITCHES = "sensitivity_switches"
FP16_OPS = (
    "Conv",
    "ConvTranspose",
    "Gemm",
    "MatMul",
    "LSTM",
    "LayerNormalization",
    "InstanceNormalization",
)


@dataclass
class Candidate:
    """One node the recipe would convert; ``weights`` and ``acts`` are input indices,
    ``weight_names`` the initializers behind ``weights``."""

    name: str
    op_type: str
    index: int  # position in graph.node
    weights: tuple[int, ...]
    acts: tuple[int, ...]
    params: int = 0
    bytes_now: int = 0
    bytes_after: int = 0
    weight_names: tuple[str, ...] = field(default=())


def conversion(recipe: Recipe) -> str:
    """What the recipe converts: dynamic | static | int4 | fp16; else a PublisherError."""
    q, f = recipe.precision.quantize, recipe.precision.fp16
    if q.type != "none":
        return q.type
    if f.mode != "none":
        return "fp16"
    raise BuildError(
        f"recipe {recipe.name}: nothing to rank, it converts no nodes "
        "(set precision.quantize.type or precision.fp16.mode)"
    )


def _float_inits(model: onnx.ModelProto) -> dict[str, onnx.TensorProto]:
    import onnx

    return {t.name: t for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}


def _float_values(model: onnx.ModelProto) -> set[str]:
    """Names of the float32 tensors of the main graph (after onnx type inference)."""
    import onnx

    typed = onnx.shape_inference.infer_shapes(model)
    values = [*typed.graph.input, *typed.graph.value_info, *typed.graph.output]
    return {v.name for v in values if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT}


def _rule(
    node: onnx.NodeProto, kind: str, inits: dict, floats: set[str]
) -> tuple[tuple, tuple] | None:
    """(weight input indices, activation input indices) when ``kind`` converts ``node``."""
    ins = list(node.input)
    has = [bool(x) and x in inits for x in ins]
    op = node.op_type
    gemm_ok = op == "Gemm" and len(ins) > 1 and has[1]
    gemm_ok = gemm_ok and attr(node, "alpha", 1.0) == 1.0 and attr(node, "beta", 1.0) == 1.0
    gemm_ok = gemm_ok and attr(node, "transA", 0) == 0
    if kind in ("dynamic", "static"):
        if (op in ("Conv", "MatMul") and len(ins) > 1 and has[1] and not has[0]) or gemm_ok:
            return (1,), (0,)
        if kind == "dynamic" and op == "LSTM" and len(ins) > 2 and has[1] and has[2]:
            return (1, 2), (0,)
        return None
    if kind == "int4":
        two_d = len(ins) > 1 and has[1] and len(inits[ins[1]].dims) == 2
        return ((1,), ()) if (op == "MatMul" or gemm_ok) and two_d else None
    if op in FP16_OPS or any(has):
        weights = tuple(i for i, h in enumerate(has) if h and numel(inits[ins[i]]) > 1)
        acts = tuple(i for i, x in enumerate(ins) if x in floats and not has[i])
        return (weights, acts) if weights else None
    return None


def _is_alias(node: onnx.NodeProto, inits: dict) -> bool:
    return node.op_type == "Identity" and node.input[0] in inits


def find_candidates(model: onnx.ModelProto, recipe: Recipe) -> list[Candidate]:
    """Main-graph nodes the recipe would convert, minus exclude globs, in graph order."""
    kind = conversion(recipe)
    q, f = recipe.precision.quantize, recipe.precision.fp16
    skip = list(q.exclude) + (list(f.block_names) if kind == "fp16" else [])
    op_types = set(getattr(q, "op_types", ()) or ()) if kind != "fp16" else set()
    inits = _float_inits(model)
    alias: dict[str, str] = {}
    floats = _float_values(model) if kind == "fp16" else set()
    if kind == "fp16":  # the exporter shares equal weights as Identity(initializer)
        alias = {n.output[0]: n.input[0] for n in model.graph.node if _is_alias(n, inits)}
        inits = {**inits, **{a: inits[src] for a, src in alias.items()}}
    out = []
    for index, node in enumerate(model.graph.node):
        if any(fnmatch.fnmatchcase(node.name, p) for p in skip):
            continue
        if kind == "fp16" and (
            node.op_type in f.block_ops
            or node.op_type == "Identity"
            or (f.mode == "decoder-only" and not node.name.startswith("/decoder/"))
        ):
            continue
        if op_types and node.op_type not in op_types:
            continue
        rule = _rule(node, kind, inits, floats)
        if rule is None:
            continue
        names = tuple(alias.get(node.input[i], node.input[i]) for i in rule[0])
        cand = Candidate(node.name, node.op_type, index, rule[0], rule[1], weight_names=names)
        cand.params = sum(numel(inits[n]) for n in names)
        cand.bytes_now = 4 * cand.params
        cand.bytes_after = sum(bytes_after(inits[n], node, kind, recipe) for n in names)
        out.append(cand)
    return out


def _act_nodes(kind: str, x: str, s: str, p: str) -> tuple[list, str]:
    """Nodes computing ``x + s * (fake(x) - x)`` (named under prefix ``p``); their output."""
    from onnx import TensorProto, helper

    if kind == "fp16":
        fake = [
            helper.make_node("Cast", [x], [f"{p}/h"], to=TensorProto.FLOAT16),
            helper.make_node("Cast", [f"{p}/h"], [f"{p}/fq"], to=TensorProto.FLOAT),
        ]
    else:  # what quantize_dynamic inserts: DynamicQuantizeLinear -> uint8, scale, zp
        fake = [
            helper.make_node("DynamicQuantizeLinear", [x], [f"{p}/q", f"{p}/sc", f"{p}/zp"]),
            helper.make_node("DequantizeLinear", [f"{p}/q", f"{p}/sc", f"{p}/zp"], [f"{p}/fq"]),
        ]
    return [
        *fake,
        helper.make_node("Sub", [f"{p}/fq", x], [f"{p}/d"]),
        helper.make_node("Mul", [s, f"{p}/d"], [f"{p}/sd"]),
        helper.make_node("Add", [x, f"{p}/sd"], [f"{p}/out"]),
    ], f"{p}/out"


def _branches(node: onnx.NodeProto, p: str, then_nodes: list, then_inputs: list) -> dict:
    """then/else subgraphs of the If replacing ``node``: the node on ``then_inputs`` after
    ``then_nodes``, or the node as it is; outputs renamed inside, the If takes the names."""
    import onnx
    from onnx import TensorProto, helper

    graphs = {}
    for tag, ins in (("then", then_inputs), ("else", list(node.input))):
        copy = onnx.NodeProto()
        copy.CopyFrom(node)
        copy.name = f"{node.name}/{tag}"
        del copy.input[:]
        copy.input.extend(ins)
        del copy.output[:]
        copy.output.extend(f"{o}/{p}/{tag}" if o else "" for o in node.output)
        body = (then_nodes if tag == "then" else []) + [copy]
        values = [
            helper.make_tensor_value_info(f"{o}/{p}/{tag}", TensorProto.FLOAT, None)
            for o in node.output
            if o
        ]
        graphs[f"{tag}_branch"] = helper.make_graph(body, f"{p}/{tag}", [], values)
    return graphs


def _shared_weight(weight: str, out: str, members: list[int], delta: str) -> tuple[list, list]:
    """Nodes giving ``out`` = ``weight + max(switches[members]) * delta`` (else ``weight``)."""
    from onnx import TensorProto, helper, numpy_helper

    p = f"{out}/"
    index = numpy_helper.from_array(_int64(members), f"{p}index")
    then = helper.make_graph(
        [
            helper.make_node("Mul", [f"{p}s", delta], [f"{p}sd"]),
            helper.make_node("Add", [weight, f"{p}sd"], [f"{p}then"]),
        ],
        f"{p}then",
        [],
        [helper.make_tensor_value_info(f"{p}then", TensorProto.FLOAT, None)],
    )
    other = helper.make_graph(
        [helper.make_node("Identity", [weight], [f"{p}else"])],
        f"{p}else",
        [],
        [helper.make_tensor_value_info(f"{p}else", TensorProto.FLOAT, None)],
    )
    nodes = [
        helper.make_node("Gather", [SWITCHES, f"{p}index"], [f"{p}all"]),
        helper.make_node("ReduceMax", [f"{p}all"], [f"{p}s"], keepdims=0),
        helper.make_node("Cast", [f"{p}s"], [f"{p}on"], to=TensorProto.BOOL),
        helper.make_node("If", [f"{p}on"], [out], f"{p}if", then_branch=then, else_branch=other),
    ]
    return nodes, [index]


def instrument(model: onnx.ModelProto, cands: list[Candidate], recipe: Recipe) -> onnx.ModelProto:
    """A copy of ``model`` with input ``sensitivity_switches`` [K]: switch i converts node i.

    A weight read by several nodes (ALBERT's shared layers) is stored once by the real
    quantizer. Quantizing reader k alone (measured with onnxruntime 1.31): when any reader
    after k stays float, the float weight is replaced by DequantizeLinear(int8) for EVERY
    unquantized reader, earlier ones included; when k is the last reader, the others keep
    the float weight. So each reader of a shared weight reads its own switched copy: on
    for its own switch, and for the switch of any candidate reader that is not the last
    reader. The node's own If then only rounds its activation."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    kind = conversion(recipe)
    out = onnx.ModelProto()
    out.CopyFrom(model)
    g = out.graph
    arrays = {t.name: t for t in g.initializer}
    g.input.append(helper.make_tensor_value_info(SWITCHES, TensorProto.FLOAT, [len(cands)]))
    readers: dict[str, list[int]] = {}
    for index, node in enumerate(g.node):
        for x in dict.fromkeys(node.input):
            if x in arrays:
                readers.setdefault(x, []).append(index)
    shared: dict[str, list[int]] = {}
    for i, c in enumerate(cands):
        for w in dict.fromkeys(c.weight_names):
            if len(readers.get(w, ())) > 1:
                shared.setdefault(w, []).append(i)
    position = {i: cands[i].index for members in shared.values() for i in members}
    last = {w: max(readers[w]) for w in shared}
    by_index = {c.index: (i, c) for i, c in enumerate(cands)}
    nodes, extra, deltas = [], [], {}

    def delta_of(weight: str, node: onnx.NodeProto) -> str:
        key = (weight, node.op_type, attr(node, "transB", 0))
        if key not in deltas:
            deltas[key] = f"sensitivity/delta/{len(deltas)}"
            w = numpy_helper.to_array(arrays[weight])
            extra.append(numpy_helper.from_array(weight_delta(w, node, kind, recipe), deltas[key]))
        return deltas[key]

    for index, node in enumerate(g.node):
        rename = {}
        for w in (x for x in dict.fromkeys(node.input) if x in shared):
            members = [i for i in shared[w] if position[i] == index or position[i] != last[w]]
            if members:
                rename[w] = f"{w}/sensitivity/{index}"
                first = g.node[position[members[0]]]
                made, inits = _shared_weight(w, rename[w], members, delta_of(w, first))
                nodes += made
                extra += inits
        if rename:
            node = _with_inputs(node, [rename.get(x, x) for x in node.input])
        if index not in by_index:
            nodes.append(node)
            continue
        i, c = by_index[index]
        p, s = f"sensitivity/{i}", f"sensitivity/{i}/s"
        extra.append(numpy_helper.from_array(_int64(i), f"{p}/index"))
        nodes.append(helper.make_node("Gather", [SWITCHES, f"{p}/index"], [s], f"{p}/gather"))
        nodes.append(helper.make_node("Cast", [s], [f"{p}/on"], f"{p}/cast", to=TensorProto.BOOL))
        then_nodes, inputs = [], list(node.input)
        for j, weight in zip(c.weights, c.weight_names, strict=True):
            if weight in shared:
                continue  # switched per reader, see above
            then_nodes.append(helper.make_node("Mul", [s, delta_of(weight, node)], [f"{p}/sd{j}"]))
            then_nodes.append(helper.make_node("Add", [inputs[j], f"{p}/sd{j}"], [f"{p}/w{j}"]))
            inputs[j] = f"{p}/w{j}"
        for j in c.acts:
            act, inputs[j] = _act_nodes(kind, node.input[j], s, f"{p}/x{j}")
            then_nodes += act
        outs = [o for o in node.output if o]
        branches = _branches(node, p, then_nodes, inputs)
        nodes.append(helper.make_node("If", [f"{p}/on"], outs, f"{p}/if", **branches))
    del g.node[:]
    g.node.extend(nodes)
    g.initializer.extend(extra)
    return out


def _with_inputs(node: onnx.NodeProto, inputs: list[str]) -> onnx.NodeProto:
    import onnx

    copy = onnx.NodeProto()
    copy.CopyFrom(node)
    del copy.input[:]
    copy.input.extend(inputs)
    return copy


def _int64(i: int | list[int]) -> np.ndarray:
    import numpy as np

    return np.array(i, dtype=np.int64)
