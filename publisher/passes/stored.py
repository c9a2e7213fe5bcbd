"""A recipe's own passes, kept in the cache (``$PUBLISHER_CACHE/passes``).

What a recipe's passes make of the shipped export and of its deterministic twin depends on
those two exports, the recipe sections a pass can read (export, precision, passes, io,
target; never the card, the gates or the description), the checkpoint's config and voices
(calibration inputs), this package's code and data, and the graph libraries' versions. A
rebuild after a card or gate edit reads both graphs back instead of quantizing again:
``cpu-int8``'s passes take about two minutes on two cores.

The pair is one unit: the twin takes the shipped graph's calibration (``PassContext``), so
both are read back or both are made again. The final passes (IO names, metadata and the
rest) always run after, since the metadata changes with the card. A recipe whose passes
are all ``cheap`` in the registry (onnxruntime's optimizer alone) is not stored: running
it again is about as fast as reading back two full-size graphs, and the cache stays small.
Entries are written atomically with their sha256 recorded and checked at every read (a
damaged one is named in one line and made again); a full cache costs one warning line.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.locations import cache_root
from publisher.passes import FINAL_PASSES, PASSES, PassContext, run_passes
from publisher.provenance import package_version
from publisher.runtime.threads import configured_threads
from publisher.workspace import (
    cached_entry_ok,
    file_sha256,
    recorded_sha256,
    store,
    write_text_atomic,
)

if TYPE_CHECKING:
    import onnx

    from publisher.model.checkpoint import Checkpoint
    from publisher.recipe.schema import Recipe

log = logging.getLogger(__name__)

AREA = "passes"
# the recipe sections passes read (the card, gates, description and output never reach one)
SECTIONS = ("export", "precision", "passes", "io", "target")
LIBRARIES = ("onnx", "onnxruntime", "onnx-ir", "numpy", "onnxconverter-common")
NOTES = "notes.json"


@functools.cache
def code_sha256() -> str:
    """sha256 of every file of this package (code and data): a changed pass, helper or
    corpus makes a new key, with no version number to remember to bump."""
    root = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _graph_sha256(graph: Path | None) -> str | None:
    if graph is None:
        return None
    return recorded_sha256(graph) or file_sha256(graph)


def _voices_sha256(voices: dict[str, Any]) -> str:
    import numpy as np

    digest = hashlib.sha256()
    for name in sorted(voices):
        digest.update(name.encode() + b"\0")
        digest.update(np.ascontiguousarray(voices[name], dtype=np.float32).tobytes())
    return digest.hexdigest()


def pass_key(recipe: Recipe, ckpt: Checkpoint, shipped: Path, twin: Path | None) -> str:
    """The cache key of ``recipe``'s own passes over the two exports."""
    dump = recipe.model_dump(mode="json")
    blob = {
        "sections": {name: dump[name] for name in SECTIONS},
        "shipped": _graph_sha256(shipped),
        "twin": _graph_sha256(twin),
        "checkpoint": ckpt.sha256,
        "config": ckpt.config,
        "voices": _voices_sha256(ckpt.voices),
        "code": code_sha256(),
        **{name: package_version(name) for name in LIBRARIES},
        # calibration's last bits follow onnxruntime's thread count (measured on tiny
        # cpu-int8: 320 of 2060 initializers differed by 1e-8 between 1 and 2 threads)
        "threads": configured_threads(),
    }
    text = json.dumps(blob, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def worth_storing(recipe: Recipe) -> bool:
    """Whether the recipe has a pass that is slower to run than to read back."""
    return any(not PASSES[name].cheap for name in recipe.passes)


def _paths(key: str) -> tuple[Path, Path]:
    folder = cache_root() / AREA
    return folder / f"{key}-shipped" / "model.onnx", folder / f"{key}-twin" / "model.onnx"


def _load(key: str, with_twin: bool) -> tuple[onnx.ModelProto, onnx.ModelProto | None, dict] | None:
    import onnx

    shipped, twin = _paths(key)
    if not cached_entry_ok(shipped, "stored passes entry"):
        return None
    if with_twin and not cached_entry_ok(twin, "stored passes entry"):
        return None
    try:
        notes = json.loads((shipped.parent / NOTES).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (
        onnx.load(str(shipped)),
        onnx.load(str(twin)) if with_twin else None,
        notes,
    )


def _save(key: str, shipped: onnx.ModelProto, twin: onnx.ModelProto | None, notes: dict) -> None:
    """Twin, notes, then the shipped graph, each written atomically; the first failure
    stops the rest (a shipped entry is only read with its twin and notes) and costs the
    build one warning line, never the build."""
    import onnx

    shipped_path, twin_path = _paths(key)
    try:
        text = json.dumps(notes, sort_keys=True)
        if twin is not None:
            store(twin_path, lambda tmp: onnx.save(twin, str(tmp)))
        shipped_path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomic(shipped_path.parent / NOTES, text)
        store(shipped_path, lambda tmp: onnx.save(shipped, str(tmp)))
    except (OSError, TypeError, ValueError) as err:
        why = err.strerror if isinstance(err, OSError) and err.strerror else err
        log.warning("stored passes: not kept in the cache (%s): %s", shipped_path.parent, why)


def transformed(
    recipe: Recipe, ckpt: Checkpoint, ctx: PassContext, shipped: Path, twin: Path | None
) -> tuple[onnx.ModelProto, onnx.ModelProto | None]:
    """The shipped export and its twin (None: no twin) after every pass of ``recipe``: its
    own passes read back from the cache when stored, the final passes run."""
    import onnx

    own = list(recipe.passes)
    stored = worth_storing(recipe)
    key = pass_key(recipe, ckpt, shipped, twin) if stored else ""
    start = time.perf_counter()
    found = _load(key, twin is not None) if stored else None
    if found is not None:
        variant, twin_model, notes = found
        ctx.notes.update(notes)
        ctx.notes["stored_passes"] = {"key": key, "seconds": round(time.perf_counter() - start, 2)}
        log.info("  passes %s: read back from the cache", " -> ".join(own))
    else:
        variant = run_passes(onnx.load(str(shipped)), recipe, ctx, own)
        twin_model = run_passes(onnx.load(str(twin)), recipe, ctx, own) if twin else None
        if stored:
            _save(key, variant, twin_model, {k: v for k, v in ctx.notes.items() if k != "seconds"})
    variant = run_passes(variant, recipe, ctx, FINAL_PASSES)
    if twin_model is not None:
        twin_model = run_passes(twin_model, recipe, ctx, FINAL_PASSES)
    return variant, twin_model
