"""float16 weights and compute, with a block list kept in float32.

Conversion is onnxruntime's float16 converter (onnxruntime.transformers.float16), which
walks Loop/If subgraphs consistently; graph inputs and outputs stay float32 so every
variant is called the same way. Blocked neighbours leave Cast(fp16)->Cast(fp32) pairs
between them; ``remove_cast_pairs`` drops those (hand-written: neither onnx nor the
converter removes them, and each pair costs two full-tensor copies and a rounding).
"""

from __future__ import annotations

import fnmatch
from typing import TYPE_CHECKING

from publisher.onnx_edit import all_graphs
from publisher.passes import PassContext

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.passes import Problem
    from publisher.recipe.schema import Recipe

FLOAT, FLOAT16 = 1, 10
# Quantization ops whose float side has no float16 kernel: always kept float32.
QUANT_FLOAT_OPS = (
    "DynamicQuantizeLinear",
    "QuantizeLinear",
    "DequantizeLinear",
    "DynamicQuantizeLSTM",
    "MatMulIntegerToFloat",
    "MatMulNBits",
)


def recipe_problem(recipe: Recipe, name: str) -> Problem | None:
    """``fp16`` carries out precision.fp16: a mode must be set."""
    if recipe.precision.fp16.mode == "none":
        return "passes", f"'{name}' needs precision.fp16.mode 'all' or 'decoder-only', got 'none'"
    return None


def blocked_node_names(
    model: onnx.ModelProto, patterns: tuple[str, ...] | list[str], decoder_only: bool
) -> list[str]:
    """Node names (all graphs) matching any glob; with decoder_only, all non-decoder nodes."""
    names = []
    for graph in all_graphs(model.graph):
        for node in graph.node:
            outside = decoder_only and not node.name.startswith("/decoder/")
            if outside or any(fnmatch.fnmatchcase(node.name, p) for p in patterns):
                names.append(node.name)
    return names


def unshare_blocked_constants(model: onnx.ModelProto, blocked: set[str], ops: set[str]) -> int:
    """Give blocked nodes their own float32 copy of each float initializer they share with
    converted nodes; returns how many initializers were copied.

    The converter turns a shared initializer into float16 and feeds blocked readers a Cast
    back to float32, so a blocked node would compute with a rounded constant (measured on
    Kokoro: the harmonic source multiplied by float16(3.14) = 3.140625, a constant the
    exporter shares with the STFT's phase arithmetic)."""
    floats = {t.name: t for t in model.graph.initializer if t.data_type == FLOAT}
    readers: dict[str, list[tuple[onnx.NodeProto, bool]]] = {}
    for graph in all_graphs(model.graph):
        for node in graph.node:
            keep = node.name in blocked or node.op_type in ops
            for name in node.input:
                if name in floats:
                    readers.setdefault(name, []).append((node, keep))
    copied = 0
    for name, uses in readers.items():
        if len({keep for _, keep in uses}) < 2:  # all blocked or all converted: nothing to do
            continue
        twin = f"{name}_fp32"
        copy = type(floats[name])()
        copy.CopyFrom(floats[name])
        copy.name = twin
        model.graph.initializer.append(copy)
        for node, keep in uses:
            if keep:
                node.input[:] = [twin if i == name else i for i in node.input]
        copied += 1
    return copied


def remove_cast_pairs(model: onnx.ModelProto) -> int:
    """Drop Cast(to=A) -> Cast(to=B) chains that return to the original type; count them."""
    removed = 0
    for graph in all_graphs(model.graph):
        outputs = {o.name for o in graph.output}
        producers = {o: n for n in graph.node for o in n.output}
        consumers: dict[str, list] = {}
        for n in graph.node:
            for i in n.input:
                consumers.setdefault(i, []).append(n)
        dead, rename = set(), {}
        for second in graph.node:
            first = producers.get(second.input[0]) if second.op_type == "Cast" else None
            if first is None or first.op_type != "Cast" or id(first) in dead:
                continue
            if first.output[0] in outputs or len(consumers.get(first.output[0], [])) != 1:
                continue
            src_type = _cast_source_type(graph, first)
            if src_type is None or src_type != _to(second) or second.output[0] in outputs:
                continue
            rename[second.output[0]] = first.input[0]
            dead.update({id(first), id(second)})
            removed += 1
        if not dead:
            continue
        keep = [n for n in graph.node if id(n) not in dead]
        for n in keep:
            n.input[:] = [rename.get(i, i) for i in n.input]
        del graph.node[:]
        graph.node.extend(keep)
    return removed


def _to(node) -> int:
    return next(a.i for a in node.attribute if a.name == "to")


def _cast_source_type(graph, cast) -> int | None:
    """Element type of a Cast's input, when the graph says so (value_info/inputs/casts)."""
    name = cast.input[0]
    for vi in (*graph.input, *graph.value_info, *graph.output):
        if vi.name == name and vi.type.tensor_type.elem_type:
            return vi.type.tensor_type.elem_type
    for n in graph.node:
        if n.op_type == "Cast" and name in n.output:
            return _to(n)
    for t in graph.initializer:
        if t.name == name:
            return t.data_type
    return None


def dedupe_casts(model: onnx.ModelProto) -> int:
    """Drop repeated Casts and give repeated node names a suffix; returns the fixes made.

    The float16 converter names each inserted Cast (node and output) after its tensor, so
    a tensor feeding several blocked consumers, in the main graph and in Loop bodies, gets
    the same Cast defined twice; onnxruntime rejects that. A repeat that casts the same
    input to the same type computes the same value, so it is dropped (outer graph first).
    """
    defined: dict[str, tuple] = {}
    names: set[str] = set()
    fixes = 0
    for graph in all_graphs(model.graph):
        keep = []
        for node in graph.node:
            key = (node.op_type, tuple(node.input), _to(node)) if node.op_type == "Cast" else None
            if key and node.output[0] in defined and defined[node.output[0]] == key:
                fixes += 1
                continue
            for out in node.output:
                defined.setdefault(out, key)
            if node.name in names:
                k = 1
                while f"{node.name}_{k}" in names:
                    k += 1
                node.name = f"{node.name}_{k}"
                fixes += 1
            names.add(node.name)
            keep.append(node)
        if len(keep) != len(graph.node):
            del graph.node[:]
            graph.node.extend(keep)
    return fixes


def fp16_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    cfg = recipe.precision.fp16
    blocked = blocked_node_names(model, cfg.block_names, cfg.mode == "decoder-only")
    op_block_list = [*DEFAULT_OP_BLOCK_LIST, *QUANT_FLOAT_OPS, *cfg.block_ops]
    ctx.notes["fp16_constants_kept_float32"] = unshare_blocked_constants(
        model, set(blocked), set(op_block_list)
    )
    metadata = list(model.metadata_props)
    out = convert_float_to_float16(
        model, keep_io_types=True, op_block_list=op_block_list, node_block_list=blocked
    )
    ctx.notes["fp16_duplicate_casts_fixed"] = dedupe_casts(out)
    ctx.notes["fp16_cast_pairs_removed"] = remove_cast_pairs(out)
    del out.metadata_props[:]
    out.metadata_props.extend(metadata)
    return out
