"""Gates that hear: timing apart from timbre, and the speech-set gates' logic."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from publisher.runtime.metrics import aligned_spectra, correlation, spectral_correlation
from publisher.runtime.speech import corpus_wer
from publisher.verify.listen import skip_reason, speech_gates, summarize

FRAME = 600


def _tokens(durations, seed: int = 0) -> np.ndarray:
    """One distinct tone per token, as many samples as its duration says."""
    out = []
    for i, d in enumerate(durations):
        t = np.arange(d * FRAME) / 24000
        out.append((0.4 + 0.3 * np.sin(i)) * np.sin(2 * np.pi * (180 + 97 * i) * t))
    return np.concatenate(out).astype(np.float32)


REF = np.array([3, 5, 4, 6, 2, 5, 7, 3] * 4)


def test_one_longer_token_fails_frame_alignment_but_not_token_alignment():
    test = REF.copy()
    test[2] += 1
    a, b = _tokens(REF), _tokens(test)
    assert spectral_correlation(a, b) < 0.9  # everything after token 2 is shifted
    assert correlation(*aligned_spectra(a, b, REF, test, FRAME)) > 0.99


def test_equal_durations_give_the_plain_frame_aligned_value():
    a = _tokens(REF)
    b = a + np.random.default_rng(1).normal(0, 0.05, a.size).astype(np.float32)
    assert correlation(*aligned_spectra(a, b, REF, REF, FRAME)) == pytest.approx(
        spectral_correlation(a, b)
    )


def test_real_damage_cannot_hide_behind_the_alignment():
    test = REF.copy()
    test[2] += 1
    noise = np.random.default_rng(2).normal(0, 0.4, test.sum() * FRAME)
    drifted = correlation(*aligned_spectra(_tokens(REF), _tokens(test) + noise, REF, test, FRAME))
    in_place = spectral_correlation(_tokens(REF), _tokens(REF) + noise[: REF.sum() * FRAME])
    assert drifted < 0.9 and drifted < in_place + 0.05  # the same noise, the same verdict


def test_corpus_wer_counts_all_errors_over_all_words():
    refs = ["The kettle is boiling.", "Where did you park?"]
    assert corpus_wer(refs, ["the kettle is boiling", "where did you bark"]) == pytest.approx(1 / 8)
    assert corpus_wer(refs, ["", ""]) == pytest.approx(1.0)


def _row(item, ref_heard, var_heard, ref_mos, var_mos, same_speaker=0.99):
    mos = lambda v: {"overall": v, "signal": v, "background": v}  # noqa: E731
    return {
        "speaker_similarity": same_speaker,
        "item": item,
        "voice": "af_heart",
        "text": "the birch canoe slid on the smooth planks",
        "reference_heard": ref_heard,
        "variant_heard": var_heard,
        "reference_dnsmos": mos(ref_mos),
        "variant_dnsmos": mos(var_mos),
    }


def test_speech_gates_fail_a_variant_that_loses_words_or_quality():
    gates = SimpleNamespace(wer_margin=0.05, dnsmos_drop=0.2, speaker_similarity=None)
    good = "the birch canoe slid on the smooth planks"
    garbled = "the bird can slid on a move planks"
    rows = [_row("s1", good, good, 3.3, 3.25), _row("s2", good, garbled, 3.3, 2.5)]
    speech = {"ran": True, **summarize(rows)}
    results = {name: (value, limit) for name, value, limit, _ in speech_gates(gates, speech)}
    wer, wer_limit = results["word_error_rate"]
    assert speech["reference_wer"] == 0.0 and wer > wer_limit == pytest.approx(0.05)
    mos, mos_limit = results["dnsmos_overall"]
    assert mos == pytest.approx(2.875) and mos < mos_limit == pytest.approx(3.1)
    same = {"ran": True, **summarize([_row("s1", good, good, 3.3, 3.3)])}
    for _, value, limit, higher in speech_gates(gates, same):
        assert (value >= limit) if higher else (value <= limit)


def test_speech_gates_are_skipped_for_synthetic_weights_and_say_so(tiny):
    assert "synthetic weights do not speak" in skip_reason(tiny)
    gates = SimpleNamespace(wer_margin=0.05, dnsmos_drop=0.2, speaker_similarity=0.985)
    assert speech_gates(gates, {"ran": False, "skipped": "x"}) == []


def test_the_speaker_gate_fails_a_variant_that_sounds_like_someone_else():
    gates = SimpleNamespace(wer_margin=None, dnsmos_drop=None, speaker_similarity=0.985)
    text = "the birch canoe slid on the smooth planks"
    rows = [_row("s1", text, text, 3.3, 3.3, 0.999), _row("s2", text, text, 3.3, 3.3, 0.95)]
    [(gate, value, limit, higher)] = speech_gates(gates, {"ran": True, **summarize(rows)})
    assert gate == "speaker_similarity" and higher
    assert value == pytest.approx(0.9745) and value < limit == 0.985
    close = summarize([_row("s1", text, text, 3.3, 3.3, 0.99)])
    [(_, value, limit, _)] = speech_gates(gates, {"ran": True, **close})
    assert value >= limit


def test_speaker_similarity_hears_the_same_voice_and_not_another():
    from publisher.verify.speaker import embedding, similarity

    rate = 24000
    t = np.arange(2 * rate) / rate
    rng = np.random.default_rng(0)

    # two buzzy "voices": glottal-like pulse trains at different pitches through different
    # formant-like resonances, with the same envelope
    def voice(f0: float, formants: tuple[float, ...]) -> np.ndarray:
        pulses = np.sign(np.sin(2 * np.pi * f0 * t)) * 0.3
        out = sum(np.sin(2 * np.pi * f * t) * pulses for f in formants)
        return (out * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)

    low = voice(110, (500, 1500, 2500))
    high = voice(240, (800, 2200, 3300))
    noisy_low = low + rng.normal(0, 0.002, low.size).astype(np.float32)
    same = similarity(embedding(low, rate), embedding(noisy_low, rate))
    other = similarity(embedding(low, rate), embedding(high, rate))
    assert same > 0.99 and other < same - 0.02


def test_the_speech_set_has_20_plus_sentences_in_both_sexes_voices():
    from publisher.runtime.corpus import load_corpus

    speech = load_corpus().speech
    voices = {it.voice for it in speech}
    assert len(speech) >= 20 and {"af_heart", "am_michael"} <= voices
    assert {v[1] for v in voices} == {"f", "m"}


def test_listen_hears_upstream_torch_as_the_reference_and_the_graph_as_the_variant(
    tiny, tiny_model, tiny_dist, monkeypatch, tmp_path
):
    """The speech set end to end through ``listen()``: the recognizer, DNSMOS and the
    speaker encoder are stand-ins that record what they were given; each reference call
    must get upstream torch's audio (recomputed here with the same seed), each variant
    call the shipped graph's."""
    import dataclasses

    import torch

    import publisher.runtime.speech as speech
    import publisher.verify.speaker as speaker
    from publisher.model.kmodel import run_torch
    from publisher.runtime.corpus import load_corpus
    from publisher.runtime.synth import style_row
    from publisher.verify import listen as module

    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))  # an empty store
    items = [it for it in load_corpus().speech if it.voice in tiny.voices]
    references = []
    for k, item in enumerate(items):
        ids = item.ids(tiny.config["vocab"])
        torch.manual_seed(module.SEED + k)
        wave = run_torch(tiny_model, ids, style_row(tiny.voices[item.voice], len(ids)))
        references.append(wave.waveform)
    heard: list[str] = []

    def recognize(wave, rate):
        k = len(heard) // 2  # per sentence: the reference first, then the variant
        is_reference = wave.shape == references[k].shape and np.array_equal(wave, references[k])
        heard.append("reference" if is_reference else "variant")
        words = items[k].text.split()
        return " ".join(words if is_reference else words[:-1])  # the variant drops a word

    monkeypatch.setattr(speech, "missing_tools", lambda: None)
    monkeypatch.setattr(speech, "recognize", recognize)
    monkeypatch.setattr(
        speech, "dnsmos", lambda w, r: {"overall": 3.0, "signal": 3.0, "background": 3.0}
    )
    monkeypatch.setattr(speaker, "embedding", lambda w, r: np.ones(4) / 2)
    speaking = dataclasses.replace(tiny, synthetic=False)  # the stand-ins do the hearing
    graph = str(tiny_dist / "fp32" / "onnx" / "model.onnx")
    result = module.listen(speaking, graph)
    assert len(items) >= 2 and result["ran"] and result["sentences"] == len(items)
    assert heard == ["reference", "variant"] * len(items)
    assert result["reference_wer"] == 0.0 and result["variant_wer"] > 0.05
    gates = SimpleNamespace(wer_margin=0.03, dnsmos_drop=0.1, speaker_similarity=0.985)
    passed = {name: (v <= t, v >= t)[hi] for name, v, t, hi in speech_gates(gates, result)}
    assert passed == {"word_error_rate": False, "dnsmos_overall": True, "speaker_similarity": True}

    # a rebuild that wrote the same graph reads both sides from the reference store: no
    # torch run, no model worker, no recognizer call, the same figures
    import publisher.model.kmodel as kmodel
    import publisher.verify.worker as worker

    def never(*args, **kwargs):
        raise AssertionError("ran again")

    monkeypatch.setattr(kmodel, "run_torch", never)
    monkeypatch.setattr(worker, "ModelWorker", never)
    monkeypatch.setattr(speech, "recognize", never)
    again = module.listen(speaking, graph)
    assert again == result

    # another graph of the same checkpoint: upstream's side read back, the variant heard
    monkeypatch.undo()
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(speech, "missing_tools", lambda: None)
    monkeypatch.setattr(
        speech, "dnsmos", lambda w, r: {"overall": 3.0, "signal": 3.0, "background": 3.0}
    )
    monkeypatch.setattr(speaker, "embedding", lambda w, r: np.ones(4) / 2)
    monkeypatch.setattr(kmodel, "run_torch", never)
    variant_only: list[int] = []
    monkeypatch.setattr(
        speech, "recognize", lambda w, r: variant_only.append(1) or "the variant heard"
    )
    other = str(tiny_dist / "quantized" / "onnx" / "model_quantized.onnx")
    assert module.store.computation_sha256(Path(other)) != module.store.computation_sha256(
        Path(graph)
    )
    third = module.listen(speaking, other)
    assert len(variant_only) == len(items)  # the variant's sentences only
    assert [r["reference_heard"] for r in third["items"]] == [it.text for it in items]
    assert third["reference_wer"] == result["reference_wer"] == 0.0


def test_speech_gates_compare_a_split_sentence_with_upstream_speaking_the_same_pieces():
    gates = SimpleNamespace(wer_margin=0.05, dnsmos_drop=0.2, speaker_similarity=None)
    text = "the birch canoe slid on the smooth planks"
    split_cost = "the birch canoe slid on smooth planks"  # upstream in pieces drops a word
    row = _row("s1", text, split_cost, 3.3, 3.1)
    row |= {
        "pieces": 2,
        "same_pieces_heard": split_cost,
        "same_pieces_dnsmos": row["variant_dnsmos"],
    }
    speech = {"ran": True, **summarize([row])}
    assert speech["reference_wer"] == 0.0 and speech["same_pieces_wer"] == pytest.approx(0.125)
    assert speech["split_sentences"] == 1
    results = {name: (value, limit) for name, value, limit, _ in speech_gates(gates, speech)}
    assert results["word_error_rate"] == (pytest.approx(0.125), pytest.approx(0.175))
    assert results["dnsmos_overall"][1] == pytest.approx(2.9)  # 3.1 - 0.2, not 3.3 - 0.2
    worse = row | {"variant_heard": "the birch slid smooth"}
    [(_, value, limit, _), _] = speech_gates(gates, {"ran": True, **summarize([worse])})
    assert value > limit  # the file's own damage still fails


def test_listen_has_upstream_speak_a_bucket_graphs_pieces_as_its_like_for_like_reference(
    tiny, tiny_model, monkeypatch, tmp_path
):
    """A b16 graph speaks each speech sentence in pieces; upstream's side of the gate must
    be upstream torch speaking exactly those pieces (each seeded as the whole is), joined,
    beside upstream speaking the whole sentence."""
    import dataclasses

    import onnx
    import torch

    import publisher.runtime.speech as speech
    import publisher.verify.speaker as speaker
    from publisher.build import onnx_metadata
    from publisher.export.fp32 import export_fp32
    from publisher.model.kmodel import run_torch
    from publisher.passes import PassContext, run_passes
    from publisher.recipe.loader import load_recipe
    from publisher.runtime.corpus import load_corpus
    from publisher.runtime.synth import open_session, style_row, synthesize_bucket
    from publisher.verify import listen as module

    recipe = load_recipe("b16")
    ctx = PassContext(config=tiny.config, metadata=onnx_metadata(recipe, tiny), voices=tiny.voices)
    graph = tmp_path / "b16.onnx"
    exported = onnx.load(str(export_fp32(tiny, recipe)))
    onnx.save(run_passes(exported, recipe, ctx), str(graph))
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    items = [it for it in load_corpus().speech if it.voice in tiny.voices][:3]
    monkeypatch.setattr(module, "load_corpus", lambda: SimpleNamespace(speech=items))

    def seeded(ids, style, k):
        torch.manual_seed(module.SEED + k)
        return run_torch(tiny_model, ids, style).waveform

    expected, session = [], open_session(graph)
    for k, item in enumerate(items):
        ids = item.ids(tiny.config["vocab"])
        style = style_row(tiny.voices[item.voice], len(ids))
        lengths = synthesize_bucket(session, ids, style).piece_lengths
        starts = np.cumsum([0, *lengths])
        pieces = [seeded(ids[a:b], style, k) for a, b in zip(starts[:-1], starts[1:], strict=True)]
        expected.append((seeded(ids, style, k), np.concatenate(pieces), len(lengths)))
    assert all(n > 1 for *_, n in expected)  # every sentence is longer than 14 phonemes

    heard: list[str] = []

    def recognize(wave, rate):
        whole, pieces, _ = expected[len(heard) // 3]
        same = lambda a: a.shape == wave.shape and np.array_equal(a, wave)  # noqa: E731
        heard.append("whole" if same(whole) else "pieces" if same(pieces) else "variant")
        return "a b c d" if heard[-1] == "whole" else "a b c"

    monkeypatch.setattr(speech, "missing_tools", lambda: None)
    monkeypatch.setattr(speech, "recognize", recognize)
    monkeypatch.setattr(
        speech, "dnsmos", lambda w, r: {"overall": 3.0, "signal": 3.0, "background": 3.0}
    )
    monkeypatch.setattr(speaker, "embedding", lambda w, r: np.ones(4) / 2)
    items[:] = [dataclasses.replace(it, text="a b c d") for it in items]
    result = module.listen(dataclasses.replace(tiny, synthetic=False), str(graph))
    # the variant is scored as it runs (to be stored), before upstream speaks its pieces
    assert heard == ["whole", "variant", "pieces"] * len(items)
    assert [r["pieces"] for r in result["items"]] == [n for *_, n in expected]
    assert result["reference_wer"] == 0.0 and result["same_pieces_wer"] == 0.25
    gates = SimpleNamespace(wer_margin=0.03, dnsmos_drop=0.1, speaker_similarity=None)
    [(_, wer, limit, _), _] = speech_gates(gates, result)
    assert wer == 0.25 and limit == pytest.approx(0.28)
