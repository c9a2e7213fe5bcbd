from __future__ import annotations

import copy
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from publisher.runtime.constants import MAX_PHONEMES
from publisher.runtime.corpus import Corpus, CorpusItem, load_corpus, parse_corpus
from publisher.runtime.errors import PublisherError
from publisher.runtime.text import packaged_vocab, to_ids

REPO = Path(__file__).resolve().parent.parent
VOICES = {"af_heart", "af_bella", "am_adam", "bf_emma", "bm_george"}
VOCAB = packaged_vocab()


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    return load_corpus()


@pytest.fixture
def raw() -> dict:
    return json.loads((REPO / "publisher" / "runtime" / "data" / "corpus.json").read_text("utf-8"))


def sentences(text: str) -> set[str]:
    return {s.strip().lower() for s in re.split(r"(?<=[.!?])\s+", text) if s.strip()}


def test_corpus_loads_with_expected_sizes(corpus: Corpus) -> None:
    assert corpus.version == 1 and corpus.sample_rate == 24000
    assert 8 <= len(corpus.eval) <= 14
    assert 20 <= len(corpus.calibration) <= 30
    assert all(isinstance(it, CorpusItem) for it in corpus.items)


def test_eval_and_calibration_share_no_ids_texts_or_sentences(corpus: Corpus) -> None:
    ids = [it.id for it in corpus.items]
    assert len(ids) == len(set(ids))
    assert not {it.text for it in corpus.eval} & {it.text for it in corpus.calibration}
    eval_sentences = set().union(*(sentences(it.text) for it in corpus.eval))
    cal_sentences = set().union(*(sentences(it.text) for it in corpus.calibration))
    assert not eval_sentences & cal_sentences


def test_eval_covers_short_medium_and_near_context_lengths(corpus: Corpus) -> None:
    lengths = [it.n_phonemes for it in corpus.eval]
    assert any(10 <= n <= 30 for n in lengths)
    assert any(60 <= n <= 200 for n in lengths)
    assert sum(450 <= n <= MAX_PHONEMES for n in lengths) >= 2


def test_calibration_is_mostly_20_to_200_phonemes(corpus: Corpus) -> None:
    lengths = [it.n_phonemes for it in corpus.calibration]
    assert sum(20 <= n <= 200 for n in lengths) >= 0.8 * len(lengths)
    assert min(lengths) < 40 and max(lengths) > 120  # mixed lengths


def test_eval_uses_all_five_voices_and_speeds_from_0_8_to_1_5(corpus: Corpus) -> None:
    assert {it.voice for it in corpus.eval} == VOICES
    speeds = [it.speed for it in corpus.eval]
    assert {0.8, 1.5} <= set(speeds)
    assert all(0.8 <= s <= 1.5 for s in speeds)
    assert speeds.count(1.0) > len(speeds) / 2


def test_calibration_varies_voices_and_speeds(corpus: Corpus) -> None:
    assert {it.voice for it in corpus.calibration} == VOICES
    assert len({it.speed for it in corpus.calibration}) >= 4


def test_all_phonemes_are_in_vocab_and_fit_context(corpus: Corpus) -> None:
    for it in corpus.items:
        ids, dropped = to_ids(it.phonemes, VOCAB)
        assert dropped == "", it.id
        assert 0 < len(ids) == it.n_phonemes <= MAX_PHONEMES
        assert it.ids(VOCAB) == ids
        assert it.padded_ids() == [0, *ids, 0]


def test_item_lang_follows_voice(corpus: Corpus) -> None:
    langs = {it.voice: it.lang for it in corpus.items}
    assert langs["bf_emma"] == langs["bm_george"] == "en-gb"
    assert langs["af_heart"] == langs["am_adam"] == "en-us"


def test_select_filters_by_length_then_caps_count(corpus: Corpus) -> None:
    small = corpus.select(max_phonemes=200)
    assert small.eval and small.calibration
    assert all(it.n_phonemes <= 200 for it in small.items)
    assert len(small.eval) < len(corpus.eval)
    few = corpus.select(max_items=2, max_phonemes=200)
    assert few.eval == small.eval[:2] and few.calibration == small.calibration[:2]
    assert corpus.select() == corpus


def test_select_rejects_bad_arguments(corpus: Corpus) -> None:
    with pytest.raises(PublisherError, match="max_items"):
        corpus.select(max_items=-1)


def test_load_corpus_from_path_round_trips(tmp_path: Path, raw: dict, corpus: Corpus) -> None:
    path = tmp_path / "corpus.json"
    path.write_text(json.dumps(raw), "utf-8")
    assert load_corpus(path) == corpus
    assert corpus.to_json() == raw


def _broken(raw: dict, how: str) -> dict:
    data = copy.deepcopy(raw)
    item = data["eval"][0]
    if how == "duplicate id":
        data["calibration"][0]["id"] = item["id"]
    elif how == "out of vocab":
        item["phonemes"] += "❓"
    elif how == "too long":
        item["phonemes"] = "a" * (MAX_PHONEMES + 1)
    elif how == "speed":
        item["speed"] = 3.0
    elif how == "missing key":
        del item["voice"]
    elif how == "version":
        data["version"] = 2
    elif how == "empty section":
        data["calibration"] = []
    elif how == "shared text":
        data["calibration"][0]["text"] = item["text"]
    elif how == "silent":
        item["phonemes"] = "..."
    return data


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("duplicate id", "duplicate item id"),
        ("out of vocab", "outside the vocab"),
        ("too long", "more than 508"),
        ("speed", r"speed must be a number in \[0.5, 2.0\]"),
        ("missing key", "keys must be"),
        ("version", "unsupported version"),
        ("empty section", "non-empty list"),
        ("shared text", "share texts"),
        ("silent", "nothing to say"),
    ],
)
def test_bad_corpus_file_raises_publisher_error(
    tmp_path: Path, raw: dict, how: str, message: str
) -> None:
    with pytest.raises(PublisherError, match=message):
        parse_corpus(_broken(raw, how))
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(_broken(raw, how)), "utf-8")
    with pytest.raises(PublisherError, match=rf"^{re.escape(str(path))}: "):
        load_corpus(path)


def test_unreadable_or_invalid_json_corpus_raises(tmp_path: Path) -> None:
    with pytest.raises(PublisherError, match="cannot read corpus"):
        load_corpus(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", "utf-8")
    with pytest.raises(PublisherError, match="not valid JSON"):
        load_corpus(bad)


def test_make_corpus_check_reports_no_difference() -> None:
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_corpus.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "up to date" in result.stdout


def test_make_corpus_check_detects_a_stale_file(tmp_path: Path, raw: dict) -> None:
    stale = tmp_path / "corpus.json"
    raw["eval"][0]["speed"] = 1.25
    stale.write_text(json.dumps(raw, ensure_ascii=False, indent=2) + "\n", "utf-8")
    result = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_corpus.py"), "--check", "--output", stale],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "differs" in result.stderr and "1.25" in result.stderr
