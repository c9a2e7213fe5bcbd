from __future__ import annotations

import json
import os
import signal

import numpy as np
import onnx
import pytest
from click.testing import CliRunner
from onnx import numpy_helper

from publisher import passes
from publisher.build import build, verify_built
from publisher.cli import main
from publisher.recipe.loader import load_recipe
from publisher.runtime.artifacts import Gate
from publisher.runtime.errors import PublisherError, VerificationError
from publisher.runtime.metrics import duration_agreement, log_mel_distance, spectral_correlation
from publisher.verify.gates import Verification, gate_results
from publisher.verify.measure import Measured
from publisher.verify.worker import ModelWorker, VariantCrashed

BROKEN = """\
description: "fp32 with conv_post swamped in noise (must fail)"
checkpoint: synthetic:tiny
passes: [test-corrupt-conv-post]
gates:
  spectral_correlation: 0.999
"""


def _corrupt_conv_post(model, recipe, ctx):
    """Test-only pass: add noise to the generator's last Conv weight (conv_post)."""
    inits = {t.name: t for t in model.graph.initializer}
    conv = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits][-1]
    init = inits[conv.input[1]]
    arr = numpy_helper.to_array(init)
    noisy = arr + np.random.default_rng(0).normal(0, 3 * arr.std(), arr.shape).astype(arr.dtype)
    init.CopyFrom(numpy_helper.from_array(noisy, init.name))
    return model


@pytest.fixture
def corrupt_pass(monkeypatch):
    spec = passes.PassSpec(f"{__name__}:_corrupt_conv_post")
    monkeypatch.setitem(passes.PASSES, "test-corrupt-conv-post", spec)


def test_metrics_score_identity_perfectly_and_noise_badly():
    rng = np.random.default_rng(0)
    t = np.arange(48000) / 24000
    wave = (0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)
    assert spectral_correlation(wave, wave) == pytest.approx(1.0)
    assert log_mel_distance(wave, wave) == pytest.approx(0.0, abs=1e-9)
    noise = rng.normal(0, 0.3, wave.size).astype(np.float32)
    assert spectral_correlation(wave, noise) < 0.5
    assert log_mel_distance(wave, noise) > 1.0
    d = duration_agreement(np.array([3, 2, 4]), np.array([3, 3, 4]))
    assert d.equal_share == pytest.approx(2 / 3) and d.total_frames_diff == 1


def test_a_broken_variant_fails_the_build_naming_gate_and_value(tmp_path, corrupt_pass):
    recipe_file = tmp_path / "broken.yaml"
    recipe_file.write_text(BROKEN)
    out = tmp_path / "dist"
    with pytest.raises(VerificationError) as err:
        build(load_recipe(recipe_file), out_dir=out)
    assert err.value.gate == "spectral_correlation"
    assert err.value.measured < 0.999 and err.value.threshold == 0.999
    assert "gate spectral_correlation failed: measured" in str(err.value)
    assert not out.exists() or list(out.iterdir()) == []


def test_a_broken_variant_still_passes_export_parity(tmp_path, corrupt_pass):
    """Parity proves the export (fp32); fidelity is what catches the broken variant."""
    recipe_file = tmp_path / "broken.yaml"
    recipe_file.write_text(
        BROKEN.replace("  spectral_correlation: 0.999\n", "  spectral_correlation: 0.0\n")
    )
    result = build(load_recipe(recipe_file), out_dir=tmp_path)
    v = result.manifest.verification.model_dump()
    assert all(p["max_abs_error"] < 1e-4 for p in v["parity"])
    assert min(f["spectral_correlation"] for f in v["fidelity"]) < 0.999


def test_a_crashed_runtime_is_reported_not_raised_through():
    worker = ModelWorker("torch:synthetic:tiny", label="doomed")
    try:
        os.kill(worker._proc.pid, signal.SIGSEGV)
        with pytest.raises(VariantCrashed, match=r"doomed: the runtime crashed \(signal 11\)"):
            worker.run([1, 2, 3], np.zeros((1, 256), np.float32))
    finally:
        worker.close()


def test_a_shipped_graph_that_cannot_run_fails_its_gate():
    recipe = load_recipe("fp32")
    gates = gate_results(recipe, [], [], {"ran": False, "error": "crashed", "items": []})
    shipped = next(g for g in gates if g.gate == "shipped_graph_runs")
    assert not shipped.passed and shipped.item == "crashed"


def test_an_unloadable_model_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(PublisherError, match=r"bad.onnx: cannot load: "):
        ModelWorker(str(bad), label="bad.onnx")


def test_a_worker_sees_the_folder_and_environment_of_its_parent_now(
    tiny_dist, tmp_path, monkeypatch
):
    """Workers fork from a server started with the first: a later one still gets the
    parent's current folder (a relative path) and environment (the cache it writes)."""
    import shutil

    from publisher.model.synthetic import SYNTHETIC_AREA

    with ModelWorker(str(tiny_dist / "fp32" / "onnx" / "model.onnx")):
        pass  # the server is up, started from the folder and environment of before
    shutil.copy(tiny_dist / "fp32" / "onnx" / "model.onnx", tmp_path / "here.onnx")
    monkeypatch.chdir(tmp_path)
    ids = [1, 2, 3]
    with ModelWorker("here.onnx") as worker:
        synthesis, _ = worker.run(ids, np.zeros((1, 256), np.float32))
    assert synthesis.waveform.size > 0
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "new-cache"))
    with ModelWorker("torch:synthetic:tiny"):
        pass
    assert list((tmp_path / "new-cache" / SYNTHETIC_AREA).glob("tiny-*/checkpoint.pt"))


@pytest.fixture
def built(dist_copy):
    return dist_copy


def test_verify_command_rechecks_a_build_and_updates_its_manifest(built):
    manifest_path = built / "fp32" / "manifest.json"
    before = json.loads(manifest_path.read_text())
    before["verification"] = {}
    manifest_path.write_text(json.dumps(before))
    result = CliRunner().invoke(main, ["verify", "--recipe", "fp32", "--out", str(built)])
    assert result.exit_code == 0, result.output
    after = json.loads(manifest_path.read_text())
    assert after["verification"]["passed"] is True
    assert after["files"]["verify.md"]["bytes"] == (built / "fp32" / "verify.md").stat().st_size


def test_verify_refuses_a_model_changed_since_the_build(built, tmp_path):
    import shutil

    copy = tmp_path / "fp32"
    shutil.copytree(built / "fp32", copy)
    model = onnx.load(str(copy / "onnx" / "model.onnx"))
    model.doc_string = "edited"
    onnx.save(model, str(copy / "onnx" / "model.onnx"))
    with pytest.raises(
        PublisherError,
        match=r"model.onnx: changed since it was recorded \(sha256 \w{12}, recorded \w{12}\); "
        "rebuild it",
    ):
        verify_built(load_recipe("fp32"), out_dir=tmp_path)


def test_verify_without_a_build_says_to_build_first(tmp_path):
    result = CliRunner().invoke(main, ["verify", "--recipe", "fp32", "--out", str(tmp_path)])
    assert result.exit_code == 1
    assert "build it first with `publisher build --recipe fp32`" in result.stderr


def test_gates_use_the_real_weight_thresholds_only_for_real_weights(tmp_path) -> None:
    from publisher.verify.measure import FidelityResult

    (tmp_path / "r.yaml").write_text(
        'description: "x"\ngates:\n  spectral_correlation: 0.99\n'
        "  real_weights:\n    spectral_correlation: 0.9\n"
    )
    recipe = load_recipe(str(tmp_path / "r.yaml"))
    fid = [FidelityResult("a", 0.95, 0.01, 1.0, 0, 0.95)]
    shipped = {"ran": True, "items": []}

    def corr_gate(real):
        gates = gate_results(recipe, [], fid, shipped, real=real)
        return next(g for g in gates if g.gate == "spectral_correlation")

    assert not corr_gate(False).passed
    assert corr_gate(True).passed and corr_gate(True).threshold == 0.9


def _verification(*gates: Gate) -> Verification:
    waves = (np.zeros(4, np.float32), np.ones(4, np.float32))
    shipped = {"ran": True, "error": "", "items": []}
    measured = Measured([], [], [], shipped, {"ran": False}, "noise-only", "x", None, waves)
    return Verification(measured, list(gates))


def test_a_verification_with_one_failed_gate_is_not_passed_and_raises_naming_that_gate():
    ok = Gate(gate="parity_max_abs", passed=True, measured=1e-5, threshold=1e-3, item="a")
    bad = Gate(
        gate="spectral_correlation", passed=False, measured=0.91, threshold=0.98, item="long-1"
    )
    v = _verification(ok, bad)
    assert not v.passed
    assert v.to_json()["passed"] is False
    with pytest.raises(VerificationError, match="gate spectral_correlation failed: measured 0.91"):
        v.enforce()
    _verification(ok).enforce()  # all passed: nothing raised


def test_a_verification_as_json_holds_no_waveform_and_its_floor_only_once_set():
    v = _verification(Gate(gate="g", passed=True, measured=1.0, threshold=1.0))
    data = json.loads(json.dumps(v.to_json()))  # plain JSON: the waveforms stayed behind
    assert "floor" not in data and "waves" not in data and data["passed"] is True
    assert data["gates"][0]["gate"] == "g"
    v.floor = {"skipped": True}
    assert v.to_json()["floor"] == {"skipped": True}
