"""``publisher cache info|verify|clear`` over a cache built here by each owner's own writer
(export store, recovered state record, a runtime env marker)."""

from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from publisher.cli import main
from publisher.model.checkpoint import state_sha256
from publisher.model.recovered import STATE_RECORD
from publisher.workspace import store

DAY = 86400


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """One export, one recovered state, one finished and one unfinished runtime env."""
    root, envs = tmp_path / "cache", tmp_path / "envs"
    monkeypatch.setenv("PUBLISHER_CACHE", str(root))
    monkeypatch.setenv("PUBLISHER_ENVS", str(envs))
    store(root / "exports" / "e1" / "model.onnx", lambda p: p.write_bytes(os.urandom(5000)))
    state = {"decoder": {"w": torch.arange(4096, dtype=torch.float32)}}
    entry = root / "recovered" / "onnx" / "abc-v2"
    entry.mkdir(parents=True)
    torch.save(state, entry / "state.pt")
    record = {"config": {}, "summary": {}, "state_sha256": state_sha256(state)}
    (entry / STATE_RECORD).write_text(json.dumps(record))
    (envs / "onnxruntime-1.20.1" / "bin").mkdir(parents=True)
    (envs / "onnxruntime-1.20.1" / "publisher-env.json").write_text("{}")
    (envs / "kokoro-onnx-0.6.1").mkdir()  # killed while installing: no marker
    return root


def _run(*args: str):
    result = CliRunner().invoke(main, ["cache", *args])
    assert "Traceback" not in result.output
    return result


def test_info_lists_every_entry_with_its_area_and_size(cache):
    result = _run("info")
    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()[2:-1]]
    assert sorted((r[0], Path(r[-1]).name) for r in rows) == [
        ("envs", "kokoro-onnx-0.6.1"),
        ("envs", "onnxruntime-1.20.1"),
        ("exports", "e1"),
        ("recovered", "abc-v2"),
    ]
    assert result.stdout.splitlines()[-1].startswith("4 entries, ")


def test_verify_names_damaged_entries_removes_them_and_exits_1(cache):
    with open(cache / "exports" / "e1" / "model.onnx", "r+b") as fh:
        fh.seek(2000)
        fh.write(b"\0" * 64)
    state = cache / "recovered" / "onnx" / "abc-v2" / "state.pt"
    with open(state, "r+b") as fh:  # inside the tensor's bytes: still loadable
        fh.seek(state.stat().st_size // 2)
        fh.write(b"\x55" * 256)
    result = _run("verify", "--keep-damaged")
    assert result.exit_code == 1
    damaged = sorted(line for line in result.stdout.splitlines() if line.startswith("damaged:"))
    assert len(damaged) == 3, result.stdout
    text = "\n".join(damaged)
    assert "envs/kokoro-onnx-0.6.1: no publisher-env.json: its creation did not finish" in text
    assert "exports/e1: sha256 " in text and ", recorded " in text
    assert "abc-v2: state hash " in text and text.count("(kept)") == 3
    assert (cache / "exports" / "e1").is_dir()  # kept as asked
    result = _run("verify")
    assert result.exit_code == 1 and "rebuilt on next use" in result.stdout
    assert not (cache / "exports" / "e1").exists()
    again = _run("verify")
    assert again.exit_code == 0 and again.stdout.strip().endswith("1 entries checked, 0 damaged")


def test_a_synthetic_checkpoint_entry_is_listed_and_a_damaged_one_named(cache):
    from publisher.model.sources import open_checkpoint

    open_checkpoint("synthetic:tiny")
    info = _run("info", "--area", "synthetic")
    assert info.exit_code == 0 and info.stdout.splitlines()[-1].startswith("1 entries, ")
    (saved,) = (cache / "synthetic").glob("tiny-*/checkpoint.pt")
    with open(saved, "r+b") as fh:
        fh.seek(saved.stat().st_size // 2)
        fh.write(b"\x55" * 64)
    result = _run("verify", "--area", "synthetic")
    assert result.exit_code == 1
    assert f"synthetic/{saved.parent.name}: sha256 " in result.stdout
    assert not saved.parent.exists()


def test_clear_older_than_removes_only_entries_unchanged_that_long(cache):
    old = time.time() - 10 * DAY
    for f in (cache / "exports").rglob("*"):
        os.utime(f, (old, old))
    dry = _run("clear", "--older-than", "7d", "--dry-run")
    assert dry.exit_code == 0 and "would remove 1 entries" in dry.stdout
    assert (cache / "exports" / "e1").is_dir()
    result = _run("clear", "--older-than", "7d")
    assert result.exit_code == 0 and "removed 1 entries" in result.stdout
    assert not (cache / "exports" / "e1").exists()
    assert (cache / "recovered" / "onnx" / "abc-v2").is_dir()
    result = _run("clear", "--area", "recovered")
    assert not (cache / "recovered" / "onnx" / "abc-v2").exists()
    assert (Path(os.environ["PUBLISHER_ENVS"]) / "onnxruntime-1.20.1").is_dir()


def test_clear_with_an_unreadable_age_is_one_line(cache):
    result = _run("clear", "--older-than", "a week")
    assert result.exit_code == 1
    assert "--older-than 'a week': expected a number and a unit, like 30m" in result.stderr
    assert (cache / "exports" / "e1").is_dir()


PHONEMES = "abdefhiklmnprstuvwzæðŋɑɔəɛɪʊʌˈˌ"


@functools.cache
def _built(accent: str, phonemes: str | None = None) -> str:
    """``sherpa.lexicon`` itself (no cache), for ``phonemes`` or the packaged vocabulary:
    each takes seconds, so the tests below that read one share it."""
    from publisher.hub.sherpa import lexicon
    from publisher.runtime.text import packaged_vocab

    return lexicon(accent, dict.fromkeys(phonemes, 0) if phonemes else packaged_vocab())


def test_sherpa_lexicon_is_built_once_then_read_back_and_a_damaged_one_rebuilt(cache):
    from publisher.hub import sherpa

    phonemes = PHONEMES
    built = _built("us", phonemes)  # the builder itself
    sherpa._lexicon.cache_clear()
    assert sherpa._lexicon("us", phonemes) == built
    entries = list((cache / "lexicons").glob("us-*/lexicon.txt"))
    assert len(entries) == 1 and entries[0].read_text(encoding="utf-8") == built
    assert "lexicons" in {line.split()[0] for line in _run("info").stdout.splitlines()[2:-1]}

    entries[0].write_text("the ð\n", encoding="utf-8")  # damaged: its sha256 no longer matches
    assert _run("verify").exit_code == 1 and not entries[0].exists()
    sherpa._lexicon.cache_clear()
    assert sherpa._lexicon("us", phonemes) == built and entries[0].read_text("utf-8") == built


def test_sherpa_lexicon_when_the_cache_cannot_be_written_is_still_built(tmp_path, monkeypatch):
    from publisher.hub import sherpa

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("PUBLISHER_CACHE", str(blocked / "cache"))  # under a file: no mkdir
    sherpa._lexicon.cache_clear()
    try:
        got = sherpa._lexicon("us", PHONEMES)
    finally:
        sherpa._lexicon.cache_clear()
    assert got == _built("us", PHONEMES)
    assert blocked.read_text() == "not a folder"


def test_a_bundles_lexicons_link_to_the_cache_and_stay_whole_without_it(
    tiny, tiny_dist, tmp_path, monkeypatch
):
    from publisher.hub import sherpa
    from publisher.runtime.clients import SHERPA_LEXICONS

    model = tiny_dist / "fp32" / "onnx" / "model.onnx"
    vocab = tiny.config["vocab"]
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PUBLISHER_ENVS", str(tmp_path / "envs"))  # clear below spares them
    sherpa._lexicon.cache_clear()
    sherpa.write_bundle(model, tiny.voices, vocab, tmp_path / "linked")
    for accent, name in SHERPA_LEXICONS.items():
        placed = tmp_path / "linked" / name
        (entry,) = (tmp_path / "cache" / "lexicons").glob(f"{accent}-*/lexicon.txt")
        assert placed.stat().st_ino == entry.stat().st_ino and placed.stat().st_nlink == 2
        assert placed.read_text(encoding="utf-8") == _built(accent, "".join(sorted(vocab)))
    entries = list((tmp_path / "cache" / "lexicons").glob("*/lexicon.txt"))
    stamps = [e.stat().st_mtime_ns for e in entries]
    sherpa.write_bundle(model, tiny.voices, vocab, tmp_path / "linked")  # again, same folder
    assert [e.stat().st_mtime_ns for e in entries] == stamps  # linked, never written through
    assert [e.stat().st_nlink for e in entries] == [2, 2]
    assert _run("clear", "--area", "lexicons").exit_code == 0
    assert not list((tmp_path / "cache" / "lexicons").glob("*/lexicon.txt"))
    for accent, name in SHERPA_LEXICONS.items():  # the bundle's files outlive the cache
        placed = tmp_path / "linked" / name
        assert placed.read_text(encoding="utf-8") == _built(accent, "".join(sorted(vocab)))

    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("PUBLISHER_CACHE", str(blocked / "cache"))  # no entry to link
    sherpa.write_bundle(model, tiny.voices, vocab, tmp_path / "written")
    for accent, name in SHERPA_LEXICONS.items():
        placed = tmp_path / "written" / name
        assert placed.stat().st_nlink == 1
        assert placed.read_text(encoding="utf-8") == _built(accent, "".join(sorted(vocab)))
    sherpa._lexicon.cache_clear()


def test_the_sherpa_lexicon_gives_function_words_misakis_weak_forms(tmp_path):
    """The oracle is misaki's own G2P: the forms its special cases give these words in
    running speech (before a consonant), not the dictionaries' citation forms."""
    from misaki.en import Lexicon, TokenContext

    text = _built("us")
    lines = dict(line.split(" ", 1) for line in text.splitlines())
    misaki = Lexicon(british=False)
    for word, tag in (("a", "DT"), ("an", "DT"), ("the", "DT"), ("to", "TO"), ("in", "IN")):
        weak, _ = misaki.get_special_case(word, tag, None, TokenContext(future_vowel=False))
        assert lines[word].replace(" ", "") == weak, word
    assert lines["cat"].replace(" ", "") == misaki.golds["cat"]  # the rest as before
    assert sum(line.startswith("the ") for line in text.splitlines()) == 1


@pytest.mark.parametrize("accent", ["us", "gb"])
def test_the_sherpa_lexicon_holds_inflected_forms_as_misaki_derives_them(accent):
    """sherpa-onnx drops a word its lexicon lacks; misaki's dictionaries hold base forms.
    The oracle is misaki's own morphology read backwards (Lexicon.stem_s, stem_ed,
    stem_ing: what its G2P says for a word it does not hold): every form of the corpus
    that was dropped is now spoken as misaki speaks it, and a held word is unchanged."""
    from misaki.en import Lexicon, TokenContext

    from publisher.runtime.text import packaged_vocab

    vocab = packaged_vocab()
    text = _built(accent)
    keys = [line.split(" ", 1)[0] for line in text.splitlines()]
    assert len(keys) == len(set(keys))  # each word once
    lines = dict(line.split(" ", 1) for line in text.splitlines())
    misaki = Lexicon(british=accent == "gb")
    forms = {
        misaki.stem_s: ["hogs", "man's", "makes", "lorries", "museum's", "questions"],
        misaki.stem_ed: ["opened", "wanted", "baked"],
        misaki.stem_ing: ["baking", "opening"],
    }
    for stem, words in forms.items():
        for word in words:
            spoken, _ = stem(word, None, None, TokenContext())
            expected = "".join(c for c in spoken if c in vocab)
            assert lines[word].replace(" ", "") == expected, word
    assert lines["cat"].replace(" ", "") == misaki.golds["cat"]  # held: kept as is
    assert "the's" not in lines and "tos" not in lines  # function words do not inflect
