"""The speech set heard in a second process beside the verification inputs
(publisher/verify/beside.py): the child fills the reference store with exactly what the
parent's ``listen`` then reads back, and stops when the parent's work fails."""

from __future__ import annotations

import dataclasses
import shutil

import numpy as np
import pytest

from publisher.runtime.corpus import load_corpus
from publisher.verify import beside, store
from publisher.verify import listen as speech_set


@pytest.fixture
def one_voice(tiny, tiny_dist, tmp_path, monkeypatch):
    """tiny with one voice of the speech set (its four sentences), treated as speaking so
    the speech gates run with the real recognizer and scorers; an empty store; two
    threads to share."""
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PUBLISHER_THREADS", "2")
    voice = sorted({it.voice for it in load_corpus().speech} & set(tiny.voices))[0]
    ckpt = dataclasses.replace(tiny, synthetic=False, voices={voice: tiny.voices[voice]})
    graph = tiny_dist / "fp32" / "onnx" / "model.onnx"
    return ckpt, str(graph), store.computation_sha256(graph)


def _stand_ins(monkeypatch) -> None:
    import publisher.runtime.speech as speech
    import publisher.verify.speaker as speaker

    monkeypatch.setattr(speech, "recognize", lambda w, r: "stand in")
    monkeypatch.setattr(speech, "dnsmos", lambda w, r: dict.fromkeys(speech_set.DNSMOS_KEYS, 1.0))
    monkeypatch.setattr(speaker, "embedding", lambda w, r: np.ones(256) / 16)  # its size


def test_the_speech_set_heard_beside_is_read_back_without_running_anything(one_voice, monkeypatch):
    """Three of the four sentences are stored by stand-in scorers here; the child hears
    the fourth with the real ones, and the parent then reads all four back."""
    ckpt, graph, key = one_voice
    with monkeypatch.context() as m:
        _stand_ins(m)
        speech_set.listen(ckpt, graph, key)
    last = speech_set._sentences(ckpt)[-1]
    ids, style = speech_set._input(ckpt, last)
    entry = store.entry_folder(speech_set._variant_key(ckpt, key, ids, style, last.speed))
    shutil.rmtree(entry)
    assert beside.worth_hearing_beside(ckpt, key)
    with beside.heard_beside(ckpt, graph, key):
        pass  # the parent's inputs would run here; leaving waits for the child
    assert entry.is_dir()

    import publisher.model.kmodel as kmodel
    import publisher.runtime.speech as speech
    import publisher.verify.speaker as speaker
    import publisher.verify.worker as worker

    def never(*args, **kwargs):
        raise AssertionError("computed in the parent")

    for module, name in [
        (kmodel, "run_torch"),
        (worker, "ModelWorker"),
        (speech, "recognize"),
        (speech, "dnsmos"),
        (speaker, "embedding"),
    ]:
        monkeypatch.setattr(module, name, never)
    result = speech_set.listen(ckpt, graph, key)
    assert result["ran"] and result["sentences"] == 4
    heard = [r["variant_dnsmos"]["overall"] for r in result["items"]]
    assert heard[:3] == [1.0] * 3 and heard[3] != 1.0  # the child's is DNSMOS's own
    assert not beside.worth_hearing_beside(ckpt, key)  # nothing left to hear


def test_a_failure_beside_the_speech_set_stops_it(one_voice):
    ckpt, graph, key = one_voice  # nothing stored: the child would hear four sentences
    with (
        pytest.raises(RuntimeError, match="the inputs failed"),
        beside.heard_beside(ckpt, graph, key),
    ):
        raise RuntimeError("the inputs failed")
    assert not speech_set.heard_already(ckpt, key)  # stopped, not waited for


def test_nothing_starts_beside_with_one_thread_or_without_the_speech_gates(
    one_voice, tiny, monkeypatch
):
    ckpt, graph, key = one_voice
    monkeypatch.setenv("PUBLISHER_THREADS", "1")
    assert not beside.worth_hearing_beside(ckpt, key)
    monkeypatch.setenv("PUBLISHER_THREADS", "2")
    assert not beside.worth_hearing_beside(tiny, key)  # synthetic weights do not speak
    assert beside.worth_hearing_beside(ckpt, key)


def test_graph_runs_reopen_their_session_with_the_threads_left_to_them(
    tiny, tiny_dist, tmp_path, monkeypatch
):
    from publisher.runtime.threads import sharing
    from publisher.verify.measure import StoredRuns, style_of, verification_items

    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PUBLISHER_THREADS", "2")
    runs = StoredRuns(tiny, tiny_dist / "fp32" / "onnx" / "model.onnx")
    first, second, third = verification_items(tiny)[:3]
    beside_us = [True]
    with sharing(lambda: beside_us[0], 1):
        runs.run(first, style_of(tiny, first))
        assert runs._session.get_session_options().intra_op_num_threads == 1
        beside_us[0] = False  # the process beside ended
        runs.run(second, style_of(tiny, second))
        assert runs._session.get_session_options().intra_op_num_threads == 2
    runs.run(third, style_of(tiny, third))
    assert runs._session.get_session_options().intra_op_num_threads == 2


def test_the_process_beside_exits_when_its_build_is_gone():
    """A killed build's child stops by itself (it polls the build's pid)."""
    import subprocess
    import sys

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            f"from publisher.verify.beside import _orphaned; _orphaned({gone.pid})",
        ],
        timeout=60,
    )
    assert child.returncode == 1
