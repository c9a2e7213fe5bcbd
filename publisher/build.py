"""``build`` and ``verify``: recipe + checkpoint -> verified variant folder with manifest.

A build writes into a temporary folder beside ``OUT/NAME`` and moves it into place only
when every gate passed, so a failed build leaves nothing in ``OUT/NAME``.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.conformance.matrix import check_floor
from publisher.export.bucket.shape import bucket_metadata, bucket_shape
from publisher.hub.sherpa import bundle_folder, sherpa_metadata, write_bundle
from publisher.manifest import (
    REPORT_FILES,
    RESOLVED_RECIPE,
    file_index,
    new_manifest,
    read_build,
    write_checkpoint_files,
    write_manifest_file,
)
from publisher.model import sources
from publisher.passes import PassContext, plan
from publisher.passes.stored import transformed
from publisher.provenance import StepTimer, host, publisher_version, versions
from publisher.recipe.loader import recipe_hash
from publisher.runtime.artifacts import BuildManifest
from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.errors import InputError, PublisherError
from publisher.runtime.threads import configured_threads
from publisher.verify.gates import Verification, gated
from publisher.verify.measure import bucket_probes, measure, verification_items, voiced_fidelity
from publisher.verify.report import write_report
from publisher.workspace import (
    check_writable_folder,
    replace_folder,
    scratch_dir,
    sweep,
    write_json_atomic,
)

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import onnx

    from publisher.model.checkpoint import Checkpoint
    from publisher.recipe.schema import Recipe


@dataclass
class BuildResult:
    folder: Path
    model_path: Path
    manifest: BuildManifest


@dataclass
class Prepared:
    """A recipe's checkpoint (its upstream torch model, the reference, built when a run
    is not stored: ``Checkpoint.model``) and transformed graphs, ready to verify."""

    recipe: Recipe
    ckpt: Checkpoint
    variant: onnx.ModelProto  # random source on
    parity_graph: Path  # fp32 parity-mode export (cached)
    voiced_graph: Path  # fp32 voiced deterministic export (cached)
    twin: onnx.ModelProto | None  # the variant's voiced twin; None when no pass changes numbers
    notes: dict[str, Any]  # what the passes reported


def onnx_metadata(recipe, ckpt) -> dict[str, str]:
    """The metadata every variant carries (read by kokoro-onnx and our own tools)."""

    extra = {}
    if recipe.is_bucket:  # fastkokoro's four keys and publisher.bucket
        extra = bucket_metadata(bucket_shape(recipe))
    if recipe.output.sherpa_onnx:  # so the bundle's model is this very file (stored once)
        extra |= sherpa_metadata(sorted(ckpt.voices))
    return extra | {
        "kokoro_config": json.dumps(ckpt.config, ensure_ascii=False, sort_keys=True),
        "sample_rate": str(SAMPLE_RATE),
        "publisher.recipe": recipe.name,
        "publisher.recipe_sha256": recipe_hash(recipe),
        "publisher.checkpoint": ckpt.source,
        "publisher.checkpoint_sha256": ckpt.sha256,
        "publisher.version": publisher_version(),
        "publisher.synthetic": "true" if ckpt.synthetic else "false",
        "publisher.recovered": "true" if ckpt.recovered else "false",
        "publisher.weights": ckpt.origin,
        "publisher.io": json.dumps(recipe.io_names(), sort_keys=True),
    }


def room_needed(ckpt) -> int:
    """Bytes a build needs free beside its output: the model (at most its parameters in
    float32), its twin, and the previous build kept while swapping."""
    return 3 * sum(t.numel() * 4 for part in ckpt.state.values() for t in part.values())


def prepare(
    recipe, spec: str, timer, out: Path | None = None, opened: dict | None = None
) -> Prepared:
    """Checkpoint, exports and passes. ``out``: the folder the build goes to, checked for
    ``room_needed`` right after the checkpoint opens, before the exports. ``opened``: the
    checkpoints (and their torch models) a caller building several recipes keeps by spec."""

    # lazy: the export side imports torch and kokoro (7 s); stage, publish and --dry-run
    # import this module without them
    from publisher.export.fp32 import export_fp32

    passes = plan(recipe)  # unknown passes fail before any heavy work
    with timer.step("checkpoint", spec):
        if opened is not None and spec in opened:
            ckpt = opened[spec]
        else:
            ckpt = sources.open_checkpoint(spec)
            if opened is not None:
                opened[spec] = ckpt
    if out is not None:  # before any heavy work: a full disk is one line, nothing exported
        check_writable_folder(out, "--out", need_bytes=room_needed(ckpt))
    with timer.step("export fp32", "cached per checkpoint and export settings"):
        graph = export_fp32(ckpt, recipe)
    with timer.step(
        "export deterministic graphs",
        "noise only for sample-by-sample parity; with the sine (voiced) for fidelity",
    ):
        parity_graph = export_fp32(ckpt, recipe, parity=True)
        voiced_graph = (
            export_fp32(ckpt, recipe, parity=True, voiced=True)
            if voiced_fidelity(ckpt)
            else parity_graph
        )
    ctx = PassContext(config=ckpt.config, metadata=onnx_metadata(recipe, ckpt), voices=ckpt.voices)
    with timer.step("passes", " -> ".join(passes)):
        # the twin: the voiced export through the same passes, when a pass changes numbers
        twin_export = voiced_graph if recipe.passes else None
        variant, twin = transformed(recipe, ckpt, ctx, graph, twin_export)
    return Prepared(recipe, ckpt, variant, parity_graph, voiced_graph, twin, ctx.notes)


def _verify(
    p: Prepared,
    shipped: Path,
    scratch: Path,
    report_dir: Path,
    timer,
    speech: bool = True,
) -> Verification:
    """Evaluate ``shipped``; the twin graph goes to ``scratch`` (never beside the
    artifact), verify.md and its picture to ``report_dir``."""
    import onnx

    twin_path = None
    twin_graph = p.voiced_graph
    if p.twin is not None:
        twin_path = scratch / "twin.onnx"
        onnx.save(p.twin, str(twin_path))
        twin_graph = twin_path
    items = verification_items(p.ckpt)
    if p.recipe.is_bucket:  # measure skips what does not fit the bucket
        items += bucket_probes(p.ckpt, p.recipe.export.bucket)
    with timer.step("verify", f"{len(items)} inputs: parity, fidelity, shipped graph"):
        measured = measure(
            p.recipe,
            p.ckpt,
            parity_graph=p.parity_graph,
            twin_graph=twin_graph,
            shipped_graph=shipped,
            items=items,
            speech=speech,
        )
        report = gated(p.recipe, measured)
    if twin_path:
        twin_path.unlink()
    write_report(report, report_dir, f"{p.recipe.name} ({p.ckpt.source})")
    return report


def _gate_lines(report: Verification) -> list[str]:
    return [
        f"  {'ok  ' if g.passed else 'FAIL'} {g.gate}: {g.measured:.6g} "
        f"(threshold {g.threshold:.6g}, worst item {g.item})"
        for g in report.gates
    ]


def build(
    recipe,
    checkpoint: str | None = None,
    out_dir: Path = Path("dist"),
    speech: bool = True,
    floor: bool = True,
    opened: dict | None = None,
) -> BuildResult:
    """Build, verify and write ``out_dir/<recipe.name>/``; nothing is left there on failure.
    ``speech=False`` skips the WER/DNSMOS speech set (recorded as skipped); ``floor=False``
    skips running the file in the onnxruntime of ``target.min_onnxruntime``; ``opened``:
    see ``prepare``."""
    import onnx

    final = Path(out_dir) / recipe.name
    check_target(final)
    configured_threads()  # a malformed $PUBLISHER_THREADS fails now, not minutes in
    timer = StepTimer(total=7)
    p = prepare(recipe, checkpoint or recipe.checkpoint, timer, out=final.parent, opened=opened)
    run = scratch_dir(final.parent, recipe.name)  # removed on any exit, swept if killed
    try:
        built, scratch = run / "variant", run / "scratch"
        scratch.mkdir()
        model_path = built / recipe.output.path
        model_path.parent.mkdir(parents=True, exist_ok=True)
        onnx.save(p.variant, str(model_path))
        floor_run = _floor(recipe, p, model_path, timer) if floor else {"skipped": True}
        report = _verify(p, model_path, scratch, built, timer, speech)
        report.floor = floor_run
        for line in _gate_lines(report):
            log.info(line)
        report.enforce()
        with timer.step("write", str(final)):
            if recipe.output.sherpa_onnx:
                _sherpa_bundle(recipe, p, model_path, built)
            manifest = write_manifest(built, p, report.to_json(), timer.seconds)
            replace_folder(built, final)
    finally:
        shutil.rmtree(run, ignore_errors=True)
    return BuildResult(final, final / recipe.output.path, manifest)


@dataclass
class ManyBuilt:
    """``build_many``: the builds that passed, and (recipe, one-line reason) for the rest."""

    built: list[BuildResult]
    failed: list[tuple[str, str]]


def build_many(
    recipes: list,
    checkpoint: str | None = None,
    out_dir: Path = Path("dist"),
    speech: bool = True,
    floor: bool = True,
) -> ManyBuilt:
    """Build every recipe in one process: each checkpoint is opened once, exports come
    from the export cache and upstream's side from the reference store; a failing recipe
    is recorded and the next one still builds."""
    opened: dict = {}
    result = ManyBuilt([], [])
    several = len(recipes) > 1
    for k, recipe in enumerate(recipes, 1):
        if several:
            log.info("== %s (%d/%d)", recipe.name, k, len(recipes))
        try:
            result.built.append(build(recipe, checkpoint, out_dir, speech, floor, opened=opened))
        except PublisherError as err:
            if not several:
                raise  # one recipe: its own error, type and all
            result.failed.append((recipe.name, str(err)))
            log.info("== %s failed: %s", recipe.name, err)
    return result


def _floor(recipe, p: Prepared, model_path: Path, timer) -> dict[str, Any]:
    """The file loads and runs once in the onnxruntime ``target.min_onnxruntime`` names
    (its own cached environment), before the long verification."""

    version = recipe.target.min_onnxruntime
    with timer.step("floor", f"load and run in onnxruntime {version}"):
        return check_floor(model_path, version, p.ckpt.voices, p.ckpt.config)


def _sherpa_bundle(recipe, p: Prepared, model_path: Path, built: Path) -> None:
    """sherpa-onnx/<recipe>/ beside the model (see publisher.hub.sherpa)."""

    write_bundle(
        model_path, p.ckpt.voices, p.ckpt.config["vocab"], built / bundle_folder(recipe.name)
    )


def check_target(final: Path) -> None:
    """Before any heavy work: ``final`` (OUT/NAME) must be creatable or a folder, and
    leftovers of killed runs beside it are swept."""
    check_writable_folder(final.parent, "--out")
    if (final.exists() or final.is_symlink()) and (not final.is_dir() or final.is_symlink()):
        raise InputError(f"{final} exists and is not a folder; remove it or pick another --out")
    final.parent.mkdir(parents=True, exist_ok=True)
    sweep(final.parent)


def write_manifest(folder: Path, p: Prepared, verification: dict, steps: dict) -> BuildManifest:
    """manifest.json and recipe.json beside the artifact: what it is and how it was made."""

    write_json_atomic(folder / RESOLVED_RECIPE, p.recipe.model_dump(mode="json"))
    write_checkpoint_files(folder, p.ckpt.config, p.ckpt.voices)
    manifest = {
        "recipe": p.recipe.name,
        "recipe_sha256": recipe_hash(p.recipe),
        "resolved_recipe": p.recipe.model_dump(mode="json"),
        "model": p.recipe.output.path,
        "checkpoint": {
            "source": p.ckpt.source,
            "sha256": p.ckpt.sha256,
            "synthetic": p.ckpt.synthetic,
            "recovered": p.ckpt.recovered,
            "origin": p.ckpt.origin,
            "note": p.ckpt.provenance.get("note", ""),
        },
        "io": p.recipe.io_names(),
        "sherpa_onnx": _bundle_or_none(p.recipe),
        "passes": {"applied": [*p.recipe.passes], "notes": p.notes},
        "verification": verification,
        "versions": versions(),
        "host": host(),
        "steps_seconds": steps,
    }
    manifest["files"] = file_index(folder)
    typed = new_manifest(manifest)  # a writer's bug stops here, before the file exists
    write_manifest_file(folder, typed)
    return typed


def _bundle_or_none(recipe) -> str | None:
    return bundle_folder(recipe.name) if recipe.output.sherpa_onnx else None


def verify_built(
    recipe,
    out_dir: Path = Path("dist"),
    checkpoint: str | None = None,
    speech: bool = True,
) -> BuildManifest:
    """Re-verify an existing ``out_dir/<name>/`` build; updates its manifest and report.

    Raises VerificationError (after writing the report) when a gate fails."""

    folder = Path(out_dir) / recipe.name
    manifest = read_build(folder)  # every recorded file as it was written, or one line
    shipped = folder / manifest.model
    timer = StepTimer(total=5)
    p = prepare(recipe, checkpoint or manifest.checkpoint.source, timer)
    if p.ckpt.sha256 != manifest.checkpoint.sha256:
        raise InputError(
            f"{folder}: built from checkpoint {manifest.checkpoint.sha256[:12]}"
            f", but {p.ckpt.source} is {p.ckpt.sha256[:12]}; pass --checkpoint"
        )
    run = scratch_dir(folder.parent, f"{folder.name}.verify")
    try:
        report = _verify(p, shipped, run, run, timer, speech)
        for name in REPORT_FILES:
            os.replace(run / name, folder / name)
    finally:
        shutil.rmtree(run, ignore_errors=True)
    for line in _gate_lines(report):
        log.info(line)
    rewritten = file_index(folder)  # only what this run wrote is recorded anew
    data = manifest.model_dump(exclude_unset=True)
    data["verification"] = report.to_json()
    data["files"].update({n: rewritten[n] for n in REPORT_FILES if n in rewritten})
    manifest = new_manifest(data)
    write_manifest_file(folder, manifest)
    report.enforce()
    return manifest
