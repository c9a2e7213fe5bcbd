"""Checkpoint specs -> ``Checkpoint``: the one place a spec string is resolved.

``hub:ORG/NAME`` and ``path:DIR`` (``publisher.model.checkpoint``), ``onnx:FILE`` and
``recovered:kokoro-v1.0`` (``publisher.model.recovered``), ``synthetic:tiny|full``
(``publisher.model.synthetic``). Each source module imports torch only when used.
"""

from __future__ import annotations

from pathlib import Path

from publisher.model.checkpoint import Checkpoint, from_hub, from_path
from publisher.model.recovered import from_onnx, recovered_checkpoint
from publisher.model.synthetic import synthetic_checkpoint
from publisher.runtime.errors import CheckpointError

SPECS = "hub:ORG/NAME, path:DIR, onnx:FILE, recovered:kokoro-v1.0 or synthetic:tiny|full"


def open_checkpoint(spec: str) -> Checkpoint:
    """Resolve a checkpoint spec to weights, config and voices (one clear error if not)."""
    spec = spec.strip()
    if spec.startswith("synthetic:"):
        return synthetic_checkpoint(spec.removeprefix("synthetic:"))
    if spec.startswith("hub:"):
        return from_hub(spec.removeprefix("hub:"))
    if spec.startswith("onnx:"):
        return from_onnx(Path(spec.removeprefix("onnx:")).expanduser())
    if spec.startswith("recovered:"):
        return recovered_checkpoint(spec.removeprefix("recovered:"))
    path = Path(spec.removeprefix("path:")).expanduser()
    if spec.startswith("path:") or path.exists():
        return from_path(path, spec)
    raise CheckpointError(f"checkpoint '{spec}': expected {SPECS}")
