"""Text cells heard: each text-taking runtime (kokoro-onnx, fastkokoro, sherpa-onnx,
kokoro-js) speaks a fixed set of the corpus's Harvard sentences from text, through its own
front end, and what comes out is scored like the speech gates score a build (PocketSphinx
WER over the set, mean DNSMOS overall), next to the same sentences through our own
phonemes and this environment's onnxruntime. A cell whose WER is more than
``target.heard_wer_margin`` above ours fails, with both figures in its one line.

The sentences: the corpus's ``heard`` section, the speech set's 24 Harvard sentences with US
phonemes, spoken alternately in ``VOICES``. The shipped graph draws its noise afresh on every
run, so one run of the same file on 16 sentences scored WER 0.182, 0.222 and 0.246 on three
occasions; ours is therefore the mean of ``OURS_RUNS`` runs. Synthetic weights do not speak,
so their matrix skips this part and says so; so does a machine without the speech tools.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.runtime import speech as speech_tools
from publisher.runtime.clients import sherpa_lexicon_for
from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.corpus import CorpusItem, load_corpus
from publisher.runtime.synth import open_session, run_onnx, style_row

if TYPE_CHECKING:
    import numpy as np

log = logging.getLogger(__name__)

VOICES = ("af_heart", "am_michael")  # two voices, one of each sex, both American
TEXT_KINDS = ("kokoro-onnx", "fastkokoro", "sherpa-onnx", "kokoro-js")
OURS_RUNS = 2  # our own figures: the mean of this many runs (the file's noise is random)


@dataclass(frozen=True)
class Line:
    """One sentence to speak: the corpus item, the voice it is spoken in."""

    item: CorpusItem
    voice: str

    @property
    def text(self) -> str:
        return self.item.text

    def request(self, voices: list[str]) -> dict[str, Any]:
        """What a probe needs to speak it (sherpa-onnx: speaker id and lexicon)."""
        return {
            "text": self.text,
            "voice": self.voice,
            "lang": "en-us",
            "sid": voices.index(self.voice),
            "lexicon": sherpa_lexicon_for(self.voice),
        }


def skip_reason(ckpt) -> str | None:
    """Why the text cells cannot be heard for this checkpoint here, or None."""
    if ckpt.synthetic:
        return "synthetic weights do not speak: the text cells are run, not heard"
    missing = [v for v in VOICES if v not in ckpt.voices]
    if missing:
        return f"the checkpoint has no {', '.join(missing)}: the text cells are not heard"
    return speech_tools.missing_tools()


def heard_lines(limit: int | None = None) -> list[Line]:
    """The fixed sentence set, each in its voice (alternating ``VOICES``)."""
    items = list(load_corpus().heard)[:limit]
    return [Line(item, VOICES[k % len(VOICES)]) for k, item in enumerate(items)]


def heard_request(lines: list[Line], voices: list[str], folder: Path) -> dict[str, Any]:
    """The request's ``heard`` part: where to save each sentence's audio, and the lines."""
    folder.mkdir(parents=True, exist_ok=True)
    return {"dir": str(folder), "lines": [line.request(voices) for line in lines]}


def read_waves(folder: Path, count: int) -> list[tuple[np.ndarray, int]]:
    """The audio a probe saved: ``k.npy`` (Python) or ``k.f32`` (node) with ``rates.json``."""
    import numpy as np

    rates = json.loads((folder / "rates.json").read_text())
    waves = []
    for k in range(count):
        npy, raw = folder / f"{k}.npy", folder / f"{k}.f32"
        wave = np.load(npy) if npy.is_file() else np.fromfile(raw, dtype="<f4")
        waves.append((wave.astype(np.float32).reshape(-1), int(rates[k])))
    return waves


def score(lines: list[Line], waves: list[tuple[np.ndarray, int]]) -> dict[str, Any]:
    """WER over the set and mean DNSMOS overall of what was spoken."""
    heard = [speech_tools.recognize(wave, rate) for wave, rate in waves]
    mos = [speech_tools.dnsmos(wave, rate)["overall"] for wave, rate in waves]
    return {
        "sentences": len(lines),
        "wer": round(speech_tools.corpus_wer([line.text for line in lines], heard), 4),
        "dnsmos": round(sum(mos) / len(mos), 3),
    }


def ours(model: Path, ckpt, lines: list[Line]) -> dict[str, Any]:
    """The same sentences through our phonemes and this environment's onnxruntime: WER and
    DNSMOS, each the mean of ``OURS_RUNS`` runs."""
    session = open_session(model)
    vocab = ckpt.config["vocab"]
    runs = []
    for _ in range(OURS_RUNS):
        waves = []
        for line in lines:
            ids = line.item.ids(vocab)
            out = run_onnx(session, ids, style_row(ckpt.voices[line.voice], len(ids)))
            waves.append((out.waveform, SAMPLE_RATE))
        runs.append(score(lines, waves))
    return {
        "sentences": len(lines),
        "wer": round(sum(r["wer"] for r in runs) / len(runs), 4),
        "dnsmos": round(sum(r["dnsmos"] for r in runs) / len(runs), 3),
        "runs": len(runs),
    }


def judge(name: str, cell: dict[str, Any], baseline: dict[str, Any], margin: float) -> str | None:
    """The one-line failure of a heard cell whose WER is above ours + margin, else None."""
    if cell["wer"] <= baseline["wer"] + margin:
        return None
    return (
        f"{name} through its own front end: WER {cell['wer']:.3f} on {cell['sentences']} "
        f"sentences, above ours {baseline['wer']:.3f} + {margin:.2f} (our phonemes, same "
        "file, same sentences and voices)"
    )


class Speaking:
    """The heard part of one build's matrix: the sentences, our own figures (measured once,
    when the first text cell has spoken) and each text cell's."""

    def __init__(self, model: Path, ckpt, target: dict[str, Any]) -> None:
        self.model, self.ckpt = model, ckpt
        self.margin = float(target["heard_wer_margin"])
        self.skipped = skip_reason(ckpt)
        self.lines = [] if self.skipped else heard_lines()
        self.ours: dict[str, Any] | None = None
        self._folders: dict[str, Path] = {}

    def _heard(self, runtime) -> bool:
        return bool(self.lines) and runtime.kind in TEXT_KINDS

    def request(self, runtime, request: dict[str, Any], scratch: Path) -> dict[str, Any]:
        """``request`` with the sentences to speak, for a text cell that is heard."""
        if not self._heard(runtime):
            return request
        folder = scratch / "heard" / re.sub(r"[^A-Za-z0-9.]+", "-", runtime.name)
        self._folders[runtime.name] = folder
        return request | {"heard": heard_request(self.lines, sorted(self.ckpt.voices), folder)}

    def hear(self, runtime, out: dict[str, Any]) -> dict[str, Any]:
        """``out`` with the cell's heard figures; failed when its WER is above the margin."""
        if not self._heard(runtime) or not out["ok"]:
            return out
        try:
            waves = read_waves(self._folders[runtime.name], len(self.lines))
        except (OSError, ValueError) as exc:  # a heard cell is never passed unheard
            return out | {"ok": False, "error": f"it ran but saved no sentences to hear ({exc})"}
        log.info("hearing %d sentences from %s ...", len(waves), runtime.name)
        if self.ours is None:
            self.ours = ours(self.model, self.ckpt, self.lines)
        got = score(self.lines, waves)
        out = out | {
            "heard": got | {"ours_wer": self.ours["wer"], "ours_dnsmos": self.ours["dnsmos"]}
        }
        problem = judge(runtime.name, got, self.ours, self.margin)
        return out | {"ok": False, "error": problem} if problem else out

    def summary(self) -> dict[str, Any]:
        """What the manifest records of the heard part (or why it was skipped)."""
        if self.skipped:
            return {"skipped": self.skipped}
        return {
            "sentences": [line.item.id for line in self.lines],
            "voices": list(VOICES),
            "margin": self.margin,
            "ours": self.ours,
        }
