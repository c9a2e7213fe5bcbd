"""Every file of a build folder is checked against the sha256 recorded when it was written,
at every hand-off (verify, bench, stage, publish, conformance), and a staged folder again
before upload: a changed byte anywhere is one line naming the file, exit 1, and nothing
staged, re-recorded or uploaded from it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.hub_server import local_hub_env

from publisher.cli import main
from publisher.hub import publish as publish_module
from publisher.hub.stage import check_staged, stage
from publisher.manifest import read_build
from publisher.runtime.errors import ChangedFileError

BUNDLE_MODEL = Path("sherpa-onnx/fp32/model.onnx")


def _swamp(path: Path, at: float = 0.6, size: int = 4096) -> None:
    """Overwrite ``size`` bytes at ``at`` of the file (a weight, not the protobuf header)."""
    with open(path, "r+b") as fh:
        fh.seek(int(path.stat().st_size * at))
        fh.write(b"\x7f" * size)


def _one_line(result, name: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    line = result.stderr.strip().splitlines()[-1]  # progress lines may come before it
    assert name in line and "changed since it was recorded" in line
    return line


@pytest.fixture
def swamped(dist_copy) -> Path:
    """The tiny fp32 build with noise over its sherpa-onnx bundle's model."""
    assert (dist_copy / "fp32" / BUNDLE_MODEL).is_file()
    _swamp(dist_copy / "fp32" / BUNDLE_MODEL)
    return dist_copy


def test_stage_refuses_a_build_whose_sherpa_bundle_changed_and_writes_nothing(swamped, tmp_path):
    dest = tmp_path / "repo"
    result = CliRunner().invoke(
        main, ["stage", "--all", "--out", str(swamped), "--dest", str(dest)]
    )
    line = _one_line(result, str(swamped / "fp32" / BUNDLE_MODEL))
    assert "rebuild it with `publisher build --recipe fp32`" in line
    assert not dest.exists()


def test_verify_refuses_a_changed_bundle_and_keeps_the_recorded_hashes(swamped):
    manifest = swamped / "fp32" / "manifest.json"
    before = manifest.read_bytes()
    result = CliRunner().invoke(main, ["verify", "--recipe", "fp32", "--out", str(swamped)])
    _one_line(result, str(BUNDLE_MODEL))
    assert manifest.read_bytes() == before  # the corrupted file was not blessed


def test_bench_and_conformance_refuse_a_changed_build_file(dist_copy):
    (dist_copy / "fp32" / "recipe.json").write_text("{}")
    for args in (["bench", "--recipe", "fp32"], ["conformance", "--recipe", "fp32"]):
        result = CliRunner().invoke(main, [*args, "--out", str(dist_copy)])
        _one_line(result, str(dist_copy / "fp32" / "recipe.json"))


def test_a_missing_recorded_file_is_named(dist_copy):
    (dist_copy / "fp32" / "verify_spectrogram.png").unlink()
    with pytest.raises(ChangedFileError, match=r"verify_spectrogram.png: missing since it was"):
        read_build(dist_copy / "fp32")


def test_publish_refuses_a_build_with_a_changed_bundle_and_commits_nothing(
    swamped, monkeypatch, tmp_path, request
):
    hub = local_hub_env(monkeypatch, tmp_path, request=request, login="hf_test-token-0123")
    args = ["publish", "--repo", "me/k", "--all", "--out", str(swamped), "--allow-synthetic"]
    _one_line(CliRunner().invoke(main, args), str(BUNDLE_MODEL))
    assert not hub.repo_exists("me/k")  # no repo, no upload, no commit


def test_a_staged_folder_is_checked_again_before_the_upload(dist_copy, tmp_path):
    folder = stage([dist_copy / "fp32"], tmp_path / "repo").folder
    check_staged(folder)  # as staged: fine
    (folder / "notes.txt").write_text("added by hand")
    with pytest.raises(ChangedFileError, match=r"notes.txt: not staged by publisher stage"):
        check_staged(folder)
    (folder / "notes.txt").unlink()
    _swamp(folder / "onnx" / "model.onnx")
    with pytest.raises(ChangedFileError, match=r"onnx/model.onnx: changed since it was recorded"):
        check_staged(folder)


def test_publish_uploads_nothing_when_the_staged_copy_differs(
    dist_copy, monkeypatch, tmp_path, request
):
    hub = local_hub_env(monkeypatch, tmp_path, request=request, login="hf_test-token-0123")
    real_stage = publish_module._stage

    def stage_then_damage(*args, **kwargs):
        staged = real_stage(*args, **kwargs)
        _swamp(staged.folder / "voices.npz", at=0.5, size=64)
        return staged

    monkeypatch.setattr(publish_module, "_stage", stage_then_damage)
    args = ["publish", "--repo", "me/k", "--all", "--out", str(dist_copy), "--allow-synthetic"]
    _one_line(CliRunner().invoke(main, args), "voices.npz")
    assert not hub.repo_exists("me/k")  # no repo, no upload, no commit


def test_verify_re_records_only_the_files_it_rewrote(dist_copy):
    manifest_path = dist_copy / "fp32" / "manifest.json"
    before = json.loads(manifest_path.read_text())["files"]
    result = CliRunner().invoke(
        main, ["verify", "--recipe", "fp32", "--out", str(dist_copy), "--no-speech-gates"]
    )
    assert result.exit_code == 0, result.output
    after = json.loads(manifest_path.read_text())["files"]
    assert set(after) == set(before)
    unchanged = {k: v for k, v in after.items() if k not in ("verify.md", "verify_spectrogram.png")}
    assert unchanged == {k: before[k] for k in unchanged}
    read_build(dist_copy / "fp32")  # and the folder still checks whole
    shutil.rmtree(dist_copy / "fp32" / "sherpa-onnx")
    with pytest.raises(ChangedFileError, match=r"sherpa-onnx/fp32/\S+: missing since"):
        read_build(dist_copy / "fp32")


def test_a_folder_stage_did_not_write_is_refused_before_upload(tmp_path):
    (tmp_path / "README.md").write_text("mine")
    with pytest.raises(ChangedFileError, match=r"not a folder `publisher stage` wrote"):
        check_staged(tmp_path)
    assert (tmp_path / "README.md").read_text() == "mine"
