"""The reference store: upstream torch's side of verification, kept on disk.

What upstream Kokoro says for an input depends on the checkpoint (its sha256 and config),
the input (phoneme ids, speed, style row), the mode (deterministic noise-only, voiced, or
its random source under a fixed seed) and the reference code (torch, kokoro, and
``REFERENCE_VERSION`` for our side of it), never on the variant being verified. So the
first build of a checkpoint computes it and every later build, ``verify``, ``bench`` and
test in any process reads it back. Entries live under ``$PUBLISHER_CACHE/references``,
are written atomically with their sha256 recorded and are checked at every read; a
damaged entry is named in one line and computed again (``publisher cache`` lists them).

Scores of the reference audio (what the recognizer heard, DNSMOS, the speaker vector)
are stored too, keyed by the same input plus the scorers' versions; so are a variant's
runs and scores, keyed by what its graph computes (``computation_sha256``) instead of the
mode, and the onnxruntime floor's passes (``conformance/matrix.check_floor``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.locations import cache_root
from publisher.model import kmodel
from publisher.runtime.synth import Synthesis
from publisher.workspace import cached_entry_ok, store_if_possible

if TYPE_CHECKING:
    import numpy as np

    from publisher.model.checkpoint import Checkpoint

REFERENCE_VERSION = 1  # bump when run_torch, parity_mode or the seeding changes its output
AREA = "references"


def versions(*packages: str) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "absent"
    return out


def key(ckpt: Checkpoint, ids, speed: float, style: np.ndarray, mode: str, **extra: Any) -> str:
    """The store key of one upstream run: checkpoint, input, mode, reference code."""
    blob = {
        "checkpoint": ckpt.sha256,
        "config": ckpt.config,
        "ids": [int(i) for i in ids],
        "speed": float(speed),
        "style": hashlib.sha256(style.astype("float32").tobytes()).hexdigest(),
        "mode": mode,
        "code": REFERENCE_VERSION,
        **versions("torch", "kokoro"),
        **extra,
    }
    text = json.dumps(blob, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def entry_folder(k: str) -> Path:
    return cache_root() / AREA / k


def _path(k: str) -> Path:
    return entry_folder(k) / "entry.npz"


def has(k: str) -> bool:
    """Whether an entry for ``k`` is stored (not checked: ``load`` checks it)."""
    return _path(k).is_file()


def load(k: str) -> dict[str, np.ndarray] | None:
    """The stored arrays of ``k`` (read-only), or None when absent or damaged."""
    import numpy as np

    path = _path(k)
    if not cached_entry_ok(path, what="reference store entry"):
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except (OSError, ValueError):
        return None
    for a in arrays.values():
        a.setflags(write=False)
    return arrays


def save(k: str, arrays: dict[str, np.ndarray]) -> None:
    """Store ``arrays`` under ``k``; a full or read-only cache only skips the store."""
    import numpy as np

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)

    store_if_possible(_path(k), write, "reference store")


def remembered(k: str, compute: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """The stored arrays of ``k``, computing and storing them when absent or damaged."""
    arrays = load(k)
    if arrays is None:
        arrays = compute()
        save(k, arrays)
    return arrays


def seeded_torch(ckpt: Checkpoint, ids, speed: float, style: np.ndarray, seed: int):
    """Upstream Kokoro with its random source on, seeded (so the run can be stored)."""
    import torch

    def compute() -> dict[str, np.ndarray]:
        model = ckpt.model  # built before seeding: building it draws from torch's generator
        torch.manual_seed(seed)
        out = kmodel.run_torch(model, list(ids), style, speed)
        return {"waveform": out.waveform, "durations": out.durations}

    arrays = remembered(key(ckpt, ids, speed, style, "random", seed=seed), compute)
    return Synthesis(arrays["waveform"], arrays["durations"])


def computation_sha256(graph: Path) -> str:
    """sha256 of what a file computes: its graph (nodes, weights, IO) and opset imports,
    without the metadata (recipe hash, description, versions) that a rebuild changes."""
    import onnx

    model = onnx.load(str(graph))
    digest = hashlib.sha256(b"computation-v1\n")
    for opset in sorted((o.domain, o.version) for o in model.opset_import):
        digest.update(f"{opset[0]}:{opset[1]}\n".encode())
    digest.update(model.graph.SerializeToString(deterministic=True))
    return digest.hexdigest()
