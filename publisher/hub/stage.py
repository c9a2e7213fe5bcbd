"""``stage``: built variant folders -> one repo folder, laid out as the runtimes expect.

README.md (the model card, rendered from templates/), config.json, tokenizer files, voices,
every variant at its recipe's path, and manifest.json. Variants that did not pass their
gates are never staged. Written into a temporary folder and moved into place whole.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from publisher.hub.browser_runs import keep_current, read_browser_report
from publisher.hub.card import display_columns, render_card
from publisher.hub.family import MANIFEST_FORMAT, RemoteState, merge
from publisher.hub.figures import size_speed_figure
from publisher.hub.repo_files import write_model_files, write_voices
from publisher.inspect_graph import inspect_model
from publisher.manifest import PICTURE as SPECTROGRAM
from publisher.manifest import (
    check_files,
    file_index,
    read_build,
    read_checkpoint_files,
)
from publisher.provenance import versions
from publisher.runtime.artifacts import BuildManifest, RepoManifest, VariantEntry
from publisher.runtime.errors import ChangedFileError, PublishError
from publisher.workspace import (
    check_writable_folder,
    replace_folder,
    scratch_dir,
    write_json_atomic,
)

log = logging.getLogger(__name__)

# Written into every staged folder: stage replaces only folders that carry it (or empty
# ones), never a user's folder. Not uploaded (see publish.plan).
STAGE_MARK = ".publisher-staged"


@dataclass
class Staged:
    folder: Path
    manifest: dict[str, Any]
    synthetic: bool
    recovered: bool = False
    deletions: list[str] = field(default_factory=list)  # repo paths the commit deletes
    notes: list[str] = field(default_factory=list)  # what merging with the Hub decided


def _params_by_dtype(path: Path) -> tuple[str, dict[str, int]]:
    totals: dict[str, int] = {}
    for row in inspect_model(path).rows:
        if row.dtype not in ("-", "int64", "bool", "int32") and row.params >= 1000:
            totals[row.dtype] = totals.get(row.dtype, 0) + row.params
    text = ", ".join(f"{d} {n / 1e6:.2f}M" for d, n in sorted(totals.items(), key=lambda x: -x[1]))
    return text, totals


def variant_entry(folder: Path, m: BuildManifest) -> dict[str, Any]:
    """A built variant as the repo manifest records it: everything the card, the Space and a
    later publish need without the build folder (figures as numbers; see card.py)."""

    model = folder / m.model
    fid = m.verification.fidelity
    bench = m.bench or {}
    params_text, params = _params_by_dtype(model)
    has_picture = (folder / SPECTROGRAM).is_file()
    entry = {
        "recipe": m.recipe,
        "path": m.model,
        "recipe_sha256": m.recipe_sha256,
        "checkpoint_sha256": m.checkpoint.sha256,
        "description": m.resolved_recipe["description"],
        "summary": m.resolved_recipe["card"]["summary"],
        "sha256": m.files[m.model].sha256,
        "bytes": m.files[m.model].bytes,
        "size_mib": m.files[m.model].bytes / 2**20,
        "params_by_dtype": params_text,
        "params": params,
        "io": m.io,
        "shape": m.resolved_recipe["export"]["shape"],
        "worst_spectral_correlation": min(f["spectral_correlation"] for f in fid) if fid else None,
        "worst_log_mel_distance": max(f["log_mel_distance"] for f in fid) if fid else None,
        "speech": _speech(m.verification.speech or {}),
        "gates": m.verification.gates,
        "bench": bench.get("result") or None,
        "bench_settings": bench.get("settings"),
        "first_audio": _first_audio(m),
        "host": m.host,
        "versions": m.versions,
        "tensors": _tensors(model),
        "spectrogram": f"figures/{m.recipe}_spectrogram.png" if has_picture else None,
        "sherpa_onnx": m.sherpa_onnx,
        "extra_files": _extra_files(m, m.recipe if has_picture else None),
        "floor": m.verification.floor,
        "conformance": (m.conformance or {}).get("cells"),
    }
    return VariantEntry.write(**entry, **display_columns(entry))


def _first_audio(m: BuildManifest) -> dict[str, Any] | None:
    """``bench --first-audio``'s row of this variant, with the sentence and threads."""

    run = m.first_audio or {}
    if not run.get("result"):
        return None
    settings = run.get("settings") or {}
    return run["result"] | {k: settings.get(k) for k in ("sentence", "threads", "repeats")}


def _extra_files(m: BuildManifest, picture_of: str | None) -> list[str]:
    """Repo paths a variant owns besides its model: its spectrogram and its sherpa-onnx
    bundle (a prune deletes them with the model)."""
    out = [f"figures/{picture_of}_spectrogram.png"] if picture_of else []
    bundle = m.sherpa_onnx
    if bundle:
        out += sorted(p for p in m.files if p.startswith(bundle + "/"))
    return out


def _speech(speech: dict[str, Any]) -> dict[str, Any]:
    """WER and DNSMOS overall of the variant and of upstream Kokoro in the same run."""
    if not speech.get("ran"):
        return {"ran": False}
    return {
        "ran": True,
        "wer": speech["variant_wer"],
        "reference_wer": speech["reference_wer"],
        "dnsmos": speech["variant_dnsmos"]["overall"],
        "reference_dnsmos": speech["reference_dnsmos"]["overall"],
        "speaker_similarity": speech.get("speaker_similarity"),
        "same_pieces_wer": speech.get("same_pieces_wer"),
    }


def _tensors(variant_path: Path) -> list[dict[str, str]]:
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


def _passed_builds(folders: list[Path]) -> list[tuple[Path, BuildManifest]]:
    manifests = []
    for folder in folders:
        m = read_build(folder)  # every recorded file checked: a changed one is refused
        if not m.verification.passed:
            log.info("skipping %s: it did not pass its verification gates", m.recipe)
            continue
        manifests.append((folder, m))
    if folders and not manifests:
        raise PublishError("nothing to stage: no variant passed its gates")
    if len({m.checkpoint.sha256 for _, m in manifests}) > 1:
        raise PublishError("variants were built from different checkpoints; stage one at a time")
    paths = [m.model for _, m in manifests]
    dupes = sorted({p for p in paths if paths.count(p) > 1})
    if dupes:
        raise PublishError(f"two recipes write the same file: {', '.join(dupes)}")
    return manifests


def _checkpoint(manifests, remote: RemoteState | None):
    """(config and voices or None, the checkpoint's manifest record, whether it is
    synthetic / recovered, the note): from this run's builds (their folders carry the
    checkpoint's config and voices: no checkpoint is opened), else from the Hub's manifest."""
    if not manifests:
        old = (remote.manifest if remote else None) or {}
        if not old:
            raise PublishError("nothing to stage: no built variants (run publisher build first)")
        return None, old["checkpoint"], old["synthetic"], old["recovered"], old["recovered_note"]
    folder, manifest = manifests[0]
    info = manifest.checkpoint
    note = info.note or f"weights recovered from {info.source}"
    record = info.model_dump(exclude_unset=True)
    return read_checkpoint_files(folder), record, info.synthetic, info.recovered, note


def stage(
    folders: list[Path],
    dest: Path,
    repo_id: str = "ORG/NAME",
    *,
    remote: RemoteState | None = None,
    existing_recipes: set[str] | None = None,
    browser_report: Path | None = None,
) -> Staged:
    """Assemble ``dest`` from built variant folders (see module doc), merged with the Hub's
    recorded variants when ``remote`` is given (see ``publisher.hub.family``)."""
    if not folders and not (remote and remote.manifest):
        raise PublishError("nothing to stage: no built variants (run publisher build first)")
    report = read_browser_report(browser_report) if browser_report else None
    manifests = _passed_builds(folders)
    files, ckpt_info, synthetic, recovered, note = _checkpoint(manifests, remote)
    dest = Path(dest)
    need = sum((folder / m.model).stat().st_size for folder, m in manifests)
    check_dest(dest, [folder for folder, _ in manifests], need_bytes=2 * need)
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = scratch_dir(dest.parent, dest.name)
    try:
        built = [_copy_build(folder, m, tmp) for folder, m in manifests]
        family = merge(built, remote or RemoteState(), ckpt_info["sha256"], existing_recipes)
        for line in family.notes:
            log.info(line)
        if not family.variants:
            raise PublishError("nothing to describe: no current variant would be left in the repo")
        if files is not None:
            write_model_files(files[0], tmp)
            write_voices(files[1], tmp)
        old = (remote.manifest if remote else None) or {}
        browser = _browser(report or old.get("browser"), family.variants)
        manifest = RepoManifest.write(
            format=MANIFEST_FORMAT,
            checkpoint=ckpt_info,
            synthetic=synthetic,
            recovered=recovered,
            recovered_note=note,
            origin=ckpt_info["origin"] if files is not None else old["origin"],
            voices=sorted(files[1]) if files is not None else old["voices"],
            variants=family.variants,
            stale=family.stale,
            figures={"size_speed": size_speed_figure(family.variants, tmp)},
            versions=versions(),
            browser=browser,
        )
        (tmp / "README.md").write_text(render_card(manifest, repo_id), encoding="utf-8")
        write_json_atomic(tmp / "manifest.json", manifest)
        index = file_index(tmp, skip=STAGE_MARK)  # checked again before an upload
        write_json_atomic(tmp / STAGE_MARK, {"written_by": "publisher stage", "files": index})
        replace_folder(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return Staged(dest, manifest, synthetic, recovered, family.deletions, family.notes)


def _browser(report: dict[str, Any] | None, variants: list[dict[str, Any]]):
    """The report (given now, or the one the repo had) kept to the repo's variants."""
    if not report:
        return None
    kept, notes = keep_current(report, {v["recipe"] for v in variants})
    for line in notes:
        log.info(line)
    return kept


def _copy_build(folder: Path, m: BuildManifest, tmp: Path) -> dict[str, Any]:
    entry = variant_entry(folder, m)
    target = tmp / m.model
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(folder / m.model, target)
    if entry["spectrogram"]:
        (tmp / "figures").mkdir(exist_ok=True)
        shutil.copy2(folder / SPECTROGRAM, tmp / entry["spectrogram"])
    if entry["sherpa_onnx"]:
        shutil.copytree(folder / entry["sherpa_onnx"], tmp / entry["sherpa_onnx"])
    log.info("staged %s -> %s", m.recipe, m.model)
    return entry


def check_dest(dest: Path, builds: list[Path], need_bytes: int = 0) -> None:
    """``dest`` must be new, empty, or a folder stage wrote before: stage replaces it
    whole, so it never takes a folder holding anything else (builds included)."""
    dest = Path(dest)
    for build in builds:
        if Path(os.path.abspath(build)).is_relative_to(os.path.abspath(dest)):
            raise PublishError(
                f"--dest {dest}: it holds the build {build}, which staging would replace; "
                "pick a new folder"
            )
    if dest.is_dir() and not dest.is_symlink():
        if any(dest.iterdir()) and not (dest / STAGE_MARK).is_file():
            raise PublishError(
                f"--dest {dest}: the folder has files `publisher stage` did not write, and "
                "staging replaces the whole folder; pick a new or empty folder"
            )
    elif dest.exists() or dest.is_symlink():
        raise PublishError(f"--dest {dest}: exists and is not a folder; pick a new folder")
    check_writable_folder(dest.parent, "--dest", need_bytes=need_bytes)


def check_staged(folder: Path) -> None:
    """Before an upload: the staged folder holds exactly the files stage recorded, each
    with the bytes recorded (one line naming the first that differs)."""
    try:
        recorded = json.loads((folder / STAGE_MARK).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        raise ChangedFileError(
            f"{folder}: not a folder `publisher stage` wrote; stage again"
        ) from None
    check_files(folder, recorded, "stage again")
    extra = sorted(set(file_index(folder, skip=STAGE_MARK)) - set(recorded))
    if extra:
        raise ChangedFileError(f"{folder / extra[0]}: not staged by publisher stage; stage again")


def staged_manifest(folder: Path) -> dict[str, Any]:
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        raise PublishError(f"{folder}: not a staged repo folder (no manifest.json)")
    return json.loads(path.read_text())
