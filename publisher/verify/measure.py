"""Measure a variant against the PyTorch reference (``gates`` applies the recipe's gates
to what this measures, ``report`` writes it down).

* parity: the fp32 parity-mode graph against parity-mode torch, sample by sample (proves
  the export itself; see publisher/export/parity.py);
* fidelity: the variant's parity twin (the same passes applied to the parity export)
  against parity-mode torch: spectrogram correlation, log-mel distance, durations. Both
  sides are noise-free, so the score measures the variant and nothing else;
* shipped: the published graph itself, with its random source, run in a child process
  (a crash is a failed gate), compared with torch next to the torch-vs-torch noise floor.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.export.bucket.shape import ANCHOR_SAMPLES_PER_FRAME, bucket_metadata, bucket_shape
from publisher.export.parity import parity_mode
from publisher.model import kmodel
from publisher.progress import progress
from publisher.runtime import synth
from publisher.runtime.constants import SAMPLES_PER_FRAME
from publisher.runtime.corpus import load_corpus
from publisher.runtime.errors import BuildError, ShapeMismatchError, VerificationError
from publisher.runtime.metrics import (
    aligned_spectra,
    common_spectra,
    correlation,
    duration_agreement,
    log_mel_distance,
    snr_db,
    spectra_log_mel_distance,
    spectral_correlation,
)
from publisher.runtime.synth import Synthesis, open_session, style_row
from publisher.runtime.threads import own_threads
from publisher.verify import store
from publisher.verify.beside import heard_beside
from publisher.verify.listen import SPEECH_OFF, listen
from publisher.verify.worker import started_on_first_run
from publisher.workspace import recorded_sha256

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np

    from publisher.model.checkpoint import Checkpoint
    from publisher.recipe.schema import Recipe

PROBE_TOKENS = (40, 400)  # fixed-length parity probes (token counts, pads included)
# shipped_matches_twin: the shipped graph against its deterministic twin, relative to
# torch against its own deterministic mode (see _shipped), at least SAME_AUDIO_MATCH
SHIPPED_ITEMS = 2  # corpus items the noisy shipped graph is run on
SHIPPED_SEED = 20261206  # torch's two random-source runs beside it, seeded so they are stored
# The deterministic torch reference depends on the checkpoint and the input only, not on
# the variant: kept on disk by the reference store (verify/store.py) for every process, and
# here as read-only arrays for this one. Keyed by the weights' sha256 and the config.
_REFERENCES: dict[tuple, Any] = {}
_REFERENCES_MAX = 512


@dataclass(frozen=True)
class Item:
    id: str
    ids: tuple[int, ...]
    voice: str
    speed: float


@dataclass
class ParityResult:
    item: str
    tokens: int
    max_abs_error: float
    snr_db: float
    durations_equal: bool
    samples: int


@dataclass
class FidelityResult:
    """Timbre (spectral correlation, log-mel distance; where durations differ, the
    variant's spectrogram is also read on the reference's timeline token by token, so a
    drifted duration shifts nothing after it) apart from timing (duration agreement).
    ``frame_correlation`` is the plain frame-aligned value (shown, not gated)."""

    item: str
    spectral_correlation: float
    log_mel_distance: float
    duration_equal_share: float
    total_frames_diff: int
    frame_correlation: float


def probe_ids(ckpt: Checkpoint, tokens: int) -> list[int]:
    """A fixed pseudo-random phoneme id sequence of tokens - 2 ids (pads added later)."""
    import numpy as np

    vocab = np.array(sorted(set(ckpt.config["vocab"].values())), dtype=np.int64)
    return np.random.default_rng(tokens).choice(vocab, size=tokens - 2).tolist()


def verification_items(ckpt: Checkpoint, max_phonemes: int | None = None) -> list[Item]:
    """The shipped evaluation corpus plus fixed-length probes, voices from the checkpoint."""

    vocab = ckpt.config["vocab"]
    items = []
    for c in load_corpus().eval:
        if max_phonemes and len(c.phonemes) > max_phonemes:
            continue
        voice = c.voice if c.voice in ckpt.voices else ckpt.sample_voice
        items.append(Item(c.id, tuple(c.ids(vocab)), voice, c.speed))
    for n in PROBE_TOKENS:
        if not max_phonemes or n - 2 <= max_phonemes:
            items.append(Item(f"probe-{n}", tuple(probe_ids(ckpt, n)), ckpt.sample_voice, 1.0))
    return items


def bucket_probes(ckpt: Checkpoint, bucket: int) -> list[Item]:
    """Probes sized to a bucket: a quarter and half full at speed 1, full (B - 2 phonemes)
    at speed 2 so that its durations fit the alignment frames. The quarter probe is there
    for real weights, which speak these phoneme strings slowly: on recovered:kokoro-v1.0
    the half and full probes of b16 both needed more than 40 frames (F = 2B + 8 then)."""
    voice = ckpt.sample_voice
    return [
        Item(f"bucket-quarter-{bucket}", tuple(probe_ids(ckpt, bucket // 4 + 2)), voice, 1.0),
        Item(f"bucket-half-{bucket}", tuple(probe_ids(ckpt, bucket // 2 + 1)), voice, 1.0),
        Item(f"bucket-full-{bucket}", tuple(probe_ids(ckpt, bucket)), voice, 2.0),
    ]


def _bucket_settings(recipe: Recipe):
    if not recipe.is_bucket:
        return None

    return bucket_shape(recipe)


def _bucket_row(item: Item, ref, outs: list) -> dict[str, Any]:
    """Content and tail facts of one bucket output (parity graph and twin)."""

    frames = int(ref.durations.sum())
    return {
        "item": item.id,
        "phonemes": len(item.ids),
        "frames": frames,
        "content_samples": int(outs[0].waveform.size),
        "expected_samples": SAMPLES_PER_FRAME * frames,
        "anchor_samples": ANCHOR_SAMPLES_PER_FRAME * frames,
        "kept_past_anchor_samples": (SAMPLES_PER_FRAME - ANCHOR_SAMPLES_PER_FRAME) * frames,
        "tail_max_abs": max(float(o.tail_max_abs or 0.0) for o in outs),
        "pieces": max(o.pieces for o in outs),
    }


def style_of(ckpt: Checkpoint, item: Item) -> np.ndarray:
    return style_row(ckpt.voices[item.voice], len(item.ids))


def _parity(item: Item, ref, out) -> ParityResult:
    import numpy as np

    if ref.waveform.shape != out.waveform.shape:
        if not np.array_equal(ref.durations, out.durations):
            return ParityResult(
                item.id,
                len(item.ids) + 2,
                float("inf"),
                float("-inf"),
                False,
                int(ref.waveform.size),
            )
        raise ShapeMismatchError("waveform", ref.waveform.shape, out.waveform.shape)
    return ParityResult(
        item.id,
        len(item.ids) + 2,
        float(np.max(np.abs(ref.waveform - out.waveform))) if ref.waveform.size else 0.0,
        snr_db(ref.waveform, out.waveform),
        bool(np.array_equal(ref.durations, out.durations)),
        int(ref.waveform.size),
    )


def _fidelity(item: Item, ref, out) -> FidelityResult:
    """Timbre under the better of two alignments: token by token (speech moves with its
    tokens) or frame by frame (parity mode's fixed noise pattern is tiled from sample 0
    and does not move with tokens; on random weights it is most of the signal, measured
    0.998 frame-aligned vs 0.738 token-aligned on synthetic:tiny fp16 with 3 of 463
    tokens one frame shorter). Equal durations make the two the same; real damage
    lowers both."""

    d = duration_agreement(ref.durations, out.durations)
    plain = common_spectra(ref.waveform, out.waveform)
    aligned = aligned_spectra(
        ref.waveform, out.waveform, ref.durations, out.durations, SAMPLES_PER_FRAME
    )
    frame_corr, token_corr = correlation(*plain), correlation(*aligned)
    best = aligned if token_corr >= frame_corr else plain
    return FidelityResult(
        item.id,
        max(frame_corr, token_corr),
        spectra_log_mel_distance(*best),
        d.equal_share,
        d.total_frames_diff,
        frame_corr,
    )


def voiced_fidelity(ckpt: Checkpoint) -> bool:
    """Whether fidelity is measured with the harmonic sine on (real weights) or in the
    noise-only parity mode (synthetic weights). Measured reason: with the sine, the float
    (onnxruntime) vs double (torch) accumulation of its phase is harmless on
    recovered:kokoro-v1.0 (fp32 voiced twin vs torch: worst 0.99947 on 12 inputs, where
    two random sources differ by 0.9971-0.9996) but random weights amplify it
    (synthetic:tiny fp32: 0.85 on 460-phoneme inputs). Silenced, real weights whisper:
    quantized scored 0.76 there vs 0.93 voiced, below what a listener hears (WER and
    DNSMOS equal to fp32's). A config our synthetic generator wrote (``publisher_synthetic``,
    kept by tests' saved or recovered variations of synthetic:tiny) means random weights too.
    """
    return not ckpt.synthetic and "publisher_synthetic" not in ckpt.config


def check_parity(
    ckpt: Checkpoint, graph: Path, tokens: tuple[int, ...] = PROBE_TOKENS
) -> list[ParityResult]:
    """Parity of a parity-mode graph on fixed-length probes (a quick check for tests)."""

    session = open_session(graph)
    results = []
    for n in tokens:
        item = Item(f"probe-{n}", tuple(probe_ids(ckpt, n)), ckpt.sample_voice, 1.0)
        with parity_mode(ckpt.model):
            ref = kmodel.run_torch(ckpt.model, list(item.ids), style_of(ckpt, item))
        results.append(
            _parity(item, ref, synth.run_onnx(session, list(item.ids), style_of(ckpt, item)))
        )
    return results


def torch_reference(ckpt: Checkpoint, item: Item, style: np.ndarray, voiced: bool = False) -> Any:
    """Upstream Kokoro's deterministic output for ``item`` (noise only, or with the sine
    source when ``voiced``), computed once per process per checkpoint and input; the
    arrays come back read-only, so no caller can change what the next one reads."""
    import json

    config = json.dumps(ckpt.config, sort_keys=True, default=str)
    key = (ckpt.sha256, config, item.ids, item.speed, style.tobytes(), voiced)
    if key not in _REFERENCES:

        def compute() -> dict[str, np.ndarray]:
            with parity_mode(ckpt.model, voiced=voiced):
                out = kmodel.run_torch(ckpt.model, list(item.ids), style, item.speed)
            return {"waveform": out.waveform, "durations": out.durations}

        mode = "deterministic-voiced" if voiced else "deterministic-noise"
        k = store.key(ckpt, item.ids, item.speed, style, mode)
        arrays = store.remembered(k, compute)  # on disk: shared by every process
        out = Synthesis(arrays["waveform"], arrays["durations"])
        if len(_REFERENCES) >= _REFERENCES_MAX:
            _REFERENCES.clear()
        _REFERENCES[key] = out
    return _REFERENCES[key]


class StoredRuns:
    """A graph's runs, kept in the reference store keyed by the graph and the input. A
    graph from the export cache is known by the sha256 recorded there: the fp32 parity and
    voiced exports serve every recipe of a checkpoint, so a second recipe reads them back.
    Any other graph (a variant's own twin, the shipped graph) is known by its computation
    (the graph and opsets, not the metadata; or ``sha256`` when the caller has it), so a
    rebuild whose passes made the same graph, after a change to the recipe's text or gates,
    reads its runs back too. A deterministic graph runs in a session opened on first need;
    with ``worker`` (a ``started_on_first_run``), a graph with its random source on runs
    in a child process, and a crash is never kept."""

    def __init__(
        self, ckpt: Checkpoint, graph: Path, sha256: str | None = None, worker=None
    ) -> None:
        self.ckpt, self.graph, self.worker = ckpt, graph, worker
        self.sha256 = sha256 or recorded_sha256(graph) or store.computation_sha256(graph)
        self.mode = "onnx" if worker is None else "onnx-random"
        self._session: Any = None
        self._threads = -1  # what the session was opened with

    def _run(self, item: Item, style: np.ndarray) -> Synthesis:
        if self.worker is not None:
            return self.worker(list(item.ids), style, item.speed)
        if self._session is None or self._threads != own_threads():
            # opened again when a process beside this one started or ended (threads.py)
            self._threads = own_threads()
            self._session = open_session(self.graph)
        return synth.run_onnx(self._session, list(item.ids), style, item.speed)

    def run(self, item: Item, style: np.ndarray) -> Synthesis:
        import numpy as np

        def compute() -> dict[str, np.ndarray]:
            out = self._run(item, style)
            tail = np.nan if out.tail_max_abs is None else out.tail_max_abs
            return {
                "waveform": out.waveform,
                "durations": out.durations,
                "tail": np.array(tail),
                "pieces": np.array(out.pieces),
            }

        runtime = store.versions("onnxruntime")
        k = store.key(
            self.ckpt, item.ids, item.speed, style, self.mode, graph=self.sha256, **runtime
        )
        a = store.remembered(k, compute)
        tail = float(a["tail"])
        return Synthesis(
            a["waveform"], a["durations"], None if np.isnan(tail) else tail, int(a["pieces"])
        )


@dataclass
class Measured:
    """Everything verification measured of one variant, before any gate is applied."""

    items: list[Item]
    parity: list[ParityResult]
    fidelity: list[FidelityResult]
    shipped: dict[str, Any]  # the published graph (random source on) beside torch
    speech: dict[str, Any]  # the speech set (WER, DNSMOS, speaker), or why it was skipped
    fidelity_mode: str  # "voiced" (real weights) or "noise-only"
    picture_item: str
    bucket: dict[str, Any] | None  # bucket graphs: content and tail per input
    waves: tuple[np.ndarray, np.ndarray]  # the picture item's torch and variant waveforms

    def to_json(self) -> dict[str, Any]:
        """The JSON part (the waveforms stay in memory, for the picture)."""
        return {
            "items": [asdict(i) | {"ids": len(i.ids)} for i in self.items],
            "parity": [asdict(p) for p in self.parity],
            "fidelity": [asdict(f) for f in self.fidelity],
            "shipped": self.shipped,
            "speech": self.speech,
            "fidelity_mode": self.fidelity_mode,
            "picture_item": self.picture_item,
            **({"bucket": self.bucket} if self.bucket else {}),
        }


@dataclass
class _Compared:
    """The verification inputs against torch: parity and fidelity per input compared."""

    parity: list[ParityResult] = field(default_factory=list)
    fidelity: list[FidelityResult] = field(default_factory=list)
    refs: dict[str, Synthesis] = field(default_factory=dict)  # torch, the fidelity mode
    outs: dict[str, Synthesis] = field(default_factory=dict)  # the twin
    used: list[Item] = field(default_factory=list)
    skipped: dict[str, list[str]] = field(
        default_factory=lambda: {"too_long": [], "over_frames": []}
    )
    bucket_rows: list[dict[str, Any]] = field(default_factory=list)


def _compare_inputs(ckpt, bucket, parity_graph: Path, twin_graph: Path, items) -> _Compared:
    """Parity (noise-only graph against torch) and fidelity (the twin against torch in
    the fidelity mode) on each input. Bucket graphs: only inputs that fit (n <= B - 2 and
    at most F frames in the unpadded reference) are compared; the rest would be re-split,
    so they are counted and skipped."""

    parity_runs, twin_runs = StoredRuns(ckpt, parity_graph), StoredRuns(ckpt, twin_graph)
    c = _Compared()
    voiced_mode = voiced_fidelity(ckpt)
    for k, item in enumerate(progress(items, "verify"), 1):
        if bucket and len(item.ids) + 2 > bucket.bucket:
            c.skipped["too_long"].append(item.id)
            continue
        style = style_of(ckpt, item)
        ref = torch_reference(ckpt, item, style)
        if bucket and int(ref.durations.sum()) > bucket.frames:
            c.skipped["over_frames"].append(item.id)
            continue
        out = parity_runs.run(item, style)
        c.parity.append(_parity(item, ref, out))
        voiced = torch_reference(ckpt, item, style, voiced=True) if voiced_mode else ref
        twin = twin_runs.run(item, style)
        c.fidelity.append(_fidelity(item, voiced, twin))
        c.refs[item.id], c.outs[item.id] = voiced, twin
        c.used.append(item)
        if bucket:
            c.bucket_rows.append(_bucket_row(item, ref, [out, twin]))
        log.info(
            "  %d/%d %s: %d phonemes, corr %.5f (frame-aligned %.5f, durations equal %.3f), "
            "parity %.2g",
            k,
            len(items),
            item.id,
            len(item.ids),
            c.fidelity[-1].spectral_correlation,
            c.fidelity[-1].frame_correlation,
            c.fidelity[-1].duration_equal_share,
            c.parity[-1].max_abs_error,
        )
    if bucket:
        log.info(
            f"  bucket {bucket.bucket}: {len(c.used)} inputs compared, skipped "
            f"{len(c.skipped['too_long'])} longer than {bucket.bucket - 2} phonemes and "
            f"{len(c.skipped['over_frames'])} over {bucket.frames} frames"
        )
        if not c.used:
            raise BuildError(f"no verification input fits a {bucket.bucket}-token bucket")
    return c


def measure(
    recipe: Recipe,
    ckpt: Checkpoint,
    *,
    parity_graph: Path,
    twin_graph: Path,
    shipped_graph: Path,
    items: list[Item],
    speech: bool = True,
) -> Measured:
    """Measure everything. ``parity_graph``: the fp32 noise-only export, proven sample by
    sample; ``twin_graph``: the variant's voiced deterministic twin (the fp32 voiced
    export when no pass changes numbers), whose fidelity is measured against torch in the
    same mode. Gated by ``gates.gated``."""

    bucket = _bucket_settings(recipe)
    graph_key = store.computation_sha256(shipped_graph)  # its stored runs' key
    # the speech set depends on none of the inputs: heard beside them where that pays
    with heard_beside(ckpt, str(shipped_graph), graph_key, wanted=speech):
        c = _compare_inputs(ckpt, bucket, parity_graph, twin_graph, items)
        used, skipped, refs, outs = c.used, c.skipped, c.refs, c.outs
        shipped = _shipped(ckpt, shipped_graph, used[:SHIPPED_ITEMS], graph_key, (refs, outs))
    speech = listen(ckpt, str(shipped_graph), graph_key) if speech else SPEECH_OFF
    pic_item = max(used[: max(1, len(used) // 2)], key=lambda i: len(i.ids))
    bucket_report = None
    if bucket:
        bucket_report = {
            "bucket": bucket.bucket,
            "frames": bucket.frames,
            "output_samples": bucket.output_samples,
            "rule": bucket_metadata(bucket)["publisher.bucket_output_rule"],
            "skipped_too_long": skipped["too_long"],
            "skipped_over_frames": skipped["over_frames"],
            "items": c.bucket_rows,
        }
    return Measured(
        items=used,
        parity=c.parity,
        fidelity=c.fidelity,
        shipped=shipped,
        speech=speech,
        fidelity_mode="voiced" if voiced_fidelity(ckpt) else "noise-only",
        picture_item=pic_item.id,
        bucket=bucket_report,
        waves=(refs[pic_item.id].waveform, outs[pic_item.id].waveform),
    )


def _shipped(ckpt, graph: Path, items: list[Item], graph_key: str, deterministic) -> dict:
    """Run the published graph (random source on) in a child process, next to torch.

    ``deterministic``: (torch, twin) outputs per item in the deterministic mode. The
    shipped graph is held to its twin as torch is held to itself: corr(shipped, twin)
    over corr(torch with its random source, torch deterministic), the shipped_matches_twin
    gate. A different graph with the same inputs and outputs scores near 0. Its runs are
    kept in the reference store by ``graph_key`` (what it computes): a rebuild that wrote
    the same graph starts no worker. A crash is never kept."""
    import numpy as np

    torch_det, twin_det = deterministic
    rows = []
    try:
        with contextlib.ExitStack() as stack:
            worker = started_on_first_run(str(graph), graph.name, stack)
            runs = StoredRuns(ckpt, graph, graph_key, worker)
            for k, item in enumerate(items):
                style = style_of(ckpt, item)
                out = runs.run(item, style).waveform
                a = store.seeded_torch(ckpt, item.ids, item.speed, style, SHIPPED_SEED + 2 * k)
                b = store.seeded_torch(ckpt, item.ids, item.speed, style, SHIPPED_SEED + 2 * k + 1)
                finite = bool(np.isfinite(out).all())
                to_twin = spectral_correlation(twin_det[item.id].waveform, out)
                torch_floor = spectral_correlation(torch_det[item.id].waveform, a.waveform)
                rows.append(
                    {
                        "item": item.id,
                        "finite": finite,
                        "spectral_correlation": spectral_correlation(a.waveform, out),
                        "log_mel_distance": log_mel_distance(a.waveform, out),
                        "noise_floor_correlation": spectral_correlation(a.waveform, b.waveform),
                        "noise_floor_log_mel": log_mel_distance(a.waveform, b.waveform),
                        "twin_correlation": to_twin,
                        "torch_mode_correlation": torch_floor,
                        "matches_twin": to_twin / max(torch_floor, 1e-6),
                    }
                )
    except VerificationError:
        raise
    except Exception as exc:  # VariantCrashed or a load failure: a failed gate
        return {"ran": False, "error": str(exc), "items": rows}
    return {"ran": True, "error": "", "items": rows}
