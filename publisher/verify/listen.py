"""What a listener hears: word error rate and DNSMOS of a variant next to upstream Kokoro.

The corpus's ``speech`` set (24 Harvard sentences, six voices of both sexes) is spoken by
upstream torch (its random source seeded per sentence) and by the shipped graph (its own
random source), in a child process. Each waveform goes through the offline recognizer
(WER over the whole set) and DNSMOS (mean overall, signal, background). The gates compare
the variant with upstream on the same run: WER at most the reference's plus
``gates.wer_margin``; mean overall DNSMOS at most ``gates.dnsmos_drop`` below it; the mean
speaker similarity of each sentence's two renderings (``verify/speaker.py``) at least
``gates.speaker_similarity``. Both sides' scores are kept in the reference store
(``verify/store.py``): upstream's by checkpoint and input, the variant's by what its graph
computes, so a rebuild that wrote the same graph runs no model and no scorer.

A bucket graph speaks a sentence longer than its bucket in pieces, one call each (as a
streaming server does). Upstream torch then speaks the same pieces too, and the gates
compare like with like: the file's damage, not the split's. What the split itself costs
(upstream in pieces against upstream whole) is reported beside them, and the card shows
the variant against upstream whole, what a listener compares.

Synthetic weights do not speak, so they skip these gates (said in the report), as does
a machine without the ``[quality]`` tools (one line naming what to install).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.progress import progress
from publisher.runtime import speech as speech_tools
from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.corpus import load_corpus
from publisher.runtime.speech import corpus_wer
from publisher.runtime.synth import style_row
from publisher.verify import speaker, store
from publisher.verify.speaker import similarity
from publisher.verify.worker import started_on_first_run

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    from publisher.model.checkpoint import Checkpoint

SEED = 20261201  # upstream torch's random source, reseeded per sentence from this
SPEECH_OFF = {"ran": False, "skipped": "speech gates switched off (--no-speech-gates)"}


def skip_reason(ckpt: Checkpoint) -> str | None:
    """Why the speech gates cannot run for this checkpoint here, or None."""

    if ckpt.synthetic:
        return "synthetic weights do not speak: WER and DNSMOS gates skipped"
    return speech_tools.missing_tools()


def listen(ckpt: Checkpoint, graph: str, graph_key: str | None = None) -> dict[str, Any]:
    """Speak the speech set with upstream torch and ``graph``; WER and DNSMOS of both.
    ``graph_key``: the graph's ``computation_sha256``, when the caller has it."""

    reason = skip_reason(ckpt)
    if reason:
        log.info("  %s", reason)
        return {"ran": False, "skipped": reason}
    items = _sentences(ckpt)
    if not items:
        reason = "no voice of the speech set is in this checkpoint: WER and DNSMOS skipped"
        log.info("  %s", reason)
        return {"ran": False, "skipped": reason}
    rows = []
    graph_key = graph_key or store.computation_sha256(Path(graph))
    with contextlib.ExitStack() as stack:
        run = started_on_first_run(graph, str(graph), stack)  # on a sentence not stored
        for k, item in enumerate(progress(items, "speech set")):
            ids, style = _input(ckpt, item)
            ref = reference_scores(ckpt, ids, style, item.speed, SEED + k)
            out = variant_scores(ckpt, graph_key, ids, style, item.speed, run)
            same, pieces = None, out["pieces"]
            if len(pieces) > 1:  # a bucket graph's calls: upstream speaks the same pieces
                same = reference_scores(ckpt, ids, style, item.speed, SEED + k, pieces)
            rows.append(_row(item, ref, out, same, len(pieces)))
            log.info(
                "  speech %d/%d %s: heard %r (upstream: %r)",
                k + 1,
                len(items),
                item.voice,
                rows[-1]["variant_heard"],
                rows[-1]["reference_heard"],
            )
    return {"ran": True, "skipped": "", **summarize(rows), "items": rows}


def _sentences(ckpt: Checkpoint) -> list[Any]:
    return [it for it in load_corpus().speech if it.voice in ckpt.voices]


def _input(ckpt: Checkpoint, item: Any) -> tuple[list[int], Any]:
    ids = item.ids(ckpt.config["vocab"])
    return ids, style_row(ckpt.voices[item.voice], len(ids))


def heard_already(ckpt: Checkpoint, graph_key: str) -> bool:
    """Whether the store holds every sentence of both sides for this graph (a bucket
    graph's pieces aside): ``listen`` would then run no model and no scorer."""
    for k, item in enumerate(_sentences(ckpt)):
        ids, style = _input(ckpt, item)
        if not store.has(_reference_key(ckpt, ids, style, item.speed, SEED + k)):
            return False
        if not store.has(_variant_key(ckpt, graph_key, ids, style, item.speed)):
            return False
    return True


DNSMOS_KEYS = ("overall", "signal", "background")
SCORERS = ("pocketsphinx", "speechmos", "resemblyzer", "onnxruntime")  # in the store key


def reference_scores(
    ckpt, ids, style, speed: float, seed: int, pieces: tuple[int, ...] = ()
) -> dict[str, Any]:
    """Upstream torch's rendering of one sentence (random source seeded with ``seed``) as
    the gates read it: what the recognizer heard, DNSMOS, the speaker vector; with
    ``pieces`` (phonemes per call, in order), the sentence spoken piece by piece and
    joined, as a bucket graph speaks it. Kept in the reference store: a later build of the
    same checkpoint runs no torch and no scorer."""

    def compute() -> dict[str, Any]:
        return _scores(_upstream_wave(ckpt, list(ids), speed, style, seed, pieces))

    k = _reference_key(ckpt, ids, style, speed, seed, pieces)
    return _read(store.remembered(k, compute))


def _reference_key(ckpt, ids, style, speed: float, seed: int, pieces=()) -> str:
    scorers = store.versions(*SCORERS)
    split = {"pieces": list(pieces)} if pieces else {}
    return store.key(ckpt, ids, speed, style, "random-scored", seed=seed, scorers=scorers, **split)


def _variant_key(ckpt, graph_key: str, ids, style, speed: float) -> str:
    scorers = store.versions(*SCORERS)
    return store.key(ckpt, ids, speed, style, "variant-scored", graph=graph_key, scorers=scorers)


def _scores(wave) -> dict[str, Any]:
    """What the gates read of one rendering: what the recognizer heard, DNSMOS, the
    speaker vector."""
    import numpy as np

    mos = speech_tools.dnsmos(wave, SAMPLE_RATE)
    return {
        "heard": np.array(speech_tools.recognize(wave, SAMPLE_RATE)),
        "dnsmos": np.array([mos[k] for k in DNSMOS_KEYS], dtype=np.float64),
        "embedding": speaker.embedding(wave, SAMPLE_RATE),
    }


def _read(arrays: dict[str, Any]) -> dict[str, Any]:
    return {
        "heard": str(arrays["heard"]),
        "dnsmos": {name: float(v) for name, v in zip(DNSMOS_KEYS, arrays["dnsmos"], strict=True)},
        "embedding": arrays["embedding"],
    }


def variant_scores(
    ckpt, graph_key: str, ids, style, speed: float, run: Callable[..., Any]
) -> dict[str, Any]:
    """The shipped graph's rendering of one sentence as the gates read it, and the
    phonemes of each call it made (``run(ids, style, speed)``: its Synthesis). Kept in the
    reference store by the graph's computation (``computation_sha256``) and the input: a
    rebuild whose passes wrote the same graph (after an edit to the recipe's card or
    gates) reads back what this graph was heard saying and runs nothing. Its random
    source is not seeded, so what is kept is the one rendering the first build heard."""

    def compute() -> dict[str, Any]:
        import numpy as np

        out = run(list(ids), style, speed)
        pieces = np.array(out.piece_lengths, dtype=np.int64)
        return _scores(out.waveform) | {"pieces": pieces}

    arrays = store.remembered(_variant_key(ckpt, graph_key, ids, style, speed), compute)
    return _read(arrays) | {"pieces": tuple(int(n) for n in arrays["pieces"])}


def _upstream_wave(ckpt, ids: list[int], speed, style, seed: int, pieces) -> Any:
    """Upstream's waveform of ``ids``: whole, or piece by piece (each seeded alike) joined."""
    import numpy as np

    if not pieces:
        return store.seeded_torch(ckpt, ids, speed, style, seed).waveform
    starts = np.cumsum([0, *pieces])
    parts = [ids[a:b] for a, b in zip(starts[:-1], starts[1:], strict=True)]
    return np.concatenate([store.seeded_torch(ckpt, p, speed, style, seed).waveform for p in parts])


def _row(
    item, reference: dict[str, Any], variant: dict[str, Any], same_pieces=None, pieces: int = 0
) -> dict[str, Any]:
    """One sentence's scores; ``same_pieces``: upstream speaking the variant's pieces."""
    like = same_pieces or reference
    row = {
        "item": item.id,
        "voice": item.voice,
        "text": item.text,
        "reference_heard": reference["heard"],
        "variant_heard": variant["heard"],
        "reference_dnsmos": reference["dnsmos"],
        "variant_dnsmos": variant["dnsmos"],
        "speaker_similarity": similarity(like["embedding"], variant["embedding"]),
    }
    if same_pieces:
        row |= {
            "pieces": pieces,
            "same_pieces_heard": same_pieces["heard"],
            "same_pieces_dnsmos": same_pieces["dnsmos"],
        }
    return row


def summarize(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Set-level WER and mean DNSMOS of the reference and the variant."""

    texts = [r["text"] for r in rows]
    out: dict[str, Any] = {
        "sentences": len(rows),
        "reference_wer": corpus_wer(texts, [r["reference_heard"] for r in rows]),
        "variant_wer": corpus_wer(texts, [r["variant_heard"] for r in rows]),
        "speaker_similarity": sum(r["speaker_similarity"] for r in rows) / len(rows),
    }
    for side in ("reference", "variant"):
        out[f"{side}_dnsmos"] = _mean_dnsmos([r[f"{side}_dnsmos"] for r in rows])
    split = [r for r in rows if "same_pieces_heard" in r]
    if split:  # a bucket graph re-split these: upstream spoke the same pieces too
        out["split_sentences"] = len(split)
        out["same_pieces_wer"] = corpus_wer(
            texts, [r.get("same_pieces_heard", r["reference_heard"]) for r in rows]
        )
        out["same_pieces_dnsmos"] = _mean_dnsmos(
            [r.get("same_pieces_dnsmos", r["reference_dnsmos"]) for r in rows]
        )
    return out


def _mean_dnsmos(scores: list[dict[str, float]]) -> dict[str, float]:
    return {key: sum(s[key] for s in scores) / len(scores) for key in DNSMOS_KEYS}


def speech_gates(gates: Any, speech: dict[str, Any]) -> list[tuple[str, float, float, bool]]:
    """(gate, measured, threshold, higher_is_better) for the recipe's speech gates."""
    if not speech.get("ran"):
        return []
    out = []
    # like with like: where a bucket graph spoke sentences in pieces, upstream's same pieces
    wer = speech.get("same_pieces_wer", speech["reference_wer"])
    mos = speech.get("same_pieces_dnsmos", speech["reference_dnsmos"])
    if gates.wer_margin is not None:
        threshold = wer + gates.wer_margin
        out.append(("word_error_rate", speech["variant_wer"], threshold, False))
    if gates.dnsmos_drop is not None:
        threshold = mos["overall"] - gates.dnsmos_drop
        out.append(("dnsmos_overall", speech["variant_dnsmos"]["overall"], threshold, True))
    if gates.speaker_similarity is not None and "speaker_similarity" in speech:
        value = speech["speaker_similarity"]
        out.append(("speaker_similarity", value, gates.speaker_similarity, True))
    return out


def _split_lines(speech: dict[str, Any]) -> list[str]:
    if "split_sentences" not in speech:
        return []
    same = speech["same_pieces_dnsmos"]["overall"]
    return [
        "",
        f"This bucket graph spoke {speech['split_sentences']} of {speech['sentences']} "
        f"sentences in pieces (one call each). Upstream torch speaking the same pieces: WER "
        f"{speech['same_pieces_wer']:.3f}, DNSMOS overall {same:.2f}; the WER, DNSMOS and "
        "speaker gates compare this variant with that (the file's damage). What the split "
        f"itself costs: WER {speech['same_pieces_wer'] - speech['reference_wer']:+.3f} "
        "against upstream speaking whole sentences.",
    ]


def report_lines(speech: dict[str, Any] | None) -> list[str]:
    """The verify.md section for the speech set."""
    if not speech:
        return []
    lines = ["", "## Speech set (upstream torch vs the shipped graph, random source on)", ""]
    if not speech["ran"]:
        return [*lines, f"Skipped: {speech['skipped']}"]
    ref, var = speech["reference_dnsmos"], speech["variant_dnsmos"]
    lines += [
        f"{speech['sentences']} sentences. Word error rate: upstream "
        f"{speech['reference_wer']:.3f}, this variant {speech['variant_wer']:.3f}. "
        f"DNSMOS overall/signal/background: upstream {ref['overall']:.2f}/"
        f"{ref['signal']:.2f}/{ref['background']:.2f}, this variant {var['overall']:.2f}/"
        f"{var['signal']:.2f}/{var['background']:.2f}. Speaker similarity to upstream "
        f"(resemblyzer, mean cosine): {speech.get('speaker_similarity', float('nan')):.4f}.",
        *_split_lines(speech),
        "",
        "| item | voice | text | upstream heard | variant heard | DNSMOS upstream | variant "
        "| same speaker |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in speech["items"]:
        same = r.get("speaker_similarity")
        lines.append(
            f"| {r['item']} | {r['voice']} | {r['text']} | {r['reference_heard']} | "
            f"{r['variant_heard']} | {r['reference_dnsmos']['overall']:.2f} | "
            f"{r['variant_dnsmos']['overall']:.2f} | {'-' if same is None else f'{same:.4f}'} |"
        )
    return lines
