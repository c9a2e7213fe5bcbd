"""``stage``: built variant folders -> one repo folder, laid out as the runtimes expect.

README.md (the model card, rendered from templates/), config.json, tokenizer files, voices,
every variant at its recipe's path, and manifest.json. Variants that did not pass their
gates are never staged. Written into a temporary folder and moved into place whole.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.runtime.errors import PublisherError
from publisher.workspace import (
    check_writable_folder,
    replace_folder,
    scratch_dir,
    write_json_atomic,
)

# Written into every staged folder: stage replaces only folders that carry it (or empty
# ones), never a user's folder. Not uploaded (see publish.plan).
STAGE_MARK = ".publisher-staged"

KOKORO_JS_DTYPES = {
    "model.onnx": "fp32",
    "model_fp16.onnx": "fp16",
    "model_quantized.onnx": "q8",
    "model_int8.onnx": "int8",
    "model_uint8.onnx": "uint8",
    "model_q4.onnx": "q4",
    "model_q4f16.onnx": "q4f16",
    "model_bnb4.onnx": "bnb4",
}


@dataclass
class Staged:
    folder: Path
    manifest: dict[str, Any]
    synthetic: bool
    recovered: bool = False


def _md(text: Any) -> str:
    """Escape text from recipes for Markdown (tables included) and HTML."""
    s = str(text).replace("\r", " ").replace("\n", " ")
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return re.sub(r"([\\`*_{}\[\]|#!])", r"\\\1", s)


def render_card(context: dict[str, Any]) -> str:
    """README.md from templates/README.md.j2 (StrictUndefined: a missing value is an error)."""
    import jinja2

    from publisher.locations import shipped_dir

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(shipped_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
    )
    env.filters["md"] = _md
    try:
        return env.get_template("README.md.j2").render(**context)
    except jinja2.UndefinedError as exc:
        raise PublisherError(f"templates/README.md.j2: {exc}") from None


def _params_by_dtype(path: Path) -> tuple[str, dict[str, int]]:
    from publisher.inspect_graph import inspect_model

    totals: dict[str, int] = {}
    for row in inspect_model(path).rows:
        if row.dtype not in ("-", "int64", "bool", "int32") and row.params >= 1000:
            totals[row.dtype] = totals.get(row.dtype, 0) + row.params
    text = ", ".join(f"{d} {n / 1e6:.2f}M" for d, n in sorted(totals.items(), key=lambda x: -x[1]))
    return text, totals


def _variant_entry(folder: Path, m: dict[str, Any]) -> dict[str, Any]:
    model = folder / m["model"]
    fid = m["verification"].get("fidelity", [])
    bench = (m.get("bench") or {}).get("result") or {}
    params_text, params = _params_by_dtype(model)
    return {
        "recipe": m["recipe"],
        "path": m["model"],
        "recipe_sha256": m["recipe_sha256"],
        "description": m["resolved_recipe"]["description"],
        "summary": m["resolved_recipe"]["card"]["summary"],
        "sha256": m["files"][m["model"]]["sha256"],
        "bytes": m["files"][m["model"]]["bytes"],
        "size_mib": m["files"][m["model"]]["bytes"] / 2**20,
        "params_by_dtype": params_text,
        "params": params,
        "io": m["io"],
        "shape": m["resolved_recipe"]["export"]["shape"],
        "spectral_correlation": f"{min(f['spectral_correlation'] for f in fid):.5f}"
        if fid
        else "-",
        "log_mel_distance": f"{max(f['log_mel_distance'] for f in fid):.4f}" if fid else "-",
        "latency": (
            f"{bench['total_seconds']:.2f} / {bench['rtf']:.3f}"
            if bench.get("total_seconds")
            else "not measured"
        ),
        "gates": m["verification"]["gates"],
        "bench": bench or None,
        **_speech_entry(m["verification"].get("speech") or {}),
    }


def _speech_entry(speech: dict[str, Any]) -> dict[str, str]:
    """WER and DNSMOS columns: "variant (upstream)", or why they were not measured."""
    if not speech.get("ran"):
        return {"wer": "-", "dnsmos": "-"}
    ref, var = speech["reference_dnsmos"]["overall"], speech["variant_dnsmos"]["overall"]
    return {
        "wer": f"{speech['variant_wer']:.3f} ({speech['reference_wer']:.3f})",
        "dnsmos": f"{var:.2f} ({ref:.2f})",
    }


def _usage(variants: list[dict[str, Any]], voices: list[str]) -> dict[str, Any]:
    dynamic = [v for v in variants if v["shape"] == "dynamic"]
    community = [
        v
        for v in dynamic
        if v["io"]["input_ids"] == "input_ids" and v["io"]["waveform"] == "waveform"
    ]
    js = [
        {"dtype": KOKORO_JS_DTYPES[Path(v["path"]).name], "file": v["path"]}
        for v in community
        if v["path"].startswith("onnx/") and Path(v["path"]).name in KOKORO_JS_DTYPES
    ]
    first = (community or dynamic or variants)[0]
    return {
        "onnxruntime_file": first["path"],
        "names": first["io"],
        "voice": "af_heart" if "af_heart" in voices else voices[0],
        "kokoro_onnx": [v["path"] for v in dynamic],
        "kokoro_js": js,
        "fastkokoro": [v["path"] for v in variants if v["shape"] == "bucket"],
    }


def _tensors(variant_path: Path) -> list[dict[str, str]]:
    from publisher.inspect_graph import inspect_model

    stats = inspect_model(variant_path)
    roles = ["token ids", "style vector", "speed", "real length (tokens + 2)"]
    rows = [
        {
            "name": t.name,
            "role": roles[i] if i < len(roles) else "input",
            "dtype": t.dtype,
            "shape": t.shape,
        }
        for i, t in enumerate(stats.inputs)
    ]
    rows += [
        {
            "name": t.name,
            "role": ["waveform", "frames per token"][i] if i < 2 else "output",
            "dtype": t.dtype,
            "shape": t.shape,
        }
        for i, t in enumerate(stats.outputs)
    ]
    return rows


def stage(folders: list[Path], dest: Path, repo_id: str = "ORG/NAME", echo=None) -> Staged:
    """Assemble ``dest`` from built variant folders (see module doc)."""
    from publisher.build import read_manifest
    from publisher.hub.repo_files import write_model_files, write_voices
    from publisher.model.sources import open_checkpoint
    from publisher.provenance import versions

    echo = echo or (lambda line: None)
    if not folders:
        raise PublisherError("nothing to stage: no built variants (run publisher build first)")
    manifests = []
    for folder in folders:
        m = read_manifest(folder)
        if not m.get("verification", {}).get("passed"):
            echo(f"skipping {m['recipe']}: it did not pass its verification gates")
            continue
        manifests.append((folder, m))
    if not manifests:
        raise PublisherError("nothing to stage: no variant passed its gates")
    shas = {m["checkpoint"]["sha256"] for _, m in manifests}
    if len(shas) > 1:
        raise PublisherError("variants were built from different checkpoints; stage one at a time")
    paths = [m["model"] for _, m in manifests]
    dupes = sorted({p for p in paths if paths.count(p) > 1})
    if dupes:
        raise PublisherError(f"two recipes write the same file: {', '.join(dupes)}")
    ckpt_info = manifests[0][1]["checkpoint"]
    ckpt = open_checkpoint(ckpt_info["source"])
    if ckpt.sha256 != ckpt_info["sha256"]:
        raise PublisherError(
            f"{ckpt_info['source']} no longer matches the weights the variants "
            "were built from; rebuild them"
        )
    dest = Path(dest)
    need = sum((folder / m["model"]).stat().st_size for folder, m in manifests)
    check_dest(dest, [folder for folder, _ in manifests], need_bytes=2 * need)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = scratch_dir(dest.parent, dest.name)
    try:
        variants = []
        for folder, m in manifests:
            target = tmp / m["model"]
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(folder / m["model"], target)
            variants.append(_variant_entry(folder, m))
            echo(f"staged {m['recipe']} -> {m['model']}")
        write_model_files(ckpt.config, tmp)
        write_voices(ckpt.voices, tmp)
        voices = sorted(ckpt.voices)
        context = {
            "title": f"Kokoro-82M ONNX ({len(variants)} variants)",
            "synthetic": ckpt.synthetic,
            "recovered": ckpt.recovered,
            "recovered_note": ckpt.provenance.get("note")
            or f"weights recovered from {ckpt.source}",
            "checkpoint": ckpt_info,
            "variants": variants,
            "tensors": _tensors(tmp / variants[0]["path"]),
            "usage": _usage(variants, voices),
            "voices": voices,
            "languages": ["en"],
            "repo_id": repo_id,
            "versions": versions(),
            "host": manifests[0][1]["host"],
            "gates_note": "gates per variant are listed in manifest.json",
            "bench_note": _bench_note(manifests),
        }
        (tmp / "README.md").write_text(render_card(context), encoding="utf-8")
        manifest = {
            "checkpoint": ckpt_info,
            "synthetic": ckpt.synthetic,
            "recovered": ckpt.recovered,
            "origin": ckpt.origin,
            "voices": voices,
            "variants": variants,
            "versions": context["versions"],
        }
        write_json_atomic(tmp / "manifest.json", manifest)
        write_json_atomic(tmp / STAGE_MARK, {"written_by": "publisher stage"})
        replace_folder(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Staged(dest, manifest, ckpt.synthetic, ckpt.recovered)


def _bench_note(manifests) -> str:
    for _, m in manifests:
        settings = (m.get("bench") or {}).get("settings")
        if settings:
            return (
                f"{settings['threads'] or 'default'} threads, {settings['repeats']} repeats "
                f"after {settings['warmup']} warm-up, interleaved"
            )
    return "no benchmark recorded for these builds"


def check_dest(dest: Path, builds: list[Path], need_bytes: int = 0) -> None:
    """``dest`` must be new, empty, or a folder stage wrote before: stage replaces it
    whole, so it never takes a folder holding anything else (builds included)."""
    dest = Path(dest)
    for build in builds:
        if Path(os.path.abspath(build)).is_relative_to(os.path.abspath(dest)):
            raise PublisherError(
                f"--dest {dest}: it holds the build {build}, which staging would replace; "
                "pick a new folder"
            )
    if dest.is_dir() and not dest.is_symlink():
        if any(dest.iterdir()) and not (dest / STAGE_MARK).is_file():
            raise PublisherError(
                f"--dest {dest}: the folder has files `publisher stage` did not write, and "
                "staging replaces the whole folder; pick a new or empty folder"
            )
    elif dest.exists() or dest.is_symlink():
        raise PublisherError(f"--dest {dest}: exists and is not a folder; pick a new folder")
    check_writable_folder(dest.parent, "--dest", need_bytes=need_bytes)


def staged_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise PublisherError(f"{folder}: not a staged repo folder (no manifest.json)")
    return json.loads(path.read_text())
