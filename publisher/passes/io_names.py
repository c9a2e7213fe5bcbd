"""Rename graph inputs and outputs to the recipe's IO profile.

Written by hand: onnx has no rename utility, and renaming means rewriting every node
input/output (in subgraphs too, e.g. Loop bodies) that mentions the name.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.passes import PassContext
from publisher.runtime.constants import IO_ROLES
from publisher.runtime.errors import BuildError

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe


def rename_tensors(model: onnx.ModelProto, mapping: dict[str, str]) -> onnx.ModelProto:
    """Rename graph-level inputs/outputs in place; refuse names that are absent or taken."""
    graph = model.graph
    io_names = {v.name for v in graph.input} | {v.name for v in graph.output}
    mapping = {old: new for old, new in mapping.items() if old != new}
    missing = sorted(old for old in mapping if old not in io_names)
    if missing:
        raise BuildError(
            f"no graph input or output named {', '.join(map(repr, missing))} "
            f"(the graph has: {', '.join(sorted(io_names))})"
        )
    taken = _all_tensor_names(graph) - set(mapping)
    clash = sorted(new for new in mapping.values() if new in taken)
    if clash:
        raise BuildError(f"cannot rename to {', '.join(map(repr, clash))}: name already used")
    _rename_in_graph(graph, mapping)
    return model


def _all_tensor_names(graph) -> set[str]:
    names = {v.name for v in (*graph.input, *graph.output, *graph.value_info)}
    names |= {t.name for t in graph.initializer}
    for node in graph.node:
        names.update(node.input)
        names.update(node.output)
    return names


def _rename_in_graph(graph, mapping: dict[str, str]) -> None:
    import onnx

    for vi in (*graph.input, *graph.output, *graph.value_info):
        if vi.name in mapping:
            vi.name = mapping[vi.name]
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                _rename_in_graph(attr.g, mapping)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for g in attr.graphs:
                    _rename_in_graph(g, mapping)


def io_names_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    names = recipe.io_names()
    present = {v.name for v in model.graph.input} | {v.name for v in model.graph.output}
    mapping = {c: names[c] for c in IO_ROLES if c in present}
    return rename_tensors(model, mapping)
