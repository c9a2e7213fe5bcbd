"""A sherpa-onnx bundle (k2-fsa/sherpa-onnx's Kokoro runtime: C, C++, Python, Java, Swift,
Go, .NET, Node, Rust) around a dynamic-shape file, as sherpa-onnx 2.0.1 reads it (see
shared/reference/client-contracts.md):

- ``model.onnx``: the file with sherpa's metadata (sample_rate, n_speakers, has_espeak,
  style_dim, version 2, voice, speaker_names, model_type); sherpa feeds the three inputs by
  position and reads output 0. A build whose recipe asks for a bundle writes these keys
  into the variant itself, so the bundle's copy is byte-identical to the repo's model file
  (the Hub stores one LFS object for both);
- ``voices.bin``: n_speakers x 510 x 256 raw float32, in ``speaker_names`` order;
- ``tokens.txt``: ``symbol id`` per line from the vocab (the space's line is " id");
- ``espeak-ng-data/``: the English part of PyPI espeakng-loader's copy (kokoro-onnx's);
- ``lexicon-us-en.txt`` / ``lexicon-gb-en.txt``: misaki's gold then silver dictionaries,
  one lowercase word then its phoneme characters separated by spaces (a dictionary entry
  with parts of speech gives its DEFAULT); version 2 needs a lexicon to speak English.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.hub.repo_files import check_voices
from publisher.locations import cache_root
from publisher.onnx_edit import set_metadata
from publisher.runtime.clients import SHERPA_LEXICONS
from publisher.runtime.constants import SAMPLE_RATE, VOICE_SHAPE
from publisher.runtime.errors import RunError
from publisher.workspace import cached_entry_ok, file_sha256, recorded_sha256, store_if_possible

if TYPE_CHECKING:
    import numpy as np

BUNDLE_DIR = "sherpa-onnx"


def bundle_folder(recipe_name: str) -> str:
    """Where a recipe's bundle sits, in the build folder and in the repo."""
    return f"{BUNDLE_DIR}/{recipe_name}"


def sherpa_metadata(speakers: list[str]) -> dict[str, str]:
    return {
        "model_type": "kokoro",
        "sample_rate": str(SAMPLE_RATE),
        "n_speakers": str(len(speakers)),
        "has_espeak": "1",
        "style_dim": ",".join(str(d) for d in VOICE_SHAPE),
        "version": "2",
        "voice": "en-us",
        "speaker_names": ",".join(speakers),
        "language": "English",
    }


def write_bundle(
    model_path: Path, voices: dict[str, np.ndarray], vocab: dict[str, int], dest: Path
) -> list[Path]:
    """Write the bundle into ``dest`` (see module doc); returns the files written."""
    import numpy as np
    import onnx

    check_voices(voices)
    speakers = sorted(voices)
    dest.mkdir(parents=True, exist_ok=True)
    wanted = sherpa_metadata(speakers)
    model = onnx.load(str(model_path))
    if {p.key: p.value for p in model.metadata_props}.items() >= wanted.items():
        # the build wrote sherpa's keys into the variant itself: the bundle holds the same
        # bytes, which the Hub stores once
        shutil.copyfile(model_path, dest / "model.onnx")
    else:  # a file from elsewhere (or an older build): add the keys to a copy
        onnx.save(set_metadata(model, wanted), str(dest / "model.onnx"))
    stack = np.stack([voices[s].reshape(VOICE_SHAPE[0], VOICE_SHAPE[2]) for s in speakers])
    (dest / "voices.bin").write_bytes(stack.astype("<f4").tobytes())
    (dest / "tokens.txt").write_text(
        "".join(f"{sym} {i}\n" for sym, i in sorted(vocab.items(), key=lambda x: x[1])),
        encoding="utf-8",
    )
    _copy_espeak_english(_espeak_data(), dest / "espeak-ng-data")
    phonemes = "".join(sorted(vocab))
    for accent, name in SHERPA_LEXICONS.items():
        _place_lexicon(accent, phonemes, dest / name)
    return sorted(p for p in dest.rglob("*") if p.is_file())


LEXICON_AREA, LEXICON_FILE = "lexicons", "lexicon.txt"  # cache entries (publisher cache)

# What espeak-ng needs to speak English (en-us, en-gb): the phoneme tables, intonations,
# the English dictionary and the English language files; the other 120 languages' data
# (19 MB, 370 files) is left out.
ESPEAK_ENGLISH = ("phontab", "phonindex", "phondata", "intonations", "en_dict")


def _copy_espeak_english(src: Path, dest: Path) -> None:
    dest.mkdir(parents=True, exist_ok=True)
    for name in ESPEAK_ENGLISH:
        shutil.copy2(src / name, dest / name)
    (dest / "lang" / "gmw").mkdir(parents=True, exist_ok=True)
    for lang in (src / "lang" / "gmw").glob("en*"):
        shutil.copy2(lang, dest / "lang" / "gmw" / lang.name)


def _espeak_data() -> Path:
    try:
        import espeakng_loader
    except ImportError:
        raise RunError(
            "a sherpa-onnx bundle needs espeak-ng-data from PyPI espeakng-loader; "
            "pip install espeakng-loader"
        ) from None
    return Path(espeakng_loader.get_data_path())


LEXICON_FORMAT = 4  # bump when lexicon() changes what it writes (2: WEAK_FORMS, 4: inflections)


def _lexicon_entry(accent: str, phonemes: str) -> Path:
    import misaki

    settings = [LEXICON_FORMAT, accent, phonemes, getattr(misaki, "__version__", "")]
    key = hashlib.sha256(json.dumps(settings).encode()).hexdigest()[:24]
    return cache_root() / LEXICON_AREA / f"{accent}-{key}" / LEXICON_FILE


def _place_lexicon(accent: str, phonemes: str, target: Path) -> None:
    """The lexicon at ``target``: a hard link to its cache entry where the entry holds
    these bytes (each bundle carried its own 32-33 MB copy of each, about 1 GB a
    ``build --all``), else written. A link is a whole file: clearing the cache leaves it,
    and an edit through it changes the entry's bytes, which the next read then rebuilds."""
    text = _lexicon(accent, phonemes)
    entry = _lexicon_entry(accent, phonemes)
    target.unlink(missing_ok=True)  # never written through: it may be a link itself
    with contextlib.suppress(OSError):  # no entry, another file system, no links
        os.link(entry, target)
        if file_sha256(target) == recorded_sha256(entry):  # the bytes _lexicon read there
            return
        target.unlink()
    target.write_text(text, encoding="utf-8")


@functools.lru_cache(maxsize=4)
def _lexicon(accent: str, phonemes: str) -> str:
    """``lexicon`` for one accent and phoneme set, kept in the cache (``lexicons/``, its
    sha256 recorded and checked like an export): building it reads misaki's 180k-word
    dictionaries, about 1.4 s, which every build with a sherpa-onnx bundle paid."""
    entry = _lexicon_entry(accent, phonemes)
    if cached_entry_ok(entry, what="lexicon cache entry"):
        return entry.read_text(encoding="utf-8")
    text = lexicon(accent, dict.fromkeys(phonemes, 0))
    store_if_possible(entry, lambda tmp: tmp.write_text(text, encoding="utf-8"), "lexicon")
    return text


# A lexicon gives a word one pronunciation wherever it stands. misaki's G2P (what Kokoro
# was trained on) gives these function words their weak form in running speech
# (misaki.en's special cases, before a consonant, unstressed); its dictionaries hold the
# citation form (``a`` -> ˈA as in "the letter A", ``to`` -> tu), which sherpa-onnx would
# otherwise say in every sentence.
WEAK_FORMS = {"a": "ɐ", "an": "ɐn", "the": "ðə", "to": "tə", "in": "ɪn"}


def lexicon(accent: str, vocab: dict[str, int]) -> str:
    """``WEAK_FORMS``, then misaki's ``{accent}_gold`` then ``{accent}_silver`` as sherpa
    lexicon lines, then the regular inflections of their words (``inflections``); a word
    is kept once (the first wins), phonemes outside the vocab are dropped."""
    import misaki
    from misaki.en import Lexicon

    data = Path(misaki.__file__).parent / "data"
    words: dict[str, str] = dict(WEAK_FORMS)
    for part in ("gold", "silver"):
        entries: dict[str, Any] = json.loads((data / f"{accent}_{part}.json").read_text())
        for word, value in entries.items():
            phonemes = value.get("DEFAULT") if isinstance(value, dict) else value
            key = word.lower()
            if phonemes and key not in words and not any(c.isspace() for c in key):
                words[key] = phonemes
    dictionary = {w: p for w, p in words.items() if w not in WEAK_FORMS}  # these never inflect
    derived = inflections(dictionary, Lexicon(british=accent == "gb"))
    derived = {w: p for w, p in derived.items() if w not in words}
    lines = []
    for word, phonemes in [*words.items(), *derived.items()]:
        kept = [c for c in phonemes if c in vocab and not c.isspace()]
        if kept:
            lines.append(f"{word} {' '.join(kept)}\n")
    return "".join(lines)


# sherpa-onnx skips a word its lexicon lacks ("OOV word skipped"; no espeak-ng fallback
# once a lexicon is given), and misaki's dictionaries hold base forms: "hogs", "man's",
# "opened" were silently dropped from speech. misaki's G2P derives these forms from the
# base word; the bundle spells them by English's regular rules and speaks them with
# misaki's own suffix rules (Lexicon._s, _ed, _ing).
_SIBILANT_ENDINGS = ("s", "x", "z", "ch", "sh")
_VOWELS = "aeiou"


def inflections(words: dict[str, str], lex) -> dict[str, str]:
    """Plural or third person (-s, -es, -ies), possessive ('s), past (-ed, -d, -ied) and
    -ing forms of every alphabetic word in ``words`` that ``words`` does not hold."""
    out: dict[str, str] = {}
    for word, phonemes in words.items():
        if len(word) < 2 or not word.isalpha():
            continue
        y_stem = word[-1] == "y" and word[-2] not in _VOWELS
        s_form = (
            word[:-1] + "ies"
            if y_stem
            else word + ("es" if word.endswith(_SIBILANT_ENDINGS) else "s")
        )
        ed_form = word[:-1] + "ied" if y_stem else word + ("d" if word[-1] == "e" else "ed")
        silent_e = word[-1] == "e" and word[-2] not in "eioy"
        ing_form = (word[:-1] if silent_e else word) + "ing"
        for form, spoken in (
            (s_form, lex._s(phonemes)),
            (word + "'s", lex._s(phonemes)),
            (ed_form, lex._ed(phonemes)),
            (ing_form, lex._ing(phonemes)),
        ):
            if spoken and form not in words and form not in out:
                out[form] = spoken
    return out
