"""The passes a recipe may list: the registry the recipe loader checks a recipe against.

Data about the pass code, not the code: each entry names its function as
``module:function`` (imported only when the pass runs, by ``PassSpec.load``), the recipe
sections it reads, and the check a recipe must pass to list it, run when the recipe loads
(``check_recipe``), so ``publisher validate`` catches an unknown name or a pass that
contradicts the precision section without importing onnx or any pass. ``FINAL_PASSES``
run after a recipe's own passes, for every recipe.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import onnx

    from publisher.passes import PassContext
    from publisher.recipe.schema import Recipe

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
    # as fast to run again as to read back from the cache (passes/stored.py)
    cheap: bool = False

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
    # onnxruntime's optimizer: 3-4 s on the full model, about what storing and reading
    # back the shipped graph and its twin take
    "simplify": PassSpec("publisher.passes.simplify:simplify_pass", cheap=True),
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
