"""Text -> phonemes -> token ids, and splitting long phoneme strings to fit the context.

English G2P is misaki's own (``misaki.en``, what Kokoro was trained with) when the spaCy
model ``en_core_web_sm`` is already installed; otherwise misaki's espeak-ng G2P, which
works offline. Nothing here ever downloads anything: misaki.en would fetch the spaCy
model on construction, so it is only built when the model is importable.

Heavy imports (misaki, phonemizer, espeak) happen inside functions; importing this module
has no side effects.
"""

from __future__ import annotations

import functools
import importlib.util
import re
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Mapping
from typing import Any

from publisher.runtime.constants import MAX_PHONEMES
from publisher.runtime.errors import InputError, PublisherError
from publisher.runtime.vocab import packaged_config

ENGLISH = {"en-us": False, "en-gb": True}  # lang -> british
OTHER_LANGS = ("es", "fr-fr", "hi", "it", "pt-br")  # Kokoro's espeak-only languages
SUPPORTED_LANGS = (*ENGLISH, *OTHER_LANGS)
SPACY_MODEL = "en_core_web_sm"
G2P_ENGINES = ("auto", "misaki.en", "misaki.espeak")

# Vocab characters that carry no sound on their own: punctuation, space, intonation
# arrows, stress and length marks, modifiers and the combining tilde.
NON_SPEECH = frozenset(';:,.!?—…"()“” ↓→↗↘ˈˌːʰʲ\u0303')

_SENTENCE_END = re.compile(r'[.!?…]+["”)]*(?=\s|$)')
_CLAUSE_END = re.compile(r'[,;:]["”)]*(?=\s|$)|—+')
_SPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=1)
def _packaged_vocab() -> dict[str, int]:
    return dict(packaged_config()["vocab"])


def packaged_vocab() -> dict[str, int]:
    """Kokoro-82M's phoneme vocab (character -> id), from the packaged config. A copy."""
    return dict(_packaged_vocab())


def _check_lang(lang: str) -> None:
    if lang not in SUPPORTED_LANGS:
        raise InputError(
            f"unsupported language {lang!r}: supported are {', '.join(SUPPORTED_LANGS)}"
        )


def spacy_model_available() -> bool:
    """Whether misaki.en can be built without a download (``en_core_web_sm`` installed)."""
    try:
        return importlib.util.find_spec(SPACY_MODEL) is not None
    except (ImportError, ValueError):
        return False


def which_g2p(lang: str = "en-us") -> str:
    """The G2P ``phonemize`` uses for ``lang``: ``"misaki.en"`` or ``"misaki.espeak"``."""
    _check_lang(lang)
    if lang in ENGLISH and spacy_model_available():
        return "misaki.en"
    return "misaki.espeak"


@functools.lru_cache(maxsize=16)  # one per (engine, language)
def _g2p(engine: str, lang: str) -> Callable[[str], tuple[str, Any]]:
    """A cached G2P callable (text -> (phonemes, extra)) for one engine and language."""
    try:
        if engine == "misaki.en":
            import misaki.en
            import misaki.espeak

            british = ENGLISH[lang]
            return misaki.en.G2P(
                trf=False, british=british, fallback=misaki.espeak.EspeakFallback(british=british)
            )
        import misaki.espeak

        return misaki.espeak.EspeakG2P(language=lang)
    except PublisherError:
        raise
    except Exception as err:  # missing espeak library, broken spaCy install, ...
        raise InputError(f"cannot start the {engine} G2P for {lang}: {err}") from err


def phonemize(text: str, lang: str = "en-us", *, g2p: str = "auto") -> str:
    """Phonemes for ``text`` in Kokoro's alphabet, stripped (may hold out-of-vocab chars).

    ``g2p`` is ``"auto"`` (see ``which_g2p``), or forces ``"misaki.espeak"`` (always
    offline; what the shipped corpus uses) or ``"misaki.en"`` (needs ``en_core_web_sm``).
    """
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty text: nothing to say")
    _check_lang(lang)
    if g2p not in G2P_ENGINES:
        raise InputError(f"unknown G2P {g2p!r}: choose one of {', '.join(G2P_ENGINES)}")
    engine = which_g2p(lang) if g2p == "auto" else g2p
    if engine == "misaki.en":
        if lang not in ENGLISH:
            raise InputError(f"misaki.en only phonemizes English, not {lang!r}")
        if not spacy_model_available():
            raise InputError(
                f"misaki.en needs the spaCy model {SPACY_MODEL} installed "
                "(it is never downloaded here); use the misaki.espeak G2P instead"
            )
    try:
        phonemes, _ = _g2p(engine, lang)(text)
    except PublisherError:
        raise
    except Exception as err:
        raise InputError(f"{engine} failed on {_preview(text)}: {err}") from err
    phonemes = (phonemes or "").strip()
    vocab = _packaged_vocab()
    if not any(ch in vocab and ch not in NON_SPEECH for ch in phonemes):
        raise InputError(
            f"text has nothing to say after phonemization: {_preview(text)} "
            f"gave phonemes {phonemes!r}"
        )
    return phonemes


def _preview(text: str, limit: int = 60) -> str:
    return repr(text if len(text) <= limit else text[: limit - 1] + "…")


def to_ids(phonemes: str, vocab: Mapping[str, int] | None = None) -> tuple[list[int], str]:
    """One id per vocab character; others are dropped. No pads added.

    Returns ``(ids, dropped)`` where ``dropped`` lists each dropped character once, in
    order of first appearance ("" when nothing was dropped).
    """
    vocab = _packaged_vocab() if vocab is None else vocab
    ids: list[int] = []
    dropped: dict[str, None] = {}
    for ch in phonemes:
        idx = vocab.get(ch)
        if idx is None:
            dropped[ch] = None
        else:
            ids.append(idx)
    return ids, "".join(dropped)


def count_phonemes(phonemes: str, vocab: Mapping[str, int] | None = None) -> int:
    """How many ids ``phonemes`` turns into (its vocab characters)."""
    vocab = _packaged_vocab() if vocab is None else vocab
    return sum(ch in vocab for ch in phonemes)


def split_phonemes(
    phonemes: str, max_phonemes: int = MAX_PHONEMES, vocab: Mapping[str, int] | None = None
) -> list[str]:
    """Split ``phonemes`` into chunks of at most ``max_phonemes`` vocab characters each.

    Each cut is made at the last boundary that fits, preferring sentence ends (after
    ``. ! ? …``), then clause ends (after ``, ; : —``), then whitespace, then a hard cut.
    Chunks are stripped and non-empty; in order, they are substrings of the input
    separated only by whitespace, so every non-whitespace character is kept in order.
    Input that already fits comes back as ``[phonemes.strip()]``; blank input as ``[]``.
    """
    if isinstance(max_phonemes, bool) or not isinstance(max_phonemes, int) or max_phonemes < 1:
        raise InputError(f"max_phonemes must be a positive integer, got {max_phonemes!r}")
    vocab = _packaged_vocab() if vocab is None else vocab
    text = phonemes
    positions = [i for i, ch in enumerate(text) if ch in vocab]  # vocab char indices
    sentence = [m.end() for m in _SENTENCE_END.finditer(text)]
    clause = [m.end() for m in _CLAUSE_END.finditer(text)]
    spaces = [m.start() for m in _SPACE.finditer(text)]

    chunks: list[str] = []
    start, n = 0, len(text)
    while True:
        while start < n and text[start].isspace():
            start += 1
        if start >= n:
            break
        first = bisect_right(positions, start - 1)  # first vocab char at or after start
        if len(positions) - first <= max_phonemes:
            chunks.append(text[start:].strip())
            break
        end = positions[first + max_phonemes]  # text[start:end] holds max_phonemes
        cut = _last_boundary(sentence, start, end)
        cut = cut or _last_boundary(clause, start, end)
        cut = cut or _last_boundary(spaces, start, end)
        if not cut:
            cut = end
            while cut - 1 > start and unicodedata.combining(text[cut]):
                cut -= 1  # keep a combining mark with its base character
        chunks.append(text[start:cut].strip())
        start = cut
    return chunks


def split_sentences(
    phonemes: str, max_phonemes: int = MAX_PHONEMES, vocab: Mapping[str, int] | None = None
) -> list[str]:
    """One chunk per sentence (cut after ``. ! ? …``), each split further by
    ``split_phonemes`` where it does not fit: the calls of a stream that plays each
    sentence as soon as it is synthesized."""
    cuts = [m.end() for m in _SENTENCE_END.finditer(phonemes)]
    pieces = [phonemes[a:b] for a, b in zip([0, *cuts], [*cuts, len(phonemes)], strict=True)]
    return [chunk for piece in pieces for chunk in split_phonemes(piece, max_phonemes, vocab)]


def _last_boundary(candidates: list[int], start: int, end: int) -> int:
    """The largest candidate cut in (start, end], or 0 when there is none."""
    i = bisect_right(candidates, end)
    if i and candidates[i - 1] > start:
        return candidates[i - 1]
    return 0


def text_to_chunks(
    text: str, lang: str = "en-us", max_phonemes: int = MAX_PHONEMES, *, g2p: str = "auto"
) -> list[str]:
    """Phonemize ``text`` and split the phonemes into chunks that each fit the context."""
    return split_phonemes(phonemize(text, lang, g2p=g2p), max_phonemes)
