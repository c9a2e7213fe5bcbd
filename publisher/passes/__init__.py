"""Build passes: small graph transforms with one signature, chosen by name from a recipe.

Every pass is ``fn(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> ModelProto``.
``PASSES``, the registry (which function each name runs, the recipe sections it reads,
its place among the others, the name of its own check), is data in
``publisher.recipe.passes``, which the recipe loader reads without importing pass code.
What a pass needs of the recipe's sections is checked by ``recipe_problem`` in the pass's
own file. A recipe lists its own passes (``passes:``); ``FINAL_PASSES`` run after them
for every recipe.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.recipe.passes import FINAL_PASSES, PASSES, PassSpec, check_recipe
from publisher.runtime.errors import RecipeError

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe

__all__ = [
    "FINAL_PASSES",
    "PASSES",
    "PassContext",
    "PassSpec",
    "check_recipe",
    "plan",
    "roundtrip",
    "run_passes",
]
log = logging.getLogger(__name__)


@dataclass
class PassContext:
    """What passes may need beyond the graph and the recipe."""

    config: dict[str, Any]
    metadata: dict[str, str] = field(default_factory=dict)
    voices: dict[str, Any] = field(default_factory=dict)  # for calibration inputs
    notes: dict[str, Any] = field(default_factory=dict)  # what passes report (manifest)
    # calibration statistics by (pass, tensors): the build runs the passes on the shipped
    # graph, then on its deterministic twin with the same context, and the twin takes the
    # shipped graph's scales and ranges instead of its own (the file verify measures then
    # holds the shipped weights and ranges, and the calibration runs happen once)
    measured: dict[tuple, Any] = field(default_factory=dict)

    def calibrated(self, key: tuple, compute: Callable[[], Any]) -> Any:
        """``compute()`` the first time ``key`` is asked for, the same value after."""
        if key not in self.measured:
            self.measured[key] = compute()
        return self.measured[key]


def roundtrip(model: onnx.ModelProto, tool: Callable[[Path, Path], None]) -> onnx.ModelProto:
    """Run a file-to-file tool (onnxruntime's optimizer and quantizers work on paths)."""
    import tempfile

    import onnx

    with tempfile.TemporaryDirectory(prefix="publisher-pass-") as tmp:
        src, dst = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(src))
        tool(src, dst)
        return onnx.load(str(dst))


def plan(recipe: Recipe) -> list[str]:
    """The ordered pass names a recipe runs; a problem is a recipe error."""
    if problem := check_recipe(recipe):
        raise RecipeError(f"{recipe.display_path}: {problem[0]}: {problem[1]}")
    return [*recipe.passes, *FINAL_PASSES]


def run_passes(
    model: onnx.ModelProto,
    recipe: Recipe,
    ctx: PassContext,
    names: Sequence[str] | None = None,
) -> onnx.ModelProto:
    """Run ``names`` (default: the recipe's passes and the final ones); each pass's seconds
    (summed over the graphs one context sees: the shipped graph and its twin) go to
    ``ctx.notes["seconds"]``."""
    seconds = ctx.notes.setdefault("seconds", {})
    for name in plan(recipe) if names is None else names:
        start = time.perf_counter()
        model = PASSES[name].load()(model, recipe, ctx)
        took = time.perf_counter() - start
        seconds[name] = round(seconds.get(name, 0.0) + took, 2)
        log.debug("pass %s: %.2f s", name, took)
    return model
