"""Tell duration drift from damage for shipped graphs on real weights (not a test).

For each corpus sentence: upstream torch (torch.istft path, its random source, seeded) is
the reference; a second seeded torch run gives the random-source floor; every ``--onnx``
file is run with its own random source. Printed per file and sentence: frame-aligned
spectral correlation (plain common length), token-aligned (the file's durations warped
onto the reference's, when it outputs durations), the share of tokens with equal
durations and the total-length difference in frames. Usage:

    python scripts/drift_vs_damage.py --onnx a.onnx --onnx b.onnx [--items 8]
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> None:
    import numpy as np
    import torch

    from publisher.model.kmodel import run_torch
    from publisher.model.sources import open_checkpoint
    from publisher.runtime.constants import SAMPLES_PER_FRAME
    from publisher.runtime.corpus import load_corpus
    from publisher.runtime.metrics import aligned_spectra, common_spectra, correlation
    from publisher.runtime.synth import open_session, run_onnx, style_row

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="recovered:kokoro-v1.0")
    ap.add_argument("--onnx", action="append", default=[], type=Path)
    ap.add_argument("--items", type=int, default=8)
    ap.add_argument("--voice", default="")
    args = ap.parse_args()
    ckpt = open_checkpoint(args.checkpoint)
    model = ckpt.build_model()
    sessions = {p.stem: open_session(p) for p in args.onnx}
    vocab = ckpt.config["vocab"]
    rows: dict[str, list[tuple[float, float]]] = {"floor": []}
    for k, c in enumerate(load_corpus().eval[: args.items]):
        ids = c.ids(vocab)
        voice = args.voice or (c.voice if c.voice in ckpt.voices else ckpt.sample_voice)
        style = style_row(ckpt.voices[voice], len(ids))
        torch.manual_seed(1000 + k)
        ref = run_torch(model, ids, style, c.speed)
        torch.manual_seed(2000 + k)
        again = run_torch(model, ids, style, c.speed)
        outs = {"floor": again} | {
            name: run_onnx(s, ids, style, c.speed) for name, s in sessions.items()
        }
        for name, out in outs.items():
            frame = correlation(*common_spectra(ref.waveform, out.waveform))
            token = frame
            equal = 1.0
            if out.durations.size == ref.durations.size and out.durations.size:
                token = correlation(
                    *aligned_spectra(
                        ref.waveform,
                        out.waveform,
                        ref.durations,
                        out.durations,
                        SAMPLES_PER_FRAME,
                    )
                )
                equal = float(np.mean(out.durations == ref.durations))
            frames = (out.waveform.size - ref.waveform.size) / SAMPLES_PER_FRAME
            rows.setdefault(name, []).append((frame, token))
            print(
                f"{c.id:>10} {len(ids):3d} ph {voice:9s} {name:22s} frame {frame:.4f} "
                f"token {token:.4f} equal {equal:.3f} len {frames:+.0f} fr",
                flush=True,
            )
    print("\nworst / mean (frame-aligned, token-aligned):")
    for name, vals in rows.items():
        f = [v[0] for v in vals]
        t = [v[1] for v in vals]
        print(
            f"  {name:22s} frame {min(f):.4f}/{np.mean(f):.4f}  token {min(t):.4f}/{np.mean(t):.4f}"
        )


if __name__ == "__main__":
    main()
