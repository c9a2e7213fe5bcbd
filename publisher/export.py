"""Export kokoro's KModel to an fp32 ONNX graph (TorchScript exporter), with a cache.

The generator's STFT is exported as publisher/exact_stft.py's ExactSTFT (what upstream
Kokoro's torch.stft/torch.istft compute, in standard ops). The graph always has the
canonical tensor names (input_ids, style, speed -> waveform,
duration); the ``io-names`` pass renames them to what a recipe asks for. The cache key is
(checkpoint hash, export settings, parity switch, torch version), so many recipes over
one checkpoint export once.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.checkpoint import file_sha256
from publisher.errors import ExportError
from publisher.exact_stft import exact_stft
from publisher.workspace import atomic_path, sweep, write_text_atomic

if TYPE_CHECKING:
    from publisher.checkpoint import Checkpoint
    from publisher.recipe import Recipe

EXPORT_FORMAT_VERSION = 2  # bump when the export code changes its output
INPUTS = ("input_ids", "style", "speed")
OUTPUTS = ("waveform", "duration")
TRACE_TOKENS = 48


def cache_root() -> Path:
    """Where exported graphs are cached: $PUBLISHER_CACHE or ~/.cache/kokoro-publisher."""
    env = os.environ.get("PUBLISHER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kokoro-publisher"


def export_key(ckpt: Checkpoint, recipe: Recipe, *, parity: bool, voiced: bool = False) -> str:
    import torch

    settings = {
        "checkpoint": ckpt.sha256,
        "export": recipe.export.model_dump(mode="json"),
        "parity": parity,
        **({"voiced": True} if voiced else {}),
        "torch": torch.__version__,
        "format": EXPORT_FORMAT_VERSION,
    }
    if recipe.export.shape == "bucket":
        from publisher.bucket import BUCKET_FORMAT_VERSION

        settings["bucket_format"] = BUCKET_FORMAT_VERSION
    blob = json.dumps(settings, sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:24]


def trace_inputs(ckpt: Checkpoint, n_tokens: int = TRACE_TOKENS) -> tuple:
    """Example inputs for tracing: n_tokens ids (pads included), a style row, speed 1."""
    import torch

    vocab_ids = sorted(set(ckpt.config["vocab"].values()))
    ids = [0] + [vocab_ids[(7 * i) % len(vocab_ids)] for i in range(n_tokens - 2)] + [0]
    style = ckpt.voices[ckpt.sample_voice][n_tokens - 3]
    return (
        torch.tensor([ids], dtype=torch.long),
        torch.from_numpy(style.reshape(1, -1).copy()),
        torch.tensor([1.0], dtype=torch.float32),
    )


def export_fp32(
    ckpt: Checkpoint,
    recipe: Recipe,
    *,
    parity: bool = False,
    voiced: bool = False,
    model=None,
    use_cache: bool = True,
    echo=None,
) -> Path:
    """Return the path of the cached fp32 graph for (checkpoint, export settings, mode):
    ``parity`` the noise-only deterministic switch, with ``voiced`` its sine kept (see
    parity_mode.py); neither: the shipped graph."""
    opset = recipe.export.opset
    if recipe.export.shape == "bucket":  # static token-bucket graph: publisher/bucket.py
        from publisher.bucket import bucket_shape, torch_export_bucket

        shape = bucket_shape(recipe)

        def write(model, path: Path) -> None:
            torch_export_bucket(model, ckpt, shape, path, opset, parity=parity, voiced=voiced)

    else:  # "dynamic" (the recipe schema allows only these two)

        def write(model, path: Path) -> None:
            _torch_export(model, trace_inputs(ckpt), path, opset, parity=parity, voiced=voiced)

    key = export_key(ckpt, recipe, parity=parity, voiced=voiced)
    target = cache_root() / "exports" / key / "model.onnx"
    if use_cache and cached_entry_ok(target, echo):
        return target
    model = model if model is not None else ckpt.build_model()
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep(target.parent)  # a killed export's half-written file
    with atomic_path(target) as tmp:
        with exact_stft(model):
            write(model, tmp)
        _check(tmp)
        digest = file_sha256(tmp)
    write_text_atomic(_digest_path(target), digest + "\n")
    return target


def _digest_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256")


def cached_entry_ok(target: Path, echo=None) -> bool:
    """Whether the cached graph is whole: its sha256, recorded when it was written,
    still matches. A damaged or unrecorded entry is named in one line and rebuilt."""
    if not target.is_file():
        return False
    try:
        recorded = _digest_path(target).read_text(encoding="ascii").strip()
        if recorded and file_sha256(target) == recorded:
            return True
    except (OSError, UnicodeDecodeError):
        pass
    (echo or _stderr)(
        f"export cache entry {target}: no recorded sha256, or it does not match "
        "(damaged or incomplete); rebuilding it"
    )
    return False


def _stderr(line: str) -> None:
    print(line, file=sys.stderr)


def _torch_export(
    model, inputs: tuple, path: Path, opset: int, *, parity: bool, voiced: bool = False
) -> None:
    import contextlib

    import torch
    from kokoro.model import KModelForONNX

    from publisher.parity_mode import parity_mode

    wrapper = KModelForONNX(model).eval()
    switch = parity_mode(model, voiced=voiced) if parity else contextlib.nullcontext()
    with switch, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper,
                inputs,
                str(path),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                dynamic_axes={
                    "input_ids": {1: "tokens"},
                    "waveform": {0: "samples"},
                    "duration": {0: "tokens"},
                },
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:  # exporter failures are many types; report one line
            raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc


def _check(path: Path) -> None:
    import onnx
    import onnxruntime as ort

    try:
        onnx.checker.check_model(str(path))
        ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise ExportError(f"exported graph does not check: {type(exc).__name__}: {exc}") from exc
