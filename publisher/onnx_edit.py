"""Small edits of an ONNX model in memory, shared by export, the passes, the sherpa-onnx
bundle and ``convert-io``: a module below all of them, so none imports another's code
for them. onnx itself is never imported here (callers pass a loaded ``ModelProto``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx


def all_graphs(graph: onnx.GraphProto) -> Iterator[onnx.GraphProto]:
    """The graph and, recursively, every subgraph (Loop/If/Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from all_graphs(g)


def set_metadata(model: onnx.ModelProto, entries: dict[str, str]) -> onnx.ModelProto:
    """Add or replace metadata_props entries, keeping the others."""
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in sorted(entries.items()):
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model


def strip_unused_opsets(model: onnx.ModelProto) -> onnx.ModelProto:
    """onnxruntime declares every domain it knows; keep only the ones nodes use."""
    used = {""} | {n.domain for g in all_graphs(model.graph) for n in g.node}
    keep = [o for o in model.opset_import if o.domain in used or o.domain == "ai.onnx"]
    del model.opset_import[:]
    model.opset_import.extend(keep)
    return model
