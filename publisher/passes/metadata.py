"""Write the ONNX metadata every variant carries (kokoro_config, provenance)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.onnx_edit import set_metadata
from publisher.passes import PassContext

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe


def metadata_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    return set_metadata(model, ctx.metadata)
