"""Catalog (manifest.json), cached sessions and side-by-side synthesis of variants.

Every model call goes through ``publisher.runtime.synth`` (``open_session``, ``run_onnx``,
``style_row``), text through ``publisher.runtime.text`` and the fidelity figure through
``publisher.runtime.metrics``: the Space measures exactly what ``publisher verify`` measures.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kokoro_space.source import (
    CONFIG,
    MANIFEST,
    VOICES_NPZ,
    VOICES_TXT,
    ModelSource,
    SourceError,
    safe_relpath,
)
from publisher.runtime.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from publisher.runtime.errors import PublisherError
from publisher.runtime.metrics import aligned_spectra, correlation, duration_agreement
from publisher.runtime.timing import Span, word_spans

if TYPE_CHECKING:
    import numpy as np

REFERENCE_PATH = "onnx/model.onnx"
SPEED_RANGE = (0.5, 2.0)
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$")


class InputError(Exception):
    """A request the Space cannot serve as asked; ``str(err)`` is shown to the user."""


def _env_int(name: str, default: int, lo: int, hi: int) -> int:
    try:
        return min(max(int(os.environ.get(name, default)), lo), hi)
    except ValueError:
        return default


@dataclass(frozen=True)
class Settings:
    max_chars: int = 5000  # longest text (or phoneme string) one request takes
    max_sessions: int = 4  # InferenceSessions kept open (LRU)
    max_compare: int = 6  # variants compared in one click
    threads: int = 0  # onnxruntime intra-op threads (0: its default)
    concurrency: int = 2  # requests running at once; the rest wait in the queue
    retry_after_s: int = 30  # after the repo could not be read, fail fast for this long

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            max_chars=_env_int("KOKORO_MAX_CHARS", cls.max_chars, 1, 1_000_000),
            max_sessions=_env_int("KOKORO_MAX_SESSIONS", cls.max_sessions, 1, 64),
            max_compare=_env_int("KOKORO_MAX_COMPARE", cls.max_compare, 2, 16),
            threads=_env_int("KOKORO_THREADS", cls.threads, 0, 256),
            concurrency=_env_int("KOKORO_CONCURRENCY", cls.concurrency, 1, 64),
            retry_after_s=_env_int("KOKORO_RETRY_AFTER", cls.retry_after_s, 0, 3600),
        )


@dataclass(frozen=True)
class Variant:
    """One manifest entry, as the Space shows it."""

    name: str
    path: str
    shape: str
    bytes: int
    description: str = ""
    spectral_correlation: str = "-"  # as measured at build time, vs PyTorch
    log_mel_distance: str = "-"
    params_by_dtype: str = ""
    params: Mapping[str, int] = field(default_factory=dict)
    latency: str = "not measured"
    io: Mapping[str, str] = field(default_factory=dict)  # tensor role -> name

    @property
    def size_mib(self) -> float:
        return self.bytes / 2**20

    @property
    def label(self) -> str:
        return f"{self.name} · {self.path} · {self.size_mib:.1f} MiB"


@dataclass(frozen=True)
class Catalog:
    variants: dict[str, Variant]  # manifest order
    voices: list[str]
    vocab: dict[str, int]
    reference: str | None  # the fp32 variant fidelity is measured against
    synthetic: bool
    skipped: list[str]  # manifest entries the Space refused, with why
    recovered: bool = False  # weights recovered from an ONNX export, not the original

    def variant(self, name: object) -> Variant:
        """The variant called ``name``; names are matched, never used as paths."""
        if isinstance(name, str) and name in self.variants:
            return self.variants[name]
        shown = repr(name if not isinstance(name, str) or len(name) <= 60 else name[:57] + "...")
        raise InputError(
            f"unknown variant {shown}: this repo has {', '.join(self.variants) or 'none'}"
        )

    def default_voice(self) -> str | None:
        return "af_heart" if "af_heart" in self.voices else (self.voices or [None])[0]

    def default_selection(self, k: int = 3) -> list[str]:
        """The reference first, then the next variants in manifest order, ``k`` in all."""
        names = list(self.variants)
        first = self.reference or (names[0] if names else None)
        rest = [n for n in names if n != first]
        return [n for n in (first, *rest) if n][:k]


def parse_manifest(manifest: dict[str, Any]) -> tuple[list[Variant], list[str]]:
    """Variants from manifest.json, each checked against the ``VariantEntry`` type stage
    writes; entries that are not one, or have unsafe names or paths, are skipped."""
    from pydantic import ValidationError

    from publisher.runtime.artifacts import VariantEntry, first_error

    variants: list[Variant] = []
    skipped: list[str] = []
    seen: set[str] = set()
    entries = manifest.get("variants")
    if not isinstance(entries, list):
        raise SourceError("manifest.json has no list of variants")
    for i, raw in enumerate(entries):
        try:
            entry = VariantEntry.model_validate(raw)
        except ValidationError as exc:
            name = raw.get("recipe") if isinstance(raw, dict) else None
            skipped.append(f"entry {i} ({name!r}): not a variant entry ({first_error(exc)})")
            continue
        name, path = entry.recipe, safe_relpath(entry.path)
        if not _NAME.match(name) or name in seen:
            skipped.append(f"entry {i}: bad or repeated recipe name {name!r}")
            continue
        if path is None or not path.endswith(".onnx"):
            skipped.append(f"{name}: unusable path {entry.path!r}")
            continue
        seen.add(name)
        variants.append(
            Variant(
                name=name,
                path=path,
                shape=entry.shape,
                bytes=entry.bytes,
                description=entry.description,
                spectral_correlation=entry.spectral_correlation,
                log_mel_distance=entry.log_mel_distance,
                params_by_dtype=entry.params_by_dtype,
                params=dict(entry.params),
                latency=entry.latency,
                io=dict(entry.io),
            )
        )
    return variants, skipped


def choose_reference(variants: Sequence[Variant]) -> str | None:
    """The variant at onnx/model.onnx, else the largest one whose weights are mostly float32."""
    for v in variants:
        if v.path == REFERENCE_PATH:
            return v.name
    floats = [v for v in variants if v.params and max(v.params, key=v.params.get) == "float32"]
    return max(floats, key=lambda v: v.bytes).name if floats else None


@dataclass
class Prepared:
    """What the models are fed: phonemes (from G2P or typed) and what was left out."""

    phonemes: str
    g2p: str  # "misaki.espeak", "misaki.en" or "typed phonemes"
    dropped: str  # characters outside the vocab, each once
    n_ids: int


@dataclass
class Run:
    """One variant's synthesis of one input; ``error`` says what failed, if anything."""

    variant: Variant
    wave: np.ndarray | None = None
    load_s: float | None = None
    cached: bool = False
    synth_s: float | None = None
    chunks: int = 0
    error: str | None = None
    durations: np.ndarray | None = None  # frames per token, every chunk's in order
    fidelity: float | None = None  # token-aligned spectral correlation with the reference
    durations_equal: float | None = None  # share of tokens the reference timed the same
    words: list[Span] | None = None  # each word's time in the joined audio, where known

    @property
    def audio_s(self) -> float:
        return 0.0 if self.wave is None else self.wave.size / SAMPLE_RATE

    @property
    def rtf(self) -> float | None:
        if self.synth_s is None or not self.audio_s:
            return None
        return self.synth_s / self.audio_s


@dataclass
class Comparison:
    prepared: Prepared
    runs: list[Run]
    reference: str | None
    notes: list[str]


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    line = text.splitlines()[0] if text else ""
    return (line or type(exc).__name__)[:300]


class Engine:
    """The model side of the Space, for one source. Thread-safe."""

    def __init__(self, source: ModelSource, settings: Settings | None = None) -> None:
        self.source = source
        self.settings = settings or Settings.from_env()
        self._lock = threading.Lock()
        self._catalog: Catalog | None = None
        self._voices: dict[str, np.ndarray] | None = None
        self._sessions: OrderedDict[str, tuple[Any, float]] = OrderedDict()
        self._loading: dict[str, threading.Lock] = {}
        self._failed: tuple[float, str] | None = None  # (when, why) the catalog last failed

    # ------------------------------------------------------------------ catalog
    def catalog(self) -> Catalog:
        """Read manifest.json, config.json and voices.txt once.

        After a failure the same error is raised at once for ``retry_after_s`` seconds
        (an unreachable Hub otherwise costs every request the client's retries), then the
        files are read again.
        """
        with self._lock:
            if self._catalog is not None:
                return self._catalog
            failed = self._failed
        if failed is not None:
            wait = failed[0] + self.settings.retry_after_s - time.monotonic()
            if wait > 0:
                raise SourceError(f"{failed[1]} (trying again in {math.ceil(wait)} s)")
        try:
            catalog = self._read_catalog()
        except SourceError as err:
            with self._lock:
                self._failed = (time.monotonic(), str(err))
            raise
        with self._lock:
            self._catalog, self._failed = catalog, None
        return catalog

    def _read_catalog(self) -> Catalog:
        manifest = self.source.read_json(MANIFEST)
        variants, skipped = parse_manifest(manifest)
        if not variants:
            raise SourceError(f"{self.source.label}: manifest.json lists no usable variant")
        vocab = self.source.read_json(CONFIG).get("vocab")
        if not isinstance(vocab, dict) or not vocab:
            raise SourceError(f"{self.source.label}: config.json has no vocab")
        vocab = {str(k): int(v) for k, v in vocab.items()}
        try:
            text = self.source.fetch(VOICES_TXT).read_text(encoding="utf-8")
        except OSError as exc:
            raise SourceError(f"{self.source.label}: cannot read voices.txt ({exc})") from None
        voices = [line.strip() for line in text.splitlines() if line.strip()]
        if not voices:
            raise SourceError(f"{self.source.label}: voices.txt lists no voice")
        return Catalog(
            variants={v.name: v for v in variants},
            voices=voices,
            vocab=vocab,
            reference=choose_reference(variants),
            synthetic=bool(manifest.get("synthetic")),
            skipped=skipped,
            recovered=bool(manifest.get("recovered")),
        )

    def voice(self, name: object) -> np.ndarray:
        """The (510, 1, 256) style pack of a voice listed in voices.txt."""
        import numpy as np

        catalog = self.catalog()
        if not isinstance(name, str) or name not in catalog.voices:
            shown = repr(
                name if not isinstance(name, str) or len(name) <= 40 else name[:37] + "..."
            )
            raise InputError(f"unknown voice {shown}: choose one of {', '.join(catalog.voices)}")
        with self._lock:
            voices = self._voices
        if voices is None:
            path = self.source.fetch(VOICES_NPZ)
            try:
                with np.load(path, allow_pickle=False) as npz:
                    voices = {k: np.asarray(npz[k], dtype=np.float32) for k in npz.files}
            except (OSError, ValueError) as exc:
                raise SourceError(f"{self.source.label}: cannot read voices.npz ({exc})") from None
            with self._lock:
                self._voices = voices
        pack = voices.get(name)
        if pack is None or pack.ndim < 2 or pack.shape[-1] != 256:
            raise SourceError(f"{self.source.label}: voices.npz has no usable pack for {name!r}")
        return pack

    # ------------------------------------------------------------------ sessions
    def session(self, variant: Variant) -> tuple[Any, float, bool]:
        """(session, seconds it took to load, whether it came from the cache)."""
        from publisher.runtime.synth import open_session

        with self._lock:
            hit = self._sessions.get(variant.name)
            if hit is not None:
                self._sessions.move_to_end(variant.name)
                return hit[0], hit[1], True
            gate = self._loading.setdefault(variant.name, threading.Lock())
        with gate:  # one load per variant at a time; a second caller waits for it
            with self._lock:
                hit = self._sessions.get(variant.name)
                if hit is not None:
                    self._sessions.move_to_end(variant.name)
                    return hit[0], hit[1], True
            path = self.source.fetch(variant.path)
            start = time.perf_counter()
            sess = open_session(path, threads=self.settings.threads)
            load_s = time.perf_counter() - start
            with self._lock:
                self._sessions[variant.name] = (sess, load_s)
                self._sessions.move_to_end(variant.name)
                while len(self._sessions) > self.settings.max_sessions:
                    self._sessions.popitem(last=False)
        return sess, load_s, False

    def cached_sessions(self) -> list[str]:
        with self._lock:
            return list(self._sessions)

    # ------------------------------------------------------------------ input
    def prepare(self, text: object, phoneme_mode: bool = False) -> Prepared:
        """Phonemes and ids for ``text``; InputError says what is wrong with it."""
        from publisher.runtime.text import NON_SPEECH, phonemize, to_ids, which_g2p

        if not isinstance(text, str) or not text.strip():
            raise InputError(
                "Nothing to say: type some text first."
                if not phoneme_mode
                else "Nothing to say: type some phonemes first."
            )
        limit = self.settings.max_chars
        if len(text) > limit:
            raise InputError(
                f"The text is {len(text):,} characters long; this Space takes up to {limit:,} "
                "at a time. Please shorten it."
            )
        vocab = self.catalog().vocab
        if phoneme_mode:
            phonemes, g2p = " ".join(text.split()), "typed phonemes"
        else:
            try:
                phonemes, g2p = phonemize(text), which_g2p()
            except PublisherError as err:
                raise InputError(f"Nothing to say: {err}") from None
        ids, dropped = to_ids(phonemes, vocab)
        if not any(ch in vocab and ch not in NON_SPEECH for ch in phonemes):
            what = "phonemes" if phoneme_mode else "text"
            raise InputError(
                f"Nothing to say: the {what} has no sound in Kokoro's phoneme vocabulary"
                + (f" (ignored: {dropped[:40]!r})" if dropped else "")
                + "."
            )
        return Prepared(phonemes, g2p, dropped, len(ids))

    @staticmethod
    def check_speed(speed: object) -> float:
        try:
            value = float(speed)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            value = math.nan
        lo, hi = SPEED_RANGE
        if not lo <= value <= hi:  # also rejects NaN
            raise InputError(f"speed must be between {lo} and {hi}, got {str(speed)[:20]!r}")
        return value

    def select(self, names: object) -> list[Variant]:
        """The variants named (deduplicated, manifest names only)."""
        catalog = self.catalog()
        if isinstance(names, str):
            names = [names]
        if not isinstance(names, list | tuple) or not names:
            raise InputError("Choose at least one variant to compare.")
        chosen: list[Variant] = []
        for name in names:
            variant = catalog.variant(name)
            if variant not in chosen:
                chosen.append(variant)
        if len(chosen) > self.settings.max_compare:
            raise InputError(f"Choose at most {self.settings.max_compare} variants at a time.")
        return chosen

    # ------------------------------------------------------------------ synthesis
    @staticmethod
    def capacity(session: Any) -> int:
        """Most phoneme ids one call takes: the context, or a bucket graph's width - 2."""
        from publisher.runtime.constants import MAX_PHONEMES
        from publisher.runtime.synth import bucket_info

        info = bucket_info(session)
        return MAX_PHONEMES if info is None else max(1, min(info.bucket - 2, MAX_PHONEMES))

    def run(
        self,
        variant: Variant,
        prepared: Prepared,
        voice: np.ndarray,
        speed: float,
        chunks: list[str] | None = None,
    ) -> Run:
        """Synthesize ``prepared`` with one variant, one call per chunk (default: as few
        calls as the graph's context allows); failures end up in ``Run.error``."""
        import numpy as np

        from publisher.runtime.synth import run_onnx, style_row
        from publisher.runtime.text import split_phonemes, to_ids

        run = Run(variant)
        try:
            session, run.load_s, run.cached = self.session(variant)
            vocab = self.catalog().vocab
            if chunks is None:
                chunks = split_phonemes(prepared.phonemes, self.capacity(session), vocab)
            waves, durations, fed = [], [], []
            start = time.perf_counter()
            for chunk in chunks:
                ids, _ = to_ids(chunk, vocab)
                if ids:
                    out = run_onnx(session, ids, style_row(voice, len(ids)), speed)
                    waves.append(out.waveform)
                    durations.append(np.asarray(out.durations).reshape(-1))
                    fed.append(chunk)
            run.synth_s = time.perf_counter() - start
            run.words = words(fed, durations, waves, vocab)
            run.chunks = len(waves)
            wave = np.concatenate(waves) if waves else np.zeros(0, np.float32)
            run.durations = np.concatenate(durations) if durations else None
            if not np.all(np.isfinite(wave)):
                raise ValueError("the output holds NaN or infinite samples")
            run.wave = wave
        except Exception as exc:  # one variant failing must not take the others down
            run.wave = None
            run.error = _first_line(exc)
        return run

    def compare(
        self, text: object, phoneme_mode: bool, voice: object, speed: object, names: object
    ) -> Comparison:
        """Each chosen variant speaks the same input; fidelity is against the fp32 one."""
        catalog = self.catalog()
        chosen = self.select(names)
        pack = self.voice(voice)
        speed = self.check_speed(speed)
        prepared = self.prepare(text, bool(phoneme_mode))
        runs = [self.run(v, prepared, pack, speed) for v in chosen]
        notes: list[str] = []
        ref_name = catalog.reference
        ref_run = next((r for r in runs if r.variant.name == ref_name), None)
        if ref_name is None:
            notes.append("no float32 reference variant in this repo: fidelity not measured")
        elif ref_run is None:  # not chosen: synthesize it for the fidelity column only
            ref_run = self.run(catalog.variants[ref_name], prepared, pack, speed)
            notes.append(f"fidelity is measured against {ref_name} (synthesized, not shown)")
        if ref_run is not None and ref_run.error:
            notes.append(f"reference {ref_name} failed ({ref_run.error}): fidelity not measured")
        elif ref_run is not None:
            for r in runs:
                if r.wave is not None and r.wave.size and ref_run.wave.size:
                    r.fidelity, r.durations_equal = fidelity(ref_run, r)
        return Comparison(prepared, runs, ref_name, notes)


def words(chunks: list[str], durations: list, waves: list, vocab) -> list[Span] | None:
    """Each word's start and end in the joined audio, from every call's duration output;
    None when a call gave none for its whole input (a bucket graph's pieces)."""
    found: list[Span] = []
    offset = 0.0
    for chunk, frames, wave in zip(chunks, durations, waves, strict=True):
        try:
            spans = word_spans(chunk, frames, vocab)
        except PublisherError:
            return None
        found += [Span(w.text, w.start_s + offset, w.end_s + offset) for w in spans]
        offset += wave.size / SAMPLE_RATE
    return found


def fidelity(ref: Run, run: Run) -> tuple[float, float | None]:
    """What ``publisher verify`` measures: the spectral correlation with each token of
    ``run`` read against the same token of ``ref`` (their own predicted durations), so a
    phoneme one frame longer shifts nothing after it; and the share of tokens both timed
    the same. Outputs without durations to pair (none, or another token count) fall back
    to the common length, and the share is ``None``."""
    a, b = ref.durations, run.durations
    if a is None or b is None or a.size == 0 or a.size != b.size:
        return correlation(*aligned_spectra(ref.wave, run.wave, [], [], SAMPLES_PER_FRAME)), None
    spectra = aligned_spectra(ref.wave, run.wave, a, b, SAMPLES_PER_FRAME)
    return correlation(*spectra), duration_agreement(a, b).equal_share


def to_int16(wave: np.ndarray) -> np.ndarray:
    """float waveform in [-1, 1] -> int16 PCM for the audio player."""
    import numpy as np

    return (np.clip(wave, -1.0, 1.0) * 32767.0).astype(np.int16)


def spectrogram_image(wave: np.ndarray, title: str) -> np.ndarray:
    """A log-mel spectrogram as an RGB image (matplotlib, no pyplot state)."""
    import numpy as np
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from publisher.runtime.metrics import HOP, log_mel

    mel = log_mel(wave, SAMPLE_RATE).T if wave.size else np.zeros((80, 1))
    fig = Figure(figsize=(6.4, 2.2), dpi=100)
    canvas = FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    seconds = mel.shape[1] * HOP / SAMPLE_RATE
    ax.imshow(mel, origin="lower", aspect="auto", cmap="magma", extent=(0, seconds, 0, 80))
    ax.set_title(title, fontsize=9)
    ax.set_xlabel("seconds", fontsize=8)
    ax.set_ylabel("mel bin", fontsize=8)
    ax.tick_params(labelsize=7)
    fig.tight_layout()
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()
