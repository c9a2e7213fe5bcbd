"""Prove an export: deterministic ONNX graph against deterministic torch, sample by sample."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.errors import ShapeMismatchError, VerificationError

if TYPE_CHECKING:
    import numpy as np

    from publisher.checkpoint import Checkpoint
    from publisher.recipe import Recipe

PARITY_TOKENS = (12, 40, 400)  # token counts, the two pads included


@dataclass
class ParityResult:
    tokens: int
    voice: str
    max_abs_error: float
    snr_db: float
    durations_equal: bool
    samples: int


def parity_ids(ckpt: Checkpoint, tokens: int) -> list[int]:
    """A fixed pseudo-random phoneme id sequence (tokens - 2 ids; pads are added later)."""
    import numpy as np

    vocab = np.array(sorted(set(ckpt.config["vocab"].values())), dtype=np.int64)
    rng = np.random.default_rng(tokens)
    return rng.choice(vocab, size=tokens - 2).tolist()


def snr_db(ref: np.ndarray, test: np.ndarray) -> float:
    import numpy as np

    noise = float(np.sum((ref.astype(np.float64) - test) ** 2))
    signal = float(np.sum(ref.astype(np.float64) ** 2))
    if noise == 0.0:
        return float("inf")
    return float(10.0 * np.log10(max(signal, 1e-30) / noise))


def check_parity(
    ckpt: Checkpoint, model: Any, graph: Path, tokens: tuple[int, ...] = PARITY_TOKENS
) -> list[ParityResult]:
    """Run the parity graph and torch in parity mode on fixed inputs; measure the gap."""
    import numpy as np

    from publisher.parity_mode import parity_mode
    from publisher.synth import open_session, run_onnx, run_torch, style_row

    session = open_session(graph)
    voice = ckpt.sample_voice
    results = []
    for n in tokens:
        ids = parity_ids(ckpt, n)
        style = style_row(ckpt.voices[voice], len(ids))
        with parity_mode(model):
            ref = run_torch(model, ids, style)
        out = run_onnx(session, ids, style)
        if ref.waveform.shape != out.waveform.shape:
            raise ShapeMismatchError("waveform", ref.waveform.shape, out.waveform.shape)
        results.append(
            ParityResult(
                tokens=n,
                voice=voice,
                max_abs_error=float(np.max(np.abs(ref.waveform - out.waveform))),
                snr_db=snr_db(ref.waveform, out.waveform),
                durations_equal=bool(np.array_equal(ref.durations, out.durations)),
                samples=int(ref.waveform.size),
            )
        )
    return results


def enforce_parity_gates(recipe: Recipe, results: list[ParityResult]) -> None:
    """Raise VerificationError (with the measured value) on the first gate a result fails."""
    gates = recipe.gates
    for r in results:
        where = f"{r.tokens} tokens, voice {r.voice}"
        if not r.durations_equal:
            raise VerificationError("parity_durations_equal", 0.0, 1.0, detail=where)
        if r.max_abs_error > gates.parity_max_abs:
            raise VerificationError(
                "parity_max_abs",
                r.max_abs_error,
                gates.parity_max_abs,
                detail=f"{where}; must be at most the threshold",
            )
        if r.snr_db < gates.parity_min_snr_db:
            raise VerificationError(
                "parity_min_snr_db", r.snr_db, gates.parity_min_snr_db, detail=where
            )


def parity_report(results: list[ParityResult]) -> list[dict[str, Any]]:
    return [asdict(r) for r in results]
