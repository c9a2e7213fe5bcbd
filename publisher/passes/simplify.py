"""Graph simplification with onnxruntime's own offline optimizer (basic level).

Basic level = semantics-preserving, provider-independent rewrites in standard ONNX ops:
constant folding, Identity and redundant-node elimination. For Kokoro it removes about
half the nodes (4718 -> 2226 on the full model) and, importantly, the Identity nodes that
hide ALBERT's shared layer weights from the quantizers (21 MiB left float otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from publisher.onnx_edit import strip_unused_opsets
from publisher.passes import PassContext, roundtrip

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe


def ort_optimize(src: Path, dst: Path) -> None:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(dst)
    opts.log_severity_level = 3
    ort.InferenceSession(str(src), opts, providers=["CPUExecutionProvider"])


def simplify_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    metadata = list(model.metadata_props)
    out = strip_unused_opsets(roundtrip(model, ort_optimize))
    del out.metadata_props[:]
    out.metadata_props.extend(metadata)
    return out
