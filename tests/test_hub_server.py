"""The local Hub (tests/hub_server.py) driven by the real huggingface_hub client."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import huggingface_hub
import pytest
from huggingface_hub import HfApi, constants, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)
from support.hub_server import (
    DEFAULT_TOKEN,
    LFS_THRESHOLD,
    LocalHub,
    local_hub_env,
    patch_huggingface_hub,
)

REPO = "local-user/kokoro-test"
BIG = "onnx/model.bin"  # 12 MB of random bytes: LFS by size and by its binary sample


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def hub(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, request: pytest.FixtureRequest
) -> LocalHub:
    return local_hub_env(monkeypatch, tmp_path, request=request)


@pytest.fixture
def api(hub: LocalHub) -> HfApi:
    return HfApi(token=hub.token)  # no endpoint=: relies on the patched constants


@pytest.fixture(scope="module")
def big_blob() -> bytes:
    return os.urandom(12 * 1024 * 1024)


@pytest.fixture
def folder(tmp_path: Path, big_blob: bytes) -> Path:
    root = tmp_path / "upload"
    (root / "onnx").mkdir(parents=True)
    (root / BIG).write_bytes(big_blob)
    (root / "README.md").write_text("---\nlicense: apache-2.0\n---\n# Kokoro test\n")
    (root / "config.json").write_text('{"sample_rate": 24000}\n')
    (root / "onnx" / "notes.txt").write_text("small text file\n")
    return root


def local_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def uploaded(hub: LocalHub, api: HfApi, folder: Path) -> str:
    api.create_repo(REPO)
    api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="Upload variant")
    return hub.head(REPO)


def test_upload_folder_makes_one_commit_and_downloads_are_byte_identical(
    hub: LocalHub, api: HfApi, folder: Path, tmp_path: Path
) -> None:
    url = api.create_repo(REPO)
    assert url == f"{hub.endpoint}/{REPO}"
    info = api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="Upload variant")

    commits = hub.commits(REPO)
    assert [c.title for c in commits] == ["initial commit", "Upload variant"]
    assert info.oid == hub.head(REPO) == commits[-1].oid
    expected = local_files(folder)
    stored = hub.files(REPO)
    assert stored.keys() == expected.keys() | {".gitattributes"}
    assert all(stored[p] == data for p, data in expected.items())
    assert hub.repo(REPO).commits[info.oid].files[BIG].is_lfs
    assert not hub.repo(REPO).commits[info.oid].files["config.json"].is_lfs

    cache = tmp_path / "dl"
    for path, data in expected.items():
        got = hf_hub_download(REPO, path, cache_dir=cache)
        assert sha256(Path(got).read_bytes()) == sha256(data), path
    snap = Path(snapshot_download(REPO, cache_dir=tmp_path / "snap"))
    assert {p: sha256(d) for p, d in local_files(snap).items()} == {
        p: sha256(d) for p, d in hub.files(REPO).items()
    }


def test_lfs_bytes_go_to_the_other_origin_without_the_token(
    hub: LocalHub, api: HfApi, folder: Path, tmp_path: Path
) -> None:
    uploaded(hub, api, folder)
    puts = [r for r in hub.request_log if r.method == "PUT"]
    assert len(puts) == 1 and puts[0].host == "cdn" and not puts[0].authorized
    assert puts[0].path.endswith(sha256((folder / BIG).read_bytes()))

    hub.clear_requests()
    hf_hub_download(REPO, BIG, cache_dir=tmp_path / "dl", token=hub.token)
    resolve = [r for r in hub.request_log if "/resolve/" in r.path]
    assert resolve and all(r.host == "hub" and r.status == 302 and r.authorized for r in resolve)
    cdn_gets = [r for r in hub.request_log if r.host == "cdn"]
    assert [(r.method, r.status, r.authorized) for r in cdn_gets] == [("GET", 200, False)]


def test_reuploading_an_unchanged_folder_sends_no_lfs_put_no_content_and_no_commit(
    hub: LocalHub, api: HfApi, folder: Path
) -> None:
    head = uploaded(hub, api, folder)
    before = hub.files(REPO)
    hub.clear_requests()

    info = api.upload_folder(repo_id=REPO, folder_path=folder, commit_message="again")

    # What the 2.4 client does: preupload (oids match), LFS batch (object already stored, so
    # no actions), then no commit at all; it reads the head with model_info and returns it.
    # (README.md is also sent to /api/validate-yaml, twice by this client.)
    calls = [(m, p) for m, p in hub.requests if p != "/api/validate-yaml"]
    assert calls == [
        ("POST", f"/api/models/{REPO}/preupload/main"),
        ("POST", f"/{REPO}.git/info/lfs/objects/batch"),
        ("GET", f"/api/models/{REPO}/revision/main"),
    ]
    assert info.oid == head == hub.head(REPO)
    assert hub.files(REPO) == before
    assert len(hub.commits(REPO)) == 2


def test_failed_lfs_upload_raises_leaves_the_repo_unchanged_and_a_retry_succeeds(
    hub: LocalHub, api: HfApi, folder: Path
) -> None:
    api.create_repo(REPO)
    head = hub.head(REPO)
    hub.fail_next("lfs_upload", status=403)  # not retried by the client (5xx would be)

    # The 2.4 client wraps LFS upload errors: RuntimeError("Error while uploading '<path>' to
    # the Hub.") whose __cause__ is the HfHubHTTPError.
    with pytest.raises(RuntimeError, match=f"Error while uploading '{BIG}'") as err:
        api.upload_folder(repo_id=REPO, folder_path=folder)
    cause = err.value.__cause__
    assert isinstance(cause, HfHubHTTPError) and cause.response.status_code == 403
    assert hub.head(REPO) == head
    assert set(hub.files(REPO)) == {".gitattributes"}
    assert not hub.lfs_objects(REPO)

    api.upload_folder(repo_id=REPO, folder_path=folder)
    assert hub.head(REPO) != head
    assert hub.files(REPO)[BIG] == (folder / BIG).read_bytes()


def test_a_single_500_on_the_lfs_put_is_retried_by_the_client(
    hub: LocalHub, api: HfApi, folder: Path
) -> None:
    api.create_repo(REPO)
    hub.fail_next("lfs_upload")  # status 500: http_backoff retries after 1 s

    api.upload_folder(repo_id=REPO, folder_path=folder)
    puts = [r.status for r in hub.request_log if r.method == "PUT"]
    assert puts == [500, 200]
    assert hub.files(REPO)[BIG] == (folder / BIG).read_bytes()


def test_failed_commit_raises_leaves_the_repo_unchanged_and_a_retry_succeeds(
    hub: LocalHub, api: HfApi, folder: Path
) -> None:
    api.create_repo(REPO)
    head = hub.head(REPO)
    hub.fail_next("commit")

    with pytest.raises(HfHubHTTPError) as err:
        api.upload_folder(repo_id=REPO, folder_path=folder)
    assert err.value.response.status_code == 500
    assert "injected failure of commit" in str(err.value)
    assert hub.head(REPO) == head
    assert set(hub.files(REPO)) == {".gitattributes"}

    hub.clear_requests()
    api.upload_folder(repo_id=REPO, folder_path=folder)
    assert not [p for m, p in hub.requests if m == "PUT"]  # the LFS object was kept
    assert hub.files(REPO)[BIG] == (folder / BIG).read_bytes()
    assert len(hub.commits(REPO)) == 2


def test_a_wrong_or_missing_token_is_refused_with_401_and_never_logged(
    hub: LocalHub, api: HfApi, folder: Path
) -> None:
    wrong = "hf_wrong_token_abcdef"
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token=wrong).create_repo(REPO)
    assert err.value.response.status_code == 401
    assert "Invalid credentials" in str(err.value)
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token=False).create_repo(REPO)
    assert err.value.response.status_code == 401
    assert not hub.repo_exists(REPO)

    api.create_repo(REPO)
    head = hub.head(REPO)
    with pytest.raises(HfHubHTTPError) as err:
        HfApi(token=wrong).upload_folder(repo_id=REPO, folder_path=folder)
    assert err.value.response.status_code == 401
    assert hub.head(REPO) == head

    logged = " ".join(path for _, path in hub.requests)
    assert wrong not in logged and hub.token not in logged


def test_create_pr_puts_files_on_refs_pr_1_and_not_on_main(
    hub: LocalHub, api: HfApi, folder: Path, tmp_path: Path
) -> None:
    api.create_repo(REPO)
    main = hub.head(REPO)

    info = api.upload_folder(repo_id=REPO, folder_path=folder, create_pr=True)

    assert info.pr_url == f"{hub.endpoint}/{REPO}/discussions/1"
    assert info.pr_revision == "refs/pr/1" and info.pr_num == 1
    assert hub.head(REPO) == main
    assert hub.head(REPO, "refs/pr/1") == info.oid
    assert hub.commits(REPO, "refs/pr/1")[-2].oid == main
    got = hf_hub_download(REPO, "config.json", revision="refs/pr/1", cache_dir=tmp_path / "c")
    assert Path(got).read_bytes() == (folder / "config.json").read_bytes()
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "config.json", cache_dir=tmp_path / "c")
    refs = api.list_repo_refs(REPO, include_pull_requests=True)
    assert [r.ref for r in refs.pull_requests] == ["refs/pr/1"]


def test_model_info_and_list_repo_files_reflect_the_upload(
    hub: LocalHub, api: HfApi, folder: Path
) -> None:
    head = uploaded(hub, api, folder)
    expected = local_files(folder)

    info = api.model_info(REPO, files_metadata=True)
    assert info.sha == head
    siblings = {s.rfilename: s for s in info.siblings}
    assert set(siblings) == set(expected) | {".gitattributes"}
    assert siblings[BIG].size == len(expected[BIG]) > LFS_THRESHOLD
    assert siblings[BIG].lfs.sha256 == sha256(expected[BIG])
    assert siblings["config.json"].lfs is None
    assert sorted(api.list_repo_files(REPO)) == sorted(siblings)
    top = {e.path for e in api.list_repo_tree(REPO)}
    assert top == {".gitattributes", "README.md", "config.json", "onnx"}
    assert api.file_exists(REPO, BIG) and not api.file_exists(REPO, "nope.txt")
    assert [c.title for c in api.list_repo_commits(REPO)] == [
        "Upload variant",
        "initial commit",
    ]


def test_missing_repo_revision_and_file_map_to_the_client_errors(
    hub: LocalHub, api: HfApi, tmp_path: Path
) -> None:
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("local-user/missing")
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("local-user/missing", "x.txt", cache_dir=tmp_path)
    hub.seed(REPO, {"a.txt": b"a"})
    with pytest.raises(EntryNotFoundError):
        hf_hub_download(REPO, "nope.txt", cache_dir=tmp_path)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(REPO, "a.txt", revision="no-such-branch", cache_dir=tmp_path)
    assert not api.repo_exists("local-user/missing") and api.repo_exists(REPO)


def test_private_repos_need_a_token_to_read(hub: LocalHub, api: HfApi, tmp_path: Path) -> None:
    api.create_repo(REPO, private=True)
    hub.seed(REPO, {"a.txt": b"secret"})
    assert hub.repo(REPO).private
    with pytest.raises(RepositoryNotFoundError):
        HfApi(token=False).model_info(REPO)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(REPO, "a.txt", cache_dir=tmp_path, token=False)
    got = hf_hub_download(REPO, "a.txt", cache_dir=tmp_path, token=hub.token)
    assert Path(got).read_bytes() == b"secret"


def test_create_repo_twice_answers_409_unless_exist_ok(hub: LocalHub, api: HfApi) -> None:
    api.create_repo(REPO)
    with pytest.raises(HfHubHTTPError) as err:
        api.create_repo(REPO)
    assert err.value.response.status_code == 409
    assert api.create_repo(REPO, exist_ok=True) == f"{hub.endpoint}/{REPO}"


def test_a_stale_parent_commit_is_refused(hub: LocalHub, api: HfApi) -> None:
    api.create_repo(REPO)
    stale = hub.head(REPO)
    hub.seed(REPO, {"a.txt": b"a"})
    op = huggingface_hub.CommitOperationAdd("b.txt", b"b")
    with pytest.raises(HfHubHTTPError) as err:
        api.create_commit(REPO, [op], commit_message="m", parent_commit=stale)
    assert err.value.response.status_code == 412
    assert "b.txt" not in hub.files(REPO)


def test_datasets_and_spaces_use_prefixed_urls(hub: LocalHub, api: HfApi, tmp_path: Path) -> None:
    for repo_type, extra in (("dataset", {}), ("space", {"space_sdk": "gradio"})):
        url = api.create_repo(REPO, repo_type=repo_type, **extra)
        assert url == f"{hub.endpoint}/{repo_type}s/{REPO}"
        api.upload_file(
            path_or_fileobj=b"hello\n", path_in_repo="app.txt", repo_id=REPO, repo_type=repo_type
        )
        got = hf_hub_download(REPO, "app.txt", repo_type=repo_type, cache_dir=tmp_path)
        assert Path(got).read_bytes() == b"hello\n"
        assert hub.files(REPO, repo_type=repo_type)["app.txt"] == b"hello\n"
    resolves = [(m, p) for m, p in hub.requests if "/resolve/" in p]
    assert resolves == [
        (method, f"/{prefix}/{REPO}/resolve/main/app.txt")
        for prefix in ("datasets", "spaces")
        for method in ("HEAD", "GET")
    ]
    assert not hub.repo_exists(REPO)  # the model repo of the same name was never created


def test_env_helper_patches_the_imported_client_and_undoes_it(tmp_path: Path) -> None:
    import huggingface_hub.hf_api as hf_api
    from huggingface_hub.utils._runtime import is_xet_available

    before = (constants.ENDPOINT, hf_api.api.endpoint, constants.HF_HUB_CACHE)
    mp = pytest.MonkeyPatch()
    with LocalHub() as hub:
        try:
            patch_huggingface_hub(mp, hub.endpoint, tmp_path / "home")
            assert constants.ENDPOINT == hf_api.api.endpoint == hub.endpoint
            assert not is_xet_available()
            assert str(tmp_path / "home" / "hub") == constants.HF_HUB_CACHE
            assert os.environ["HF_ENDPOINT"] == hub.endpoint and "HF_TOKEN" not in os.environ
            # the module-level functions (bound to hf_api.api) reach the local Hub too
            huggingface_hub.create_repo(REPO, token=DEFAULT_TOKEN)
            assert hub.repo_exists(REPO)
        finally:
            mp.undo()
    assert (constants.ENDPOINT, hf_api.api.endpoint, constants.HF_HUB_CACHE) == before
