"""``topo-sort``: put every graph's nodes in topological order (final pass, every recipe).

The ONNX spec requires it and onnx.checker, onnx-simplifier and other tools enforce it,
while onnxruntime sorts on load and so never complains. Measured on synthetic:full: the
files written by onnxruntime's quantizers (quantized, uint8) and by its float16 converter
failed ``onnx.checker.check_model`` (a Loop placed before the SplitToSequence its body
reads; casts placed after their readers). See ``publisher.passes.topological_sort``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.passes import PassContext, all_graphs, register, topological_sort

if TYPE_CHECKING:
    import onnx

    from publisher.recipe import Recipe


@register("topo-sort")
def topo_sort_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    ctx.notes["nodes_reordered"] = sum(topological_sort(g) for g in all_graphs(model.graph))
    return model
