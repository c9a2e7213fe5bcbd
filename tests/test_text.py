from __future__ import annotations

import random
import re
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from publisher.runtime import text as text_mod
from publisher.runtime.constants import MAX_PHONEMES, MAX_TOKENS
from publisher.runtime.errors import PublisherError
from publisher.runtime.text import (
    NON_SPEECH,
    count_phonemes,
    packaged_vocab,
    phonemize,
    split_phonemes,
    text_to_chunks,
    to_ids,
    which_g2p,
)

VOCAB = packaged_vocab()
PARAGRAPH = (
    "The old lighthouse keeper climbed the spiral stairs every evening, carrying a lamp and "
    "a thermos of tea. From the top he could see the fishing boats returning, their lights "
    "bobbing on the dark water like fireflies. Some nights the fog rolled in so thick that "
    "he could barely see his own hands; on those nights he sounded the horn every minute "
    "until dawn. Years later, when the light was automated, he still walked along the "
    "cliffs at dusk, watching the beam sweep across the waves, and remembering the storms "
    "he had seen. "
) * 4


def assert_lossless(source: str, chunks: list[str]) -> None:
    """Chunks are, in order, substrings of ``source`` separated only by whitespace."""
    pos = 0
    for chunk in chunks:
        found = source.find(chunk, pos)
        assert found >= 0, f"chunk {chunk!r} not found in order"
        assert source[pos:found].strip() == "", f"lost {source[pos:found]!r}"
        pos = found + len(chunk)
    assert source[pos:].strip() == ""


def test_limits_leave_room_for_two_pads_in_512_context() -> None:
    assert MAX_TOKENS == 510
    assert MAX_PHONEMES == 508


def test_phonemize_offline_gives_vocab_phonemes() -> None:
    phonemes = phonemize("The quick brown fox jumps over the lazy dog.")
    assert phonemes
    ids, dropped = to_ids(phonemes, VOCAB)
    assert dropped == ""
    assert len(ids) == len(phonemes)
    assert any(ch not in NON_SPEECH for ch in phonemes)


def test_phonemize_british_differs_from_american() -> None:
    us = phonemize("Hello, I want a tomato.", "en-us")
    gb = phonemize("Hello, I want a tomato.", "en-gb")
    assert us != gb
    assert count_phonemes(gb, VOCAB) > 0


def test_espeak_is_used_without_spacy_model_and_never_downloads(monkeypatch) -> None:
    monkeypatch.setattr(text_mod, "spacy_model_available", lambda: False)
    import misaki.en

    def no_g2p(*args, **kwargs):
        raise AssertionError("misaki.en.G2P must not be built (it would download spaCy)")

    monkeypatch.setattr(misaki.en, "G2P", no_g2p)
    text_mod._g2p.cache_clear()
    try:
        assert which_g2p() == "misaki.espeak"
        assert which_g2p("en-gb") == "misaki.espeak"
        assert phonemize("Good evening.")
        with pytest.raises(PublisherError, match="never downloaded"):
            phonemize("Good evening.", g2p="misaki.en")
    finally:
        text_mod._g2p.cache_clear()


def test_misaki_en_is_used_when_spacy_model_installed(monkeypatch) -> None:
    import misaki.en

    built = []

    class FakeG2P:
        def __init__(self, *, trf, british, fallback):
            built.append((trf, british, type(fallback).__name__))

        def __call__(self, text):
            return "hˈɛlO", []

    monkeypatch.setattr(text_mod, "spacy_model_available", lambda: True)
    monkeypatch.setattr(misaki.en, "G2P", FakeG2P)
    text_mod._g2p.cache_clear()
    try:
        assert which_g2p() == "misaki.en"
        assert phonemize("hello", "en-gb") == "hˈɛlO"
        assert phonemize("hello again", "en-gb") == "hˈɛlO"  # cached per language
        assert built == [(False, True, "EspeakFallback")]
    finally:
        text_mod._g2p.cache_clear()


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_phonemize_empty_text_raises(text: str) -> None:
    with pytest.raises(PublisherError, match="^empty text: nothing to say$"):
        phonemize(text)


@pytest.mark.parametrize("text", ["...!!!", "?!", "— , ;"])
def test_phonemize_punctuation_only_raises_nothing_to_say(text: str) -> None:
    with pytest.raises(PublisherError, match="text has nothing to say after phonemization"):
        phonemize(text)


def test_phonemize_unsupported_language_names_supported_ones() -> None:
    with pytest.raises(PublisherError, match="unsupported language 'xx'.*en-us, en-gb"):
        phonemize("hello", "xx")


def test_to_ids_maps_each_vocab_char_and_reports_dropped() -> None:
    ids, dropped = to_ids("hə❓lˈO❓ gX", VOCAB)
    assert ids == [VOCAB[ch] for ch in "həlˈO "]
    assert dropped == "❓gX"  # each once, in order of first appearance


def test_to_ids_adds_no_pads() -> None:
    ids, dropped = to_ids("ab", VOCAB)
    assert ids == [VOCAB["a"], VOCAB["b"]]
    assert 0 not in ids and dropped == ""


def test_split_short_input_returns_input() -> None:
    assert split_phonemes("həlˈO wˈɜːld.") == ["həlˈO wˈɜːld."]
    assert split_phonemes("   ") == []


def test_split_prefers_sentence_boundary_over_later_clause_boundary() -> None:
    source = "aaaa bbbb. cccc, dddd eeee ffff"
    assert split_phonemes(source, 24, VOCAB) == ["aaaa bbbb.", "cccc, dddd eeee ffff"]


def test_split_prefers_clause_boundary_over_later_space() -> None:
    source = "aaaa bbbb, cccc dddd eeee ffff"
    assert split_phonemes(source, 24, VOCAB) == ["aaaa bbbb,", "cccc dddd eeee ffff"]


@pytest.mark.parametrize("mark", [";", ":", "—"])
def test_split_treats_semicolon_colon_dash_as_clause_ends(mark: str) -> None:
    sep = mark if mark == "—" else mark + " "
    source = f"aaaa bbbb{sep}cccc dddd eeee ffff"
    assert split_phonemes(source, 24, VOCAB)[0] == f"aaaa bbbb{mark}"


@pytest.mark.parametrize("mark", ["!", "?", "…", '."', "?)"])
def test_split_treats_other_terminators_as_sentence_ends(mark: str) -> None:
    source = f"aaaa, bbbb{mark} cccc, dddd eeee ffff"
    assert split_phonemes(source, 24, VOCAB)[0] == f"aaaa, bbbb{mark}"


def test_split_falls_back_to_spaces_then_hard_cut() -> None:
    assert split_phonemes("aaaa bbbb cccc", 10, VOCAB) == ["aaaa bbbb", "cccc"]
    assert split_phonemes("abcdefhijk", 4, VOCAB) == ["abcd", "efhi", "jk"]


def test_split_ignores_a_period_inside_a_word() -> None:
    assert split_phonemes("aa.bb cc dd", 8, VOCAB) == ["aa.bb cc", "dd"]


def test_split_hard_cut_keeps_combining_mark_with_its_base() -> None:
    chunks = split_phonemes("ab\u0303cd", 2, VOCAB)
    assert chunks == ["a", "b\u0303", "cd"]


def test_split_counts_only_vocab_characters() -> None:
    source = "ab❓❓❓❓ cd"  # 5 vocab chars: a b space c d
    assert split_phonemes(source, 5, VOCAB) == [source]


def test_split_rejects_nonpositive_limit() -> None:
    with pytest.raises(PublisherError, match="max_phonemes"):
        split_phonemes("abc", 0)


PHONEME_ALPHABET = list("aəbˈcdˌeɪ ʊːŋ❓\u0303") + [" ", " ", ". ", ", ", "; ", "—", "! ", "\n"]


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from(PHONEME_ALPHABET), max_size=400),
    st.integers(min_value=1, max_value=60),
)
def test_split_respects_limit_and_loses_nothing_property(parts: list[str], limit: int) -> None:
    source = "".join(parts)
    chunks = split_phonemes(source, limit, VOCAB)
    assert all(chunk and chunk == chunk.strip() for chunk in chunks)
    assert all(count_phonemes(chunk, VOCAB) <= limit for chunk in chunks)
    assert_lossless(source, chunks)
    kept = [ch for ch in "".join(chunks) if ch in VOCAB and not ch.isspace()]
    assert kept == [ch for ch in source if ch in VOCAB and not ch.isspace()]


def test_split_random_phoneme_strings_lose_no_vocab_characters() -> None:
    rng = random.Random(1234)
    alphabet = [*VOCAB, "❓", "\t"]
    for _ in range(200):
        source = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 1500)))
        limit = rng.randint(1, 300)
        chunks = split_phonemes(source, limit, VOCAB)
        assert all(count_phonemes(c, VOCAB) <= limit for c in chunks)
        assert_lossless(source, chunks)


def test_split_20000_characters_quickly() -> None:
    rng = random.Random(7)
    words = ["ðə", "kwˈɪk", "bɹˈWn", "fˈɑːks,", "ʤˈʌmps", "ˌOvɚ", "lˈAzi", "dˈɑːɡ."]
    source = " ".join(rng.choice(words) for _ in range(4000))[:20000]
    started = time.perf_counter()
    chunks = split_phonemes(source)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0
    assert len(chunks) >= 20000 // MAX_PHONEMES
    assert all(count_phonemes(c, VOCAB) <= MAX_PHONEMES for c in chunks)
    assert_lossless(source, chunks)


def test_text_to_chunks_splits_long_paragraph_at_sentences() -> None:
    chunks = text_to_chunks(PARAGRAPH, max_phonemes=200)
    assert len(chunks) >= 5
    assert all(0 < count_phonemes(c, VOCAB) <= 200 for c in chunks)
    assert all(re.search(r"[.!?…]$", c) for c in chunks[:-1])  # each sentence fits in 200
    assert "".join(chunks).replace(" ", "") == phonemize(PARAGRAPH).replace(" ", "")


def test_text_to_chunks_default_limit_fits_context() -> None:
    chunks = text_to_chunks(PARAGRAPH)
    assert len(chunks) >= 3
    assert all(count_phonemes(c, VOCAB) + 2 <= MAX_TOKENS for c in chunks)


def test_split_sentences_gives_each_sentence_its_own_call_and_keeps_every_character():
    from publisher.runtime.text import split_sentences

    phonemes = "həlˈO. haʊ ɑɹ ju? aɪm faɪn… " + " ".join(["ðæŋks"] * 40) + "."
    chunks = split_sentences(phonemes, max_phonemes=60)

    assert chunks[:3] == ["həlˈO.", "haʊ ɑɹ ju?", "aɪm faɪn…"]
    assert len(chunks) > 4  # the long last sentence is cut where it does not fit
    assert "".join(chunks).replace(" ", "") == phonemes.replace(" ", "")
    assert split_sentences("  ") == []
