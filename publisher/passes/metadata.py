"""Write the ONNX metadata every variant carries (kokoro_config, provenance)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.passes import PassContext

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe


def set_metadata(model: onnx.ModelProto, entries: dict[str, str]) -> onnx.ModelProto:
    """Add or replace metadata_props entries, keeping the others."""
    kept = [p for p in model.metadata_props if p.key not in entries]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in sorted(entries.items()):
        prop = model.metadata_props.add()
        prop.key, prop.value = key, value
    return model


def metadata_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    return set_metadata(model, ctx.metadata)
