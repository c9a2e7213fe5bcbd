"""Runtime conformance (issue 17): opset imports, the onnxruntime floor, the matrix and its
claims. The floor checks run real onnxruntime releases in isolated environments (created
once from PyPI, cached in $PUBLISHER_ENVS); the whole matrix on tiny builds runs in
.ci/run (scripts/conformance_matrix.py), not here, to keep this suite short."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from publisher.conformance import matrix
from publisher.passes import PassContext
from publisher.passes.opsets import opsets_pass
from publisher.recipe.loader import load_recipe
from publisher.recipe.schema import Target
from publisher.runtime.errors import PublisherError
from publisher.runtime.runtimes import runtimes


def _tiny_graph(opsets: list[tuple[str, int]]) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets])


def test_the_build_strips_opset_imports_no_node_uses():
    ctx = PassContext(config={})
    model = _tiny_graph([("", 17), ("ai.onnx.ml", 5), ("com.microsoft", 1)])
    out = opsets_pass(model, load_recipe("fp32"), ctx)
    assert [(o.domain, o.version) for o in out.opset_import] == [("", 17)]
    assert ctx.notes["opset_imports_removed"] == ["ai.onnx.ml 5", "com.microsoft 1"]


def test_a_domain_used_only_inside_a_subgraph_or_a_function_keeps_its_import():
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    branch = helper.make_graph(
        [helper.make_node("Gelu", ["x"], ["y"], domain="com.microsoft")], "b", [], [y]
    )
    call = helper.make_node("Twice", ["x"], ["z"], domain="my.funcs")
    body = [helper.make_node("Add", ["a", "a"], ["b"])]
    twice = helper.make_function(
        "my.funcs", "Twice", ["a"], ["b"], body, [helper.make_opsetid("", 17)]
    )
    z = helper.make_tensor_value_info("z", TensorProto.FLOAT, [2])
    nodes = [helper.make_node("If", ["c"], ["y"], then_branch=branch, else_branch=branch), call]
    graph = helper.make_graph(nodes, "g", [cond, x], [y, z])
    opsets = [("", 17), ("com.microsoft", 1), ("my.funcs", 1), ("ai.onnx.ml", 3)]
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets], functions=[twice]
    )
    ctx = PassContext(config={})
    out = opsets_pass(model, load_recipe("fp32"), ctx)
    assert [o.domain for o in out.opset_import] == ["", "com.microsoft", "my.funcs"]
    assert ctx.notes["opset_imports_removed"] == ["ai.onnx.ml 3"]


def test_a_file_above_target_opset_fails_in_one_line():
    recipe = load_recipe("fp32").model_copy(update={"target": Target(opset=17)})
    with pytest.raises(PublisherError, match=r"needs ai\.onnx opset 18, above target\.opset 17"):
        opsets_pass(_tiny_graph([("", 18)]), recipe, PassContext(config={}))


def test_onnxruntime_opset_refusals_become_one_short_line():
    raw = (
        "[ONNXRuntimeError] : 1 : FAIL : Load model from m.onnx failed:/onnxruntime_src/"
        "onnxruntime/core/graph/model_load_utils.h:46 void onnxruntime::f(const std::string&, "
        "int) ONNX Runtime only *guarantees* support for models stamped with official released "
        "onnx opset versions. Opset 5 is under development and support for this is limited. "
        "Current official support for domain ai.onnx.ml is till opset 3."
    )
    assert matrix.readable(raw) == (
        "the file imports ai.onnx.ml opset 5; this onnxruntime supports ai.onnx.ml up to opset 3"
    )
    other = "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : /onnxruntime_src/x.cc:12 void f(int) Nope"
    assert matrix.readable(other) == "[ONNXRuntimeError] : 9 : NOT_IMPLEMENTED : Nope"


def test_claims_follow_the_floor_and_the_export_shape():
    from publisher.runtime.runtimes import Claim

    by_name = {r.name: r for r in runtimes()}
    assert by_name["onnxruntime 1.16.3"].claims(Claim("dynamic", "1.16.3"))
    assert not by_name["onnxruntime 1.16.3"].claims(Claim("dynamic", "1.20.1"))
    assert by_name["onnxruntime 1.20.1"].claims(Claim("bucket", "1.20.1"))
    assert by_name["kokoro-onnx 0.6.1"].claims(Claim("dynamic", "1.16.3"))
    assert not by_name["kokoro-onnx 0.6.1"].claims(Claim("bucket", "1.16.3"))
    assert by_name["fastkokoro 0.7.0"].claims(Claim("bucket", "1.16.3"))
    assert not by_name["sherpa-onnx 2.0.1"].claims(Claim("dynamic", "1.16.3"))
    for browser in ("kokoro-js 1.2.1", "onnxruntime-web 1.30.0"):
        assert by_name[browser].claims(Claim("dynamic", "1.16.3", kokoro_js_dtype="q8"))
        assert not by_name[browser].claims(Claim("dynamic", "1.16.3"))


NAMES = {"input_ids": "input_ids", "style": "style", "speed": "speed", "waveform": "waveform"}


@pytest.mark.parametrize(
    ("shape", "io", "path", "dtype"),
    [
        ("dynamic", NAMES, "onnx/model.onnx", "fp32"),
        ("dynamic", NAMES, "onnx/model_quantized.onnx", "q8"),
        ("dynamic", NAMES, "onnx/model_q4f16.onnx", "q4f16"),
        # client-contracts.md: q8f16 and uint8f16 have no dtype that reaches them
        ("dynamic", NAMES, "onnx/model_q8f16.onnx", None),
        ("dynamic", NAMES, "onnx/model_uint8f16.onnx", None),
        ("bucket", NAMES, "onnx/model_b48.onnx", None),
        ("dynamic", NAMES | {"input_ids": "tokens"}, "onnx/model.onnx", None),
        ("dynamic", NAMES | {"waveform": "audio"}, "onnx/model.onnx", None),
        ("dynamic", NAMES, "kokoro-v1.0.onnx", None),
        ("dynamic", NAMES, "onnx/sub/model.onnx", None),
    ],
)
def test_kokoro_js_reaches_a_file_only_through_its_dtype_names(shape, io, path, dtype):
    from publisher.runtime.clients import kokoro_js_dtype

    assert kokoro_js_dtype(shape, io, path) == dtype


@pytest.fixture(scope="module")
def ml5_file(tiny_dist, tmp_path_factory) -> Path:
    """The tiny fp32 build with an unused ai.onnx.ml opset 5 import added, as some
    converters leave it (sherpa-onnx 1791, kokoro-onnx 181)."""
    model = onnx.load(str(tiny_dist / "fp32" / "onnx" / "model.onnx"))
    model.opset_import.append(helper.make_opsetid("ai.onnx.ml", 5))
    path = tmp_path_factory.mktemp("ml5") / "model.onnx"
    onnx.save(model, str(path))
    return path


def test_a_newer_ml_import_fails_the_1_16_3_floor_and_passes_1_20_1(ml5_file, tiny):
    with pytest.raises(PublisherError) as err:
        matrix.check_floor(ml5_file, "1.16.3", tiny.voices, tiny.config)
    assert str(err.value) == (
        "model.onnx does not run in onnxruntime 1.16.3 (target.min_onnxruntime): the file "
        "imports ai.onnx.ml opset 5; this onnxruntime supports ai.onnx.ml up to opset 3; "
        "raise target.min_onnxruntime or drop what needs a newer runtime"
    )
    assert matrix.check_floor(ml5_file, "1.20.1", tiny.voices, tiny.config)["runtime"] == (
        "onnxruntime 1.20.1"
    )


def test_a_floor_pass_is_stored_so_the_same_bytes_never_run_there_again(
    ml5_file, tiny, tmp_path, monkeypatch
):
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))  # nothing stored yet
    first = matrix.check_floor(ml5_file, "1.20.1", tiny.voices, tiny.config)
    assert first["seconds"] > 0 and "same_file_as_before" not in first
    real, ran = matrix.probe, []
    monkeypatch.setattr(matrix, "probe", lambda *args: ran.append(args[0].name) or real(*args))
    again = matrix.check_floor(ml5_file, "1.20.1", tiny.voices, tiny.config)
    assert again == {"runtime": "onnxruntime 1.20.1", "seconds": 0.0, "same_file_as_before": True}
    assert ran == [] and list((tmp_path / "cache" / "references").glob("*/entry.npz"))
    for _ in range(2):  # a failure is not kept: the file runs there each time
        with pytest.raises(PublisherError, match="does not run in onnxruntime 1.16.3"):
            matrix.check_floor(ml5_file, "1.16.3", tiny.voices, tiny.config)
    other = onnx.load(str(ml5_file))
    onnx.helper.set_model_props(other, {"note": "other bytes"})
    onnx.save(other, str(tmp_path / "other.onnx"))
    matrix.check_floor(tmp_path / "other.onnx", "1.20.1", tiny.voices, tiny.config)
    assert ran == ["onnxruntime 1.16.3", "onnxruntime 1.16.3", "onnxruntime 1.20.1"]


def _static_graph(path: Path) -> Path:
    """A bucket-shaped file: static token width, float16 speed, metadata."""
    ins = [
        helper.make_tensor_value_info("ids", TensorProto.INT64, [1, 48]),
        helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
        helper.make_tensor_value_info("speed", TensorProto.FLOAT16, [1]),
        helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"]),
    ]
    outs = [
        helper.make_tensor_value_info("wave", TensorProto.FLOAT, [28800]),
        helper.make_tensor_value_info("dur", TensorProto.INT64, [1, 48]),
    ]
    nodes = [
        helper.make_node("Cast", ["ids"], ["f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["f"], ["s"], keepdims=0),
        helper.make_node("Expand", ["s", "n"], ["wave"]),
        helper.make_node("Identity", ["ids"], ["dur"]),
    ]
    n = helper.make_tensor("n", TensorProto.INT64, [1], [28800])
    graph = helper.make_graph(nodes, "g", ins, outs, initializer=[n])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    helper.set_model_props(model, {"fastkokoro.fixed_alignment_frames": "48"})
    onnx.save(model, str(path))
    return path


def test_the_floor_reads_a_files_io_as_an_onnxruntime_session_reports_it(tiny_dist, tmp_path):
    import onnxruntime as ort

    files = [
        tiny_dist / "fp32" / "onnx" / "model.onnx",
        tiny_dist / "quantized" / "onnx" / "model_quantized.onnx",
        _static_graph(tmp_path / "b48.onnx"),
    ]
    for path in files:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        header = matrix.GraphIO(path)
        for ours, theirs in [
            (header.get_inputs(), session.get_inputs()),
            (header.get_outputs(), session.get_outputs()),
        ]:
            assert [(a.name, a.type, a.shape) for a in ours] == [
                (a.name, a.type, a.shape) for a in theirs
            ], path.name
        assert (
            header.get_modelmeta().custom_metadata_map
            == session.get_modelmeta().custom_metadata_map
        )


def test_every_build_ran_in_its_floor_and_carries_no_unused_import(tiny_dist):
    for name in ("fp32", "quantized", "kokoro-v1.0"):
        manifest = json.loads((tiny_dist / name / "manifest.json").read_text())
        assert manifest["verification"]["floor"]["runtime"] == "onnxruntime 1.16.3"
        model = onnx.load(str(tiny_dist / name / manifest["model"]), load_external_data=False)
        used = {n.domain for n in model.graph.node}
        assert {o.domain for o in model.opset_import} <= used | {""}


def _fake_probe(outcomes: dict[str, dict], save: bool = True):
    """Each runtime answers as ``outcomes`` says (else ok); a feeds runtime saves what a
    faithful runtime would: the reference run itself, with its durations."""
    import numpy as np

    def probe(runtime, request, scratch):
        out = outcomes.get(runtime.name, {"ok": True, "samples": 100, "peak": 0.5})
        if save and out["ok"] and runtime.kind in matrix.FEEDS_KINDS:
            wave = np.load(scratch / "reference.npy")
            saved = matrix._saved(runtime, scratch)
            wave.astype("<f4").tofile(saved) if runtime.npm else np.save(saved, wave)
            record = json.loads((scratch / "reference.json").read_text())
            Path(f"{saved}.dur.json").write_text(json.dumps(record.get("durations", [])))
        return out | {"seconds": 0.1, "env_seconds": 0.0}

    return probe


def test_the_matrix_marks_failures_known_failures_and_unclaimed_cells(dist_copy, monkeypatch):
    folder = dist_copy / "quantized"
    manifest_path = folder / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["resolved_recipe"]["target"] = {
        "min_onnxruntime": "1.17.3",
        "opset": None,
        "known_failures": {"kokoro-onnx 0.6.1": "documented: issue 123"},
    }
    manifest_path.write_text(json.dumps(manifest))
    bad = {"ok": False, "error": "the runtime crashed (signal 11)"}
    monkeypatch.setattr(
        matrix, "probe", _fake_probe({"onnxruntime 1.20.1": bad, "kokoro-onnx 0.6.1": bad})
    )
    result = matrix.run_matrix(folder)
    cells = result["cells"]
    assert cells["onnxruntime 1.16.3"] == {"status": "not claimed"}
    assert cells["onnxruntime 1.17.3"]["status"] == "ok"
    assert cells["onnxruntime 1.17.3"]["match"] >= 1.0  # heard: the saved run was compared
    assert cells["onnxruntime 1.20.1"] == {
        "status": "fails",
        "detail": "the runtime crashed (signal 11)",
        "seconds": 0.1,
    }
    assert cells["kokoro-onnx 0.6.1"]["status"] == "known failure"
    assert cells["fastkokoro 0.7.0"] == {"status": "not claimed"}
    assert cells["sherpa-onnx 2.0.1"]["status"] == "ok"  # quantized carries a bundle
    assert cells["kokoro-js 1.2.1"]["status"] == "ok"  # dtype q8 reaches it
    assert cells["onnxruntime-web 1.30.0"]["status"] == "ok"
    assert matrix.failures("quantized", result) == [
        "quantized in onnxruntime 1.20.1: the runtime crashed (signal 11)"
    ]
    assert json.loads(manifest_path.read_text())["conformance"]["cells"] == cells


def test_the_card_shows_the_matrix_each_build_recorded(dist_copy, monkeypatch, tmp_path):
    from huggingface_hub import ModelCard

    from publisher.hub.stage import stage
    from publisher.runtime.runtimes import current_onnxruntime

    bad = {"ok": False, "error": "Could not find an implementation for ConvInteger(10)"}
    monkeypatch.setattr(matrix, "probe", _fake_probe({"kokoro-onnx 0.6.1": bad}))
    matrix.run_matrix(dist_copy / "quantized")
    staged = stage([dist_copy / "fp32", dist_copy / "quantized"], tmp_path / "repo")
    text = ModelCard((staged.folder / "README.md").read_text()).text
    names = [
        "onnxruntime 1.16.3",
        "onnxruntime 1.17.3",
        "onnxruntime 1.20.1",
        f"onnxruntime {current_onnxruntime()}",
        "fastkokoro 0.7.0",
        "kokoro-js 1.2.1",
        "kokoro-onnx 0.6.1",
        "onnxruntime-web 1.30.0",
        "sherpa-onnx 2.0.1",
    ]
    assert "## Works in" in text and f"| file | {' | '.join(names)} |" in text
    special = {"kokoro-onnx 0.6.1": "fails", "fastkokoro 0.7.0": "-"}
    quantized = [special.get(n, "ok") for n in names]
    assert f"| `onnx/model_quantized.onnx` | {' | '.join(quantized)} |" in text
    assert f"| `onnx/model.onnx` | {' | '.join(['not run'] * len(names))} |" in text
    row = next(line for line in text.splitlines() if line.startswith("| kokoro-onnx (Python)"))
    assert "`onnx/model.onnx`" in row  # the file that fails in kokoro-onnx is not offered


def test_a_missing_env_is_one_line_naming_pypi(monkeypatch, tmp_path):
    from publisher.conformance.envs import environment

    monkeypatch.setenv("PUBLISHER_ENVS", str(tmp_path / "envs"))
    with pytest.raises(PublisherError, match=r"cannot create the nope environment \(.*PyPI"):
        environment("nope", ("publisher-no-such-package-0123==9.9.9",))
    left = [p.name for p in (tmp_path / "envs").iterdir() if p.suffix != ".lock"]
    assert left == []  # nothing half-made (the lock file says nothing about the env)


def test_two_processes_needing_one_missing_env_install_it_once(monkeypatch, tmp_path):
    import threading
    import time

    from publisher.conformance import envs

    monkeypatch.setenv("PUBLISHER_ENVS", str(tmp_path / "envs"))
    installs = []

    def install(folder, name, packages):
        installs.append(folder)
        time.sleep(0.5)  # long enough for the other caller to find it missing
        (folder / "bin").mkdir()
        (folder / "bin" / "python").write_text("")

    monkeypatch.setattr(envs, "_install_pip", install)
    roots, seconds = [], []

    def need() -> None:
        root, took = envs.environment("one", ("pkg==1",))
        roots.append(root)
        seconds.append(took)

    callers = [threading.Thread(target=need) for _ in range(2)]
    for t in callers:
        t.start()
    for t in callers:
        t.join()
    assert len(installs) == 1
    assert roots == [tmp_path / "envs" / "one"] * 2 and sorted(seconds)[0] == 0.0
    assert (tmp_path / "envs" / "one" / "bin" / "python").exists()


def _speechlike(seed: int, n: int = 24000):
    """A 1 s harmonic tone with a slow envelope and a little noise (a fixed melody)."""
    import numpy as np

    t = np.arange(n) / 24000
    pitch = 120 + 40 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / 24000
    tone = sum(np.sin(k * phase) / k for k in range(1, 8)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    noise = np.random.default_rng(seed).normal(0, 0.02, n)
    return (0.2 * tone + noise).astype("float32")


@pytest.mark.parametrize("npm", [False, True])
def test_a_runtime_that_runs_but_garbles_fails_its_cell(tmp_path, npm):
    import numpy as np

    from publisher.runtime.runtimes import Runtime

    rt = Runtime(
        "onnxruntime-web 1.30.0" if npm else "onnxruntime 9.9.9", "onnxruntime", (), npm=npm
    )
    reference, again = _speechlike(1), _speechlike(2)  # two runs of a graph with noise
    np.save(tmp_path / "reference.npy", reference)
    floor = float(np.corrcoef(np.abs(np.fft.rfft(reference)), np.abs(np.fft.rfft(again)))[0, 1])
    (tmp_path / "reference.json").write_text(json.dumps({"floor": floor}))
    saved = matrix._saved(rt, tmp_path)
    ran = {"ok": True, "samples": 24000, "peak": 0.5, "seconds": 1.0, "env_seconds": 0.0}

    def write(wave):
        wave.astype("<f4").tofile(saved) if npm else np.save(saved, wave)

    write(_speechlike(3))  # the same melody, other noise: the same audio
    assert matrix.heard(rt, ran, tmp_path)["match"] >= 0.9
    write(np.random.default_rng(4).normal(0, 0.2, 24000).astype("float32"))  # garbled
    out = matrix.heard(rt, ran, tmp_path)
    assert out["ok"] is False and out["match"] < 0.5
    assert "it runs but does not sound like onnxruntime" in out["error"]


def test_a_feeds_cell_that_saves_no_waveform_fails_instead_of_passing_unheard(
    dist_copy, monkeypatch
):
    monkeypatch.setattr(matrix, "probe", _fake_probe({}, save=False))
    cells = matrix.run_matrix(dist_copy / "quantized")["cells"]
    for name in ("onnxruntime 1.17.3", "onnxruntime-web 1.30.0"):
        assert cells[name]["status"] == "fails"
        assert cells[name]["detail"].startswith("it ran but saved no waveform to hear")
    assert cells["kokoro-onnx 0.6.1"]["status"] == "ok"  # text cells are not heard here


def _tokens(durations: list[int], seed: int = 0):
    """One steady tone per token, ``d`` frames of 600 samples each (pitch per token)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    parts = []
    for k, d in enumerate(durations):
        t = np.arange(d * 600) / 24000
        parts.append(0.3 * np.sin(2 * np.pi * (150 + 60 * k) * t) + rng.normal(0, 0.01, t.size))
    return np.concatenate(parts).astype("float32")


def test_heard_reads_the_test_on_the_reference_token_timeline_when_durations_drift():
    from publisher.runtime.metrics import spectral_correlation

    ref_d = [3, 5, 4, 6, 5, 4, 3, 5]
    drifted = [3, 6, 4, 6, 5, 5, 3, 5]  # two tokens a frame longer: all after them shifts
    ref, test = _tokens(ref_d), _tokens(drifted, seed=1)
    aligned = matrix.heard_correlation(ref, ref_d, test, drifted)
    plain = spectral_correlation(ref, test)  # frame by frame, as if nothing drifted
    assert aligned >= 0.95 and plain < aligned - 0.1, (aligned, plain)
    other = _tokens([5, 3, 6, 4, 3, 6, 5, 3], seed=2)  # other tones: read aligned, still unlike
    assert matrix.heard_correlation(ref, ref_d, other, drifted) < aligned - 0.1


def test_a_missing_npm_package_is_one_line_and_leaves_nothing(monkeypatch, tmp_path):
    from publisher.conformance.envs import environment

    monkeypatch.setenv("PUBLISHER_ENVS", str(tmp_path / "envs"))
    with pytest.raises(PublisherError, match=r"cannot create the nope environment \(npm"):
        environment("nope", ("publisher-no-such-package-0123@9.9.9",), npm=True)
    assert [p.name for p in (tmp_path / "envs").iterdir() if p.suffix != ".lock"] == []


def test_the_npm_runtimes_without_node_are_one_line(monkeypatch, tmp_path):
    from publisher.conformance import envs

    monkeypatch.setenv("PUBLISHER_ENVS", str(tmp_path / "envs"))
    monkeypatch.setattr(envs.shutil, "which", lambda name: None)
    with pytest.raises(PublisherError, match=r"need node and npm on PATH \(apt-get install"):
        envs.environment("kokoro-js 1.2.1", ("kokoro-js@1.2.1",), npm=True)
    assert not (tmp_path / "envs").exists() or list((tmp_path / "envs").iterdir()) == []


def test_the_browser_cell_without_chromium_is_one_line(dist_copy, monkeypatch, tmp_path):
    monkeypatch.setenv("PUBLISHER_CHROMIUM", str(tmp_path / "no-chromium"))
    monkeypatch.setattr(matrix, "probe", _fake_probe({}))
    with pytest.raises(PublisherError, match=r"headless Chromium and there is none at .*"):
        matrix.run_matrix(dist_copy / "quantized")


def test_the_probes_need_nothing_of_publisher():
    lines = Path(matrix.PROBE).read_text().splitlines()
    imports = [ln.strip() for ln in lines if ln.strip().startswith(("import ", "from "))]
    assert imports and not [ln for ln in imports if "publisher" in ln]
    node = Path(matrix.PROBE_NODE).read_text()
    found = re.findall(r'(?:from|import\()\s*"([^"]+)"', node)
    assert "kokoro-js" in found and "onnxruntime-web" not in found  # served, not imported
    assert not [m for m in found if "publisher" in m or m.startswith(".")]


# ------------------------------------------------------------------ sherpa-onnx bundle
def test_the_sherpa_bundle_has_what_sherpa_onnx_2_0_1_reads(tiny_dist, tiny):
    """Checked against shared/reference/client-contracts.md, not against our writer."""
    import numpy as np

    manifest = json.loads((tiny_dist / "fp32" / "manifest.json").read_text())
    bundle = tiny_dist / "fp32" / manifest["sherpa_onnx"]
    assert manifest["sherpa_onnx"] == "sherpa-onnx/fp32"
    meta = {
        p.key: p.value
        for p in onnx.load(str(bundle / "model.onnx"), load_external_data=False).metadata_props
    }
    speakers = sorted(tiny.voices)
    assert meta["sample_rate"] == "24000" and meta["has_espeak"] == "1"
    assert meta["style_dim"] == "510,1,256" and meta["version"] == "2"
    assert meta["n_speakers"] == str(len(speakers))
    assert meta["speaker_names"].split(",") == speakers
    raw = np.fromfile(bundle / "voices.bin", dtype="<f4")
    assert raw.size == len(speakers) * 510 * 256
    k = speakers.index("af_heart")
    np.testing.assert_array_equal(raw.reshape(-1, 510, 256)[k], tiny.voices["af_heart"][:, 0])
    tokens = (bundle / "tokens.txt").read_text(encoding="utf-8").splitlines()
    vocab = tiny.config["vocab"]
    assert len(tokens) == len(vocab)
    for line in tokens:
        sym, _, idx = line.rpartition(" ")
        assert vocab[sym if sym.strip() else " "] == int(idx), line
    for name in ("phontab", "phonindex", "phondata", "intonations"):
        assert (bundle / "espeak-ng-data" / name).is_file()
    us = (bundle / "lexicon-us-en.txt").read_text(encoding="utf-8").splitlines()
    word, *phones = next(line for line in us if line.startswith("hello ")).split(" ")
    assert word == "hello" and all(len(p) == 1 and p in vocab for p in phones)
    assert len(us) > 100_000


def test_sherpa_onnx_2_0_1_synthesizes_from_the_bundle(tiny_dist, tmp_path):
    """PyPI sherpa-onnx 2.0.1 in its own environment, offline (synthetic weights: samples
    come out, they do not speak)."""
    manifest = json.loads((tiny_dist / "quantized" / "manifest.json").read_text())
    runtime = next(r for r in runtimes() if r.kind == "sherpa-onnx")
    request = {"bundle": str(tiny_dist / "quantized" / manifest["sherpa_onnx"])}
    out = matrix.probe(runtime, request | {"text": "Hello there.", "sid": 0}, tmp_path)
    assert out["ok"], out
    assert out["sample_rate"] == 24000 and out["samples"] > 0


def test_sherpa_onnx_gets_the_lexicon_of_its_voices_accent(tiny, tiny_dist, tmp_path):
    """One lexicon per sherpa-onnx config, the voice's accent's: a British voice's request
    names the UK lexicon, and sherpa-onnx speaks with it (a missing one is an error)."""
    from publisher.runtime.clients import sherpa_lexicon_for

    assert sherpa_lexicon_for("bf_emma") == "lexicon-gb-en.txt"
    assert sherpa_lexicon_for("af_heart") == "lexicon-us-en.txt"
    fp32 = tiny_dist / "fp32"
    model = fp32 / "onnx" / "model.onnx"
    requests = matrix.prepare_requests(model, tiny.voices, tiny.config, tmp_path / "r")
    voice = requests["onnxruntime"]["voice"]
    assert requests["sherpa-onnx"]["lexicon"] == sherpa_lexicon_for(voice)
    runtime = next(r for r in runtimes() if r.kind == "sherpa-onnx")
    bundle = fp32 / json.loads((fp32 / "manifest.json").read_text())["sherpa_onnx"]
    request = {"bundle": str(bundle), "text": "Hello there.", "sid": 0}
    out = matrix.probe(runtime, request | {"lexicon": "lexicon-gb-en.txt"}, tmp_path)
    assert out["ok"], out
    out = matrix.probe(runtime, request | {"lexicon": "lexicon-xx-en.txt"}, tmp_path)
    assert not out["ok"]


def test_an_environment_locked_by_another_process_too_long_is_one_line(monkeypatch, tmp_path):
    from filelock import FileLock

    from publisher.conformance import envs

    monkeypatch.setenv("PUBLISHER_ENVS", str(tmp_path / "envs"))
    monkeypatch.setattr(envs, "INSTALL_TIMEOUT_S", -59)  # wait one second, not 16 minutes
    (tmp_path / "envs").mkdir()
    held = FileLock(tmp_path / "envs" / ".one.lock")  # another process is installing it
    with held, pytest.raises(PublisherError, match=r"another process has been creating the one"):
        envs.environment("one", ("pkg==1",))
    assert [p.name for p in (tmp_path / "envs").iterdir()] == [".one.lock"]


def _heard_lines(voices=("af_heart", "am_adam"), count=2):
    """Speech-set sentences in two of the tiny checkpoint's voices."""
    from publisher.conformance.heard import Line
    from publisher.runtime.corpus import load_corpus

    items = load_corpus().speech[:count]
    return [Line(item, voices[k % len(voices)]) for k, item in enumerate(items)]


@pytest.mark.parametrize("kind", ["kokoro-onnx", "sherpa-onnx", "kokoro-js"])
def test_a_text_runtime_speaks_each_heard_sentence_from_text_and_saves_it(
    kind, tiny, tiny_dist, tmp_path
):
    """The real runtime in its own environment speaks every line of the request's heard
    part through its own front end and saves it where publisher reads it back."""
    from publisher.conformance import heard
    from publisher.runtime.clients import kokoro_js_dtype

    folder = tiny_dist / "quantized"
    manifest = json.loads((folder / "manifest.json").read_text())
    model = folder / manifest["model"]
    dtype = kokoro_js_dtype("dynamic", manifest["io"], manifest["model"])
    claim = matrix.Claim("dynamic", "1.16.3", sherpa_bundle=True, kokoro_js_dtype=dtype)
    bundle = folder / manifest["sherpa_onnx"]
    requests = matrix.prepare_requests(
        model, tiny.voices, tiny.config, tmp_path / "r", bundle, claim
    )
    lines = _heard_lines()
    part = heard.heard_request(lines, sorted(tiny.voices), tmp_path / "heard")
    runtime = next(r for r in runtimes() if r.kind == kind)
    out = matrix.probe(runtime, requests[kind] | {"heard": part}, tmp_path / "r")
    assert out["ok"], out
    assert out["heard_lines"] == len(lines)
    waves = heard.read_waves(tmp_path / "heard", len(lines))
    assert [rate for _, rate in waves] == [24000, 24000]
    assert all(wave.size > 2400 and np.isfinite(wave).all() for wave, _ in waves)
    assert waves[0][0].size != waves[1][0].size  # two different sentences were spoken


def test_our_heard_figures_are_the_mean_of_two_runs_whose_noise_differs(
    tiny, tiny_dist, monkeypatch
):
    """The shipped graph draws fresh noise every run, so one run of ours is one sample:
    ours is the mean of OURS_RUNS runs, each of the same sentences."""
    from publisher.conformance import heard

    folder = tiny_dist / "quantized"
    model = folder / json.loads((folder / "manifest.json").read_text())["model"]
    scored = []

    def score(lines, waves):
        scored.append([w.copy() for w, _ in waves])
        return {"sentences": len(lines), "wer": [0.2, 0.3][len(scored) - 1], "dnsmos": 3.0}

    monkeypatch.setattr(heard, "score", score)
    lines = _heard_lines()
    got = heard.ours(model, tiny, lines)
    assert heard.OURS_RUNS == len(scored) == 2
    assert got == {"sentences": 2, "wer": 0.25, "dnsmos": 3.0, "runs": 2}
    first, second = scored
    assert [w.size for w in first] == [w.size for w in second]  # the same sentences
    assert not np.array_equal(first[0], second[0])  # but not the same samples


def test_the_heard_set_is_the_speech_sets_sentences_with_us_phonemes_in_two_voices():
    from publisher.conformance import heard
    from publisher.runtime.corpus import load_corpus

    corpus = load_corpus()
    lines = heard.heard_lines()
    assert [line.text for line in lines] == [item.text for item in corpus.speech]
    assert [line.voice for line in lines[:3]] == ["af_heart", "am_michael", "af_heart"]
    speech = {item.text: item for item in corpus.speech}
    for line in lines:  # where the speech set is American too, the phonemes are the same
        if speech[line.text].lang == "en-us":
            assert line.item.phonemes == speech[line.text].phonemes
        assert line.item.lang == "en-us"


def test_a_text_cell_heard_above_the_margin_fails_naming_both_figures(dist_copy, monkeypatch):
    """On weights that speak (the speech tools stubbed: tiny weights do not), each claimed
    text cell is asked to speak the heard sentences, scored beside our own phonemes, and
    fails when its WER is above ours + target.heard_wer_margin; the card shows both."""
    from publisher.conformance import heard

    monkeypatch.setattr(heard, "VOICES", ("af_heart", "am_adam"))
    monkeypatch.setattr(heard, "skip_reason", lambda ckpt: None)
    asked = {}

    def probe(runtime, request, scratch):
        part = request.get("heard")
        asked[runtime.name] = part
        if part:  # a faithful runtime: one wave per line, then rates.json
            for k in range(len(part["lines"])):
                np.save(Path(part["dir"]) / f"{k}.npy", np.full(4800 + k, 0.1, np.float32))
            (Path(part["dir"]) / "rates.json").write_text(json.dumps([24000] * len(part["lines"])))
        return _fake_probe({})(runtime, request, scratch)

    wers = {"kokoro-onnx-0.6.1": 0.27, "sherpa-onnx-2.0.1": 0.31, "kokoro-js-1.2.1": 0.1}

    def score(lines, waves):
        return {"sentences": len(lines), "wer": wers[scoring[0]], "dnsmos": 3.1}

    scoring = []
    monkeypatch.setattr(matrix, "probe", probe)
    monkeypatch.setattr(heard, "ours", lambda model, ckpt, lines: {"wer": 0.2, "dnsmos": 3.2})
    real_read = heard.read_waves
    monkeypatch.setattr(
        heard,
        "read_waves",
        lambda folder, n: scoring.insert(0, folder.name) or real_read(folder, n),
    )
    monkeypatch.setattr(heard, "score", score)
    result = matrix.run_matrix(dist_copy / "quantized")
    cells = result["cells"]
    sentences = len(heard.heard_lines())
    assert {n for n, part in asked.items() if part} == {
        "kokoro-onnx 0.6.1",
        "sherpa-onnx 2.0.1",
        "kokoro-js 1.2.1",
    }  # the text cells, not the feeds cells
    assert asked["kokoro-onnx 0.6.1"]["lines"][1]["voice"] == "am_adam"
    assert cells["kokoro-onnx 0.6.1"]["status"] == "ok"  # 0.27 <= 0.20 + 0.08
    assert cells["kokoro-onnx 0.6.1"]["heard"] == {
        "sentences": sentences,
        "wer": 0.27,
        "dnsmos": 3.1,
        "ours_wer": 0.2,
        "ours_dnsmos": 3.2,
    }
    assert cells["sherpa-onnx 2.0.1"]["status"] == "fails"
    assert cells["sherpa-onnx 2.0.1"]["detail"] == (
        f"sherpa-onnx 2.0.1 through its own front end: WER 0.310 on {sentences} sentences, "
        "above ours 0.200 + 0.08 (our phonemes, same file, same sentences and voices)"
    )
    assert result["heard"]["ours"] == {"wer": 0.2, "dnsmos": 3.2}
    assert matrix.failures("quantized", result) == [
        f"quantized in sherpa-onnx 2.0.1: {cells['sherpa-onnx 2.0.1']['detail']}"
    ]
    from publisher.hub.stage import stage

    card = stage([dist_copy / "quantized"], dist_copy.parent / "repo").folder / "README.md"
    text = card.read_text()
    assert "ok, WER 0.27 (ours 0.20)" in text and f"spoke\n{sentences} Harvard" in text


def test_synthetic_weights_run_the_text_cells_unheard_and_say_so(dist_copy, monkeypatch):
    asked = []

    def probe(runtime, request, scratch):
        asked.append("heard" in request)
        return _fake_probe({})(runtime, request, scratch)

    monkeypatch.setattr(matrix, "probe", probe)
    result = matrix.run_matrix(dist_copy / "fp32")
    assert not any(asked)
    assert result["heard"] == {
        "skipped": "synthetic weights do not speak: the text cells are run, not heard"
    }
    assert all("heard" not in cell for cell in result["cells"].values())
