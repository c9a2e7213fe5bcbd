"""Which part of sherpa-onnx's token stream costs WER: its lexicon or its spacing?

The conformance matrix's heard set (24 Harvard sentences, af_heart and am_michael in
turn) spoken by one build's file through our onnxruntime path from four token streams:
our corpus phonemes; the same with a space before the final ``.`` (as sherpa-onnx's front
end writes it); sherpa-onnx's front end rebuilt from the bundle's US lexicon (every word
followed by a space, punctuation after that space); and the same without that space.
Recognized by PocketSphinx; runs are interleaved so each stream meets the same load.

    python scripts/sherpa_tokens.py dist/fp32 --runs 3

A measurement (docs/runtimes.md), not a test. Needs the quality extra and real weights.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable
from pathlib import Path

from publisher.conformance.heard import Line, heard_lines
from publisher.manifest import read_manifest
from publisher.model.sources import open_checkpoint
from publisher.runtime import speech
from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.synth import open_session, run_onnx, style_row

PUNCTUATION = ".,;!?"


def bundle_lexicon(bundle: Path, words: set[str]) -> dict[str, list[str]]:
    """The US lexicon's tokens for ``words`` (sherpa-onnx keeps the first entry)."""
    lexicon: dict[str, list[str]] = {}
    with open(bundle / "lexicon-us-en.txt", encoding="utf-8") as fh:
        for row in fh:
            word, _, tokens = row.rstrip("\n").partition(" ")
            if word in words and word not in lexicon:
                lexicon[word] = tokens.split(" ")
    return lexicon


def sherpa_tokens(text: str, lexicon: dict[str, list[str]], space_before: bool) -> list[str]:
    """sherpa-onnx's lexicon front end for plain sentences: each word's tokens and a
    space; a punctuation mark after it (after the space, unless ``space_before`` is off)."""
    tokens: list[str] = []
    for word in re.findall(rf"[a-z']+|[{PUNCTUATION}]", text.lower()):
        if word in PUNCTUATION:
            if not space_before and tokens and tokens[-1] == " ":
                tokens.pop()
            tokens.append(word)
        else:
            tokens += lexicon[word] + [" "]
    return tokens


def streams(lexicon: dict[str, list[str]]) -> dict[str, Callable[[Line], list[str]]]:
    def ours(line: Line, spaced: bool = False) -> str:
        phonemes = line.item.phonemes
        return re.sub(rf"([{PUNCTUATION}])", r" \1", phonemes) if spaced else phonemes

    return {
        "ours": lambda line: list(ours(line)),
        "ours, space before .": lambda line: list(ours(line, spaced=True)),
        "sherpa-onnx lexicon and spacing": lambda line: sherpa_tokens(line.text, lexicon, True),
        "sherpa-onnx lexicon, no space before .": lambda line: sherpa_tokens(
            line.text, lexicon, False
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build", type=Path, help="a build folder with a sherpa-onnx bundle")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    manifest = read_manifest(args.build)
    if not manifest.sherpa_onnx:
        raise SystemExit(f"{args.build}: no sherpa-onnx bundle (output.sherpa_onnx)")
    ckpt = open_checkpoint(manifest.checkpoint.source)
    vocab = ckpt.config["vocab"]
    lines = heard_lines()
    words = {w for line in lines for w in re.findall(r"[a-z']+", line.text.lower())}
    lexicon = bundle_lexicon(args.build / manifest.sherpa_onnx, words)
    if missing := sorted(words - set(lexicon)):
        raise SystemExit(f"not in the bundle's lexicon: {', '.join(missing)}")
    session = open_session(args.build / manifest.model)
    results: dict[str, list[float]] = {}
    for run in range(args.runs):
        for name, tokens_of in streams(lexicon).items():
            heard = []
            for line in lines:
                ids = [vocab[t] for t in tokens_of(line) if t in vocab]
                out = run_onnx(session, ids, style_row(ckpt.voices[line.voice], len(ids)))
                heard.append(speech.recognize(out.waveform, SAMPLE_RATE))
            wer = speech.corpus_wer([line.text for line in lines], heard)
            results.setdefault(name, []).append(round(wer, 4))
            print(f"run {run + 1}: {name}: WER {wer:.4f}", flush=True)
    summary = {name: {"runs": w, "mean": round(sum(w) / len(w), 4)} for name, w in results.items()}
    print(json.dumps(summary, indent=1))


if __name__ == "__main__":
    main()
