"""Listen to sherpa-onnx speaking our bundles: the first N Harvard sentences of the corpus
(each with its own voice), through sherpa-onnx 2.0.1's own text front end (espeak-ng and
the bundle's lexicons), recognized by PocketSphinx (WER) and scored by DNSMOS.

    PUBLISHER_CACHE=/tmp/pcache python scripts/sherpa_listen.py /tmp/rw3 fp32 fp16 uint8 -n 4

A measurement (seconds per bundle on two cores), not a test. Needs the quality extra.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from publisher.conformance.matrix import probe
from publisher.manifest import read_manifest
from publisher.runtime.clients import sherpa_lexicon_for
from publisher.runtime.corpus import load_corpus
from publisher.runtime.runtimes import runtimes
from publisher.runtime.speech import corpus_wer, dnsmos, recognize


def listen(folder: Path, n: int) -> dict:
    import numpy as np

    m = read_manifest(folder)
    if not m.sherpa_onnx:
        raise SystemExit(f"{folder}: no sherpa-onnx bundle (output.sherpa_onnx)")
    bundle = folder / m.sherpa_onnx
    sherpa = next(r for r in runtimes() if r.kind == "sherpa-onnx")
    speakers = _speakers(bundle)
    items = load_corpus().speech[:n]
    refs, hyps, scores = [], [], []
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="sherpa-listen-") as tmp:
        for k, item in enumerate(items):
            save = Path(tmp) / f"{k}.npy"
            request = {
                "bundle": str(bundle),
                "text": item.text,
                "sid": speakers.index(item.voice),
                "lexicon": sherpa_lexicon_for(item.voice),
                "save": str(save),
            }
            out = probe(sherpa, request, Path(tmp), print)
            if not out["ok"]:
                raise SystemExit(f"{folder.name}: sherpa-onnx failed: {out['error']}")
            wave = np.load(save)
            refs.append(item.text)
            hyps.append(recognize(wave, 24000))
            scores.append(dnsmos(wave, 24000)["overall"])
    return {
        "variant": folder.name,
        "sentences": len(items),
        "wer": round(corpus_wer(refs, hyps), 3),
        "dnsmos": round(float(np.mean(scores)), 3),
        "seconds": round(time.perf_counter() - start, 1),
    }


def _speakers(bundle: Path) -> list[str]:
    """speaker_names from the bundle model's metadata (voices.bin order)."""
    import onnx

    model = onnx.load(str(bundle / "model.onnx"), load_external_data=False)
    meta = {p.key: p.value for p in model.metadata_props}
    return meta["speaker_names"].split(",")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder holding the builds")
    parser.add_argument("variants", nargs="+")
    parser.add_argument("-n", type=int, default=4, help="sentences per bundle")
    args = parser.parse_args()
    for name in args.variants:
        print(json.dumps(listen(args.out / name, args.n)))
