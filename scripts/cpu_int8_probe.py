"""Quick harness for fast-variant settings on real weights (not a test; minutes per run).

Builds the recipe's passes (with ``--set`` overrides of ``precision.quantize`` and an
optional ``--passes`` list) on the voiced deterministic twin of the checkpoint's fp32
export, speaks the speech set through it and through the fp32 twin (no random source on
either side, so a difference is the transform's, not chance), and prints one JSON line:
speed over fp32 (same session settings, interleaved per sentence), WER of both,
DNSMOS overall of both and the drop, mean speaker similarity to fp32. The fp32 side's
scores are kept in ``--work``. Usage:

    python scripts/cpu_int8_probe.py NAME [--recipe cpu-int8] [--passes a,b,c]
        [--set input_percentile=99.99] [--set 'include=["/decoder/*"]'] [--items 24]
        [--work /tmp/probe]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def _value(text: str):
    if text.startswith("["):
        return tuple(json.loads(text))
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return None if text == "null" else text


def variant_recipe(args):
    from publisher.recipe.loader import load_recipe

    recipe = load_recipe(args.recipe)
    settings = {k: _value(v) for k, v in (kv.split("=", 1) for kv in args.set)}
    q = recipe.precision.quantize.model_copy(update=settings)
    update = {"precision": recipe.precision.model_copy(update={"quantize": q})}
    if args.passes:
        update["passes"] = tuple(args.passes.split(","))
    return recipe.model_copy(update=update)


def reference_scores(work: Path, item_id: str, wave):
    import numpy as np

    from publisher.runtime.constants import SAMPLE_RATE
    from publisher.runtime.speech import dnsmos, recognize
    from publisher.verify.speaker import embedding

    cached = work / f"fp32-{item_id}.json"
    if not cached.exists():
        scores = {
            "heard": recognize(wave, SAMPLE_RATE),
            "dnsmos": dnsmos(wave, SAMPLE_RATE)["overall"],
            "embedding": embedding(wave, SAMPLE_RATE).tolist(),
        }
        cached.write_text(json.dumps(scores))
    scores = json.loads(cached.read_text())
    return {**scores, "embedding": np.array(scores["embedding"])}


def main() -> None:
    import numpy as np
    import onnx

    from publisher.build import onnx_metadata
    from publisher.export.fp32 import export_fp32
    from publisher.model.sources import open_checkpoint
    from publisher.passes import PassContext, run_passes
    from publisher.runtime.constants import SAMPLE_RATE
    from publisher.runtime.corpus import load_corpus
    from publisher.runtime.speech import corpus_wer, dnsmos, recognize
    from publisher.runtime.synth import open_session, run_onnx, style_row
    from publisher.verify.speaker import embedding, similarity

    ap = argparse.ArgumentParser()
    ap.add_argument("name")
    ap.add_argument("--recipe", default="cpu-int8")
    ap.add_argument("--passes", default="")
    ap.add_argument("--set", action="append", default=[], help="quantize FIELD=VALUE")
    ap.add_argument("--checkpoint", default="recovered:kokoro-v1.0")
    ap.add_argument("--items", type=int, default=24)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--work", type=Path, default=Path("/tmp/probe"))
    args = ap.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    recipe = variant_recipe(args)
    ckpt = open_checkpoint(args.checkpoint)
    twin = export_fp32(ckpt, recipe, parity=True, voiced=True)
    ctx = PassContext(config=ckpt.config, metadata=onnx_metadata(recipe, ckpt), voices=ckpt.voices)
    start = time.perf_counter()
    built = run_passes(onnx.load(str(twin)), recipe, ctx)
    path = args.work / f"{args.name}.onnx"
    onnx.save(built, str(path))
    passes_s = time.perf_counter() - start
    variant, fp32 = open_session(path, args.threads), open_session(twin, args.threads)
    items = [it for it in load_corpus().speech if it.voice in ckpt.voices][: args.items]
    rows, seconds = [], {"variant": 0.0, "fp32": 0.0}
    for item in items:
        ids = item.ids(ckpt.config["vocab"])
        style = style_row(ckpt.voices[item.voice], len(ids))
        waves = {}
        for side, session in (("variant", variant), ("fp32", fp32)):
            t = time.perf_counter()
            waves[side] = run_onnx(session, ids, style, item.speed).waveform
            seconds[side] += time.perf_counter() - t
        ref = reference_scores(args.work, item.id, waves["fp32"])
        rows.append(
            {
                "text": item.text,
                "ref": ref,
                "heard": recognize(waves["variant"], SAMPLE_RATE),
                "dnsmos": dnsmos(waves["variant"], SAMPLE_RATE)["overall"],
                "same": similarity(ref["embedding"], embedding(waves["variant"], SAMPLE_RATE)),
            }
        )
    texts = [r["text"] for r in rows]
    result = {
        "name": args.name,
        "set": args.set,
        "passes": list(recipe.passes),
        "passes_s": round(passes_s, 1),
        "speed_vs_fp32": seconds["fp32"] / seconds["variant"],
        "wer_fp32": corpus_wer(texts, [r["ref"]["heard"] for r in rows]),
        "wer": corpus_wer(texts, [r["heard"] for r in rows]),
        "dnsmos_fp32": float(np.mean([r["ref"]["dnsmos"] for r in rows])),
        "dnsmos": float(np.mean([r["dnsmos"] for r in rows])),
        "speaker_similarity": float(np.mean([r["same"] for r in rows])),
        "notes": {k: v for k, v in ctx.notes.items() if not isinstance(v, dict)},
    }
    result["dnsmos_drop"] = result["dnsmos_fp32"] - result["dnsmos"]
    line = json.dumps(result)
    print(line)
    with open(args.work / "results.jsonl", "a") as f:
        f.write(line + "\n")


if __name__ == "__main__":
    main()
