"""The one ``torch.onnx.export`` call (TorchScript exporter) and the check every exported
graph passes (onnx checker + an onnxruntime session), each failure one ``ExportError``."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from publisher.runtime.errors import ExportError


def torch_export(
    module: Any,
    inputs: tuple,
    path: Path,
    *,
    opset: int,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_axes: dict[str, dict[int, str]] | None = None,
) -> None:
    """Trace ``module`` on ``inputs`` into ``path`` (constant folding on, no grad)."""
    import torch

    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                module,
                inputs,
                str(path),
                input_names=list(input_names),
                output_names=list(output_names),
                dynamic_axes=dynamic_axes,
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:  # exporter failures are many types; report one line
            raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc


def check_graph(path: Path) -> None:
    """The ONNX checker passes and onnxruntime opens a CPU session."""
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path))
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"exported graph does not check: {type(exc).__name__}: {exc}") from exc
