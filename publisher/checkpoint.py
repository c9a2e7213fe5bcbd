"""Checkpoint sources: where the PyTorch weights, config and voices come from.

Specs: ``hub:ORG/NAME`` (Hugging Face Hub), ``path:DIR`` or a plain directory/.pth path,
``onnx:FILE`` (weights recovered from a Kokoro ONNX export, see ``recover.py``),
``recovered:kokoro-v1.0`` (the real weights reachable offline, see ``recovered.py``),
``synthetic:tiny`` and ``synthetic:full`` (seeded random weights, see ``synthetic.py``).
Weights always load with ``weights_only=True`` and must cover every learned parameter:
kokoro's own KModel silently falls back to ``strict=False``, so we never let it load
weights. Buffers (the STFT kernels and window) are computed from the config, not learned:
hexgrad's checkpoint predates them, so they are never required from a file.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import warnings
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.errors import CheckpointError, first_line

if TYPE_CHECKING:
    import numpy as np
    import torch
    from kokoro.model import KModel

HUB_WEIGHTS = {"hexgrad/Kokoro-82M": "kokoro-v1_0.pth"}
TOP_LEVEL_MODULES = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")
VOICE_SHAPE = (510, 1, 256)
# kokoro's CustomSTFT (KModel(disable_complex=True)) keeps its DFT bases as decoder buffers
# under this prefix; they are computed, never learned, and the upstream model we build has
# none, so a file saved from such a model carries them and still loads.
CUSTOM_STFT_BUFFERS = "generator.stft."
OTHER_SOURCES = (
    "recovered:kokoro-v1.0 (real weights, offline), onnx:FILE, "
    "path:DIR (a local config.json, .pth and voices/) or synthetic:tiny|synthetic:full"
)
SPECS = "hub:ORG/NAME, path:DIR, onnx:FILE, recovered:kokoro-v1.0 or synthetic:tiny|full"


def packaged_config() -> dict[str, Any]:
    """The real Kokoro-82M config.json (with vocab) shipped inside the package."""
    text = resources.files("publisher.data").joinpath("kokoro_config.json").read_text("utf-8")
    return json.loads(text)


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

    @property
    def sample_voice(self) -> str:
        return sorted(self.voices)[0]


def new_kmodel(config: dict[str, Any], *, disable_complex: bool = False) -> KModel:
    """Construct kokoro's KModel from a config dict without loading or downloading weights.

    KModel.__init__ always loads a weights file (downloading one when none is given), so we
    hand it an empty state dict; the real weights are loaded by ``load_state_strict``.
    The default, ``disable_complex=False``, is upstream Kokoro's own ``torch.stft``/
    ``torch.istft`` path; exports swap in publisher/exact_stft.py, never CustomSTFT.
    """
    import torch
    from kokoro.model import KModel

    from publisher.synthetic import apply_tiny_decoder

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # kokoro's modules warn about weight_norm's deprecation and LSTM dropout at
        # construction; neither concerns inference.
        warnings.simplefilter("ignore", (FutureWarning, UserWarning))
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        model = KModel(
            repo_id="hexgrad/Kokoro-82M",
            config=config,
            model=str(empty),
            disable_complex=disable_complex,
        )
        apply_tiny_decoder(model, config)
    return model


def computed_buffers(model: Any) -> set[str]:
    """State-dict keys that the model computes from its config (buffers, not weights)."""
    params = {name for name, _ in model.named_parameters()}
    return {name for name in model.state_dict() if name not in params}


def load_state_strict(model: KModel, state: dict[str, Any], source: str) -> None:
    """Load every top-level module's learned weights; any gap is an error.

    Computed buffers (``computed_buffers``) keep the values the model built from its
    config, whether or not the file carries them."""
    missing_modules = [k for k in TOP_LEVEL_MODULES if k not in state]
    unknown = sorted(set(state) - set(TOP_LEVEL_MODULES))
    if missing_modules or unknown:
        gaps = f"missing: {', '.join(missing_modules) or 'none'}"
        extra = f"unknown: {', '.join(unknown) or 'none'}"
        raise CheckpointError(f"{source}: weights do not match Kokoro's modules ({gaps}; {extra})")
    for key in TOP_LEVEL_MODULES:
        module = getattr(model, key)
        own = module.state_dict()
        computed = computed_buffers(module)
        sub = {k.removeprefix("module."): v for k, v in state[key].items()}
        sub = {k: v for k, v in sub.items() if k not in computed}
        if key == "decoder":
            sub = {k: v for k, v in sub.items() if not k.startswith(CUSTOM_STFT_BUFFERS)}
        learned = set(own) - computed
        missing = sorted(learned - set(sub))
        extra = sorted(set(sub) - learned)
        if missing or extra:
            raise CheckpointError(
                f"{source}: weights for '{key}' are incomplete: {len(missing)} missing "
                f"({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}), "
                f"{len(extra)} unexpected ({', '.join(extra[:3])}{'...' if len(extra) > 3 else ''})"
            )
        try:
            module.load_state_dict(sub | {k: own[k] for k in computed}, strict=True)
        except RuntimeError as exc:  # shape mismatch: first line names the tensor
            first = str(exc).strip().splitlines()
            raise CheckpointError(
                f"{source}: weights for '{key}' do not fit: {first[-1].strip()}"
            ) from None


def state_sha256(state: dict[str, dict[str, Any]]) -> str:
    """A stable hash of a state dict's names, shapes, dtypes and bytes."""
    h = hashlib.sha256()
    for key in sorted(state):
        for name in sorted(state[key]):
            t = state[key][name].detach().contiguous().cpu()
            h.update(f"{key}.{name}:{tuple(t.shape)}:{t.dtype}".encode())
            h.update(t.numpy().tobytes())
    return h.hexdigest()


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def open_checkpoint(spec: str) -> Checkpoint:
    """Resolve a checkpoint spec to weights, config and voices (one clear error if not)."""
    spec = spec.strip()
    if spec.startswith("synthetic:"):
        from publisher.synthetic import synthetic_checkpoint

        return synthetic_checkpoint(spec.removeprefix("synthetic:"))
    if spec.startswith("hub:"):
        return _from_hub(spec.removeprefix("hub:"))
    if spec.startswith("onnx:"):
        from publisher.recovered import from_onnx

        return from_onnx(Path(spec.removeprefix("onnx:")).expanduser())
    if spec.startswith("recovered:"):
        from publisher.recovered import recovered_checkpoint

        return recovered_checkpoint(spec.removeprefix("recovered:"))
    path = Path(spec.removeprefix("path:")).expanduser()
    if spec.startswith("path:") or path.exists():
        return _from_path(path, spec)
    raise CheckpointError(f"checkpoint '{spec}': expected {SPECS}")


def _validate_voice(name: str, arr: np.ndarray, source: str) -> np.ndarray:
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


def _load_pt(path: Path, source: str) -> Any:
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle that is not weights-only, ...
        raise CheckpointError(f"{source}: cannot load {path.name}: {first_line(exc)}") from None


def _from_path(path: Path, source: str) -> Checkpoint:
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
    state = _load_pt(weights, source)
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: {weights.name} does not hold a state dict")
    voices = {
        p.stem: _validate_voice(p.stem, _load_pt(p, source).numpy(), source)
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


def _from_hub(repo_id: str) -> Checkpoint:
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
            raise CheckpointError(
                f"{source}: download failed ({first_line(exc)}); offline, use {OTHER_SOURCES}"
            ) from None
    # The snapshot folder has the repo layout, so it reads like a local path.
    ckpt = _from_path(Path(folder) / weights_name, source)
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
