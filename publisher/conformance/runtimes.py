"""A built manifest's claim (which runtimes its file is said to run in) and target."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from publisher.runtime.clients import kokoro_js_dtype
from publisher.runtime.constants import HEARD_WER_MARGIN, ONNXRUNTIME_FLOORS
from publisher.runtime.runtimes import Claim

if TYPE_CHECKING:
    from publisher.runtime.artifacts import BuildManifest


def claim_of(manifest: BuildManifest) -> Claim:
    """The claim of a build manifest (its shape, floor, bundle and kokoro-js reach)."""
    shape = manifest.resolved_recipe["export"]["shape"]
    return Claim(
        shape=shape,
        min_onnxruntime=target_of(manifest.resolved_recipe)["min_onnxruntime"],
        sherpa_bundle=bool(manifest.sherpa_onnx),
        kokoro_js_dtype=kokoro_js_dtype(shape, manifest.io, manifest.model),
    )


def target_of(resolved_recipe: dict[str, Any]) -> dict[str, Any]:
    """A built manifest's target section (builds made before it existed: the defaults)."""
    target = resolved_recipe.get("target") or {}
    return {
        "min_onnxruntime": target.get("min_onnxruntime", ONNXRUNTIME_FLOORS[0]),
        "opset": target.get("opset"),
        "known_failures": target.get("known_failures") or {},
        "heard_wer_margin": target.get("heard_wer_margin", HEARD_WER_MARGIN),
    }
