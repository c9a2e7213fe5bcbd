"""``bucket-check``: refuse a bucket graph that is not static.

A streaming server compiles one graph per token bucket ahead of time, so the graph must
have static input/output shapes and none of the data-dependent ops that kokoro's dynamic
path exports: NonZero, ScatterND and Range (from repeat_interleave, index assignment and
arange) and STFT. The check walks subgraphs too and fails with one line naming the
offending op types and counts. (The final ``topo-sort`` pass then orders the nodes, which
onnx-simplifier in fastkokoro requires.)
"""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from publisher.onnx_edit import all_graphs
from publisher.passes import PassContext
from publisher.runtime.errors import BuildError

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.passes import Problem
    from publisher.recipe.schema import Recipe

BANNED_OPS = ("NonZero", "ScatterND", "Range", "STFT")


def recipe_problem(recipe: Recipe, name: str) -> Problem | None:
    """Only a bucket export has static shapes to check."""
    if not recipe.is_bucket:
        return "passes", f"'{name}' needs export.shape 'bucket'"
    return None


def op_counts(model: onnx.ModelProto) -> Counter:
    """Node count per op type over the main graph and every subgraph."""
    return Counter(n.op_type for g in all_graphs(model.graph) for n in g.node)


def banned_ops(model: onnx.ModelProto) -> dict[str, int]:
    counts = op_counts(model)
    return {op: counts[op] for op in BANNED_OPS if counts[op]}


def dynamic_io(model: onnx.ModelProto) -> list[str]:
    """Graph inputs/outputs with a dimension that is not a fixed number."""
    out = []
    for v in (*model.graph.input, *model.graph.output):
        t = v.type.tensor_type
        dims = list(t.shape.dim) if t.HasField("shape") else None
        if dims is None or any(not d.HasField("dim_value") for d in dims):
            shown = "?" if dims is None else [d.dim_value or d.dim_param or "?" for d in dims]
            out.append(f"{v.name} {shown}")
    return out


def check_bucket_graph(model: onnx.ModelProto) -> dict[str, int]:
    """Raise a one-line PublisherError unless the graph is static and banned-op free."""
    bad = banned_ops(model)
    if bad:
        found = ", ".join(f"{op} x{n}" for op, n in bad.items())
        raise BuildError(
            f"bucket-check: the graph has data-dependent ops {found}; a static bucket graph "
            f"must contain none of {', '.join(BANNED_OPS)}"
        )
    dynamic = dynamic_io(model)
    if dynamic:
        raise BuildError(
            f"bucket-check: inputs/outputs without static shapes: {'; '.join(dynamic)}"
        )
    counts = op_counts(model)
    return {"nodes": sum(counts.values()), "lstm": counts["LSTM"]}


def bucket_check_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext):
    """Check the graph (see module doc)."""
    ctx.notes["bucket_check"] = check_bucket_graph(model)
    return model
