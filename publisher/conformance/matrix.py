"""Run a built file in each runtime it claims (``runtime/runtimes.py``), each in its own cached
environment (envs.py) through probe.py; record the cells in the build's manifest.

A cell is ``ok``, ``fails`` (with the runtime's own first error line), ``known failure``
(a failure the recipe documents in ``target.known_failures``) or ``not claimed``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from publisher.conformance.envs import environment
from publisher.conformance.heard import Speaking
from publisher.conformance.runtimes import claim_of, target_of
from publisher.hub.repo_files import write_model_files, write_voices
from publisher.manifest import read_build, write_manifest_file
from publisher.model import sources
from publisher.model.checkpoint import file_sha256
from publisher.progress import progress
from publisher.provenance import host
from publisher.runtime.clients import CHROMIUM, CHROMIUM_ARGS, KOKORO_JS_DTYPES, sherpa_lexicon_for
from publisher.runtime.constants import SAME_AUDIO_MATCH, SAMPLES_PER_FRAME
from publisher.runtime.corpus import load_corpus
from publisher.runtime.errors import RunError
from publisher.runtime.metrics import aligned_spectra, correlation
from publisher.runtime.runtimes import (
    Claim,
    Runtime,
    current_onnxruntime,
    floor_runtime,
    runtimes,
)
from publisher.runtime.synth import bucket_info, feeds_for, open_session, style_row
from publisher.runtime.threads import configured_threads
from publisher.verify import store

PROBE = Path(__file__).with_name("probe.py")
PROBE_NODE = Path(__file__).with_name("probe.mjs")
CHROMIUM_ENV = "PUBLISHER_CHROMIUM"  # the browser of the onnxruntime-web cell
REPO_NAME = "me/kokoro"  # the staged repo kokoro-js loads, offline
FEEDS_KINDS = ("onnxruntime", "onnxruntime-web")  # run our feeds: heard against our run
PROBE_TIMEOUT_S = 600
TEXT = "Hello from Kokoro."
VOICE = "af_heart"
log = logging.getLogger(__name__)


def prepare_requests(
    model: Path,
    voices: dict[str, Any],
    config: dict[str, Any],
    scratch: Path,
    bundle: Path | None = None,
    claim: Claim | None = None,
):
    """What each probe kind reads: the feeds of one call (onnxruntime and onnxruntime-web,
    prepared here with this environment's onnxruntime), voices.npz and the text
    (kokoro-onnx, fastkokoro), the bundle (sherpa-onnx), a staged repo (kokoro-js)."""
    import numpy as np

    write_voices(voices, scratch)
    session, feeds, voice = _feeds(model, voices, config)
    np.savez(scratch / "feeds.npz", **feeds)
    (scratch / "feeds.json").write_text(json.dumps({k: _tensor(v) for k, v in feeds.items()}))
    _reference(session, feeds, scratch)
    common = {"model": str(Path(model).resolve()), "voice": voice, "text": TEXT}
    requests = {
        "onnxruntime": common | {"feeds": str(scratch / "feeds.npz")},
        "onnxruntime-web": common
        | {"feeds": str(scratch / "feeds.json"), "chromium": chromium_path()}
        | {"chromium_args": CHROMIUM_ARGS},
        "kokoro-onnx": common | {"voices": str(scratch / "voices.npz")},
        "fastkokoro": common
        | {"voices": str(scratch / "voices.npz"), "scratch": str(scratch / "fastkokoro")},
        "sherpa-onnx": {"bundle": str(bundle.resolve()) if bundle else "", "text": TEXT}
        | {"sid": sorted(voices).index(voice), "lexicon": sherpa_lexicon_for(voice)},
    }
    if claim is not None and claim.kokoro_js_dtype:
        requests["kokoro-js"] = common | _stage_for_kokoro_js(model, config, scratch, claim)
    return requests


def _feeds(model: Path, voices: dict[str, Any], config: dict[str, Any], session=None):
    """(session, the feeds of one call: the corpus's first sentence, the voice, voice)."""

    voice = VOICE if VOICE in voices else sorted(voices)[0]
    session = session or open_session(model)
    ids = load_corpus().eval[0].ids(config["vocab"])
    info = bucket_info(session)
    if info is not None:
        ids = ids[: info.bucket - 2]
    return session, feeds_for(session, ids, style_row(voices[voice], len(ids))), voice


class GraphIO:
    """What ``feeds_for`` reads of a session (inputs, outputs, metadata), from the file's
    header: a session optimizes the whole graph first (0.5-0.9 s for a tiny quantized one)
    to tell the same. Types and shapes are written as onnxruntime writes them."""

    @dataclass(frozen=True)
    class Arg:
        name: str
        type: str
        shape: list

    def __init__(self, path: Path) -> None:
        import onnx

        model = onnx.load(str(path), load_external_data=False)
        weights = {t.name for t in model.graph.initializer}
        self._inputs = [self._arg(v) for v in model.graph.input if v.name not in weights]
        self._outputs = [self._arg(v) for v in model.graph.output]
        self._meta = SimpleNamespace(
            custom_metadata_map={p.key: p.value for p in model.metadata_props}
        )

    @staticmethod
    def _arg(value) -> GraphIO.Arg:
        import onnx

        t = value.type.tensor_type
        kind = onnx.TensorProto.DataType.Name(t.elem_type).lower()
        dims = [
            d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim
        ]
        return GraphIO.Arg(value.name, f"tensor({kind})", dims)

    def get_inputs(self) -> list[Arg]:
        return self._inputs

    def get_outputs(self) -> list[Arg]:
        return self._outputs

    def get_modelmeta(self) -> SimpleNamespace:
        return self._meta


def floor_request(model: Path, voices, config, scratch: Path) -> dict[str, Any]:
    """The onnxruntime cell's request alone (the floor check runs only that cell and
    compares nothing: no reference runs, no voices file)."""
    import numpy as np

    _, feeds, voice = _feeds(model, voices, config, session=GraphIO(model))
    np.savez(scratch / "feeds.npz", **feeds)
    resolved = str(Path(model).resolve())
    return {"model": resolved, "voice": voice, "text": TEXT, "feeds": str(scratch / "feeds.npz")}


def _reference(session, feeds: dict[str, Any], scratch: Path) -> None:
    """This environment's onnxruntime output for the feeds (reference.npy) and how well two
    of its runs agree (reference.json "floor"): the graph's random source makes them differ."""
    import numpy as np

    (first, durations), (second, again) = (_wave_and_durations(session, feeds) for _ in range(2))
    np.save(scratch / "reference.npy", first)
    floor = heard_correlation(first, durations, second, again)
    (scratch / "reference.json").write_text(
        json.dumps({"floor": floor, "durations": [int(d) for d in durations]})
    )


def _wave_and_durations(session, feeds):
    import numpy as np

    outputs = session.run(None, feeds)
    durations = np.asarray(outputs[1]).reshape(-1) if len(outputs) > 1 else np.zeros(0)
    return np.asarray(outputs[0]).reshape(-1), durations


def heard_correlation(ref, ref_durations, test, test_durations) -> float:
    """Spectral correlation with the test read on the reference's timeline, token by token
    (a token one frame longer in one runtime shifts nothing after it)."""

    return correlation(
        *aligned_spectra(ref, test, ref_durations, test_durations, SAMPLES_PER_FRAME)
    )


def _tensor(array) -> dict[str, Any]:
    return {"type": str(array.dtype), "dims": list(array.shape), "data": array.ravel().tolist()}


def _stage_for_kokoro_js(model: Path, config, scratch: Path, claim: Claim) -> dict[str, Any]:
    """A repo folder as kokoro-js reads it (config, tokenizer, onnx/<file> linked)."""

    repo = scratch / "models" / REPO_NAME
    (repo / "onnx").mkdir(parents=True)
    write_model_files(config, repo)
    name = next(n for n, d in KOKORO_JS_DTYPES.items() if d == claim.kokoro_js_dtype)
    (repo / "onnx" / name).symlink_to(Path(model).resolve())
    return {"models": str(scratch / "models"), "name": REPO_NAME, "dtype": claim.kokoro_js_dtype}


def chromium_path() -> str:
    """The Chromium the onnxruntime-web cell drives ($PUBLISHER_CHROMIUM, else Debian's)."""
    return os.environ.get(CHROMIUM_ENV, "").strip() or CHROMIUM


def probe(runtime: Runtime, request: dict[str, Any], scratch: Path) -> dict:
    """Run one cell; returns ``ok``, ``error`` or what came out, and the seconds."""
    root, env_seconds = environment(runtime.name, runtime.packages, npm=runtime.npm)
    path = scratch / f"request-{runtime.kind}.json"
    if runtime.kind in FEEDS_KINDS:  # keep the waveform, to hear it against the reference
        request = request | {"save": str(_saved(runtime, scratch))}
    threads = configured_threads()  # the probe cannot import publisher: it is told
    path.write_text(json.dumps({"kind": runtime.kind, "threads": threads, **request}))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env |= {"HF_HUB_OFFLINE": "1", "PYTHONNOUSERSITE": "1"}
    if runtime.npm:
        cmd = ["node", str(_node_probe(root, scratch / runtime.kind)), str(path)]
    else:
        cmd = [str(root / "bin" / "python"), str(PROBE), str(path)]
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd,
            capture_output=True,
            text=True,
            timeout=PROBE_TIMEOUT_S,
            cwd=scratch,
            env=env,
        )
        out = _answer(proc)
    except subprocess.TimeoutExpired:
        out = {"ok": False, "error": f"no answer within {PROBE_TIMEOUT_S} s"}
    return out | {"seconds": round(time.perf_counter() - start, 2), "env_seconds": env_seconds}


def _node_probe(root: Path, folder: Path) -> Path:
    """probe.mjs copied into ``folder`` beside a link to the environment's node_modules,
    so its imports resolve to that environment's packages and nothing else."""
    import shutil

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(PROBE_NODE, folder / PROBE_NODE.name)
    link = folder / "node_modules"
    if not link.is_symlink():
        link.symlink_to(root / "node_modules", target_is_directory=True)
    return folder / PROBE_NODE.name


# onnxruntime's load errors carry the C++ source location and signature, and bury what
# matters (which domain at which opset) at the end of a long sentence.
_SOURCE = re.compile(r"/onnxruntime_src/\S+:\d+ [^(]*\(.*?\) ")
_OPSET = re.compile(
    r"Opset (\d+) is under development.*?official support for domain (\S+?) is till opset (\d+)",
    re.S,
)


def readable(error: str) -> str:
    """An onnxruntime error on one short line: an opset refusal as "imports DOMAIN opset
    N; this onnxruntime supports it up to opset K", other errors without the C++ frame."""
    m = _OPSET.search(error)
    if m:
        return (
            f"the file imports {m.group(2)} opset {m.group(1)}; this onnxruntime supports "
            f"{m.group(2)} up to opset {m.group(3)}"
        )
    return _SOURCE.sub("", error).strip()[:400]


def _answer(proc: subprocess.CompletedProcess) -> dict[str, Any]:
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("PROBE "):
            out = json.loads(line[len("PROBE ") :])
            return out if out["ok"] else out | {"error": readable(out["error"])}
    if proc.returncode < 0:
        return {"ok": False, "error": f"the runtime crashed (signal {-proc.returncode})"}
    lines = [ln.strip() for ln in (proc.stderr or "").splitlines() if ln.strip()]
    return {"ok": False, "error": lines[-1][:400] if lines else f"exit {proc.returncode}"}


def _saved(runtime: Runtime, scratch: Path) -> Path:
    """Where a feeds probe keeps its waveform: .npy from Python, raw float32 from node."""
    name = re.sub(r"[^A-Za-z0-9.]+", "-", runtime.name)
    return scratch / f"{name}.{'f32' if runtime.npm else 'npy'}"


def heard(runtime: Runtime, out: dict[str, Any], scratch: Path) -> dict[str, Any]:
    """A feeds cell that ran, held to the reference (this environment's onnxruntime on
    the same feeds): ``match`` is their spectral correlation over the reference's own
    run-to-run correlation; below SAME_AUDIO_MATCH the cell fails (garbled output)."""
    import numpy as np

    saved = _saved(runtime, scratch)
    if not out["ok"] or runtime.kind not in FEEDS_KINDS:
        return out
    if not saved.is_file():  # a heard cell is never passed unheard
        return out | {"ok": False, "error": f"it ran but saved no waveform to hear ({saved.name})"}
    wave = np.fromfile(saved, dtype="<f4") if runtime.npm else np.load(saved)
    dur_file = Path(f"{saved}.dur.json")
    durations = json.loads(dur_file.read_text()) if dur_file.is_file() else []
    reference = np.load(scratch / "reference.npy")
    record = json.loads((scratch / "reference.json").read_text())
    ref_durations = record.get("durations", [])
    heard_as = heard_correlation(reference, ref_durations, wave, durations)
    match = round(heard_as / max(record["floor"], 1e-6), 4)
    if match >= SAME_AUDIO_MATCH:
        return out | {"match": match}
    return out | {
        "ok": False,
        "match": match,
        "error": f"it runs but does not sound like onnxruntime {current_onnxruntime()} on the "
        f"same inputs (match {match:.3f} < {SAME_AUDIO_MATCH})",
    }


def _cell(runtime: Runtime, out: dict[str, Any], known: dict[str, str]) -> dict[str, Any]:
    if out["ok"]:
        status, detail = "ok", f"{out['samples']} samples, peak {out['peak']:.3g}"
        if "match" in out:
            detail += f", match {out['match']:.3f}"
    elif runtime.name in known:
        status, detail = "known failure", f"{known[runtime.name]} ({out['error']})"
    else:
        status, detail = "fails", out["error"]
    if out["ok"] and "heard" in out:
        h = out["heard"]
        detail += f"; heard WER {h['wer']:.3f} (ours {h['ours_wer']:.3f}), DNSMOS {h['dnsmos']:.2f}"
    return (
        {"status": status, "detail": detail, "seconds": out["seconds"]}
        | ({"env_seconds": out["env_seconds"]} if out["env_seconds"] else {})
        | ({"match": out["match"]} if "match" in out else {})
        | ({"heard": out["heard"]} if "heard" in out else {})
    )


def run_matrix(folder: Path) -> dict[str, Any]:
    """Every runtime's cell for the build in ``folder``; recorded in its manifest."""

    m = read_build(folder)
    claim = claim_of(m)
    known = target_of(m.resolved_recipe)["known_failures"]
    claimed = [rt for rt in runtimes() if rt.claims(claim)]
    if any(rt.kind == "onnxruntime-web" for rt in claimed):
        _check_chromium()
    ckpt = sources.open_checkpoint(m.checkpoint.source)
    start = time.perf_counter()
    cells: dict[str, Any] = {rt.name: {"status": "not claimed"} for rt in runtimes()}
    with tempfile.TemporaryDirectory(prefix="publisher-conformance-") as tmp:
        bundle = folder / m.sherpa_onnx if m.sherpa_onnx else None
        requests = prepare_requests(
            folder / m.model, ckpt.voices, ckpt.config, Path(tmp), bundle, claim
        )
        speaking = Speaking(folder / m.model, ckpt, target_of(m.resolved_recipe))
        for rt in progress(claimed, "runtimes"):
            request = speaking.request(rt, requests[rt.kind], Path(tmp))
            out = speaking.hear(rt, heard(rt, probe(rt, request, Path(tmp)), Path(tmp)))
            cells[rt.name] = _cell(rt, out, known)
            log.info("%s in %s: %s", m.recipe, rt.name, cells[rt.name]["status"])
    m.conformance = {
        "cells": cells,
        "heard": speaking.summary(),
        "seconds": round(time.perf_counter() - start, 1),
        "host": host(),
    }
    write_manifest_file(folder, m)
    return m.conformance


def _check_chromium() -> None:
    path = chromium_path()
    if not (Path(path).is_file() and os.access(path, os.X_OK)):
        raise RunError(
            f"the onnxruntime-web cell runs in headless Chromium and there is none at {path}; "
            f"install it (apt-get install chromium) or point ${CHROMIUM_ENV} at one"
        )


def failures(recipe: str, conformance: dict[str, Any]) -> list[str]:
    """One line per claimed cell that failed (known failures excluded)."""
    return [
        f"{recipe} in {name}: {cell['detail']}"
        for name, cell in conformance["cells"].items()
        if cell["status"] == "fails"
    ]


def _floor_key(runtime: Runtime, model: Path) -> str:
    """The reference store key of "these bytes ran in this runtime": the file, the
    runtime's pinned packages and the probe that ran it."""
    blob = {
        "floor": runtime.name,
        "packages": list(runtime.packages),
        "model": file_sha256(model),
        "probe": file_sha256(PROBE),
    }
    return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:32]


def check_floor(model: Path, min_onnxruntime: str, voices, config) -> dict:
    """Load and run ``model`` once in the onnxruntime of ``target.min_onnxruntime``; a
    failure is one line with onnxruntime's own reason (the op or opset it lacks). A pass
    is kept in the reference store, so the same bytes never run there twice, in any
    process (a rebuild, another recipe whose passes wrote the same file, a test)."""
    import numpy as np

    runtime = floor_runtime(min_onnxruntime)
    key = _floor_key(runtime, Path(model))
    if store.load(key) is not None:
        return {"runtime": runtime.name, "seconds": 0.0, "same_file_as_before": True}
    with tempfile.TemporaryDirectory(prefix="publisher-floor-") as tmp:
        request = floor_request(model, voices, config, Path(tmp))
        out = probe(runtime, request, Path(tmp))
    if not out["ok"]:
        raise RunError(
            f"{Path(model).name} does not run in {runtime.name} (target.min_onnxruntime): "
            f"{out['error']}; raise target.min_onnxruntime or drop what needs a newer runtime"
        )
    store.save(key, {"seconds": np.array(out["seconds"])})
    return {"runtime": runtime.name, "seconds": out["seconds"]}
