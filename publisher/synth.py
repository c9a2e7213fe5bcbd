"""One way to run a Kokoro graph: token ids + style row + speed -> waveform, durations.

Shared by verification, benchmarks and the Space. Names come from the graph itself, so
every IO profile is called the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnxruntime as ort

SAMPLE_RATE = 24000
MAX_PHONEMES = 510 - 2  # the 512-position context minus the two pads


@dataclass
class Synthesis:
    waveform: np.ndarray  # float32 [samples]
    durations: np.ndarray  # int64 [tokens]


def style_row(voice: np.ndarray, n_phonemes: int) -> np.ndarray:
    """The style vector Kokoro uses for n phonemes: row n-1 of the (510, 1, 256) pack."""
    import numpy as np

    row = min(max(n_phonemes, 1), voice.shape[0]) - 1
    return np.asarray(voice[row], dtype=np.float32).reshape(1, -1)


def padded_ids(ids: list[int]) -> np.ndarray:
    import numpy as np

    return np.array([[0, *ids, 0]], dtype=np.int64)


def open_session(path: str | Path, threads: int = 0) -> ort.InferenceSession:
    """A CPU session; a file onnxruntime refuses is a one-line PublisherError."""
    import onnxruntime as ort

    from publisher.errors import PublisherError

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    if threads:
        opts.intra_op_num_threads = threads
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph types
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PublisherError(f"{Path(path).name}: onnxruntime cannot load it: {reason}") from None


def _roles(session: ort.InferenceSession) -> dict[str, Any]:
    """Map graph IO to roles by position: ids, style, speed[, lengths] -> wave, dur."""
    ins = session.get_inputs()
    outs = session.get_outputs()
    return {
        "ids": ins[0],
        "style": ins[1],
        "speed": ins[2],
        "wave": outs[0].name,
        "dur": outs[1].name if len(outs) > 1 else None,
    }


def run_onnx(
    session: ort.InferenceSession, ids: list[int], style: np.ndarray, speed: float = 1.0
) -> Synthesis:
    import numpy as np

    r = _roles(session)
    speed_type = np.float16 if "float16" in r["speed"].type else np.float32
    feeds = {
        r["ids"].name: padded_ids(ids),
        r["style"].name: np.asarray(style, dtype=np.float32).reshape(1, -1),
        r["speed"].name: np.array([speed], dtype=speed_type),
    }
    wave, *rest = session.run(None, feeds)
    dur = rest[0] if rest else np.zeros(0, dtype=np.int64)
    return Synthesis(np.asarray(wave, dtype=np.float32).reshape(-1), np.asarray(dur).reshape(-1))


def run_torch(model: Any, ids: list[int], style: np.ndarray, speed: float = 1.0) -> Synthesis:
    import numpy as np
    import torch

    with torch.no_grad():
        wave, dur = model.forward_with_tokens(
            torch.from_numpy(padded_ids(ids)), torch.from_numpy(style.reshape(1, -1)), speed
        )
    return Synthesis(wave.numpy().reshape(-1).astype(np.float32), dur.numpy().reshape(-1))
