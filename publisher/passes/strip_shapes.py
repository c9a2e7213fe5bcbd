"""Drop ``value_info`` shape hints from every graph.

They are optional: onnxruntime (and every other runtime) infers intermediate shapes at
load. The quantizers and the float16 converter write them for hundreds of tensors, which
costs about 250 KB in the int8 file; the graph's inputs and outputs keep their shapes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.onnx_edit import all_graphs
from publisher.passes import PassContext

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe


def strip_shapes_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    for graph in all_graphs(model.graph):
        del graph.value_info[:]
    return model
