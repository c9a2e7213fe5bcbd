"""``topo-sort``: put every graph's nodes in topological order (final pass, every recipe).

The ONNX spec requires it and onnx.checker, onnx-simplifier and other tools enforce it,
while onnxruntime sorts on load and so never complains. Measured on synthetic:full: the
files written by onnxruntime's quantizers (quantized, uint8) and by its float16 converter
failed ``onnx.checker.check_model`` (a Loop placed before the SplitToSequence its body
reads; casts placed after their readers). The sort is onnx_ir's (``Graph.sort``), through
``publisher.passes.topological_sort``. It runs before ``strip-shapes``: onnx_ir writes a
value_info entry per initializer (about 60 KB in the int8 file), which that pass drops.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.passes import PassContext, register, topological_sort

if TYPE_CHECKING:
    import onnx

    from publisher.recipe import Recipe


@register("topo-sort")
def topo_sort_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    out, ctx.notes["nodes_moved"] = topological_sort(model)
    return out
