"""Build passes: small graph transforms with one signature, chosen by name from a recipe.

Every pass is ``fn(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> ModelProto``.
``PASSES`` is the explicit registry: each entry names the function (imported only when the
pass runs), the recipe sections it reads, and the check a recipe must pass to list it, run
when the recipe loads (``check_recipe``), so ``publisher validate`` catches an unknown name
or a pass that contradicts the precision section. A recipe lists its own passes
(``passes:``); ``FINAL_PASSES`` run after them for every recipe.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.runtime.errors import RecipeError

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe

log = logging.getLogger(__name__)
PassFn = Callable[["onnx.ModelProto", "Recipe", "PassContext"], "onnx.ModelProto"]
Problem = tuple[str, str]  # (field path, message)


@dataclass(frozen=True)
class PassSpec:
    """One pass: ``module:function``, the recipe sections it reads, and ``check``: the
    recipe's problem with this pass listed, as (field path, message), or None."""

    target: str
    reads: tuple[str, ...] = ()
    check: Callable[[Recipe], Problem | None] | None = None
    converts_precision: bool = False

    def load(self) -> PassFn:
        module, _, function = self.target.partition(":")
        return getattr(importlib.import_module(module), function)


def _quantize_type(kind: str) -> Callable[[Recipe], Problem | None]:
    def check(recipe: Recipe) -> Problem | None:
        have = recipe.precision.quantize.type
        if have != kind:
            return (
                "passes",
                f"'quantize-{kind}' needs precision.quantize.type '{kind}', got {have!r}",
            )
        return None

    return check


def _fp16_mode(recipe: Recipe) -> Problem | None:
    if recipe.precision.fp16.mode == "none":
        return "passes", "'fp16' needs precision.fp16.mode 'all' or 'decoder-only', got 'none'"
    return None


def _before_precision(name: str) -> Callable[[Recipe], Problem | None]:
    """A pass that rewrites float ops must see them before a precision pass converts them."""

    def check(recipe: Recipe) -> Problem | None:
        names = list(recipe.passes)
        early = [p for p in names[: names.index(name)] if PASSES[p].converts_precision]
        if early:
            return "passes", f"'{name}' must come before '{early[0]}'"
        return None

    return check


def _after_static_quantize(recipe: Recipe) -> Problem | None:
    """A pass that reads the 8-bit graph static quantization wrote."""
    names = list(recipe.passes)
    if "quantize-static" not in names[: names.index("snake-lut")]:
        return "passes", "'snake-lut' must come after 'quantize-static'"
    return None


def _bucket_shape(recipe: Recipe) -> Problem | None:
    if not recipe.is_bucket:
        return "passes", "'bucket-check' needs export.shape 'bucket'"
    return None


PASSES: dict[str, PassSpec] = {
    "simplify": PassSpec("publisher.passes.simplify:simplify_pass"),
    # reads the quantize section to know which Convs will be 8-bit (see passes/snake.py)
    "fold-snake": PassSpec(
        "publisher.passes.snake:fold_snake_pass",
        ("precision.quantize",),
        _before_precision("fold-snake"),
    ),
    # reads calibration_samples: the calibration inputs set the per-channel scales
    "equalize-residuals": PassSpec(
        "publisher.passes.equalize:equalize_pass",
        ("precision.quantize",),
        _before_precision("equalize-residuals"),
    ),
    # reads which Convs will be 8-bit and calibration_samples (the activation peaks)
    "smooth-inputs": PassSpec(
        "publisher.passes.smooth:smooth_inputs_pass",
        ("precision.quantize",),
        _before_precision("smooth-inputs"),
    ),
    # reads which ConvTransposes will be 8-bit (the quantize section's include/exclude)
    "polyphase-upsample": PassSpec(
        "publisher.passes.polyphase:polyphase_pass",
        ("precision.quantize",),
        _before_precision("polyphase-upsample"),
    ),
    # reads the graph only: the Snakes quantize-static put before 8-bit Convs
    "snake-lut": PassSpec("publisher.passes.snake_lut:snake_lut_pass", (), _after_static_quantize),
    "fp16": PassSpec(
        "publisher.passes.fp16:fp16_pass", ("precision.fp16",), _fp16_mode, converts_precision=True
    ),
    **{
        f"quantize-{kind}": PassSpec(
            f"publisher.passes.quantize:quantize_{kind}_pass",
            ("precision.quantize",),
            _quantize_type(kind),
            converts_precision=True,
        )
        for kind in ("dynamic", "static", "int4")
    },
    "bucket-check": PassSpec(
        "publisher.passes.bucket_check:bucket_check_pass", ("export",), _bucket_shape
    ),
    # run after every recipe's own passes (FINAL_PASSES), never listed in a recipe
    "io-names": PassSpec("publisher.passes.io_names:io_names_pass", ("io",)),
    "topo-sort": PassSpec("publisher.passes.order:topo_sort_pass"),
    "strip-shapes": PassSpec("publisher.passes.strip_shapes:strip_shapes_pass"),
    "opsets": PassSpec("publisher.passes.opsets:opsets_pass", ("target",)),
    "metadata": PassSpec("publisher.passes.metadata:metadata_pass"),
}
# in this order after every recipe's own passes
FINAL_PASSES = ("io-names", "topo-sort", "opsets", "strip-shapes", "metadata")


def check_recipe(recipe: Recipe) -> Problem | None:
    """The first problem of ``recipe.passes``: an unknown or final pass, a pass whose
    check fails, or a precision section no listed pass carries out."""
    for name in recipe.passes:
        spec = PASSES.get(name)
        if spec is None or name in FINAL_PASSES:
            allowed = ", ".join(sorted(set(PASSES) - set(FINAL_PASSES)))
            return "passes", f"unknown pass '{name}' (available: {allowed})"
        if spec.check and (problem := spec.check(recipe)):
            return problem
    kind = recipe.precision.quantize.type
    if kind != "none" and f"quantize-{kind}" not in recipe.passes:
        return "precision.quantize.type", f"{kind!r} needs 'quantize-{kind}' in passes"
    if recipe.precision.fp16.mode != "none" and "fp16" not in recipe.passes:
        return "precision.fp16.mode", f"{recipe.precision.fp16.mode!r} needs 'fp16' in passes"
    return None


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


def all_graphs(graph):
    """The graph and, recursively, every subgraph (Loop/If/Scan bodies) inside it."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            for g in [attr.g] if attr.HasField("g") else list(attr.graphs):
                yield from all_graphs(g)


def plan(recipe: Recipe) -> list[str]:
    """The ordered pass names a recipe runs; a problem is a recipe error."""
    if problem := check_recipe(recipe):
        raise RecipeError(f"{recipe.display_path}: {problem[0]}: {problem[1]}")
    return [*recipe.passes, *FINAL_PASSES]


def run_passes(
    model: onnx.ModelProto,
    recipe: Recipe,
    ctx: PassContext,
    on_step: Callable[[str], None] | None = None,
) -> onnx.ModelProto:
    """Run the recipe's passes and the final ones; each pass's seconds (summed over the
    graphs one context sees: the shipped graph and its twin) go to ``ctx.notes["seconds"]``."""
    seconds = ctx.notes.setdefault("seconds", {})
    for name in plan(recipe):
        if on_step:
            on_step(name)
        start = time.perf_counter()
        model = PASSES[name].load()(model, recipe, ctx)
        took = time.perf_counter() - start
        seconds[name] = round(seconds.get(name, 0.0) + took, 2)
        log.debug("pass %s: %.2f s", name, took)
    return model
