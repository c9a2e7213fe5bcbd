"""Final pass: drop opset imports no node uses and hold the file to ``target.opset``.

An unused import (``ai.onnx.ml`` at a version newer than an old onnxruntime knows, left by
a converter) is enough for that onnxruntime to refuse the whole file. The default domain
always stays. Written over the protobuf rather than onnx_ir's ``RemoveUnusedOpsetsPass``:
that pass needs the whole model deserialized into onnx_ir and serialized back, 0.2-0.4 s
for a tiny Kokoro graph (its node count is the full model's) twice a build, to drop a
line or two of the header; the walk below reads each node's domain once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.onnx_edit import all_graphs
from publisher.runtime.errors import BuildError

if TYPE_CHECKING:
    import onnx

    from publisher.passes import PassContext
    from publisher.recipe.schema import Recipe


def _imports(model: onnx.ModelProto) -> dict[str, int]:
    return {o.domain or "ai.onnx": o.version for o in model.opset_import}


def used_domains(model: onnx.ModelProto) -> set[str]:
    """Every domain a node uses: the main graph, its subgraphs, and the model's functions
    (a function's own domain counts: a node calls it through that domain)."""

    nodes = [n for g in all_graphs(model.graph) for n in g.node]
    for function in model.functions:
        nodes.extend(function.node)
    return {n.domain or "" for n in nodes} | {f.domain or "" for f in model.functions}


def opsets_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    before = _imports(model)
    used = used_domains(model) | {""}
    kept = [o for o in model.opset_import if (o.domain or "") in used]
    if len(kept) != len(model.opset_import):
        del model.opset_import[:]
        model.opset_import.extend(kept)
    out = model
    after = _imports(out)
    removed = sorted(f"{d} {v}" for d, v in before.items() if d not in after)
    if removed:
        ctx.notes["opset_imports_removed"] = removed
    ceiling, have = recipe.target.opset, after.get("ai.onnx", 0)
    if ceiling is not None and have > ceiling:
        raise BuildError(
            f"{recipe.display_path}: target.opset: after its passes the file needs ai.onnx "
            f"opset {have}, above target.opset {ceiling}; raise target.opset or drop the "
            "pass that needs the newer opset"
        )
    return out
