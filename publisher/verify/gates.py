"""The recipe's gates applied to what ``measure`` measured: each gate's worst value over
the inputs against its threshold, in a typed ``Verification`` (manifest.json's
``verification`` is its ``to_json()``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from publisher.runtime.artifacts import Gate
from publisher.runtime.constants import SAME_AUDIO_MATCH
from publisher.runtime.errors import VerificationError
from publisher.verify.listen import speech_gates
from publisher.verify.measure import FidelityResult, Measured, ParityResult

if TYPE_CHECKING:
    from publisher.recipe.schema import Recipe


@dataclass
class Verification:
    """What verify measured and how each gate went. ``floor``: the run in the target's
    oldest onnxruntime (set by build, before the manifest is written)."""

    measured: Measured
    gates: list[Gate]
    floor: dict[str, Any] | None = None

    @property
    def passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def enforce(self) -> None:
        """Raise a VerificationError carrying the measured value of the first failed gate."""
        for g in self.gates:
            if not g.passed:
                relation = "at least" if g.higher_is_better else "at most"
                detail = f"worst item {g.item}; must be {relation} the threshold"
                raise VerificationError(g.gate, g.measured, g.threshold, detail=detail)

    def to_json(self) -> dict[str, Any]:
        """manifest.json's ``verification``."""
        return {
            **self.measured.to_json(),
            "gates": [g.model_dump() for g in self.gates],
            **({"floor": self.floor} if self.floor is not None else {}),
            "passed": self.passed,
        }


def gated(recipe: Recipe, measured: Measured) -> Verification:
    """The recipe's gates (its ``real_weights`` values for voiced fidelity) applied to what
    ``measure`` measured; not enforced (``Verification.enforce``)."""
    gates = gate_results(
        recipe,
        measured.parity,
        measured.fidelity,
        measured.shipped,
        bucket=measured.bucket,
        speech=measured.speech,
        real=measured.fidelity_mode == "voiced",
    )
    return Verification(measured, gates)


def _gate(
    gate: str, measured: float, threshold: float, passed: bool, item: str, higher: bool
) -> Gate:
    return Gate(
        gate=gate,
        measured=measured,
        threshold=threshold,
        passed=passed,
        item=item,
        higher_is_better=higher,
    )


def gate_results(
    recipe: Recipe,
    parity: list[ParityResult],
    fidelity: list[FidelityResult],
    shipped: dict,
    bucket: dict | None = None,
    speech: dict | None = None,
    real: bool = False,
) -> list[Gate]:
    """Worst value per gate over all items, compared with the recipe's threshold (its
    ``real_weights`` values when ``real``)."""
    g = recipe.gates.for_weights(real)
    out = []

    def worst(rows, key, higher_is_better):
        pick = min if higher_is_better else max
        row = pick(rows, key=lambda r: getattr(r, key))
        return getattr(row, key), row.item

    checks = [
        ("parity_max_abs", parity, "max_abs_error", g.parity_max_abs, False),
        ("parity_min_snr_db", parity, "snr_db", g.parity_min_snr_db, True),
        ("spectral_correlation", fidelity, "spectral_correlation", g.spectral_correlation, True),
        ("log_mel_distance", fidelity, "log_mel_distance", g.log_mel_distance, False),
        ("duration_agreement", fidelity, "duration_equal_share", g.duration_agreement, True),
    ]
    for gate, rows, key, threshold, higher in checks:
        if threshold is None or not rows:
            continue
        value, item = worst(rows, key, higher)
        ok = value >= threshold if higher else value <= threshold
        out.append(_gate(gate, float(value), float(threshold), bool(ok), item, higher))
    bad = next((p for p in parity if not p.durations_equal), None)
    out.append(
        _gate(
            "parity_durations_equal",
            0.0 if bad else 1.0,
            1.0,
            bad is None,
            bad.item if bad else "all",
            True,
        )
    )
    if bucket and bucket["items"]:  # after the content: exact zeros, whole tail kept
        row = max(bucket["items"], key=lambda r: r["tail_max_abs"])
        silent = row["tail_max_abs"] == 0.0
        out.append(
            _gate("bucket_tail_silent", row["tail_max_abs"], 0.0, silent, row["item"], False)
        )
        short = [r for r in bucket["items"] if r["content_samples"] != r["expected_samples"]]
        out.append(
            _gate(
                "bucket_content_complete",
                0.0 if short else 1.0,
                1.0,
                not short,
                short[0]["item"] if short else "all",
                True,
            )
        )
    for gate, value, threshold, higher in speech_gates(g, speech or {}):
        ok = value >= threshold if higher else value <= threshold
        out.append(_gate(gate, float(value), float(threshold), ok, "speech set", higher))
    finite = shipped["ran"] and all(r["finite"] for r in shipped["items"])
    out.append(
        _gate(
            "shipped_graph_runs",
            1.0 if finite else 0.0,
            1.0,
            finite,
            shipped.get("error") or "all",
            True,
        )
    )
    if finite and shipped["items"]:
        row = min(shipped["items"], key=lambda r: r["matches_twin"])
        value = row["matches_twin"]
        out.append(
            _gate(
                "shipped_matches_twin",
                value,
                SAME_AUDIO_MATCH,
                value >= SAME_AUDIO_MATCH,
                row["item"],
                True,
            )
        )
    return out
