"""publish through the real huggingface_hub client against a local server speaking the
Hub's protocol (tests/hub_server.py)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.hub_server import local_hub_env

from publisher.cli import main

SECRET = "hf_fake-test-token-that-must-never-leak-0123"
REPO = "me/kokoro-onnx"


@pytest.fixture
def dist(dist_copy):
    return dist_copy


@pytest.fixture
def hub(monkeypatch, tmp_path, request):
    return local_hub_env(monkeypatch, tmp_path, request=request, login=SECRET)


def _publish(dist: Path, *extra: str):
    return CliRunner().invoke(
        main, ["publish", "--repo", REPO, "--all", "--out", str(dist), "--allow-synthetic", *extra]
    )


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_published_repo_downloads_byte_identical(dist, hub, tmp_path):
    from huggingface_hub import snapshot_download

    result = _publish(dist)
    assert result.exit_code == 0, result.output
    assert f"published: {hub.endpoint}" in result.stdout or "published: http" in result.stdout
    local = Path(snapshot_download(REPO, cache_dir=tmp_path / "dl"))
    remote = hub.files(REPO)
    for rel in (
        "onnx/model.onnx",
        "kokoro-v1.0.onnx",
        "voices.npz",
        "README.md",
        "config.json",
        "tokenizer.json",
        "manifest.json",
        "voices/af_heart.bin",
    ):
        assert _sha((local / rel).read_bytes()) == _sha(remote[rel]), rel
    assert _sha((local / "onnx/model.onnx").read_bytes()) == _sha(
        (dist / "fp32" / "onnx" / "model.onnx").read_bytes()
    )
    commit = hub.commits(REPO)[-1]
    assert "fp32" in commit.title and "kokoro-v1.0" in commit.title
    recipe_sha = __import__("json").loads((dist / "fp32" / "manifest.json").read_text())[
        "recipe_sha256"
    ]
    assert f"fp32: recipe sha256 {recipe_sha}" in commit.description


def test_publishing_unchanged_files_sends_nothing_and_makes_no_commit(dist, hub):
    assert _publish(dist).exit_code == 0
    head = hub.head(REPO)
    hub.clear_requests()
    assert _publish(dist).exit_code == 0
    assert hub.head(REPO) == head
    assert not [r for r in hub.requests if r[0] == "PUT"]
    assert not [r for r in hub.requests if "/commit/" in r[1]]


@pytest.mark.parametrize("kind,status", [("lfs_upload", 403), ("commit", 500)])
def test_a_failed_upload_leaves_the_repo_unchanged_and_a_retry_succeeds(dist, hub, kind, status):
    hub.fail_next(kind, status=status)
    failed = _publish(dist)
    assert failed.exit_code == 1
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "no commit was made" in errors[0], failed.stderr
    assert "onnx/model.onnx" not in hub.files(REPO)  # at most the repo's initial commit
    retry = _publish(dist)
    assert retry.exit_code == 0, retry.output
    assert "onnx/model.onnx" in hub.files(REPO)


def test_a_wrong_token_is_one_clear_line(dist, hub, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_wrong")
    result = _publish(dist)
    assert result.exit_code == 1
    assert "the Hub refused the token (HTTP 401)" in result.stderr
    assert "hf_wrong" not in result.output


def test_create_pr_puts_files_on_the_pr_ref_not_main(dist, hub):
    assert _publish(dist).exit_code == 0
    main_files = dict(hub.files(REPO))
    manifest = dist / "fp32" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["resolved_recipe"]["description"] = "a description changed in review"
    manifest.write_text(json.dumps(data))
    result = CliRunner().invoke(
        main,
        [
            "publish",
            "--repo",
            REPO,
            "--recipe",
            "fp32",
            "--out",
            str(dist),
            "--allow-synthetic",
            "--create-pr",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "/discussions/" in result.stdout
    assert hub.files(REPO) == main_files
    assert hub.files(REPO, revision="refs/pr/1")["README.md"] != main_files["README.md"]


def test_the_token_never_appears_in_output_or_files(dist, hub, tmp_path):
    runner = CliRunner()
    outputs = [
        runner.invoke(
            main, ["publish", "--repo", REPO, "--all", "--out", str(dist), "--allow-synthetic"]
        ),
        runner.invoke(main, ["publish", "--repo", REPO, "--all", "--out", str(dist), "--dry-run"]),
        runner.invoke(
            main, ["stage", "--all", "--out", str(dist), "--dest", str(tmp_path / "staged")]
        ),
    ]
    for r in outputs:
        assert r.exit_code == 0, r.output
        assert SECRET not in r.output
    for root in (dist, tmp_path / "staged"):
        for path in root.rglob("*"):
            if path.is_file():
                assert SECRET.encode() not in path.read_bytes(), path
    for data in hub.files(REPO).values():
        assert SECRET.encode() not in data
    assert all(SECRET not in path for _, path in hub.requests)


@pytest.mark.parametrize(
    ("status", "token", "kind", "words"),
    [
        (412, "hf_x", "HubConflictError", "the repo moved since it was read (HTTP 412)"),
        (401, None, "HubAuthError", "needs a token with write access (HTTP 401)"),
        (403, "hf_x", "HubAuthError", "the Hub refused the token (HTTP 403)"),
        (500, "hf_x", "HubError", "the Hub answered HTTP 500"),
    ],
)
def test_hub_http_failures_become_typed_errors_with_repo_and_status(
    status, token, kind, words, monkeypatch
):
    import httpx
    from huggingface_hub.errors import HfHubHTTPError

    from publisher.runtime import errors
    from publisher.runtime.hub_errors import hub_error

    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr("huggingface_hub.get_token", lambda: None)
    request = httpx.Request("POST", "https://huggingface.co/api/models/me/k/commit/main")
    exc = HfHubHTTPError("refused", response=httpx.Response(status, request=request))

    err = hub_error("me/k", exc, token=token)

    assert type(err) is getattr(errors, kind)
    assert isinstance(err, errors.PublisherError)
    assert (err.repo_id, err.status) == ("me/k", status)
    assert words in str(err) and "\n" not in str(err)


def test_a_hub_that_does_not_answer_is_an_unreachable_error():
    from publisher.runtime.errors import HubUnreachableError
    from publisher.runtime.hub_errors import hub_error

    class ReadTimeout(Exception):
        pass

    err = hub_error("me/k", ReadTimeout("slow"), seconds=5)
    assert isinstance(err, HubUnreachableError) and err.status is None
    assert "did not answer within 5 s" in str(err)


def test_a_browser_report_reaches_the_hubs_card_and_stays_through_the_next_publish(
    dist, hub, tmp_path
):
    report = {
        "source": REPO,
        "written": "2026-12-07T02:00:00+00:00",
        "rows": [
            {"backend": "wasm, 2 threads", "variant": "fp32", "runs": 4, "flagged": 0}
            | {"median_match": 0.9991, "median_rtf": 1.31},
        ],
    }
    path = tmp_path / "browser_report.json"
    path.write_text(json.dumps(report))
    row = "| wasm, 2 threads | `onnx/model.onnx` | 4 | 0 | 0.9991 | 1.31 |"
    first = ["publish", "--repo", REPO, "--recipe", "fp32", "--out", str(dist)]
    first += ["--allow-synthetic", "--browser-report", str(path)]
    assert CliRunner().invoke(main, first).exit_code == 0
    assert row in hub.files(REPO)["README.md"].decode()
    result = _publish(dist)  # the other variants join; no report given this time
    assert "published:" in result.output, result.output
    card = hub.files(REPO)["README.md"].decode()
    assert "`onnx/model_quantized.onnx`" in card and row in card
    assert json.loads(hub.files(REPO)["manifest.json"])["browser"]["rows"][0]["runs"] == 4


def test_a_bad_browser_report_fails_before_any_request(dist, hub, tmp_path):
    path = tmp_path / "report.json"
    path.write_text('{"rows": []}')
    hub.clear_requests()
    result = _publish(dist, "--browser-report", str(path))
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "not a browser report from the Space (source: Field required)" in result.output
    assert hub.requests == []


def test_a_sherpa_bundle_model_is_the_variant_file_and_uploaded_once(dist, hub):
    """The build writes sherpa-onnx's keys into the variant, so its bundle's model.onnx is
    the same bytes: one LFS object on the Hub, sent once."""
    manifest = json.loads((dist / "fp32" / "manifest.json").read_text())
    bundle = dist / "fp32" / manifest["sherpa_onnx"] / "model.onnx"
    shipped = (dist / "fp32" / manifest["model"]).read_bytes()
    assert _sha(bundle.read_bytes()) == _sha(shipped)
    hub.clear_requests()
    assert _publish(dist).exit_code == 0
    remote = hub.files(REPO)
    assert remote["onnx/model.onnx"] == remote["sherpa-onnx/fp32/model.onnx"] == shipped
    uploads = [path for method, path in hub.requests if method == "PUT" and "lfs-upload" in path]
    assert sum(_sha(shipped) in path for path in uploads) == 1
    assert len(uploads) == len(set(uploads)) == len(hub.lfs_objects(REPO))
