"""``Checkpoint``: PyTorch weights, config and voices, and the sources that read files:
``hub:ORG/NAME`` (Hugging Face Hub) and ``path:DIR`` or a plain directory/.pth path.

Specs are resolved by ``publisher.model.sources``; ``onnx:FILE`` and ``recovered:`` live in
``recovered.py``, ``synthetic:`` in ``synthetic.py``, the strict KModel load in
``kmodel.py``. Weights always load with ``weights_only=True``.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.model.kmodel import load_state_strict, new_kmodel
from publisher.runtime.constants import VOICE_SHAPE
from publisher.runtime.errors import CheckpointError, first_line
from publisher.runtime.hub_errors import download_error
from publisher.workspace import file_sha256  # noqa: F401 - re-exported for the model side

if TYPE_CHECKING:
    import numpy as np
    import torch
    from kokoro.model import KModel

HUB_WEIGHTS = {"hexgrad/Kokoro-82M": "kokoro-v1_0.pth"}
OTHER_SOURCES = (
    "recovered:kokoro-v1.0 (real weights, offline), onnx:FILE, "
    "path:DIR (a local config.json, .pth and voices/) or synthetic:tiny|synthetic:full"
)


@dataclass
class Checkpoint:
    """A resolved checkpoint: config, weights (state dict per top-level module), voices."""

    source: str
    config: dict[str, Any]
    state: dict[str, dict[str, torch.Tensor]]
    voices: dict[str, np.ndarray]
    sha256: str
    synthetic: bool = False
    files: dict[str, str] = field(default_factory=dict)
    # Weights recovered from an ONNX export (``onnx:``/``recovered:``): an approximation
    # of the original, never to be published as hexgrad's model.
    recovered: bool = False
    provenance: dict[str, Any] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        """'synthetic', 'recovered' or 'original': what the weights are."""
        if self.synthetic:
            return "synthetic"
        return "recovered" if self.recovered else "original"

    def build_model(self) -> KModel:
        """Upstream Kokoro's KModel (torch.stft/istft path, eval mode), every parameter
        loaded strictly: the reference every export is proven against."""
        model = new_kmodel(self.config)
        load_state_strict(model, self.state, self.source)
        return model.eval()

    @functools.cached_property
    def model(self) -> KModel:
        """``build_model()``, once, when something first runs upstream torch: a build whose
        exports and reference runs are all stored never builds it (nor imports kokoro)."""
        return self.build_model()

    def __getstate__(self) -> dict[str, Any]:
        """Pickled (to a child process) without the torch model (the child builds its own
        if it runs upstream) and with the weights as numpy arrays: torch would share each
        tensor through a file descriptor of its own, and Kokoro's 600 of them ran out."""
        state = dict(self.__dict__)
        state.pop("model", None)
        state["state"] = {
            part: {name: t.detach().cpu().numpy() for name, t in tensors.items()}
            for part, tensors in self.state.items()
        }
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        import torch

        state["state"] = {
            part: {name: torch.from_numpy(a) for name, a in arrays.items()}
            for part, arrays in state["state"].items()
        }
        self.__dict__.update(state)

    @property
    def sample_voice(self) -> str:
        return sorted(self.voices)[0]


def state_sha256(state: dict[str, dict[str, Any]]) -> str:
    """A stable hash of a state dict's names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for key in sorted(state):
        for name in sorted(state[key]):
            t = state[key][name].detach().contiguous().cpu()
            h.update(f"{key}.{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.numpy().tobytes())
    return h.hexdigest()


def validate_voice(name: str, arr: np.ndarray, source: str) -> np.ndarray:
    import numpy as np

    arr = np.asarray(arr, dtype=np.float32)
    if arr.shape == (510, 256):
        arr = arr[:, None, :]
    if arr.shape != VOICE_SHAPE:
        raise CheckpointError(
            f"{source}: voice '{name}' has shape {arr.shape}, expected {VOICE_SHAPE}"
        )
    if not np.isfinite(arr).all():
        raise CheckpointError(f"{source}: voice '{name}' contains NaN or infinite values")
    return arr


def load_pt(path: Path, source: str) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle that is not weights-only, ...
        raise CheckpointError(f"{source}: cannot load {path.name}: {first_line(exc)}") from None


def from_path(path: Path, source: str) -> Checkpoint:
    if path.is_file():
        weights, folder = path, path.parent
    elif path.is_dir():
        folder = path
        pths = sorted(folder.glob("*.pth"))
        if len(pths) != 1:
            raise CheckpointError(
                f"{source}: expected exactly one .pth weights file in {folder}, found {len(pths)}"
            )
        weights = pths[0]
    else:
        raise CheckpointError(
            f"{source}: no such file or directory; other sources: {OTHER_SOURCES}"
        )
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise CheckpointError(f"{source}: no config.json beside {weights.name}")
    try:
        config = json.loads(config_path.read_text("utf-8"))
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{source}: config.json is not valid JSON: {exc}") from None
    state = load_pt(weights, source)
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: {weights.name} does not hold a state dict")
    voices = {
        p.stem: validate_voice(p.stem, load_pt(p, source).numpy(), source)
        for p in sorted((folder / "voices").glob("*.pt"))
    }
    if not voices:
        raise CheckpointError(f"{source}: no voices/*.pt beside {weights.name}")
    return Checkpoint(
        source=f"path:{folder}",
        config=config,
        state=state,
        voices=voices,
        sha256=file_sha256(weights),
        synthetic=bool(config.get("publisher_synthetic")),
        files={"weights": str(weights), "config": str(config_path)},
    )


def from_hub(repo_id: str) -> Checkpoint:
    """config.json, the weights and voices/*.pt: from the local cache, else downloaded."""
    from huggingface_hub import snapshot_download

    source = f"hub:{repo_id}"
    weights_name = HUB_WEIGHTS.get(repo_id, "kokoro-v1_0.pth")
    patterns = ["config.json", weights_name, "voices/*.pt"]
    try:
        folder = snapshot_download(repo_id, allow_patterns=patterns, local_files_only=True)
    except Exception:  # not cached (or partly): go to the network
        _probe_hub(source)
        try:
            folder = snapshot_download(repo_id, allow_patterns=patterns)
        except Exception as exc:  # HTTP, connection and cache errors alike
            why = download_error(repo_id, "the weights", exc)
            raise CheckpointError(f"{source}: {why}; offline, use {OTHER_SOURCES}") from None
    # The snapshot folder has the repo layout, so it reads like a local path.
    ckpt = from_path(Path(folder) / weights_name, source)
    ckpt.source = source
    return ckpt


def _probe_hub(source: str) -> None:
    """One request without retries, so that no network fails at once rather than after
    huggingface_hub's five retries with backoff (about 23 s, measured)."""
    from huggingface_hub import constants, get_session

    if constants.HF_HUB_OFFLINE:
        raise CheckpointError(
            f"{source}: not in the local cache and HF_HUB_OFFLINE is set; use {OTHER_SOURCES}"
        )
    try:
        get_session().head(constants.ENDPOINT, timeout=5)
    except Exception as exc:
        raise CheckpointError(
            f"{source}: cannot reach the Hugging Face Hub at {constants.ENDPOINT} "
            f"({first_line(exc)}); offline, use {OTHER_SOURCES}"
        ) from None
