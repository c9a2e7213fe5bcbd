"""Word times from a dynamic graph's duration output (runtime/timing.py)."""

from __future__ import annotations

import pytest

from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.errors import PublisherError
from publisher.runtime.text import packaged_vocab, to_ids
from publisher.runtime.timing import token_spans, word_spans

PHONEMES = "həlˈoʊ, wˈɜːld! ðɪs ɪz kˈOkəɹO."


@pytest.fixture(scope="module")
def spoken(tiny_dist, tiny):
    """The tiny fp32 file's waveform and durations for PHONEMES (af_heart's style)."""
    from publisher.runtime.synth import open_session, run_onnx, style_row

    ids, _ = to_ids(PHONEMES, tiny.config["vocab"])
    session = open_session(tiny_dist / "fp32" / "onnx" / "model.onnx")
    voice = tiny.voices[sorted(tiny.voices)[0]]
    return run_onnx(session, ids, style_row(voice, len(ids)))


def test_token_times_run_end_to_end_over_the_whole_waveform(spoken, tiny):
    spans = token_spans(PHONEMES, spoken.durations, tiny.config["vocab"])

    assert spans[0].start_s == 0.0
    assert all(a.end_s == b.start_s for a, b in zip(spans, spans[1:], strict=False))
    assert spans[-1].end_s == pytest.approx(spoken.waveform.size / SAMPLE_RATE, abs=1e-9)


def test_words_are_the_phoneme_runs_between_spaces_and_punctuation_in_order(spoken, tiny):
    words = word_spans(PHONEMES, spoken.durations, tiny.config["vocab"])

    assert [w.text for w in words] == ["həlˈoʊ", "wˈɜːld", "ðɪs", "ɪz", "kˈOkəɹO"]
    assert all(w.start_s < w.end_s for w in words)  # every phoneme lasts a frame or more
    assert all(a.end_s <= b.start_s for a, b in zip(words, words[1:], strict=False))
    assert words[-1].end_s <= spoken.waveform.size / SAMPLE_RATE


def test_durations_that_do_not_match_the_phonemes_are_one_line():
    with pytest.raises(PublisherError, match=r"^3 durations for 5 phonemes: expected one per"):
        word_spans("həlˈo", [1, 2, 3], packaged_vocab())
