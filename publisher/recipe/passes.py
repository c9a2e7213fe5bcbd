"""The passes a recipe may list: the registry the recipe loader checks a recipe against.

Data about the pass code, not the code: each entry names its function as
``module:function`` (imported only when the pass runs, by ``PassSpec.load``), the recipe
sections it reads, where it must stand among the others (``before_precision``,
``after``), and ``check``: the name of a function in the pass's own file that says what
the pass needs of the recipe's sections. The loader reads this table without importing a
pass; it imports the files of the passes a recipe lists, for their checks (each keeps
onnx and onnxruntime out of its module level: 5-30 ms). ``FINAL_PASSES`` run after a
recipe's own passes, for every recipe.
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
# a pass's own check: (recipe, the pass's name) -> the recipe's problem with it, or None
Check = Callable[["Recipe", str], "Problem | None"]


@dataclass(frozen=True)
class PassSpec:
    """One pass: ``module:function``, the recipe sections it reads, its place among the
    other passes, and ``check``, a function of the pass's own module (see ``Check``)."""

    target: str
    reads: tuple[str, ...] = ()
    check: str | None = None
    converts_precision: bool = False
    # rewrites float ops, so it must see them before a precision pass converts them
    before_precision: bool = False
    # reads what these passes wrote, so it must come after them
    after: tuple[str, ...] = ()
    # as fast to run again as to read back from the cache (passes/stored.py)
    cheap: bool = False

    @property
    def module(self) -> str:
        return self.target.partition(":")[0]

    def load(self) -> PassFn:
        return getattr(importlib.import_module(self.module), self.target.partition(":")[2])

    def load_check(self) -> Check | None:
        return getattr(importlib.import_module(self.module), self.check) if self.check else None


PASSES: dict[str, PassSpec] = {
    # onnxruntime's optimizer: 3-4 s on the full model, about what storing and reading
    # back the shipped graph and its twin take
    "simplify": PassSpec("publisher.passes.simplify:simplify_pass", cheap=True),
    # reads the quantize section to know which Convs will be 8-bit (see passes/snake.py)
    "fold-snake": PassSpec(
        "publisher.passes.snake:fold_snake_pass", ("precision.quantize",), before_precision=True
    ),
    # reads calibration_samples: the calibration inputs set the per-channel scales
    "equalize-residuals": PassSpec(
        "publisher.passes.equalize:equalize_pass", ("precision.quantize",), before_precision=True
    ),
    # reads which Convs will be 8-bit and calibration_samples (the activation peaks)
    "smooth-inputs": PassSpec(
        "publisher.passes.smooth:smooth_inputs_pass",
        ("precision.quantize",),
        before_precision=True,
    ),
    # reads which ConvTransposes will be 8-bit (the quantize section's include/exclude)
    "polyphase-upsample": PassSpec(
        "publisher.passes.polyphase:polyphase_pass",
        ("precision.quantize",),
        before_precision=True,
    ),
    # reads the graph only: the Snakes quantize-static put before 8-bit Convs
    "snake-lut": PassSpec("publisher.passes.snake_lut:snake_lut_pass", after=("quantize-static",)),
    "fp16": PassSpec(
        "publisher.passes.fp16:fp16_pass",
        ("precision.fp16",),
        "recipe_problem",
        converts_precision=True,
    ),
    **{
        f"quantize-{kind}": PassSpec(
            f"publisher.passes.quantize:quantize_{kind}_pass",
            ("precision.quantize",),
            "recipe_problem",
            converts_precision=True,
        )
        for kind in ("dynamic", "static", "int4")
    },
    "bucket-check": PassSpec(
        "publisher.passes.bucket_check:bucket_check_pass", ("export",), "recipe_problem"
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
    """The first problem of ``recipe.passes``: an unknown or final pass, a pass out of
    its place, a pass whose own check fails, or a precision section no listed pass
    carries out."""
    names = list(recipe.passes)
    for i, name in enumerate(names):
        spec = PASSES.get(name)
        if spec is None or name in FINAL_PASSES:
            allowed = ", ".join(sorted(set(PASSES) - set(FINAL_PASSES)))
            return "passes", f"unknown pass '{name}' (available: {allowed})"
        if problem := _out_of_place(names[:i], name, spec):
            return problem
        if (check := spec.load_check()) and (problem := check(recipe, name)):
            return problem
    kind = recipe.precision.quantize.type
    if kind != "none" and f"quantize-{kind}" not in recipe.passes:
        return "precision.quantize.type", f"{kind!r} needs 'quantize-{kind}' in passes"
    if recipe.precision.fp16.mode != "none" and "fp16" not in recipe.passes:
        return "precision.fp16.mode", f"{recipe.precision.fp16.mode!r} needs 'fp16' in passes"
    return None


def _out_of_place(earlier: list[str], name: str, spec: PassSpec) -> Problem | None:
    converted = [p for p in earlier if PASSES[p].converts_precision]
    if spec.before_precision and converted:
        return "passes", f"'{name}' must come before '{converted[0]}'"
    for needed in spec.after:
        if needed not in earlier:
            return "passes", f"'{name}' must come after '{needed}'"
    return None
