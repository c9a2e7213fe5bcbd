"""Files a published repo needs besides the models: voices, config.json, tokenizer.

* voices.npz (one key per voice, float32 (510, 1, 256)) and voices.txt (names in npz
  order) for kokoro-onnx and fastkokoro; voices/<name>.bin (raw little-endian float32
  510x256) for the onnx-community layout.
* config.json: the Kokoro config with vocab, plus the model_type and architectures that
  transformers.js needs to pick StyleTextToSpeech2Model.
* tokenizer.json / tokenizer_config.json: phoneme level. Every vocab character is one
  token, characters outside the vocab are removed by the normalizer, and "$" (id 0) pads
  both ends: "həlˈO" -> [0, ids..., 0].
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.runtime.constants import VOICE_SHAPE
from publisher.runtime.errors import PublishError
from publisher.workspace import atomic_path, check_writable_folder, write_text_atomic

if TYPE_CHECKING:
    import numpy as np

PAD = "$"


def check_voices(voices: dict[str, np.ndarray]) -> None:
    import numpy as np

    if not voices:
        raise PublishError("no voices to write: the checkpoint has none")
    for name, arr in voices.items():
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name):
            raise PublishError(f"voice name {name!r}: only letters, digits, '_', '.', '-'")
        if arr.shape != VOICE_SHAPE or arr.dtype != np.float32:
            raise PublishError(
                f"voice '{name}': expected float32 {VOICE_SHAPE}, got {arr.dtype} {arr.shape}"
            )
        if not np.isfinite(arr).all():
            raise PublishError(f"voice '{name}': contains NaN or infinite values")


def write_voices(voices: dict[str, np.ndarray], folder: Path) -> list[Path]:
    """voices.npz, voices.txt and voices/<name>.bin in ``folder``; returns the paths."""
    import numpy as np

    check_voices(voices)
    names = sorted(voices)
    folder.mkdir(parents=True, exist_ok=True)
    need = sum(voices[n].nbytes for n in names) * 2 + 2**20
    check_writable_folder(folder, "voices folder", need_bytes=need)
    npz = folder / "voices.npz"
    with atomic_path(npz) as tmp, open(tmp, "wb") as fh:  # numpy would append .npz to a path
        np.savez(fh, **{n: voices[n] for n in names})
    txt = folder / "voices.txt"
    write_text_atomic(txt, "".join(f"{n}\n" for n in names))
    bins = folder / "voices"
    bins.mkdir(exist_ok=True)
    paths = [npz, txt]
    for n in names:
        path = bins / f"{n}.bin"
        with atomic_path(path) as tmp:
            tmp.write_bytes(voices[n].reshape(510, 256).astype("<f4").tobytes())
        paths.append(path)
    return paths


def transformers_config(config: dict[str, Any]) -> dict[str, Any]:
    """The Kokoro config plus what transformers.js reads to choose the model class."""
    return {
        **config,
        "model_type": "style_text_to_speech_2",
        "architectures": ["StyleTextToSpeech2Model"],
    }


def tokenizer_json(vocab: dict[str, int]) -> dict[str, Any]:
    """A tokenizers-format WordLevel tokenizer over single phoneme characters."""
    if vocab.get(PAD, 0) != 0 or 0 in {i for c, i in vocab.items() if c != PAD}:
        raise PublishError("vocab: id 0 is reserved for the '$' pad")
    full = {PAD: 0, **{c: i for c, i in vocab.items() if c != PAD}}
    # Escape only what a character class needs: the pattern must compile both in Rust
    # (tokenizers) and as a JavaScript Unicode RegExp (transformers.js), which rejects
    # Python-style escapes such as "\ ".
    allowed = "".join("\\" + c if c in "\\]^-[" else c for c in full if c != PAD)
    pad = {"SpecialToken": {"id": PAD, "type_id": 0}}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": 0,
                "content": PAD,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        ],
        "normalizer": {"type": "Replace", "pattern": {"Regex": f"[^{allowed}]"}, "content": ""},
        "pre_tokenizer": {
            "type": "Split",
            "pattern": {"Regex": "."},
            "behavior": "Isolated",
            "invert": False,
        },
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [pad, {"Sequence": {"id": "A", "type_id": 0}}, pad],
            "pair": [
                pad,
                {"Sequence": {"id": "A", "type_id": 0}},
                {"Sequence": {"id": "B", "type_id": 1}},
                pad,
            ],
            "special_tokens": {PAD: {"id": PAD, "ids": [0], "tokens": [PAD]}},
        },
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": full, "unk_token": PAD},
    }


def tokenizer_config() -> dict[str, Any]:
    return {
        "model_max_length": 512,
        "pad_token": PAD,
        "unk_token": PAD,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "clean_up_tokenization_spaces": False,
    }


def write_model_files(config: dict[str, Any], folder: Path) -> list[Path]:
    """config.json, tokenizer.json and tokenizer_config.json; the tokenizer is checked by
    loading it with the tokenizers library before it is written."""
    from tokenizers import Tokenizer

    tok = tokenizer_json(config["vocab"])
    Tokenizer.from_str(json.dumps(tok))  # raises on anything transformers.js would reject
    files = {
        "config.json": transformers_config(config),
        "tokenizer.json": tok,
        "tokenizer_config.json": tokenizer_config(),
    }
    paths = []
    for name, data in files.items():
        path = folder / name
        write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")
        paths.append(path)
    return paths
