"""Final pass: drop opset imports no node uses and hold the file to ``target.opset``.

An unused import (``ai.onnx.ml`` at a version newer than an old onnxruntime knows, left by
a converter) is enough for that onnxruntime to refuse the whole file. onnx_ir's
``RemoveUnusedOpsetsPass`` removes them (the default domain always stays).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.runtime.errors import PublisherError

if TYPE_CHECKING:
    import onnx

    from publisher.passes import PassContext
    from publisher.recipe.schema import Recipe


def _imports(model: onnx.ModelProto) -> dict[str, int]:
    return {o.domain or "ai.onnx": o.version for o in model.opset_import}


def opsets_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    import onnx_ir as ir
    from onnx_ir.passes.common import RemoveUnusedOpsetsPass

    before = _imports(model)
    result = RemoveUnusedOpsetsPass()(ir.serde.deserialize_model(model))
    out = ir.serde.serialize_model(result.model)
    after = _imports(out)
    removed = sorted(f"{d} {v}" for d, v in before.items() if d not in after)
    if removed:
        ctx.notes["opset_imports_removed"] = removed
    ceiling, have = recipe.target.opset, after.get("ai.onnx", 0)
    if ceiling is not None and have > ceiling:
        raise PublisherError(
            f"{recipe.display_path}: target.opset: after its passes the file needs ai.onnx "
            f"opset {have}, above target.opset {ceiling}; raise target.opset or drop the "
            "pass that needs the newer opset"
        )
    return out
