"""The Gradio Space (space/): compare, blind votes, bad inputs, Hub source, `publisher space`.

The app runs over a staged folder of two tiny synthetic variants (fp32 + quantized), launched
on 127.0.0.1 and driven through gradio_client; a few checks call its handlers directly.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import warnings
import wave
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
SPACE = REPO / "space"
if str(SPACE) not in sys.path:
    sys.path.insert(0, str(SPACE))

gr = pytest.importorskip("gradio", reason="the Space tests need gradio (pip install gradio)")
gradio_client = pytest.importorskip("gradio_client", reason="the Space tests need gradio_client")

from kokoro_space.engine import Engine, Settings  # noqa: E402
from kokoro_space.isolation import HEADERS, launch_options  # noqa: E402
from kokoro_space.source import (  # noqa: E402
    FIXED_FILES,
    HubSource,
    LocalSource,
    SourceError,
    parse_repo_spec,
    safe_relpath,
    source_from_env,
)
from kokoro_space.ui import build_demo  # noqa: E402
from kokoro_space.votes import VoteStore  # noqa: E402

try:  # tests/hub_server.py: a local Hub for the KOKORO_REPO and `publisher space` tests
    import support.hub_server as hub_server
except ImportError:  # pragma: no cover - those tests skip
    hub_server = None
needs_hub = pytest.mark.skipif(hub_server is None, reason="tests/hub_server.py is missing")

# gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix
pytestmark = [
    pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing"),
    pytest.mark.filterwarnings("ignore::DeprecationWarning:httpx2"),  # huggingface_hub uploads
]

VARIANTS = ("fp32", "quantized")
SENTENCE = "Hello world. This is a small test of the speech models."
_STAGED: dict[str, Path] = {}


def staged_folder(request: pytest.FixtureRequest) -> Path:
    """fp32 + quantized from synthetic:tiny, staged (once per test process).

    The builds come from conftest's session ``tiny_dist`` when it exists (shared with the
    other build tests), else they are built here.
    """
    if "folder" not in _STAGED:
        from publisher.hub.stage import stage

        tmp_path_factory = request.getfixturevalue("tmp_path_factory")
        try:
            dist = request.getfixturevalue("tiny_dist")
        except pytest.FixtureLookupError:
            from publisher.build import build
            from publisher.recipe.loader import load_recipe

            dist = tmp_path_factory.mktemp("space_dist")
            for name in VARIANTS:
                build(load_recipe(name), checkpoint="synthetic:tiny", out_dir=dist)
        dest = tmp_path_factory.mktemp("space_repo") / "repo"
        _STAGED["folder"] = stage([dist / n for n in VARIANTS], dest, repo_id="me/kokoro").folder
    return _STAGED["folder"]


@pytest.fixture(scope="session")
def staged(request) -> Path:
    return staged_folder(request)


@pytest.fixture(scope="session", autouse=True)
def _gradio_env(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GRADIO_ANALYTICS_ENABLED", "False")
        mp.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio_tmp")))
        mp.setenv("KOKORO_VOTES_DB", str(tmp_path_factory.mktemp("votes") / "default.sqlite3"))
        yield


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def launched(demo, download_dir: Path):
    """The demo served on 127.0.0.1:<free port>, with a gradio_client connected; closed after.
    gradio_client downloads each file through a new folder under ``tempfile.gettempdir()``
    and leaves it there empty (about 30 a test run in /tmp): here they go under
    ``download_dir``."""
    scratch = download_dir / "client-tmp"
    scratch.mkdir(parents=True, exist_ok=True)
    patch = pytest.MonkeyPatch()
    patch.setattr(tempfile, "tempdir", str(scratch))
    try:
        demo.launch(
            server_name="127.0.0.1",
            server_port=free_port(),
            prevent_thread_lock=True,
            quiet=True,
            **launch_options(),  # as space/app.py serves it: cross-origin isolated
        )
        try:
            yield gradio_client.Client(
                demo.local_url, verbose=False, download_files=str(download_dir)
            )
        finally:
            demo.close()
    finally:
        patch.undo()


def make_engine(folder: Path, **settings) -> Engine:
    return Engine(LocalSource(folder), Settings(**settings))


@pytest.fixture(scope="module")
def votes_db(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("votes") / "sub" / "votes.sqlite3"


@pytest.fixture(scope="module")
def client(staged, votes_db, tmp_path_factory):
    demo = build_demo(make_engine(staged), VoteStore(votes_db), seed=0)
    with launched(demo, tmp_path_factory.mktemp("downloads")) as c:
        yield c


def compare(client, text=SENTENCE, phonemes=False, voice="af_heart", speed=1.0, variants=VARIANTS):
    out = client.predict(text, phonemes, voice, speed, list(variants), api_name="/compare")
    status, phoneme_text, table, *rest = out
    n = len(rest) // 3  # per slot: audio, spectrogram, word times
    return status, phoneme_text, table, rest[:n], rest[n : 2 * n]


def word_times(client, **kwargs) -> list[str]:
    """The word-times Markdown of each slot of one comparison."""
    out = client.predict(
        kwargs.get("text", SENTENCE), False, "af_heart", 1.0, list(VARIANTS), api_name="/compare"
    )
    rest = out[3:]
    return [value(m) or "" for m in rest[2 * (len(rest) // 3) :]]


def value(update):
    """An output's value, whether it came back as a plain value or as a gr.update dict."""
    return update.get("value") if isinstance(update, dict) else update


def wav_seconds(path: str) -> float:
    with wave.open(path) as w:
        assert w.getframerate() == 24000
        return w.getnframes() / w.getframerate()


# ---------------------------------------------------------------------- compare
def _tones(durations: list[int]):
    """One steady tone per token, ``durations[i]`` frames long (600 samples a frame)."""
    import numpy as np

    parts = []
    for i, frames in enumerate(durations):
        t = np.arange(frames * 600) / 24000
        parts.append(np.sin(2 * np.pi * (300 + 450 * (i % 7)) * t))
    return np.concatenate(parts).astype(np.float32)


def test_live_fidelity_lines_up_tokens_so_a_longer_phoneme_is_not_read_as_damage():
    import numpy as np
    from kokoro_space.engine import Run, fidelity

    ref_d = [4, 3, 5, 4, 3, 6, 4, 5, 3, 4] * 3
    test_d = list(ref_d)
    test_d[2] += 1  # one phoneme a frame longer: everything after it moves by 600 samples
    ref = Run(None, wave=_tones(ref_d), durations=np.array(ref_d))
    drifted = Run(None, wave=_tones(test_d), durations=np.array(test_d))

    aligned, equal = fidelity(ref, drifted)
    unpaired, none = fidelity(ref, Run(None, wave=drifted.wave, durations=np.array(test_d[:-1])))

    assert aligned > 0.98, aligned
    assert unpaired < aligned - 0.1, unpaired  # frame by frame the same sound reads as damage
    assert equal == pytest.approx(29 / 30) and none is None


def test_compare_gives_one_audio_file_spectrogram_and_table_row_per_variant(client):
    status, phoneme_text, table, audios, images = compare(client)

    assert status.startswith("✓ 2 of 2 variants"), status
    assert "ˈ" in phoneme_text  # misaki's phonemes, shown to the user
    rows = {row[0]: row for row in table["data"]}
    assert list(rows) == list(VARIANTS)
    assert rows["fp32"][1] == "onnx/model.onnx"
    assert rows["fp32"][7] == "reference"  # fidelity is measured against fp32 itself
    assert 0.5 < float(rows["quantized"][7]) <= 1.0
    assert rows["fp32"][8] == "1.000"  # durations equal to its own
    assert 0.0 <= float(rows["quantized"][8]) <= 1.0
    assert all(row[-1].startswith("ok") for row in rows.values())
    assert all(float(row[6]) > 0 for row in rows.values())  # real-time factor
    played = [value(a) for a in audios if value(a)]
    assert len(played) == 2
    assert all(wav_seconds(p) > 0.5 for p in played)
    assert len([value(i) for i in images if value(i)]) == 2
    assert all(not value(a) for a in audios[2:])  # unused slots stay empty


def test_each_player_has_its_words_times_folded_under_it_ending_within_the_audio(client):
    import re

    status, _, _, audios, _ = compare(client)
    shown = word_times(client)

    assert status.startswith("✓"), status
    for markdown, audio in zip(shown[:2], audios[:2], strict=True):
        assert markdown.startswith("<details><summary>Word times</summary>")
        times = [
            (float(a), float(b)) for a, b in re.findall(r"\| ([0-9.]+) \| ([0-9.]+) \|", markdown)
        ]
        assert len(times) >= 5  # one row per word of SENTENCE
        assert all(a < b for a, b in times) and times == sorted(times)
        assert times[-1][1] <= wav_seconds(value(audio)) + 0.005
    assert all(not m for m in shown[2:])  # unused slots stay empty


def test_typed_phonemes_skip_g2p_and_out_of_vocab_characters_are_listed(client):
    status, phoneme_text, table, audios, _ = compare(client, "həlˈoʊ wˈɜːld 😀ж", phonemes=True)

    assert status.startswith("✓"), status
    assert "typed phonemes" in status and "Ignored characters" in status
    assert "😀" in status and "ж" in status
    assert len([a for a in audios if value(a)]) == 2


def test_long_text_is_split_at_sentences_and_joined(client):
    text = " ".join(f"This is sentence number {i} of a rather long text." for i in range(14))
    status, _, table, audios, _ = compare(client, text, variants=["fp32"])

    assert status.startswith("✓"), status
    row = table["data"][0]
    assert "chunks" in row[-1] and int(row[-1].split(", ")[-1].split()[0]) >= 2, row
    assert wav_seconds(value(audios[0])) > 15


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"text": ""}, "type some text first"),
        ({"text": "   \n "}, "type some text first"),
        ({"text": "?!... ,;"}, "Nothing to say"),
        ({"text": "a" * 20_000}, "20,000 characters"),
        ({"text": "😀ж", "phonemes": True}, "no sound in Kokoro's phoneme vocabulary"),
        ({"voice": "no_such_voice"}, "unknown voice"),
        ({"voice": "../voices.npz"}, "unknown voice"),
        ({"variants": ["../../etc/passwd"]}, "unknown variant"),
        ({"variants": ["onnx/model.onnx"]}, "unknown variant"),
        ({"variants": []}, "Choose at least one variant"),
    ],
    ids=[
        "empty",
        "blank",
        "punctuation-only",
        "20000-chars",
        "out-of-vocab-only",
        "unknown-voice",
        "path-like-voice",
        "path-like-variant",
        "path-as-variant",
        "no-variant",
    ],
)
def test_bad_input_gives_a_clear_message_and_no_audio(client, kwargs, message):
    status, phoneme_text, table, audios, images = compare(client, **kwargs)

    assert status.startswith("⚠️") and message in status, status
    assert phoneme_text == "" and not table["data"]
    assert not any(value(a) for a in audios) and not any(value(i) for i in images)


def test_speed_out_of_range_is_refused_by_the_slider_and_the_handler(client, staged, tmp_path):
    with pytest.raises(gradio_client.exceptions.AppError, match="less than minimum value 0.5"):
        compare(client, speed=0.0)
    app = build_demo(make_engine(staged), VoteStore(tmp_path / "v.sqlite3")).space_app
    for speed in (0.0, 9.0, float("nan"), "fast"):
        with pytest.warns(UserWarning, match="speed"):
            status, *_ = app.compare(SENTENCE, False, "af_heart", speed, ["fp32"])
        assert status.startswith("⚠️ speed must be between 0.5 and 2.0"), status


def test_app_still_answers_after_bad_inputs(client):
    compare(client, text="")
    status, *_ = compare(client)
    assert status.startswith("✓"), status


# ---------------------------------------------------------------------- blind test
def test_blind_vote_is_stored_in_sqlite_and_counted_on_the_leaderboard(client, votes_db):
    a, b, status, reveal, _ = client.predict(SENTENCE, "af_heart", api_name="/blind_pair")
    assert a and b and wav_seconds(a) > 0.5 and wav_seconds(b) > 0.5
    assert "fp32" not in status + reveal and "quantized" not in status + reveal  # blind

    reveal, board, status = client.predict("A", api_name="/vote")

    assert "Vote recorded" in reveal and "fp32" in reveal and "quantized" in reveal
    with contextlib.closing(sqlite3.connect(votes_db)) as con:
        rows = con.execute("SELECT variant_a, variant_b, choice, voice FROM votes").fetchall()
    assert len(rows) == 1
    winner, loser = rows[0][0], rows[0][1]
    assert {winner, loser} == set(VARIANTS) and rows[0][2:] == ("A", "af_heart")
    standings = {r[0]: r for r in board["data"]}
    assert standings[winner][1:] == ["100%", "1", "0", "0", "1"]
    assert standings[loser][1:] == ["0%", "0", "0", "1", "1"]

    # one vote per pair: voting again without a new pair is refused and stores nothing
    again, board, status = client.predict("B", api_name="/vote")
    assert "Play a random pair first" in again
    client.predict(SENTENCE, "af_heart", api_name="/blind_pair")
    _, board, _ = client.predict("tie", api_name="/vote")
    standings = {r[0]: r for r in board["data"]}
    assert standings[winner][1:] == ["50%", "1", "1", "0", "2"]
    assert standings[loser][-3:] == ["1", "1", "2"]


def test_blind_pair_with_bad_input_gives_a_message_and_no_vote(client, votes_db):
    a, b, status, _, _ = client.predict("...", "af_heart", api_name="/blind_pair")
    assert a is None and b is None and "Nothing to say" in status
    a, b, status, _, _ = client.predict(SENTENCE, "../../etc/passwd", api_name="/blind_pair")
    assert a is None and "unknown voice" in status
    reveal, _, _ = client.predict("A", api_name="/vote")
    assert "Play a random pair first" in reveal


def test_votes_database_is_created_on_first_use_at_KOKORO_VOTES_DB(tmp_path, monkeypatch):
    path = tmp_path / "new" / "dir" / "votes.sqlite3"
    monkeypatch.setenv("KOKORO_VOTES_DB", str(path))
    store = VoteStore()
    assert store.path == path and not path.exists()
    assert store.leaderboard("me/kokoro") == []
    store.record("me/kokoro", "fp32", "q4", "B", "af_heart", 12)
    store.record("other/repo", "fp32", "q4", "A", "af_heart", 12)
    assert path.is_file()
    board = {s.variant: s for s in VoteStore(path).leaderboard("me/kokoro")}
    assert (board["q4"].wins, board["q4"].votes, board["fp32"].losses) == (1, 1, 1)


# ---------------------------------------------------------------------- robustness
def test_a_failing_variant_only_marks_its_own_row(staged, tmp_path):
    broken = tmp_path / "repo"
    shutil.copytree(staged, broken)
    (broken / "onnx" / "model_quantized.onnx").write_bytes(b"not an onnx file")
    app = build_demo(make_engine(broken), VoteStore(tmp_path / "v.sqlite3")).space_app

    with pytest.warns(UserWarning, match="quantized"):
        status, _, rows, *outputs = app.compare(SENTENCE, False, "af_heart", 1.0, list(VARIANTS))

    assert "1 of 2 variants" in status and "Failed: quantized" in status
    by_name = {r[0]: r for r in rows}
    assert by_name["fp32"][-1] == "ok"
    assert (
        by_name["quantized"][-1].startswith("failed: ")
        and "onnxruntime" in by_name["quantized"][-1]
    )
    audios = outputs[: app.slots()]
    assert audios[0]["value"] is not None and audios[1]["value"] is None


def test_names_are_matched_against_the_manifest_and_never_read_as_paths(staged, tmp_path):
    engine = make_engine(staged)
    fetched: list[str] = []
    real_fetch = engine.source.fetch
    engine.source.fetch = lambda rel: fetched.append(rel) or real_fetch(rel)
    app = build_demo(engine, VoteStore(tmp_path / "v.sqlite3")).space_app
    for variants, voice in [
        (["../../etc/passwd"], "af_heart"),
        (["/etc/passwd"], "af_heart"),
        (["fp32"], "../../etc/passwd"),
        (["fp32"], "af_heart"),
    ]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # gr.Warning outside a request
            app.compare(SENTENCE, False, voice, 1.0, variants)
    allowed = set(FIXED_FILES) | {
        v["path"] for v in json.loads((staged / "manifest.json").read_text())["variants"]
    }
    assert fetched and set(fetched) <= allowed


def test_unsafe_manifest_entries_are_skipped(staged, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(staged, repo)
    manifest = json.loads((repo / "manifest.json").read_text())
    evil = dict(manifest["variants"][0], recipe="evil", path="../../../etc/passwd")
    manifest["variants"].append(evil)
    (repo / "manifest.json").write_text(json.dumps(manifest))

    catalog = make_engine(repo).catalog()

    assert "evil" not in catalog.variants and list(catalog.variants) == list(VARIANTS)
    assert any("evil" in s for s in catalog.skipped)

    assert [safe_relpath(p) for p in ("onnx/model.onnx", "../x.onnx", "/etc/passwd", "a\\b")] == [
        "onnx/model.onnx",
        None,
        None,
        None,
    ]


def test_an_entry_that_is_not_a_variant_entry_is_skipped_naming_the_field(staged, tmp_path):
    repo = tmp_path / "repo"
    shutil.copytree(staged, repo)
    manifest = json.loads((repo / "manifest.json").read_text())
    broken = {k: v for k, v in manifest["variants"][0].items() if k != "bytes"}
    manifest["variants"].append(broken | {"recipe": "nobytes", "shape": "dynamic"})
    manifest["variants"].append(manifest["variants"][0] | {"recipe": "odd", "shape": "ragged"})
    (repo / "manifest.json").write_text(json.dumps(manifest))

    catalog = make_engine(repo).catalog()

    assert list(catalog.variants) == list(VARIANTS)
    assert "entry 2 ('nobytes'): not a variant entry (bytes: Field required)" in catalog.skipped
    odd = "entry 3 ('odd'): not a variant entry (shape:"
    assert any(s.startswith(odd) for s in catalog.skipped)


def test_sessions_are_cached_one_per_variant_in_a_bounded_lru(staged):
    engine = make_engine(staged, max_sessions=1)
    catalog = engine.catalog()
    prepared = engine.prepare(SENTENCE)
    voice = engine.voice("af_heart")
    first = engine.run(catalog.variants["fp32"], prepared, voice, 1.0)
    again = engine.run(catalog.variants["fp32"], prepared, voice, 1.0)
    engine.run(catalog.variants["quantized"], prepared, voice, 1.0)

    assert (first.cached, again.cached) == (False, True)
    assert again.load_s == first.load_s  # the measured load time is kept with the session
    assert engine.cached_sessions() == ["quantized"]


def test_bucket_graphs_are_split_to_their_width_and_dynamic_ones_to_the_context():
    def fake_session(ids_shape, n_inputs):
        tensor = SimpleNamespace(shape=ids_shape, type="tensor(int64)", name="input_ids")
        out = SimpleNamespace(shape=[48_000], name="waveform")
        return SimpleNamespace(
            get_inputs=lambda: [tensor] * n_inputs,
            get_outputs=lambda: [out, out],
            get_modelmeta=lambda: SimpleNamespace(custom_metadata_map={}),
        )

    assert Engine.capacity(fake_session([1, 64], 4)) == 62  # 64 positions minus the two pads
    assert Engine.capacity(fake_session([1, "tokens"], 3)) == 508


@needs_hub
def test_unreachable_repo_gives_a_message_in_the_page(monkeypatch, tmp_path):
    import huggingface_hub.utils._http as hf_http

    hub_server.patch_huggingface_hub(
        monkeypatch, f"http://127.0.0.1:{free_port()}", tmp_path / "hf"
    )
    waits: list[float] = []
    monkeypatch.setattr(hf_http, "time", SimpleNamespace(sleep=waits.append))  # no backoff
    engine = Engine(HubSource("me/kokoro"), Settings())
    app = build_demo(engine, VoteStore(tmp_path / "v.sqlite3")).space_app
    retries = len(waits)

    assert retries > 0  # the client did retry once, at start
    assert "cannot be read" in app.header() and "cannot reach the Hub" in app.header()
    assert "trying again in" in app.header()  # later requests fail fast, without new retries
    with pytest.warns(UserWarning):
        status, *_ = app.compare(SENTENCE, False, "af_heart", 1.0, ["fp32"])
    assert status.startswith("⚠️") and "cannot reach the Hub" in status
    with pytest.warns(UserWarning):
        a, b, status, *_ = app.blind_pair(SENTENCE, "af_heart", None)
    assert a is None and "cannot reach the Hub" in status
    assert len(waits) == retries


def test_app_module_builds_the_demo_from_the_environment(staged, monkeypatch):
    import importlib.util

    monkeypatch.setenv("KOKORO_DIR", str(staged))
    spec = importlib.util.spec_from_file_location("kokoro_space_app", SPACE / "app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # builds the Blocks; launch() only runs as __main__

    assert isinstance(module.demo, gr.Blocks)
    engine = module.demo.space_app.engine
    assert engine.source.root == staged and list(engine.catalog().variants) == list(VARIANTS)


def test_source_comes_from_kokoro_dir_then_kokoro_repo_then_space_config(tmp_path):
    (tmp_path / "space_config.json").write_text(json.dumps({"KOKORO_REPO": "org/model@v1"}))

    local = source_from_env({"KOKORO_DIR": "/x", "KOKORO_REPO": "a/b"}, tmp_path)
    hub = source_from_env({"KOKORO_REPO": "a/b@main"}, tmp_path)
    config = source_from_env({}, tmp_path)

    assert isinstance(local, LocalSource) and local.root == Path("/x")
    assert (hub.repo_id, hub.revision) == ("a/b", "main")
    assert (config.repo_id, config.revision) == ("org/model", "v1")
    with pytest.raises(SourceError, match="no model source"):
        source_from_env({}, tmp_path / "nowhere")
    for bad in ("../../etc/passwd", "a/b/c", "a/..", "a/b@../x"):
        with pytest.raises(SourceError, match="KOKORO_REPO"):
            parse_repo_spec(bad)


# ---------------------------------------------------------------------- local Hub
@pytest.fixture
def local_hub(monkeypatch, tmp_path, request):
    if hub_server is None:
        pytest.skip("tests/hub_server.py (LocalHub) is missing")
    return hub_server.local_hub_env(monkeypatch, tmp_path, request=request)


def test_app_reads_the_model_repo_from_the_hub(local_hub, staged, monkeypatch, tmp_path):
    from huggingface_hub import HfApi

    api = HfApi(token=local_hub.token)
    api.create_repo("me/kokoro", repo_type="model")
    api.upload_folder(folder_path=str(staged), repo_id="me/kokoro", repo_type="model")
    monkeypatch.delenv("KOKORO_DIR", raising=False)
    monkeypatch.setenv("KOKORO_REPO", "me/kokoro")
    monkeypatch.setenv("KOKORO_VOTES_DB", str(tmp_path / "votes.sqlite3"))

    with launched(build_demo(), tmp_path / "dl") as c:
        status, _, table, audios, _ = compare(c)

    assert status.startswith("✓ 2 of 2"), status
    assert [r[0] for r in table["data"]] == list(VARIANTS)
    assert len([a for a in audios if value(a)]) == 2
    downloads = {p for m, p in local_hub.requests if "/resolve/" in p}
    assert any("manifest.json" in p for p in downloads)
    assert not any("passwd" in p for p in downloads)


def test_missing_model_repo_on_the_hub_gives_a_message(local_hub, tmp_path):
    app = build_demo(
        Engine(HubSource("me/missing"), Settings()), VoteStore(tmp_path / "v.sqlite3")
    ).space_app
    assert "was not found on the Hub" in app.header()


# ---------------------------------------------------------------------- publisher space
def _space_cli(args: list[str]):
    from click.testing import CliRunner

    from publisher.cli import _Group
    from publisher.cli.space import space_command

    group = _Group(name="publisher", commands=[space_command])
    return CliRunner().invoke(group, ["space", *args])


def test_space_dry_run_prints_the_plan_without_network(local_hub):
    result = _space_cli(["--repo", "me/space", "--model-repo", "me/kokoro", "--dry-run"])

    assert result.exit_code == 0, result.output
    assert "would upload a Gradio Space to me/space playing me/kokoro" in result.output
    for path in (
        "app.py",
        "README.md",
        "requirements.txt",
        "publisher/runtime/synth.py",
        "space_config.json",
        "static/ort/ort.wasm.min.mjs",  # onnxruntime-web for the in-browser mode, no CDN
        "static/ort/ort-wasm-simd-threaded.jsep.wasm",
    ):
        assert path in result.output
    assert local_hub.requests == []
    assert local_hub.token not in result.output


def test_space_refuses_a_bad_repo_id():
    result = _space_cli(["--repo", "../evil", "--model-repo", "me/kokoro", "--dry-run"])
    assert result.exit_code == 1 and "expected ORG/NAME" in result.output


def test_space_uploads_the_app_pointing_at_the_model_repo(local_hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", local_hub.token)

    result = _space_cli(["--repo", "me/space", "--model-repo", "me/kokoro@v1.0"])

    assert result.exit_code == 0, result.output
    assert local_hub.token not in result.output
    files = local_hub.files("me/space", repo_type="space")
    assert {
        "app.py",
        "requirements.txt",
        "kokoro_space/engine.py",
        "publisher/runtime/synth.py",
    } <= set(files)
    assert json.loads(files["space_config.json"]) == {"KOKORO_REPO": "me/kokoro@v1.0"}
    readme = files["README.md"].decode()
    assert "sdk: gradio" in readme and "app_file: app.py" in readme
    front = yaml.safe_load(readme.split("---")[1])
    assert front["models"] == ["me/kokoro"] and front["sdk"] == "gradio"
    requirements = [
        line.split("#")[0].strip() for line in files["requirements.txt"].decode().splitlines()
    ]
    assert "onnxruntime>=1.20" in requirements
    assert not [r for r in requirements if r.startswith(("torch", "kokoro", "misaki[en]"))]


def test_space_bundle_runs_without_torch(staged, tmp_path):
    """The uploaded Space (space/ + the bundled publisher modules) synthesizes with no torch."""
    from publisher.hub.space import assemble

    bundle = tmp_path / "bundle"
    assemble(bundle, "me/kokoro")
    code = f"""
import sys
for name in ("torch", "kokoro", "onnx", "transformers"):
    sys.modules[name] = None  # importing any of them now fails
sys.path.insert(0, {str(bundle)!r})
import publisher
assert publisher.__file__.startswith({str(bundle)!r}), publisher.__file__
from kokoro_space.engine import Engine, Settings
from kokoro_space.source import source_from_env
engine = Engine(source_from_env(), Settings())
run = engine.compare("Hello there.", False, "af_heart", 1.0, ["quantized"]).runs[0]
assert run.error is None and run.wave.size > 0, run.error
print("ok", run.wave.size)
"""
    env = dict(os.environ, KOKORO_DIR=str(staged), PYTHONPATH="")
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("ok")


def test_space_readme_front_matter_matches_the_gradio_it_is_built_for():
    front = (SPACE / "README.md").read_text().split("---")[1]
    fields = dict(line.split(": ", 1) for line in front.strip().splitlines() if ": " in line)
    assert fields["sdk"] == "gradio" and fields["app_file"] == "app.py"
    assert fields["license"] == "apache-2.0"
    assert f"gradio=={fields['sdk_version']}" in (SPACE / "requirements.txt").read_text()


@pytest.mark.parametrize(
    "readme, problem",
    [
        ("no front matter\n", "expected Space front matter between --- lines"),
        ("---\ntitle: x\n", "the front matter has no closing ---"),
        ("---\n: : bad\n---\nbody\n", "front matter is not valid YAML"),
    ],
)
def test_a_broken_space_readme_is_one_line(readme, problem):
    from publisher.hub.space import _with_models
    from publisher.runtime.errors import PublisherError

    with pytest.raises(PublisherError, match=problem) as err:
        _with_models(readme, "me/kokoro")
    assert "\n" not in str(err.value)


def test_space_without_npm_says_how_to_go_on_in_one_line(monkeypatch):
    from publisher.conformance import envs
    from publisher.runtime.errors import PublisherError

    def no_npm():
        raise PublisherError("the kokoro-js and onnxruntime-web cells need node and npm on PATH")

    monkeypatch.setattr(envs, "onnxruntime_web_dist", no_npm)
    result = _space_cli(["--repo", "me/space", "--model-repo", "me/kokoro", "--dry-run"])

    assert result.exit_code == 1
    assert "in-browser mode needs onnxruntime-web from npm" in result.output
    assert "--no-browser-runtime" in result.output and "Traceback" not in result.output

    result = _space_cli(
        ["--repo", "me/space", "--model-repo", "me/kokoro", "--dry-run", "--no-browser-runtime"]
    )
    assert result.exit_code == 0, result.output
    assert "app.py" in result.output and "static/ort" not in result.output


def test_a_damaged_onnxruntime_web_package_names_the_missing_file(tmp_path):
    from publisher.hub.space import bundle_onnxruntime_web
    from publisher.runtime.clients import ORT_WEB_WASM
    from publisher.runtime.errors import PublisherError

    dist = tmp_path / "dist"
    dist.mkdir()
    for name in ORT_WEB_WASM:
        (dist / name).write_text("x")
    with pytest.raises(PublisherError, match=r"ort\.webgpu\.min\.mjs is missing; remove its"):
        bundle_onnxruntime_web(tmp_path / "space", dist)


def test_the_page_and_its_files_are_served_cross_origin_isolated(client):
    import urllib.request

    # onnxruntime-web's WASM threads need SharedArrayBuffer, which only an isolated page gets
    for path in ("", "config"):
        with urllib.request.urlopen(client.src.rstrip("/") + "/" + path, timeout=30) as answer:
            assert {k: answer.headers[k] for k in HEADERS} == HEADERS, path
