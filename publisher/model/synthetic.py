"""Synthetic checkpoints: seeded random weights on Kokoro's real architecture.

``synthetic:full`` uses the real config (about 82M parameters). ``synthetic:tiny`` shrinks
the widths so an export takes seconds; because kokoro's Decoder hard-codes 1024/512-wide
blocks, tiny rebuilds those blocks narrower from kokoro's own classes (marked in the
config under ``publisher_synthetic.decoder_width`` so a saved tiny checkpoint reloads).

Random weights make unrealistic audio, so three layers get a speech-like initialisation:
the duration head is biased to about 3 frames a token, the F0 head to a voiced ~180 Hz,
and the log-magnitude head (conv_post) is scaled so exp() stays in range.
"""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import threading
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from publisher.locations import cache_root
from publisher.model import kmodel
from publisher.model.checkpoint import Checkpoint, load_pt, state_sha256
from publisher.model.kmodel import TOP_LEVEL_MODULES, new_kmodel, tiny_config
from publisher.runtime.errors import CheckpointError
from publisher.runtime.vocab import packaged_config
from publisher.workspace import cached_entry_ok, store_if_possible

if TYPE_CHECKING:
    from kokoro.model import KModel

SYNTHETIC_AREA, SYNTHETIC_FILE = "synthetic", "checkpoint.pt"  # cache entries (publisher cache)


SEED = 20260101
VOICE_NAMES = ("af_heart", "af_bella", "am_adam", "bf_emma", "bm_george")
FRAMES_PER_TOKEN = 3.0


def _speech_like_init(model: KModel) -> None:
    import math

    import torch

    with torch.no_grad():
        dur = model.predictor.duration_proj.linear_layer
        max_dur = dur.out_features
        p = FRAMES_PER_TOKEN / max_dur
        dur.weight.mul_(0.05)
        dur.bias.fill_(math.log(p / (1 - p)))  # sum of max_dur sigmoids ~ 3 frames
        model.predictor.F0_proj.bias.fill_(180.0)  # voiced, around 180 Hz
        post = model.decoder.generator.conv_post
        post.weight_g.mul_(0.1)
        post.bias.zero_()
        post.bias[: post.out_channels // 2].fill_(-1.0)  # log-magnitude channels


def _synthetic_voices(style_width: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SEED)
    rows = np.linspace(0.0, 1.0, 510, dtype=np.float32)[:, None]
    voices = {}
    for name in VOICE_NAMES:
        base = rng.normal(0.0, 0.2, size=(1, style_width)).astype(np.float32)
        drift = rng.normal(0.0, 0.05, size=(1, style_width)).astype(np.float32)
        voices[name] = (base + rows * drift)[:, None, :].astype(np.float32)
    return voices


# torch's global RNG is shared by threads: two synthetic builds seeding it at once (two
# publishes in one process) would interleave their draws and get different weights.
_GLOBAL_RNG = threading.Lock()


def _check_size(size: str) -> None:
    if size not in ("tiny", "full"):
        raise CheckpointError(
            f"synthetic:{size}: unknown size, expected synthetic:tiny or synthetic:full"
        )


def synthetic_model(size: str) -> tuple[KModel, dict[str, Any]]:
    """A seeded random KModel and its config; the global RNG state is left untouched."""
    import torch

    _check_size(size)
    config = packaged_config()
    if size == "tiny":
        config = tiny_config(config)
    else:
        config["publisher_synthetic"] = {"size": "full"}
    with _GLOBAL_RNG, torch.random.fork_rng():  # one seeded build at a time per process
        torch.manual_seed(SEED)
        model = new_kmodel(config)
        _speech_like_init(model)
    return model.eval(), config


def synthetic_checkpoint(size: str) -> Checkpoint:
    """The seeded checkpoint, kept in the cache (``synthetic/``, its sha256 recorded and
    checked like an export): making it imports kokoro and transformers (about 3 s), which
    every process that built from a synthetic checkpoint paid before its first step."""
    entry = _entry(size)
    if cached_entry_ok(entry, what="synthetic checkpoint cache entry"):
        saved = load_pt(entry, f"synthetic:{size}")
        return _checkpoint(size, json.loads(saved["config"]), saved["state"], saved["voices"])
    model, config = synthetic_model(size)
    state = {k: getattr(model, k).state_dict() for k in TOP_LEVEL_MODULES}
    ckpt = _checkpoint(size, config, state, _synthetic_voices(2 * config["style_dim"]))
    store_if_possible(entry, functools.partial(_save, ckpt), "synthetic checkpoint")
    return ckpt


def _entry(size: str) -> Path:
    """The cache file of ``synthetic:SIZE``, keyed by everything its weights come from:
    the seed, this module's and kmodel's code, and the torch and kokoro versions."""
    import torch

    _check_size(size)
    code = [Path(m.__file__).read_bytes() for m in (sys.modules[__name__], kmodel)]
    settings = [SEED, size, torch.__version__, metadata.version("kokoro")]
    h = hashlib.sha256(json.dumps(settings).encode())
    for text in code:
        h.update(hashlib.sha256(text).digest())
    return cache_root() / SYNTHETIC_AREA / f"{size}-{h.hexdigest()[:24]}" / SYNTHETIC_FILE


def _checkpoint(size: str, config: dict, state: dict, voices: dict) -> Checkpoint:
    return Checkpoint(
        source=f"synthetic:{size}",
        config=config,
        state=state,
        voices={name: np.asarray(v, dtype=np.float32) for name, v in voices.items()},
        sha256=state_sha256(state),
        synthetic=True,
    )


def _save(ckpt: Checkpoint, path: Path) -> None:
    import torch

    voices = {name: torch.from_numpy(arr.copy()) for name, arr in ckpt.voices.items()}
    saved = {"config": json.dumps(ckpt.config), "state": ckpt.state, "voices": voices}
    torch.save(saved, path)


def save_checkpoint(ckpt: Checkpoint, folder: Any) -> None:
    """Write a checkpoint in Hub layout (config.json, kokoro-v1_0.pth, voices/*.pt)."""
    import torch

    folder = Path(folder)
    (folder / "voices").mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(ckpt.config, ensure_ascii=False, indent=1))
    torch.save(ckpt.state, folder / "kokoro-v1_0.pth")
    for name, arr in ckpt.voices.items():
        torch.save(torch.from_numpy(arr.copy()), folder / "voices" / f"{name}.pt")
