"""One way to run a Kokoro graph: token ids + style row + speed -> waveform, durations.

Shared by verification, benchmarks and the Space. Names come from the graph itself, so
every IO profile is called the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.runtime.constants import SAMPLES_PER_FRAME
from publisher.runtime.errors import RunError, first_line
from publisher.runtime.threads import own_threads

if TYPE_CHECKING:
    from collections.abc import Iterator

    import numpy as np
    import onnxruntime as ort

SPLIT_CHARS = " .,!?;:\u2014\u2026"  # where a re-split prefers to cut


@dataclass
class Synthesis:
    waveform: np.ndarray  # float32 [samples]
    durations: np.ndarray  # int64 [tokens]
    # Bucket graphs only: the largest |sample| after the content (exact zeros expected),
    # and how many pieces the input was re-split into (durations: per piece, pads included)
    # with each piece's phoneme count, in order.
    tail_max_abs: float | None = None
    pieces: int = 1
    piece_lengths: tuple[int, ...] = ()


@dataclass(frozen=True)
class BucketInfo:
    """What a static bucket graph tells about itself (input width, metadata)."""

    bucket: int  # B: token positions, pads included
    frames: int  # F: alignment frames
    samples_per_frame: int  # content samples per duration frame (600)
    output_samples: int  # fixed waveform length


def style_row(voice: np.ndarray, n_phonemes: int) -> np.ndarray:
    """The style vector Kokoro uses for n phonemes: row n-1 of the (510, 1, 256) pack."""
    import numpy as np

    row = min(max(n_phonemes, 1), voice.shape[0]) - 1
    return np.asarray(voice[row], dtype=np.float32).reshape(1, -1)


def padded_ids(ids: list[int]) -> np.ndarray:
    import numpy as np

    return np.array([[0, *ids, 0]], dtype=np.int64)


def session_options(threads: int = 0) -> ort.SessionOptions:
    """Quiet options with ``threads`` intra-op threads (0: ``own_threads()``, which is
    ``$PUBLISHER_THREADS`` or onnxruntime's default, one per core, unless a process works
    beside this one): every session publisher runs starts here."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.intra_op_num_threads = threads or own_threads()
    return opts


def open_session(
    path: str | Path, threads: int = 0, profile_prefix: str | None = None
) -> ort.InferenceSession:
    """A CPU session on ``session_options(threads)`` (onnxruntime's profiler on when
    ``profile_prefix`` is given); a file onnxruntime refuses is a one-line PublisherError."""
    import onnxruntime as ort

    opts = session_options(threads)
    if profile_prefix:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile_prefix
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        reason = first_line(exc, 1000)
        raise RunError(f"{Path(path).name}: onnxruntime cannot load it: {reason}") from None


def _roles(session: ort.InferenceSession) -> dict[str, Any]:
    """Map graph IO to roles by position: ids, style, speed[, lengths] -> wave, dur."""
    ins = session.get_inputs()
    outs = session.get_outputs()
    return {
        "ids": ins[0],
        "style": ins[1],
        "speed": ins[2],
        "lengths": ins[3] if len(ins) > 3 else None,
        "wave": outs[0].name,
        "dur": outs[1].name if len(outs) > 1 else None,
    }


def bucket_info(session: ort.InferenceSession) -> BucketInfo | None:
    """BucketInfo when the token input has a static width (a bucket graph), else None."""
    ins, outs = session.get_inputs(), session.get_outputs()
    shape = ins[0].shape
    if len(ins) < 4 or len(shape) != 2 or not isinstance(shape[1], int):
        return None
    meta = session.get_modelmeta().custom_metadata_map
    samples = outs[0].shape[0] if isinstance(outs[0].shape[0], int) else 0
    per_frame = int(
        meta.get("fastkokoro.content_samples_per_duration_frame")
        or meta.get("fastkokoro.output_samples_per_frame")
        or SAMPLES_PER_FRAME
    )
    frames = int(meta.get("fastkokoro.fixed_alignment_frames") or samples // per_frame)
    return BucketInfo(shape[1], frames, per_frame, samples or per_frame * frames)


def _boundary_ids(session: ort.InferenceSession) -> set[int]:
    """Token ids of spaces and punctuation (from kokoro_config), preferred split points."""
    import json

    raw = session.get_modelmeta().custom_metadata_map.get("kokoro_config")
    try:
        vocab = json.loads(raw)["vocab"] if raw else {}
    except (ValueError, KeyError, TypeError):
        vocab = {}
    return {i for ch, i in vocab.items() if ch in SPLIT_CHARS}


def _split_point(ids: list[int], boundaries: set[int]) -> int:
    """Where to cut ``ids`` in two: after the boundary token nearest the middle, else the
    middle; both halves are non-empty."""
    middle = len(ids) // 2
    cuts = [k + 1 for k in range(len(ids) - 1) if ids[k] in boundaries]
    return min(cuts, key=lambda c: (abs(c - middle), c)) if cuts else max(1, middle)


def _style_for(style: np.ndarray, n_phonemes: int) -> np.ndarray:
    """A fixed style row, or a voice pack (rows, [1,] 256): the row for n phonemes."""
    import numpy as np

    style = np.asarray(style, dtype=np.float32)
    if style.ndim == 3 or (style.ndim == 2 and style.shape[0] > 1):
        return style_row(style, n_phonemes)
    return style.reshape(1, -1)


def feeds_for(
    session: ort.InferenceSession, ids: list[int], style: np.ndarray, speed: float = 1.0
) -> dict[str, np.ndarray]:
    """The inputs of one call: ids padded ``[0, ids..., 0]`` (into the static width of a
    bucket graph, with ``input_lengths`` = n + 2), one style row, the speed in the graph's
    dtype."""
    import numpy as np

    r, info = _roles(session), bucket_info(session)
    speed_type = np.float16 if "float16" in r["speed"].type else np.float32
    feeds = {
        r["style"].name: np.asarray(style, dtype=np.float32).reshape(1, -1),
        r["speed"].name: np.array([speed], dtype=speed_type),
    }
    if info is None:
        return {r["ids"].name: padded_ids(ids), **feeds}
    padded = np.zeros((1, info.bucket), dtype=np.int64)
    padded[0, 1 : len(ids) + 1] = ids
    lengths = np.array([len(ids) + 2], dtype=np.int64)
    return {r["ids"].name: padded, **feeds, r["lengths"].name: lengths}


def run_bucket_once(
    session: ort.InferenceSession, ids: list[int], style: np.ndarray, speed: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """One call of a bucket graph: ids padded to its width, input_lengths = n + 2.
    Returns the raw fixed-length waveform and the B durations (0 on padding)."""
    import numpy as np

    r, info = _roles(session), bucket_info(session)
    if info is None:
        raise RunError("run_bucket_once: not a bucket graph (no static token width)")
    if len(ids) + 2 > info.bucket:
        raise RunError(f"{len(ids)} phonemes do not fit a {info.bucket}-token bucket")
    wave, dur = session.run([r["wave"], r["dur"]], feeds_for(session, ids, style, speed))
    return np.asarray(wave, dtype=np.float32).reshape(-1), np.asarray(dur).reshape(-1)


@dataclass
class Piece:
    """One call's content: its waveform (``samples_per_frame * sum(duration)`` samples),
    its durations (pads included) and the largest |sample| after the content."""

    waveform: np.ndarray
    durations: np.ndarray
    tail_max_abs: float


def iter_bucket(
    session: ort.InferenceSession,
    ids: list[int],
    style: np.ndarray,
    speed: float = 1.0,
    bucket: int | None = None,
    frames: int | None = None,
) -> Iterator[Piece]:
    """Synthesize with a static bucket graph piece by piece, in order (what a streaming
    server plays as each call returns), re-splitting what does not fit.

    An input fits when n + 2 <= bucket and its durations need at most ``frames`` frames
    (read from the duration output: sum(duration) > frames means the fixed alignment cut
    the end). What does not fit is cut in two at the space/punctuation nearest the
    middle (else the middle), recursively. ``style`` is one row, or a voice pack whose
    row is picked per piece length."""
    import numpy as np

    info = bucket_info(session)
    if info is None:
        raise RunError("synthesize_bucket: not a bucket graph (no static token width)")
    bucket, frames = bucket or info.bucket, frames or info.frames
    boundaries = _boundary_ids(session)

    def piece(part: list[int]) -> Iterator[Piece]:
        if len(part) + 2 > bucket and len(part) > 1:
            cut = _split_point(part, boundaries)
            yield from piece(part[:cut])
            yield from piece(part[cut:])
            return
        wave, dur = run_bucket_once(session, part, _style_for(style, len(part)), speed)
        total = int(dur.sum())
        if total > frames and len(part) > 1:
            cut = _split_point(part, boundaries)
            yield from piece(part[:cut])
            yield from piece(part[cut:])
            return
        content = info.samples_per_frame * min(total, frames)  # one phoneme over F: cut
        tail = float(np.abs(wave[content:]).max()) if content < wave.size else 0.0
        yield Piece(wave[:content], dur[: len(part) + 2], tail)

    yield from piece(list(ids))


def synthesize_bucket(
    session: ort.InferenceSession,
    ids: list[int],
    style: np.ndarray,
    speed: float = 1.0,
    bucket: int | None = None,
    frames: int | None = None,
) -> Synthesis:
    """Every piece of ``iter_bucket``, concatenated (the content of each call only)."""
    import numpy as np

    pieces = list(iter_bucket(session, ids, style, speed, bucket, frames))
    return Synthesis(
        np.concatenate([p.waveform for p in pieces]).astype(np.float32),
        np.concatenate([p.durations for p in pieces]),
        tail_max_abs=max(p.tail_max_abs for p in pieces),
        pieces=len(pieces),
        piece_lengths=tuple(len(p.durations) - 2 for p in pieces),
    )


def stream(
    session: ort.InferenceSession, ids: list[int], style: np.ndarray, speed: float = 1.0
) -> Iterator[np.ndarray]:
    """The audio as a streaming server would play it: a bucket graph's pieces as each
    call returns; a dynamic graph's whole waveform in one chunk. ``style`` is one row or
    a voice pack (the row for each call's length)."""
    import numpy as np

    if bucket_info(session) is None:
        yield run_onnx(session, ids, _style_for(style, len(ids)), speed).waveform
        return
    for p in iter_bucket(session, ids, style, speed):
        yield np.asarray(p.waveform, dtype=np.float32)


def run_onnx(
    session: ort.InferenceSession, ids: list[int], style: np.ndarray, speed: float = 1.0
) -> Synthesis:
    """Run a graph; a static bucket graph goes through ``synthesize_bucket`` (its content
    only, re-split when it does not fit)."""
    import numpy as np

    if bucket_info(session) is not None:
        return synthesize_bucket(session, ids, style, speed)
    wave, *rest = session.run(None, feeds_for(session, ids, style, speed))
    dur = rest[0] if rest else np.zeros(0, dtype=np.int64)
    return Synthesis(np.asarray(wave, dtype=np.float32).reshape(-1), np.asarray(dur).reshape(-1))
