"""A verification written down: verify.md (gates, per-item tables, shipped graph, speech
set, bucket) and its spectrogram picture (torch, variant, their difference)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from publisher.manifest import PICTURE, REPORT
from publisher.runtime.metrics import log_mel
from publisher.verify.listen import report_lines

if TYPE_CHECKING:
    import numpy as np

    from publisher.verify.gates import Verification


def write_report(verification: Verification, folder: Path, title: str) -> list[Path]:
    """verify.md (tables) and verify_spectrogram.png in ``folder``; returns the paths."""
    folder.mkdir(parents=True, exist_ok=True)
    report = verification.to_json()
    lines = [
        f"# Verification: {title}",
        "",
        "## Gates",
        "",
        "| gate | worst measured | threshold | item | result |",
        "|---|---|---|---|---|",
    ]
    for g in report["gates"]:
        lines.append(
            f"| {g['gate']} | {g['measured']:.6g} | {g['threshold']:.6g} | "
            f"{g['item']} | {'pass' if g['passed'] else '**FAIL**'} |"
        )
    lines += [
        "",
        "## Per item (deterministic torch reference)",
        "",
        "Parity: the fp32 graph against torch with the sine silenced and a fixed noise "
        "pattern (sample by sample). Fidelity (correlation, log-mel, durations): the "
        f"variant against torch in the {report.get('fidelity_mode', 'noise-only')} mode "
        "(voiced: the sine on with fixed phases, for real weights).",
        "",
        "| item | tokens | parity max abs | parity SNR dB | durations equal | "
        "spectral corr | frame-aligned corr | log-mel dist | dur. agreement |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p, f in zip(report["parity"], report["fidelity"], strict=True):
        lines.append(
            f"| {p['item']} | {p['tokens']} | {p['max_abs_error']:.3g} | "
            f"{p['snr_db']:.1f} | {p['durations_equal']} | "
            f"{f['spectral_correlation']:.6f} | {f.get('frame_correlation', 0.0):.6f} | "
            f"{f['log_mel_distance']:.4f} | {f['duration_equal_share']:.3f} |"
        )
    shipped = report["shipped"]
    lines += ["", "## Shipped graph (random source on) vs torch", ""]
    if not shipped["ran"]:
        lines.append(f"Did not run: {shipped['error']}")
    else:
        lines += [
            "| item | spectral corr | log-mel dist | noise floor corr | noise floor log-mel |",
            "|---|---|---|---|---|",
        ]
        for r in shipped["items"]:
            lines.append(
                f"| {r['item']} | {r['spectral_correlation']:.5f} | "
                f"{r['log_mel_distance']:.4f} | {r['noise_floor_correlation']:.5f} | "
                f"{r['noise_floor_log_mel']:.4f} |"
            )
        lines += ["", "The noise floor is torch against itself: two runs of the random source."]
    lines += report_lines(report.get("speech"))
    bucket = report.get("bucket")
    if bucket:
        lines += [
            "",
            f"## Bucket {bucket['bucket']} ({bucket['frames']} alignment frames, "
            f"{bucket['output_samples']} output samples)",
            "",
            f"{bucket['rule']}. Compared: inputs of at most {bucket['bucket'] - 2} phonemes "
            f"whose unpadded reference needs at most {bucket['frames']} frames; skipped "
            f"{len(bucket['skipped_too_long'])} longer inputs and "
            f"{len(bucket['skipped_over_frames'])} over the frames (the synthesis path "
            "re-splits those).",
            "",
            "| item | phonemes | frames | content samples | anchor (480/frame) | "
            "kept past the anchor's cut | max abs after content |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in bucket["items"]:
            lines.append(
                f"| {r['item']} | {r['phonemes']} | {r['frames']} | {r['content_samples']} | "
                f"{r['anchor_samples']} | {r['kept_past_anchor_samples']} | "
                f"{r['tail_max_abs']:.3g} |"
            )
    lines += ["", f"![spectrograms]({PICTURE})", ""]
    md = folder / REPORT
    md.write_text("\n".join(lines))
    png = folder / PICTURE
    ref, test = verification.measured.waves
    spectrogram_picture(ref, test, png, f"{title}: {report['picture_item']}")
    return [md, png]


def spectrogram_picture(ref: np.ndarray, test: np.ndarray, path: Path, title: str) -> None:
    """Reference, variant and their difference as log-mel images, one above the other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = min(ref.size, test.size)
    a, b = log_mel(ref[:n]).T, log_mel(test[:n]).T
    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True)
    lo, hi = float(min(a.min(), b.min())), float(max(a.max(), b.max()))
    for ax, img, name in ((axes[0], a, "torch reference"), (axes[1], b, "variant")):
        ax.imshow(img, origin="lower", aspect="auto", vmin=lo, vmax=hi, cmap="magma")
        ax.set_ylabel(f"{name}\nmel bin")
    diff = axes[2].imshow(b - a, origin="lower", aspect="auto", cmap="coolwarm", vmin=-2, vmax=2)
    axes[2].set_ylabel("difference\nmel bin")
    axes[2].set_xlabel("frame (256 samples)")
    fig.colorbar(diff, ax=axes[2], label="log-mel difference")
    fig.suptitle(title)
    fig.savefig(path, dpi=80)
    plt.close(fig)
