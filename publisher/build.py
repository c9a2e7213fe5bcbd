"""``build``: recipe + checkpoint -> verified variant folder with manifest, written atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.errors import PublisherError

MANIFEST = "manifest.json"
RESOLVED_RECIPE = "recipe.json"


@dataclass
class BuildResult:
    folder: Path
    model_path: Path
    manifest: dict[str, Any]


def onnx_metadata(recipe, ckpt) -> dict[str, str]:
    """The metadata every variant carries (read by kokoro-onnx and our own tools)."""
    from publisher.provenance import publisher_version
    from publisher.recipe import recipe_hash
    from publisher.synth import SAMPLE_RATE

    return {
        "kokoro_config": json.dumps(ckpt.config, ensure_ascii=False, sort_keys=True),
        "sample_rate": str(SAMPLE_RATE),
        "publisher.recipe": recipe.name,
        "publisher.recipe_sha256": recipe_hash(recipe),
        "publisher.checkpoint": ckpt.source,
        "publisher.checkpoint_sha256": ckpt.sha256,
        "publisher.version": publisher_version(),
        "publisher.synthetic": "true" if ckpt.synthetic else "false",
        "publisher.io": json.dumps(recipe.io_names(), sort_keys=True),
    }


def _transform(graph_path: Path, recipe, ctx) -> Any:
    import onnx

    from publisher.passes import run_passes

    return run_passes(onnx.load(str(graph_path)), recipe, ctx)


def build(
    recipe,
    checkpoint: str | None = None,
    out_dir: Path = Path("dist"),
    echo: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build, verify and write ``out_dir/<recipe.name>/``; nothing is left there on failure."""
    import onnx

    from publisher.checkpoint import file_sha256, open_checkpoint
    from publisher.export import export_fp32
    from publisher.passes import PassContext, plan
    from publisher.provenance import StepTimer, host, versions
    from publisher.recipe import recipe_hash
    from publisher.verify import PARITY_TOKENS, check_parity, enforce_parity_gates, parity_report

    passes = plan(recipe)  # fail on unknown passes before any heavy work
    spec = checkpoint or recipe.checkpoint
    timer = StepTimer(total=6, echo=echo)
    with timer.step("checkpoint", spec):
        ckpt = open_checkpoint(spec)
        model = ckpt.build_model()
    with timer.step("export fp32", "cached per checkpoint and export settings"):
        graph = export_fp32(ckpt, recipe, model=model)
    with timer.step("export parity graph", "noise-free switch for sample-by-sample checks"):
        parity_graph = export_fp32(ckpt, recipe, model=model, parity=True)
    ctx = PassContext(config=ckpt.config, metadata=onnx_metadata(recipe, ckpt))
    with timer.step("passes", " -> ".join(passes)):
        variant = _transform(graph, recipe, ctx)
        parity_variant = _transform(parity_graph, recipe, ctx)

    final = Path(out_dir) / recipe.name
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{recipe.name}.", dir=final.parent))
    try:
        parity_path = staging / "parity.onnx"
        onnx.save(parity_variant, str(parity_path))
        with timer.step("verify parity", f"ONNX vs torch at {PARITY_TOKENS} tokens"):
            results = check_parity(ckpt, model, parity_path)
            enforce_parity_gates(recipe, results)
        parity_path.unlink()
        with timer.step("write", str(final)):
            model_path = staging / recipe.output.path
            model_path.parent.mkdir(parents=True, exist_ok=True)
            onnx.save(variant, str(model_path))
            (staging / RESOLVED_RECIPE).write_text(
                json.dumps(recipe.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"
            )
        manifest = {
            "recipe": recipe.name,
            "recipe_sha256": recipe_hash(recipe),
            "resolved_recipe": recipe.model_dump(mode="json"),
            "checkpoint": {
                "source": ckpt.source,
                "sha256": ckpt.sha256,
                "synthetic": ckpt.synthetic,
            },
            "io": recipe.io_names(),
            "verification": {"parity": parity_report(results)},
            "versions": versions(),
            "host": host(),
            "steps_seconds": timer.seconds,
        }
        manifest["files"] = {
            p.relative_to(staging).as_posix(): {"sha256": file_sha256(p), "bytes": p.stat().st_size}
            for p in sorted(staging.rglob("*"))
            if p.is_file()
        }
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
        _move_into_place(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return BuildResult(final, final / recipe.output.path, manifest)


def _move_into_place(staging: Path, final: Path) -> None:
    """Swap the finished folder in; an old build is replaced only once the new one is whole."""
    old = None
    if final.exists():
        if not final.is_dir():
            raise PublisherError(f"{final} exists and is not a folder; remove it or pick --out")
        old = final.with_name(f".{final.name}.old-{os.getpid()}")
        os.replace(final, old)
    os.replace(staging, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
