"""The fixed inputs a sensitivity run scores on, and how damage is measured: 1 - spectral
correlation (or a DNSMOS drop) of each converted graph's waveforms against the
unconverted graph's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from publisher.runtime import speech as speech_tools
from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.errors import InputError, RunError
from publisher.runtime.metrics import (
    LOG_FLOOR,
    log_mel_distance,
    magnitude_spectrogram,
    mel_filterbank,
    spectral_correlation,
)
from publisher.runtime.synth import padded_ids, style_row
from publisher.verify.measure import verification_items

if TYPE_CHECKING:
    import numpy as np

    from publisher.model.checkpoint import Checkpoint

# Two short eval items (20 and 23 phonemes; two voices, accents and speeds). Full-size run
# time grows faster than length (0.27 s for short-1, 3.0 s for the 103-phoneme medium-2),
# so a ~100-phoneme item alone would cost ~12 minutes over 245 nodes.
DEFAULT_ITEMS = ("short-1", "short-2")


@dataclass
class Probe:
    """One fixed input: its id and the feeds of the parity graph."""

    id: str
    feeds: dict[str, Any]


def probes(ckpt: Checkpoint, items: Sequence[str] | None = None) -> list[Probe]:
    """Feeds for the chosen corpus items (default: ``DEFAULT_ITEMS``)."""
    import numpy as np

    wanted = list(items or DEFAULT_ITEMS)
    known = {it.id: it for it in verification_items(ckpt)}
    missing = [i for i in wanted if i not in known]
    if missing:
        raise InputError(f"unknown corpus item(s) {missing}; known: {sorted(known)}")
    out = []
    for item in (known[i] for i in wanted):
        feeds = {
            "input_ids": padded_ids(list(item.ids)),
            "style": style_row(ckpt.voices[item.voice], len(item.ids)),
            "speed": np.array([item.speed], dtype=np.float32),
        }
        out.append(Probe(item.id, feeds))
    return out


def run_waves(session: Any, probe_list: list[Probe], extra: dict | None = None) -> list:
    """The waveform of every probe (``extra`` feeds added, e.g. the switches)."""
    import numpy as np

    return [
        np.asarray(session.run(None, {**p.feeds, **(extra or {})})[0], np.float32).reshape(-1)
        for p in probe_list
    ]


SCORES = ("spectral", "dnsmos")


def check_score(score: str) -> None:
    """One line when ``score`` is unknown or its optional tools are not installed."""
    if score not in SCORES:
        raise InputError(f"unknown sensitivity score {score!r}; use one of {SCORES}")
    if score == "dnsmos" and (missing := speech_tools.missing_tools()):
        raise RunError(f"--score dnsmos: {missing}")


class Scorer:
    """Damage of waveforms against fixed references: (mean 1 - spectral correlation, mean
    log-mel distance), the ``publisher.runtime.metrics`` definitions with the references'
    spectrograms computed once (one STFT per scored waveform instead of four).

    ``score="dnsmos"`` replaces the first number by the mean drop of DNSMOS overall (what
    a listener would call worse audio: static, buzz) from the references' own DNSMOS; the
    log-mel distance stays. Needs the ``[quality]`` extra."""

    def __init__(self, refs: list[np.ndarray], score: str = "spectral") -> None:
        check_score(score)
        self.refs = refs
        self.kind = score
        self.mel = mel_filterbank().T
        self.cached = [self._features(r) for r in refs]
        self.ref_mos = [self._mos(r) for r in refs] if score == "dnsmos" else []

    @staticmethod
    def _mos(wave: np.ndarray) -> float:
        return speech_tools.dnsmos(wave, SAMPLE_RATE)["overall"]

    def _features(self, wave: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
        import numpy as np

        spec = magnitude_spectrogram(wave)
        flat = spec.ravel() - spec.mean()
        return flat, float((flat * flat).sum()), np.log(np.maximum(spec @ self.mel, LOG_FLOOR))

    def score(self, waves: list[np.ndarray]) -> tuple[float, float]:
        import numpy as np

        corr, mel = [], []
        for ref, (a, aa, ma), wave in zip(self.refs, self.cached, waves, strict=True):
            if wave.size != ref.size:  # durations moved: compare over the common length
                corr.append(1.0 - spectral_correlation(ref, wave))
                mel.append(log_mel_distance(ref, wave))
                continue
            b, bb, mb = self._features(wave)
            denom = float(np.sqrt(aa * bb))
            corr.append(1.0 - (float((a * b).sum() / denom) if denom > 0 else 0.0))
            mel.append(float(np.mean(np.sqrt(np.mean((ma - mb) ** 2, axis=1)))))
        if self.kind == "dnsmos":
            corr = [ref - self._mos(w) for ref, w in zip(self.ref_mos, waves, strict=True)]
        return float(np.mean(corr)), float(np.mean(mel))
