"""The Space's per-backend table of in-browser runs reaches the model card: the Space
writes it from its database, ``publisher stage --browser-report`` checks it and renders
the card's "In listeners' browsers" table, and a later restage keeps it."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher.cli import main
from publisher.hub.stage import stage
from publisher.runtime.errors import PublisherError

SPACE = Path(__file__).resolve().parent.parent / "space"
if str(SPACE) not in sys.path:
    sys.path.insert(0, str(SPACE))


def _report(tmp_path, runs):
    from kokoro_space.votes import VoteStore

    store = VoteStore(tmp_path / "votes.sqlite3")
    for variant, backend, match, rtf, flagged in runs:
        store.record_browser_run("me/kokoro", variant, backend, "Chrome 140", match, rtf, flagged)
    path = tmp_path / "browser_report.json"
    path.write_text(json.dumps(store.browser_report("me/kokoro")))
    return path


RUNS = [
    ("fp32", "wasm, 2 threads", 0.999, 1.30, False),
    ("fp32", "wasm, 2 threads", 0.997, 1.50, False),
    ("fp32", "wasm, 2 threads", 0.40, 1.40, True),
    ("fp32", "webgpu", 0.998, 0.20, False),
    ("gone", "wasm, 2 threads", 0.99, 1.0, False),
]


def test_the_spaces_report_becomes_the_cards_per_backend_table(tiny_dist, tmp_path, caplog):
    report = _report(tmp_path, RUNS)
    caplog.set_level(logging.INFO, logger="publisher")
    staged = stage([tiny_dist / "fp32"], tmp_path / "repo", browser_report=report)
    lines = [r.getMessage() for r in caplog.records]
    card = (staged.folder / "README.md").read_text()
    assert "## In listeners' browsers" in card
    # medians per backend and file: three wasm runs (one flagged), one webgpu run
    assert "| wasm, 2 threads | `onnx/model.onnx` | 3 | 1 | 0.9970 | 1.40 |" in card
    assert "| webgpu | `onnx/model.onnx` | 1 | 0 | 0.9980 | 0.20 |" in card
    assert "gone" not in card
    assert any("gone is not a variant of this repo" in line for line in lines)
    manifest = json.loads((staged.folder / "manifest.json").read_text())
    assert [r["variant"] for r in manifest["browser"]["rows"]] == ["fp32", "fp32"]


def test_a_restage_from_the_hub_keeps_the_report_it_had(tiny_dist, tmp_path):
    from publisher.hub.family import RemoteState

    first = stage([tiny_dist / "fp32"], tmp_path / "one", browser_report=_report(tmp_path, RUNS))
    remote = RemoteState(manifest=first.manifest)
    again = stage([tiny_dist / "fp32"], tmp_path / "two", remote=remote)
    assert again.manifest["browser"] == first.manifest["browser"]
    assert "| webgpu | `onnx/model.onnx` |" in (again.folder / "README.md").read_text()


def test_without_a_report_the_card_has_no_browser_table(tiny_dist, tmp_path):
    staged = stage([tiny_dist / "fp32"], tmp_path / "repo")
    assert staged.manifest["browser"] is None
    assert "In listeners' browsers" not in (staged.folder / "README.md").read_text()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"no such file; download it from the Space"),
        ("{not json", r"not a JSON file"),
        (
            '{"source": "x", "written": "now", "rows": [{"backend": "wasm"}]}',
            r"not a browser report from the Space \(rows\.0\.variant: Field required\)",
        ),
    ],
)
def test_a_bad_report_is_one_line_and_stages_nothing(tiny_dist, tmp_path, content, message):
    path = tmp_path / "report.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(PublisherError, match=message):
        stage([tiny_dist / "fp32"], tmp_path / "repo", browser_report=path)
    assert not (tmp_path / "repo").exists()
    result = CliRunner().invoke(
        main,
        ["stage", "--recipe", "fp32", "--out", str(tiny_dist), "--dest", str(tmp_path / "r")]
        + ["--browser-report", str(path)],
    )
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert str(path) in result.output and not (tmp_path / "r").exists()
