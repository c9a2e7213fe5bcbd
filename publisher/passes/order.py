"""``topo-sort``: put every graph's nodes in topological order (final pass, every recipe).

The ONNX spec requires it and onnx.checker, onnx-simplifier and other tools enforce it,
while onnxruntime sorts on load and so never complains. Measured on synthetic:full: the
files written by onnxruntime's quantizers (quantized, uint8) and by its float16 converter
failed ``onnx.checker.check_model`` (a Loop placed before the SplitToSequence its body
reads; casts placed after their readers). The sort is onnx_ir's (``Graph.sort``). It runs
before ``strip-shapes``: onnx_ir writes a value_info entry per initializer (about 60 KB in
the int8 file), which that pass drops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.passes import PassContext
from publisher.runtime.errors import BuildError

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe


def in_order(graph, known: frozenset[str] = frozenset()) -> bool:
    """Whether every node of ``graph`` (and of each Loop/If body, which may also read the
    enclosing graph's tensors made before it) reads only tensors made before it."""
    seen = set(known) | {i.name for i in graph.input} | {t.name for t in graph.initializer}
    seen.add("")  # an omitted optional input
    for node in graph.node:
        if any(name not in seen for name in node.input):
            return False
        for attr in node.attribute:
            for body in [attr.g] if attr.HasField("g") else list(attr.graphs):
                if not in_order(body, frozenset(seen)):
                    return False
        seen.update(node.output)
    return True


def topological_sort(model: onnx.ModelProto) -> tuple[onnx.ModelProto, int]:
    """``model`` with every graph's nodes in topological order (onnx_ir's stable sort,
    which also honours tensors a Loop/If body reads from the enclosing graph), and how
    many main-graph nodes changed position.

    The ONNX spec requires the order; onnx.checker and onnx-simplifier (which fastkokoro
    runs) enforce it, while onnxruntime sorts on load and so never complains."""
    import onnx_ir as ir

    if in_order(model.graph):  # most exports are: skip onnx_ir's round trip of the file
        return model, 0
    before = [n.output[0] if n.output else n.name for n in model.graph.node]
    ir_model = ir.serde.deserialize_model(model)
    try:
        ir_model.graph.sort()
    except ValueError as exc:  # a cycle
        raise BuildError(f"the graph cannot be sorted topologically: {exc}") from None
    out = ir.serde.serialize_model(ir_model)
    after = [n.output[0] if n.output else n.name for n in out.graph.node]
    return out, sum(a != b for a, b in zip(before, after, strict=True))


def topo_sort_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    out, ctx.notes["nodes_moved"] = topological_sort(model)
    return out
