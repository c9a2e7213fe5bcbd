"""Our fp32 graph against upstream Kokoro (torch.stft/istft), before and after ExactSTFT.

Not a test: a measurement on real weights. Exports two parity-mode fp32 graphs from one
checkpoint: "before" with kokoro's CustomSTFT (KModel(disable_complex=True), what every
export used until ExactSTFT) and "after" with publisher/export/stft.py; runs both and
upstream torch in parity mode (deterministic source) over the verification items and
prints, per item, spectral correlation, max abs error and RMS ratio against upstream.
Then the shipped-mode view (random source on): each graph against upstream torch, next
to torch against itself (the noise floor). Usage:

    python scripts/stft_before_after.py --checkpoint recovered:kokoro-v1.0
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def _export_pair(ckpt, folder: Path, *, parity: bool) -> dict[str, Path]:
    from publisher.export.dynamic import export_dynamic
    from publisher.export.stft import exact_stft
    from publisher.model.kmodel import load_state_strict, new_kmodel

    graphs = {}
    for name, disable_complex in (("before", True), ("after", False)):
        model = new_kmodel(ckpt.config, disable_complex=disable_complex)
        load_state_strict(model, ckpt.state, ckpt.source)
        model.eval()
        path = folder / f"{name}-{'parity' if parity else 'shipped'}.onnx"
        t0 = time.perf_counter()
        if disable_complex:
            export_dynamic(model, ckpt, path, 17, parity=parity)
        else:
            with exact_stft(model):
                export_dynamic(model, ckpt, path, 17, parity=parity)
        print(f"exported {path.name} in {time.perf_counter() - t0:.1f} s", flush=True)
        graphs[name] = path
    return graphs


def _row(ref, out) -> str:
    import numpy as np

    from publisher.runtime.metrics import spectral_correlation

    if ref.waveform.size != out.waveform.size:
        return f"lengths differ ({ref.waveform.size} vs {out.waveform.size})"
    corr = spectral_correlation(ref.waveform, out.waveform)
    err = float(np.abs(ref.waveform - out.waveform).max())
    rms = float(np.sqrt(np.mean(out.waveform**2)) / np.sqrt(np.mean(ref.waveform**2)))
    return f"corr {corr:.6f} max|err| {err:.2e} rms {rms:.3f}"


def main() -> None:
    import torch

    from publisher.export.parity import parity_mode
    from publisher.model.kmodel import run_torch
    from publisher.model.sources import open_checkpoint
    from publisher.runtime.synth import open_session, run_onnx
    from publisher.verify.measure import style_of, verification_items

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default="recovered:kokoro-v1.0")
    ap.add_argument("--shipped-items", type=int, default=4)
    args = ap.parse_args()
    ckpt = open_checkpoint(args.checkpoint)
    upstream = ckpt.build_model()
    items = verification_items(ckpt)
    with tempfile.TemporaryDirectory() as tmp:
        parity = _export_pair(ckpt, Path(tmp), parity=True)
        sessions = {k: open_session(p) for k, p in parity.items()}
        print("parity mode (deterministic source), against upstream torch:")
        for item in items:
            style = style_of(ckpt, item)
            with parity_mode(upstream):
                ref = run_torch(upstream, list(item.ids), style, item.speed)
            for name, sess in sessions.items():
                out = run_onnx(sess, list(item.ids), style, item.speed)
                print(f"  {item.id:>10} {name:>6}: {_row(ref, out)}", flush=True)
        shipped = _export_pair(ckpt, Path(tmp), parity=False)
        sessions = {k: open_session(p) for k, p in shipped.items()}
        print("shipped mode (random source), against upstream torch:")
        for item in items[: args.shipped_items]:
            style = style_of(ckpt, item)
            torch.manual_seed(0)
            ref = run_torch(upstream, list(item.ids), style, item.speed)
            torch.manual_seed(1)
            again = run_torch(upstream, list(item.ids), style, item.speed)
            print(f"  {item.id:>10}  floor: {_row(ref, again)}")
            for name, sess in sessions.items():
                out = run_onnx(sess, list(item.ids), style, item.speed)
                print(f"  {item.id:>10} {name:>6}: {_row(ref, out)}", flush=True)


if __name__ == "__main__":
    main()
