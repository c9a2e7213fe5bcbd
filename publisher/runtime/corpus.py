"""The evaluation and calibration corpus shipped as ``publisher/runtime/data/corpus.json``.

Phonemes are stored next to each text, so verification and calibration never need a
G2P. The file is written by ``scripts/make_corpus.py`` (misaki's espeak G2P, offline,
deterministic); ``python scripts/make_corpus.py --check`` confirms it is up to date.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from publisher.runtime.constants import MAX_PHONEMES, SAMPLE_RATE
from publisher.runtime.errors import InputError, PublisherError
from publisher.runtime.text import NON_SPEECH, packaged_vocab, to_ids

CORPUS_VERSION = 1
MIN_SPEED, MAX_SPEED = 0.5, 2.0
ITEM_KEYS = ("id", "text", "phonemes", "voice", "speed")
SECTIONS = ("eval", "calibration")
# plain sentences: the word-error-rate gate's; the conformance matrix's text cells' (heard)
OPTIONAL_SECTIONS = ("speech", "heard")


@dataclass(frozen=True)
class CorpusItem:
    """One utterance: its text, the phonemes Kokoro reads, the voice and speed to use."""

    id: str
    text: str
    phonemes: str
    voice: str
    speed: float

    @property
    def n_phonemes(self) -> int:
        """Phoneme ids in this item (every stored phoneme character is in the vocab)."""
        return len(self.phonemes)

    @property
    def lang(self) -> str:
        """The G2P language of the voice: ``en-gb`` for ``b*`` voices, else ``en-us``."""
        return "en-gb" if self.voice.startswith("b") else "en-us"

    def ids(self, vocab: Mapping[str, int] | None = None) -> list[int]:
        """Token ids for the phonemes, without the two 0 pads."""
        return to_ids(self.phonemes, vocab)[0]

    def padded_ids(self, vocab: Mapping[str, int] | None = None) -> list[int]:
        """``[0, *ids, 0]``: the model input."""
        return [0, *self.ids(vocab), 0]

    def to_json(self) -> dict[str, Any]:
        return {key: getattr(self, key) for key in ITEM_KEYS}


@dataclass(frozen=True)
class Corpus:
    eval: tuple[CorpusItem, ...]
    calibration: tuple[CorpusItem, ...]
    sample_rate: int = SAMPLE_RATE
    version: int = CORPUS_VERSION
    speech: tuple[CorpusItem, ...] = ()
    heard: tuple[CorpusItem, ...] = ()

    def select(self, max_items: int | None = None, max_phonemes: int | None = None) -> Corpus:
        """A subset for quick runs: items with at most ``max_phonemes`` phonemes, then the
        first ``max_items`` of each section (file order)."""
        for name, value in (("max_items", max_items), ("max_phonemes", max_phonemes)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise InputError(f"{name} must be an integer or None, got {value!r}")
            if value is not None and value < 0:
                raise InputError(f"{name} must not be negative, got {value}")

        def pick(items: tuple[CorpusItem, ...]) -> tuple[CorpusItem, ...]:
            if max_phonemes is not None:
                items = tuple(it for it in items if it.n_phonemes <= max_phonemes)
            return items if max_items is None else items[:max_items]

        return Corpus(
            pick(self.eval),
            pick(self.calibration),
            self.sample_rate,
            self.version,
            pick(self.speech),
            pick(self.heard),
        )

    @property
    def items(self) -> tuple[CorpusItem, ...]:
        return self.eval + self.calibration

    def to_json(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "sample_rate": self.sample_rate,
            "eval": [it.to_json() for it in self.eval],
            "calibration": [it.to_json() for it in self.calibration],
            **({"speech": [it.to_json() for it in self.speech]} if self.speech else {}),
            **({"heard": [it.to_json() for it in self.heard]} if self.heard else {}),
        }


def dumps(data: Mapping[str, Any]) -> str:
    """The canonical text of a corpus file (what make_corpus.py writes)."""
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def load_corpus(path: str | Path | None = None) -> Corpus:
    """The packaged corpus (or the corpus file at ``path``), validated."""
    if path is None:
        return _packaged_corpus()
    path = Path(path)
    try:
        text = path.read_text("utf-8")
    except OSError as err:
        raise InputError(f"cannot read corpus {path}: {err.strerror or err}") from err
    return parse_corpus_text(text, where=str(path))


@functools.lru_cache(maxsize=1)
def _packaged_corpus() -> Corpus:
    where = "publisher/runtime/data/corpus.json"
    try:
        text = resources.files("publisher.runtime.data").joinpath("corpus.json").read_text("utf-8")
    except OSError as err:
        raise InputError(f"cannot read the packaged corpus {where}: {err}") from err
    return parse_corpus_text(text, where=where)


def parse_corpus_text(text: str, where: str = "corpus") -> Corpus:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(f"{where}: not valid JSON: {err}") from err
    return parse_corpus(data, where=where)


def parse_corpus(data: Any, where: str = "corpus") -> Corpus:
    """Validate a decoded corpus file and build the Corpus; PublisherError when bad."""

    def fail(msg: str) -> PublisherError:
        return PublisherError(f"{where}: {msg}")

    if not isinstance(data, dict):
        raise fail("top level must be an object")
    expected = {"version", "sample_rate", *SECTIONS}
    if not expected <= set(data) <= expected | set(OPTIONAL_SECTIONS):
        raise fail(
            f"keys must be {sorted(expected)} (optionally {list(OPTIONAL_SECTIONS)}), "
            f"got {sorted(data)}"
        )
    if data["version"] != CORPUS_VERSION or isinstance(data["version"], bool):
        raise fail(f"unsupported version {data['version']!r} (expected {CORPUS_VERSION})")
    if data["sample_rate"] != SAMPLE_RATE or isinstance(data["sample_rate"], bool):
        raise fail(f"sample_rate must be {SAMPLE_RATE}, got {data['sample_rate']!r}")

    vocab = packaged_vocab()
    seen_ids: set[str] = set()
    sections: dict[str, tuple[CorpusItem, ...]] = {}
    for section in (*SECTIONS, *(k for k in OPTIONAL_SECTIONS if k in data)):
        raw = data[section]
        if not isinstance(raw, list) or not raw:
            raise fail(f"{section!r} must be a non-empty list of items")
        items = []
        for pos, entry in enumerate(raw):
            item = _parse_item(entry, f"{section}[{pos}]", vocab, fail)
            if item.id in seen_ids:
                raise fail(f"duplicate item id {item.id!r}")
            seen_ids.add(item.id)
            items.append(item)
        sections[section] = tuple(items)

    shared = {it.text for it in sections["eval"]} & {it.text for it in sections["calibration"]}
    if shared:
        raise fail(f"eval and calibration share texts: {sorted(shared)[:3]}")
    return Corpus(
        sections["eval"],
        sections["calibration"],
        SAMPLE_RATE,
        CORPUS_VERSION,
        sections.get("speech", ()),
        sections.get("heard", ()),
    )


def _parse_item(
    entry: Any, label: str, vocab: Mapping[str, int], fail: Callable[[str], PublisherError]
) -> CorpusItem:
    if not isinstance(entry, dict):
        raise fail(f"{label}: each item must be an object")
    if set(entry) != set(ITEM_KEYS):
        raise fail(f"{label}: keys must be {list(ITEM_KEYS)}, got {sorted(entry)}")
    for key in ("id", "text", "phonemes", "voice"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise fail(f"{label}: {key!r} must be a non-empty string")
    label = f"item {entry['id']!r}"
    phonemes = entry["phonemes"]
    if phonemes != phonemes.strip():
        raise fail(f"{label}: phonemes have leading or trailing whitespace")
    outside = "".join(sorted({ch for ch in phonemes if ch not in vocab}))
    if outside:
        raise fail(f"{label}: phonemes hold characters outside the vocab: {outside!r}")
    if len(phonemes) > MAX_PHONEMES:
        raise fail(f"{label}: {len(phonemes)} phonemes, more than {MAX_PHONEMES}")
    if all(ch in NON_SPEECH for ch in phonemes):
        raise fail(f"{label}: phonemes have nothing to say: {phonemes!r}")
    speed = entry["speed"]
    if (
        isinstance(speed, bool)
        or not isinstance(speed, (int, float))
        or not math.isfinite(speed)
        or not MIN_SPEED <= speed <= MAX_SPEED
    ):
        raise fail(f"{label}: speed must be a number in [{MIN_SPEED}, {MAX_SPEED}], got {speed!r}")
    return CorpusItem(entry["id"], entry["text"], phonemes, entry["voice"], float(speed))
