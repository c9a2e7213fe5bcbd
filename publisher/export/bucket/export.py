"""Export a bucket recipe: trace ``BucketKokoro`` with fixed shapes, fold the graph to
static shapes, and write fastkokoro's metadata."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.export.bucket.modules import bucket_wrapper
from publisher.export.bucket.shape import BucketShape, bucket_metadata
from publisher.export.dynamic import trace_inputs
from publisher.export.parity import parity_mode
from publisher.export.torchscript import torch_export
from publisher.onnx_edit import set_metadata, strip_unused_opsets
from publisher.runtime.constants import BUCKET_INPUT_ROLES, OUTPUT_ROLES

if TYPE_CHECKING:
    from publisher.model.checkpoint import Checkpoint

FOLD_OFF = ["MatMulAddFusion"]  # see fold_static


def bucket_trace_inputs(ckpt: Checkpoint, shape: BucketShape) -> tuple:
    """Example inputs: about half the bucket filled, padded with 0 to B."""
    import torch

    n = max(3, shape.bucket // 2)
    ids, style, speed = trace_inputs(ckpt, n)
    padded = torch.zeros((1, shape.bucket), dtype=torch.long)
    padded[0, :n] = ids[0]
    return padded, style, speed, torch.tensor([n], dtype=torch.long)


def torch_export_bucket(
    model,
    ckpt: Checkpoint,
    shape: BucketShape,
    path: Path,
    opset: int,
    *,
    parity: bool,
    voiced: bool = False,
) -> None:
    """Export ``BucketKokoro`` over ``model`` to ``path``: static shapes, fastkokoro's
    metadata and the checkpoint's config; ``parity``/``voiced`` as for dynamic exports."""
    import contextlib

    import onnx

    wrapper = bucket_wrapper(model, shape)
    switch = parity_mode(wrapper, voiced=voiced) if parity else contextlib.nullcontext()
    with switch:
        torch_export(
            wrapper,
            bucket_trace_inputs(ckpt, shape),
            path,
            opset=opset,
            input_names=BUCKET_INPUT_ROLES,
            output_names=OUTPUT_ROLES,
        )
    fold_static(path)
    graph = onnx.load(str(path))
    _static_outputs(graph, {"waveform": [shape.output_samples], "duration": [shape.bucket]})
    config = json.dumps(ckpt.config, ensure_ascii=False, sort_keys=True)
    set_metadata(graph, {**bucket_metadata(shape), "kokoro_config": config})
    onnx.save(graph, str(path))


def fold_static(path: Path) -> None:
    """Fold the exported graph to static shapes, in place (onnxruntime's basic optimizer).

    The TorchScript exporter leaves Shape -> Gather -> Concat chains inside ALBERT (and a
    few Expand/Reshape targets) although every input shape is fixed; folding them makes
    every intermediate shape static. MatMulAddFusion stays off: on a static graph it
    rewrites MatMul+Add into Reshape/Gemm/Reshape with initializers named gemm_*, and
    onnxruntime 1.31 then fails to load the result ("Attempt to replace the existing
    tensor") because the same fusion runs again at session start. For the same reason
    the bucket recipes do not run the ``simplify`` pass (basic level, fusion on)."""
    import onnxruntime as ort

    folded = path.with_name(f"{path.stem}.folded.onnx")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(folded)
    opts.log_severity_level = 3
    try:
        ort.InferenceSession(
            str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=FOLD_OFF
        )
        import onnx

        onnx.save(strip_unused_opsets(onnx.load(str(folded))), str(path))
    finally:
        folded.unlink(missing_ok=True)


def _static_outputs(graph, dims: dict[str, list[int]]) -> None:
    """Write the outputs' static shapes (the exporter leaves the waveform's symbolic)."""
    for out in graph.graph.output:
        if out.name in dims:
            shape = out.type.tensor_type.shape
            del shape.dim[:]
            for d in dims[out.name]:
                shape.dim.add().dim_value = d
