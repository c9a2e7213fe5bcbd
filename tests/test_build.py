from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import onnx
import onnxruntime as ort
import pytest
from click.testing import CliRunner

from publisher.build import build
from publisher.cli import main
from publisher.recipe.loader import load_recipe
from publisher.runtime.errors import VerificationError

LEGACY = """\
description: "Legacy names for the kokoro-onnx runtime"
checkpoint: synthetic:tiny
io:
  profile: kokoro-onnx-legacy
output:
  path: kokoro-v1.0.onnx
"""


@pytest.fixture(scope="module")
def built(tiny_dist):
    import json as _json
    from types import SimpleNamespace

    folder = tiny_dist / "fp32"
    manifest = _json.loads((folder / "manifest.json").read_text())
    return SimpleNamespace(
        folder=folder, model_path=folder / "onnx" / "model.onnx", manifest=manifest
    )


def test_build_writes_model_manifest_and_resolved_recipe(built):
    folder = built.folder
    assert built.model_path == folder / "onnx" / "model.onnx"
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["recipe"] == "fp32"
    assert manifest["checkpoint"]["source"] == "synthetic:tiny"
    assert manifest["checkpoint"]["synthetic"] is True
    for rel, entry in manifest["files"].items():
        assert (folder / rel).stat().st_size == entry["bytes"]
    bundle = {p for p in manifest["files"] if p.startswith("sherpa-onnx/fp32/")}
    assert set(manifest["files"]) - bundle == {
        "onnx/model.onnx",
        "recipe.json",
        "verify.md",
        "verify_spectrogram.png",
        "checkpoint/config.json",  # what stage needs, so it opens no checkpoint
        "checkpoint/voices.npz",
    }
    assert manifest["sherpa_onnx"] == "sherpa-onnx/fp32" and "sherpa-onnx/fp32/model.onnx" in bundle
    assert {"torch", "onnx", "onnxruntime", "kokoro", "publisher", "python"} <= set(
        manifest["versions"]
    )
    assert set(manifest["steps_seconds"]) >= {"checkpoint", "export fp32", "verify"}
    assert json.loads((folder / "recipe.json").read_text())["gates"]["parity_max_abs"] == 5e-4
    assert not [p for p in folder.parent.iterdir() if p.name.startswith(".")]  # no leftovers


def test_built_model_carries_config_and_provenance_metadata(built, tiny):
    meta = {p.key: p.value for p in onnx.load(str(built.model_path)).metadata_props}
    assert json.loads(meta["kokoro_config"])["vocab"] == tiny.config["vocab"]
    assert meta["sample_rate"] == "24000"
    assert meta["publisher.recipe"] == "fp32"
    assert meta["publisher.checkpoint_sha256"] == tiny.sha256
    assert meta["publisher.synthetic"] == "true"
    assert len(meta["publisher.recipe_sha256"]) == 64


def test_built_model_runs_in_onnxruntime_and_passes_parity(built):
    verification = built.manifest["verification"]
    parity = verification["parity"]
    assert {"probe-40", "probe-400"} <= {p["item"] for p in parity}
    assert len(parity) >= 10  # the evaluation corpus plus the probes
    assert all(p["max_abs_error"] <= 1e-4 and p["durations_equal"] for p in parity)
    assert verification["passed"] is True
    assert (built.folder / "verify.md").is_file()
    assert (built.folder / "verify_spectrogram.png").stat().st_size > 10_000
    sess = ort.InferenceSession(str(built.model_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "style", "speed"]


def test_io_profile_renames_tensors_and_output_path(tmp_path):
    recipe_file = tmp_path / "legacy.yaml"
    recipe_file.write_text(LEGACY)
    result = build(load_recipe(recipe_file), out_dir=tmp_path / "dist")
    assert result.model_path == tmp_path / "dist" / "legacy" / "kokoro-v1.0.onnx"
    sess = ort.InferenceSession(str(result.model_path), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["tokens", "style", "speed"]
    assert [o.name for o in sess.get_outputs()] == ["audio", "duration"]


def test_failed_gate_leaves_no_output_folder_and_names_the_gate(tmp_path):
    recipe_file = tmp_path / "strict.yaml"
    recipe_file.write_text(LEGACY + "gates:\n  parity_max_abs: 0.0\n")
    out = tmp_path / "dist"
    with pytest.raises(VerificationError) as err:
        build(load_recipe(recipe_file), out_dir=out)
    assert err.value.gate == "parity_max_abs" and err.value.measured > 0
    assert "parity_max_abs" in str(err.value)
    assert not out.exists() or list(out.iterdir()) == []


@pytest.mark.slow
def test_rebuild_replaces_the_previous_folder_whole(tmp_path):
    recipe_file = tmp_path / "legacy.yaml"
    recipe_file.write_text(LEGACY)
    recipe = load_recipe(recipe_file)
    first = build(recipe, out_dir=tmp_path)
    (first.folder / "stale.txt").write_text("old")
    second = build(recipe, out_dir=tmp_path)
    assert not (second.folder / "stale.txt").exists()
    assert second.model_path.is_file()


def test_cli_build_reports_size_and_parity(tmp_path):
    result = CliRunner().invoke(
        main,
        ["build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(tmp_path)],
    )
    assert result.exit_code == 0, result.output
    assert "built " in result.output and "parity max abs error" in result.output
    assert (tmp_path / "fp32" / "onnx" / "model.onnx").is_file()


def test_cli_dry_run_prints_the_plan_without_building(tmp_path):
    result = CliRunner().invoke(
        main, ["build", "--recipe", "fp32", "--out", str(tmp_path), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)
    assert plan["passes"] == [
        "simplify",
        "io-names",
        "topo-sort",
        "opsets",
        "strip-shapes",
        "metadata",
    ]
    assert plan["resolved_recipe"]["output"]["path"] == "onnx/model.onnx"
    assert list(tmp_path.iterdir()) == []


def test_cli_bad_checkpoint_is_one_line_without_traceback(tmp_path):
    result = CliRunner().invoke(
        main,
        [
            "build",
            "--recipe",
            "fp32",
            "--checkpoint",
            "path:/does/not/exist",
            "--out",
            str(tmp_path),
        ],
    )
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "path:/does/not/exist" in errors[0]
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    return subprocess.run(
        [sys.executable, "-m", "publisher.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_subprocess_build_of_a_malformed_recipe_exits_1_with_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("description: x\nexport:\n  shape: bucket\n  bucket: sixty\n")
    proc = _run("build", "--recipe", str(bad), "--out", str(tmp_path / "dist"), cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        "error: bad.yaml: export.bucket: expected an integer from 8 to 510, got 'sixty'"
    )
    assert not (tmp_path / "dist").exists()


@pytest.mark.slow
def test_subprocess_build_end_to_end(tmp_path):
    proc = _run(
        "build",
        "--recipe",
        "fp32",
        "--checkpoint",
        "synthetic:tiny",
        "--out",
        str(tmp_path),
        cwd=Path(__file__).parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    assert "[1/7] checkpoint" in proc.stderr  # progress goes to stderr
    assert (tmp_path / "fp32" / "manifest.json").is_file()


def test_help_does_not_import_heavy_modules():
    code = (
        "import sys, publisher.cli; "
        "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'kokoro') "
        "if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.stdout.strip() == "[]"


def test_several_recipes_build_in_one_process_and_a_failing_one_stops_no_other(
    tmp_path, monkeypatch
):
    import publisher.model.sources as sources

    strict = tmp_path / "strict.yaml"
    strict.write_text(LEGACY + "gates:\n  parity_max_abs: 0.0\n")
    opens: list[str] = []
    real_open = sources.open_checkpoint

    def counting(spec):
        opens.append(spec)
        return real_open(spec)

    monkeypatch.setattr(sources, "open_checkpoint", counting)
    out = tmp_path / "dist"
    args = ["build", "--recipe", str(strict), "--recipe", "fp32"]
    result = CliRunner().invoke(main, [*args, "--checkpoint", "synthetic:tiny", "--out", str(out)])
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    assert "failed: strict: gate parity_max_abs failed" in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last == "error: 1 of 2 recipes failed (strict); 1 built"
    assert (out / "fp32" / "onnx" / "model.onnx").is_file() and not (out / "strict").exists()
    assert f"built {out / 'fp32' / 'onnx' / 'model.onnx'}" in result.stdout
    assert opens == ["synthetic:tiny"]  # one checkpoint open for both recipes


def test_build_all_with_recipe_is_one_line():
    result = CliRunner().invoke(main, ["build", "--all", "--recipe", "fp32", "--dry-run"])
    assert result.exit_code == 1
    assert "give --recipe NAME (repeatable) or --all, not both" in result.stderr


def test_build_all_dry_run_plans_every_recipe():
    from publisher.recipe.loader import list_recipes

    result = CliRunner().invoke(main, ["build", "--all", "--dry-run"])
    assert result.exit_code == 0, result.output
    plans = [json.loads(chunk) for chunk in result.stdout.replace("}\n{", "}\x00{").split("\x00")]
    assert [p["recipe"] for p in plans] == [r.name for r in list_recipes()]
