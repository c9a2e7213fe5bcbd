"""Build passes: small graph transforms with one signature, chosen by name from a recipe.

Every pass is ``fn(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> ModelProto``
and registers itself under a name with ``@register("name")``. A recipe lists its own passes
(``passes:``); ``FINAL_PASSES`` run after them for every recipe.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.errors import RecipeError

if TYPE_CHECKING:
    import onnx

    from publisher.recipe import Recipe

PassFn = Callable[["onnx.ModelProto", "Recipe", "PassContext"], "onnx.ModelProto"]
REGISTRY: dict[str, PassFn] = {}
FINAL_PASSES = ("io-names", "topo-sort", "strip-shapes", "metadata")
PASS_MODULES = (
    "publisher.passes.io_names",
    "publisher.passes.metadata",
    "publisher.passes.simplify",
    "publisher.passes.fp16",
    "publisher.passes.quantize",
    "publisher.passes.strip_shapes",
    "publisher.passes.order",
    "publisher.passes.bucket_check",
)


@dataclass
class PassContext:
    """What passes may need beyond the graph and the recipe."""

    config: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    voices: dict[str, Any] = field(default_factory=dict)  # for calibration inputs
    notes: dict[str, Any] = field(default_factory=dict)  # what passes report (manifest)


def roundtrip(model: onnx.ModelProto, tool: Callable[[Path, Path], None]) -> onnx.ModelProto:
    """Run a file-to-file tool (onnxruntime's optimizer and quantizers work on paths)."""
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory(prefix="publisher-pass-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(src))
        tool(src, dst)
        return onnx.load(str(dst))


def all_graphs(graph):
    """The graph and, recursively, every subgraph (Loop/If/Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from all_graphs(g)


def register(name: str) -> Callable[[PassFn], PassFn]:
    def deco(fn: PassFn) -> PassFn:
        if name in REGISTRY:
            raise ValueError(f"pass {name!r} registered twice")
        REGISTRY[name] = fn
        return fn

    return deco


def load_registry() -> dict[str, PassFn]:
    """Import every pass module (heavy imports stay inside the pass functions)."""
    import importlib

    for mod in PASS_MODULES:
        importlib.import_module(mod)
    return REGISTRY


def plan(recipe: Recipe) -> list[str]:
    """The ordered pass names a recipe runs; unknown names are a recipe error."""
    registry = load_registry()
    for name in recipe.passes:
        if name not in registry or name in FINAL_PASSES:
            allowed = ", ".join(sorted(set(registry) - set(FINAL_PASSES))) or "none yet"
            raise RecipeError(
                f"{recipe.display_path}: passes: unknown pass '{name}' (available: {allowed})"
            )
    return [*recipe.passes, *FINAL_PASSES]


def run_passes(
    model: onnx.ModelProto,
    recipe: Recipe,
    ctx: PassContext,
    on_step: Callable[[str], None] | None = None,
) -> onnx.ModelProto:
    registry = load_registry()
    for name in plan(recipe):
        if on_step:
            on_step(name)
        model = registry[name](model, recipe, ctx)
    return model
