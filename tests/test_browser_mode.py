"""The Space's in-browser mode, server side (space/kokoro_space/browser.py): the plan the
page runs, and how the page's answer is read and held to the server's own run. The page
itself runs in headless Chromium in tests/test_space_browser.py."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

SPACE = Path(__file__).resolve().parent.parent / "space"
if str(SPACE) not in sys.path:
    sys.path.insert(0, str(SPACE))

pytest.importorskip("gradio", reason="the Space tests need gradio (pip install gradio)")

from kokoro_space.browser import (  # noqa: E402
    Request,
    hold_to_server,
    ort_missing,
    parse_results,
    plan,
)
from kokoro_space.engine import InputError  # noqa: E402
from test_space import make_engine, staged  # noqa: E402, F401 - fixture

from publisher.runtime.clients import ORT_WEB_WASM, ORT_WEB_WEBGPU  # noqa: E402


def _b64(wave) -> str:
    return base64.b64encode(np.asarray(wave, dtype="<f4").tobytes()).decode()


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        (json.dumps({"error": "WebAssembly is disabled"}), "could not run the variants: WebAss"),
        (None, "missing or too large"),
    ],
)
def test_an_answer_that_is_not_one_is_one_line(answer, message):
    with pytest.raises(InputError, match=message):
        parse_results(answer, {"fp32"})


def test_each_result_is_read_defensively():
    answer = json.dumps(
        {
            "results": [
                {"name": "fp32", "backend": "wasm", "wave": _b64([0.1, -0.2]), "synth_s": 0.5},
                {"name": "fp32", "wave": _b64([np.nan, 0.0])},
                {"name": "fp32", "wave": "%%% not base64"},
                {"name": "fp32", "error": "out of memory\nstack..."},
                {"name": "evil/../path", "wave": _b64([0.1])},  # not asked for: ignored
                {"name": "fp32", "synth_s": "fast", "durations": [1, "x"], "wave": _b64([0.3])},
            ]
        }
    )
    runs = parse_results(answer, {"fp32"})
    assert len(runs) == 5
    ok, nan, garbage, failed, odd = runs
    assert (
        ok.backend == "wasm" and ok.error is None and ok.wave.tolist() == pytest.approx([0.1, -0.2])
    )
    assert ok.rtf == pytest.approx(0.5 / (2 / 24000))
    assert nan.error == "the browser's output holds NaN or infinite samples"
    assert garbage.error == "the browser sent no usable waveform"
    assert failed.error.startswith("out of memory") and failed.wave is None
    assert odd.synth_s is None and odd.durations is None and odd.wave is not None


def test_missing_onnxruntime_web_names_the_file_and_the_fix(tmp_path):
    for name in ORT_WEB_WASM:
        (tmp_path / name).write_text("x")
    why = ort_missing(tmp_path)
    assert ORT_WEB_WEBGPU[0] in why and "`publisher space` bundles it" in why
    for name in ORT_WEB_WEBGPU:
        (tmp_path / name).write_text("x")
    assert ort_missing(tmp_path) is None


@pytest.fixture
def ort_stub(tmp_path) -> Path:
    for name in (*ORT_WEB_WASM, *ORT_WEB_WEBGPU):
        (tmp_path / name).write_text("stub")
    return tmp_path


def test_the_plan_gives_the_server_inputs_and_where_each_file_is(staged, ort_stub):  # noqa: F811
    engine = make_engine(staged)
    request = Request("Hello there. How are you?", False, "af_heart", 1.0, ("fp32", "quantized"))

    steps = plan(engine, request, ort_stub)

    assert [v["name"] for v in steps["variants"]] == ["fp32", "quantized"]
    assert (
        steps["variants"][0]["url"] == f"/gradio_api/file={(staged / 'onnx/model.onnx').resolve()}"
    )
    assert steps["variants"][0]["io"]["input_ids"] == "input_ids"
    call = steps["calls"][0]
    assert call["ids"][0] == call["ids"][-1] == 0 and len(call["ids"]) > 4
    assert len(call["style"]) == 256 and steps["speed"] == 1.0
    assert steps["ort"]["wasm"].endswith("/ort.wasm.min.mjs") and not steps["skipped"]


def test_a_plan_without_onnxruntime_web_is_refused_with_the_fix(staged, tmp_path):  # noqa: F811
    engine = make_engine(staged)
    with pytest.raises(InputError, match="in-browser mode is not available"):
        plan(engine, Request("Hi.", False, "af_heart", 1.0, ("fp32",)), tmp_path)


def test_a_browser_output_unlike_the_servers_is_flagged(staged):  # noqa: F811
    engine = make_engine(staged)
    request = Request("Hello there. How are you?", False, "af_heart", 1.0, ("fp32", "quantized"))
    variant = engine.catalog().variant("quantized")
    prepared = engine.prepare(request.text)
    same = engine.run(variant, prepared, engine.voice("af_heart"), 1.0)
    noise = np.random.default_rng(0).normal(0, 0.1, same.wave.size)
    answer = json.dumps(
        {
            "results": [
                {
                    "name": "quantized",
                    "wave": _b64(same.wave),
                    "durations": same.durations.tolist(),
                },
                {"name": "fp32", "wave": _b64(noise), "durations": same.durations.tolist()},
            ]
        }
    )
    runs = parse_results(answer, set(request.names))

    hold_to_server(engine, request, runs)

    by_name = {r.name: r for r in runs}
    assert not by_name["quantized"].flagged and by_name["quantized"].match > 0.9
    assert by_name["fp32"].flagged and by_name["fp32"].match < 0.9
    assert by_name["quantized"].server_synth_s > 0


def _mode(engine, votes, ort_folder):
    """The browser mode as the UI builds it: failures through the UI's own status line."""
    import random

    from kokoro_space.browser_ui import BrowserMode
    from kokoro_space.ui import SpaceApp

    return BrowserMode(engine, votes, ort_folder, SpaceApp(engine, votes, random.Random(0))._fail)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", False, "af_heart", 1.0, ["fp32"]), "Nothing to say"),
        (("Hi.", False, "af_heart", 1.0, ["../../etc/passwd"]), "unknown variant"),
        (("Hi.", False, "zz_nobody", 1.0, ["fp32"]), "voice"),
        (("Hi.", False, "af_heart", "fast", ["fp32"]), "speed must be between"),
        (("Hi.", False, "af_heart", 1.0, []), "Choose at least one variant"),
    ],
)
def test_the_browser_button_answers_bad_input_with_one_line(
    staged,  # noqa: F811
    ort_stub,
    tmp_path,
    args,
    message,
):
    from kokoro_space.votes import VoteStore

    mode = _mode(make_engine(staged), VoteStore(tmp_path / "v.sqlite3"), ort_stub)
    plan_json, request, status = mode.start(*args)
    assert plan_json == "" and request is None
    assert message in status and status.startswith("⚠️") and "\n" not in status


def test_scoring_without_a_run_or_with_a_garbled_answer_says_so(staged, ort_stub, tmp_path):  # noqa: F811
    from kokoro_space.votes import VoteStore

    mode = _mode(make_engine(staged), VoteStore(tmp_path / "v.sqlite3"), ort_stub)
    status, rows, _ = mode.score(None, "")
    assert status == "Nothing ran in the browser yet." and rows == []
    request = Request("Hi.", False, "af_heart", 1.0, ("fp32",))
    status, rows, _ = mode.score(request, "{not json")
    assert "not JSON" in status and rows == []


def test_a_variant_the_server_cannot_open_is_left_out_with_the_reason(staged, ort_stub, tmp_path):  # noqa: F811
    import shutil

    folder = tmp_path / "repo"
    shutil.copytree(staged, folder)
    (folder / "onnx" / "model_quantized.onnx").write_bytes(b"not a model")
    request = Request("Hi there.", False, "af_heart", 1.0, ("fp32", "quantized"))

    steps = plan(make_engine(folder), request, ort_stub)

    assert [v["name"] for v in steps["variants"]] == ["fp32"]
    assert steps["skipped"][0].startswith("quantized: the server cannot open it (")


def test_the_server_streams_a_paragraph_sentence_by_sentence_first_audio_early(staged):  # noqa: F811
    from kokoro_space.streaming import stream_sentences

    paragraph = (
        "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue "
        "background. It is easy to tell the depth of a well."
    )
    out = list(stream_sentences(make_engine(staged), paragraph, False, "af_heart", 1.0, ["fp32"]))

    chunks = [audio for audio, _ in out if audio is not None]
    assert len(chunks) == 3 and all(rate == 24000 and pcm.size for rate, pcm in chunks)
    assert [line.split(";")[0] for _, line in out[:3]] == [
        f"fp32: sentence {i} of 3" for i in (1, 2, 3)
    ]
    final = out[-1][1]
    first, total = (float(x) for x in re.findall(r"after ([0-9.]+) s", final))
    assert final.startswith("✓ fp32 streamed 3 sentences") and 0 < first < total


def test_streaming_a_bad_request_is_one_line_and_no_audio(staged):  # noqa: F811
    from kokoro_space.streaming import stream_sentences

    out = list(stream_sentences(make_engine(staged), "   ", False, "af_heart", 1.0, ["fp32"]))
    assert out == [(None, "⚠️ Nothing to say: type some text first.")]


def test_the_report_button_writes_the_file_stage_reads(staged, ort_stub, tmp_path):  # noqa: F811
    from kokoro_space.votes import VoteStore

    from publisher.hub.browser_runs import read_browser_report

    votes = VoteStore(tmp_path / "v.sqlite3")
    mode = _mode(make_engine(staged), votes, ort_stub)
    source = mode.engine.source.label
    votes.record_browser_run(source, "fp32", "wasm, 2 threads", "Chrome 140", 0.99, 1.3, False)
    votes.record_browser_run("another/repo", "fp32", "webgpu", "Chrome 140", 0.5, 0.1, True)
    report = read_browser_report(Path(mode.report_file()))
    assert report["source"] == source
    assert [(r["backend"], r["variant"], r["runs"]) for r in report["rows"]] == [
        ("wasm, 2 threads", "fp32", 1)
    ]


def test_the_report_is_one_file_beside_the_votes_replaced_on_each_click(
    staged,  # noqa: F811
    ort_stub,
    tmp_path,
):
    from kokoro_space.votes import VoteStore

    votes = VoteStore(tmp_path / "space" / "v.sqlite3")
    mode = _mode(make_engine(staged), votes, ort_stub)
    votes.record_browser_run(
        mode.engine.source.label, "fp32", "webgpu", "Chrome 140", 0.99, 1.0, False
    )
    first = mode.report_file()
    votes.record_browser_run(
        mode.engine.source.label, "fp32", "webgpu", "Chrome 140", 0.98, 1.1, False
    )
    second = mode.report_file()
    assert first == second and Path(first).parent == votes.path.parent
    assert json.loads(Path(second).read_text())["rows"][0]["runs"] == 2
    assert sorted(p.name for p in votes.path.parent.iterdir()) == [
        "browser_report.json",
        "v.sqlite3",
    ]
