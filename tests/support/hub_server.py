"""A local, in-memory Hugging Face Hub for tests, spoken to by the real huggingface_hub client.

Stdlib only: a ``ThreadingHTTPServer`` on ``127.0.0.1:<free port>`` in a background thread.
It implements the endpoints huggingface_hub 2.4 uses to create repos, upload (preupload, Git LFS
"basic" batch/PUT/verify, ndjson commit), inspect (model/dataset/space info, tree, refs, commits,
paths-info) and download (HEAD/GET ``resolve``) files; see
``/work/shared/reference/hub-protocol.md``.

Behaviour copied from the real Hub
----------------------------------
- ``create_repo`` makes an initial commit holding the Hub's default ``.gitattributes``.
- preupload answers ``"lfs"`` when the path matches an LFS pattern of the revision's
  ``.gitattributes`` (``*.onnx``, ``*.bin``, ...), when the file is at least ``LFS_THRESHOLD``
  (10 MiB) or when its 512-byte sample looks binary (NUL byte or invalid UTF-8); ``"regular"``
  otherwise. It returns the oid of the file already stored at that path (git blob SHA-1 for a
  regular file, sha256 for an LFS file), so the client skips unchanged files.
- LFS batch answers without ``actions`` when the object is already stored in the repo. Upload
  hrefs point at the *other* origin (``http://localhost:PORT``; the Hub is ``127.0.0.1``), like
  the S3/CDN URLs of the real Hub: the client sends no ``authorization`` there, and this "CDN"
  refuses requests that carry one (as presigned S3 URLs do).
- ``resolve`` of an LFS file answers 302 to the other origin, with ``X-Repo-Commit``,
  ``X-Linked-Etag`` (sha256) and ``X-Linked-Size``; regular files are served directly with
  ``ETag`` (git blob SHA-1) and ``Content-Length``.
- Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``, ``EntryNotFound`` with
  ``X-Repo-Commit``) so the client raises ``RepositoryNotFoundError`` etc.
- Tokens: ``authorization: Bearer <token>``. An unknown token is refused on every Hub request
  (401, ``X-Error-Message: Invalid credentials in Authorization header``, which the client turns
  into a plain ``HfHubHTTPError`` with status 401). Writes need a valid token (401 otherwise).
  Reads of public repos work anonymously; private repos answer 401 + ``RepoNotFound`` to
  anonymous reads (as the Hub does, not revealing that they exist).
- A commit's ``parentCommit`` must be the branch head (else 412); ``create_pr=1`` creates
  ``refs/pr/N`` off the branch and answers ``pullRequestUrl`` ending ``/discussions/N``.

Test helpers
------------
``hub.fail_next(kind, status=500, times=1)`` makes the next request(s) of one kind fail
(kinds: ``FAILURE_KINDS``). NOTE: the client retries LFS PUT/batch/verify and preupload on
408/429/5xx (``http_backoff``: 5 retries, 1 s, 2 s, 4 s... apart), so a single 500 on
``lfs_upload`` is invisible to the caller apart from a 1 s delay; use a non-retried status
(e.g. 403) to make an upload fail. The commit POST is not retried: a 500 there raises.
``hub.requests`` is the list of ``(method, raw_path)`` received (no headers, so never a
token); ``hub.request_log`` has host, status and whether an authorization header was sent.
``hub.files()``, ``hub.commits()``, ``hub.head()``, ``hub.refs()``, ``hub.seed()``.

Pointing the client at it: ``local_hub_env`` / ``patch_huggingface_hub``
------------------------------------------------------------------------
huggingface_hub reads its configuration from the environment *when it is imported*, and the
test session usually imports it (through ``publisher``) long before a test runs. Setting
``HF_ENDPOINT`` then is not enough, so ``patch_huggingface_hub`` also monkeypatches (all undone
at teardown):

- ``constants.ENDPOINT`` and ``constants.HUGGINGFACE_CO_URL_TEMPLATE``: every ``HfApi()`` built
  later, ``hf_hub_url``/``hf_hub_download`` and the LFS/commit helpers read them at call time.
- ``huggingface_hub.hf_api.api.endpoint``: the module-level ``HfApi()`` instance that backs the
  top-level functions (``huggingface_hub.upload_folder``, ``create_repo``, ``model_info``...)
  copied ``constants.ENDPOINT`` when it was built at import.
- ``huggingface_hub.utils._http._HUB_ORIGINS``: frozenset of "Hub" origins computed at import
  from ``ENDPOINT``; redirects to these keep the auth header. Adding the local origin makes the
  client behave exactly as if ``HF_ENDPOINT`` had been set before import (the ``localhost``
  "CDN" origin stays foreign, so auth is dropped there).
- ``constants.HF_HUB_DISABLE_XET = True``: ``is_xet_available()`` checks it at every call (it
  is not cached elsewhere); otherwise hf_xet (installed) routes uploads through a Xet CAS
  service, and ``upload_folder`` through the multi-commit Xet pipeline.
- ``constants.HF_HUB_DISABLE_TELEMETRY = True`` (else the user agent probes
  ``/api/agent-harnesses``), ``constants.HF_HUB_OFFLINE = False``.
- The cache and token paths derived from ``HF_HOME`` at import (``HF_HOME``, ``HF_HUB_CACHE``,
  ``HUGGINGFACE_HUB_CACHE``, ``HF_ASSETS_CACHE``, ``HF_XET_CACHE``, ``HF_TOKEN_PATH``,
  ``HF_STORED_TOKENS_PATH``, ...) and their ``from constants import`` copies in
  ``utils._cache_manager`` / ``utils._cache_assets``: downloads land in ``tmp_path`` and a
  developer's stored token (``~/.cache/huggingface/token``) is never read or sent.
- ``huggingface_hub.utils._http._GLOBAL_CLIENT = None``: the shared ``httpx2.Client`` reads the
  proxy variables (``NO_PROXY``...) when it is created; a fresh one is built for the test.

It also sets the environment for subprocesses (``HF_ENDPOINT``, ``HF_HUB_DISABLE_XET=1``,
``HF_HUB_DISABLE_TELEMETRY=1``, ``HF_HOME``, ``NO_PROXY``) and unsets ``HF_TOKEN``,
``HUGGING_FACE_HUB_TOKEN``, ``HF_OIDC_RESOURCE``, ``HF_HUB_OFFLINE``... Use from a conftest
(``tests/`` is on ``sys.path`` because ``tests/conftest.py`` has no package ``__init__``)::

    from support.hub_server import local_hub_env

    @pytest.fixture
    def local_hub(monkeypatch, tmp_path, request):
        return local_hub_env(monkeypatch, tmp_path, request=request)
"""

from __future__ import annotations

import base64
import codecs
import dataclasses
import datetime as _dt
import fnmatch
import hashlib
import json
import re
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

DEFAULT_TOKEN = "hf_localhub_test_token_0123456789"
DEFAULT_USER = "local-user"
LFS_THRESHOLD = 10 * 1024 * 1024
FAILURE_KINDS = frozenset(
    {
        "create_repo",
        "preupload",
        "lfs_batch",
        "lfs_upload",
        "lfs_verify",
        "commit",
        "resolve",
        "cdn_download",
        "info",
        "tree",
        "tag",
    }
)
INVALID_CREDENTIALS = "Invalid credentials in Authorization header"

_REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
_LFS_VERIFY = ".git/info/lfs/objects/verify"
_HEX40 = re.compile(r"^[0-9a-f]{40}$")

# The .gitattributes the Hub puts in the initial commit of a new repo.
DEFAULT_GITATTRIBUTES = "".join(
    f"{pattern} filter=lfs diff=lfs merge=lfs -text\n"
    for pattern in [
        "*.7z",
        "*.arrow",
        "*.bin",
        "*.bz2",
        "*.ckpt",
        "*.ftz",
        "*.gz",
        "*.h5",
        "*.joblib",
        "*.lfs.*",
        "*.mlmodel",
        "*.model",
        "*.msgpack",
        "*.npy",
        "*.npz",
        "*.onnx",
        "*.ot",
        "*.parquet",
        "*.pb",
        "*.pickle",
        "*.pkl",
        "*.pt",
        "*.pth",
        "*.rar",
        "*.safetensors",
        "saved_model/**/*",
        "*.tar.*",
        "*.tar",
        "*.tflite",
        "*.tgz",
        "*.wasm",
        "*.xz",
        "*.zip",
        "*.zst",
        "*tfevents*",
    ]
)


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub calls the oid of a regular file)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return (
        f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()
    )


def _now() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


@dataclasses.dataclass(frozen=True)
class Entry:
    """A file in a commit: inline bytes (regular) or an LFS object reference."""

    size: int
    oid: str  # git blob id (of the content, or of the LFS pointer)
    content: bytes | None = None
    lfs_sha256: str | None = None

    @property
    def is_lfs(self) -> bool:
        return self.lfs_sha256 is not None

    @property
    def pointer_size(self) -> int:
        assert self.lfs_sha256 is not None
        return len(lfs_pointer(self.lfs_sha256, self.size))

    @property
    def remote_oid(self) -> str:
        """The oid preupload reports: sha256 for LFS, git blob SHA-1 for regular files."""
        return self.lfs_sha256 if self.lfs_sha256 is not None else self.oid

    @classmethod
    def regular(cls, data: bytes) -> Entry:
        return cls(size=len(data), oid=git_blob_sha1(data), content=bytes(data))

    @classmethod
    def lfs(cls, sha256: str, size: int) -> Entry:
        return cls(size=size, oid=git_blob_sha1(lfs_pointer(sha256, size)), lfs_sha256=sha256)


@dataclasses.dataclass(frozen=True)
class Commit:
    oid: str
    parent: str | None
    title: str
    description: str
    date: str
    files: dict[str, Entry]

    @property
    def paths(self) -> list[str]:
        return sorted(self.files)


@dataclasses.dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool
    sdk: str | None = None
    refs: dict[str, str] = dataclasses.field(default_factory=dict)  # "main", "refs/pr/1"
    commits: dict[str, Commit] = dataclasses.field(default_factory=dict)
    lfs: dict[str, bytes] = dataclasses.field(default_factory=dict)  # sha256 -> bytes
    tags: dict[str, tuple[str, str]] = dataclasses.field(
        default_factory=dict
    )  # name -> (oid, message)
    num_prs: int = 0
    created_at: str = dataclasses.field(default_factory=_now)

    def resolve(self, revision: str) -> str | None:
        if revision.startswith("refs/heads/"):
            revision = revision[len("refs/heads/") :]
        if revision in self.refs:
            return self.refs[revision]
        if revision.removeprefix("refs/tags/") in self.tags:
            return self.tags[revision.removeprefix("refs/tags/")][0]
        if _HEX40.match(revision) and revision in self.commits:
            return revision
        return None


@dataclasses.dataclass
class LoggedRequest:
    method: str
    path: str  # raw path with query string, as received
    host: str  # "hub" or "cdn"
    authorized: bool  # an authorization header was sent
    status: int | None = None


class HubError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        commit: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code
        self.commit = commit
        self.extra = extra or {}


def _is_lfs_path(path: str, gitattributes: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    for line in gitattributes.splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0].startswith("#") or "filter=lfs" not in parts[1:]:
            continue
        pattern = parts[0]
        if "/" in pattern:
            if fnmatch.fnmatchcase(path, pattern.replace("**/", "*").lstrip("/")):
                return True
        elif fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _looks_binary(sample: bytes) -> bool:
    if b"\x00" in sample:
        return True
    try:  # the sample is cut at 512 bytes: an incomplete trailing character is fine
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return True
    return False


class LocalHub:
    """An in-memory Hub on 127.0.0.1 (its LFS/CDN side on localhost, same port)."""

    def __init__(
        self,
        tokens: Iterable[str] | None = None,
        *,
        user: str = DEFAULT_USER,
        host: str = "127.0.0.1",
        cdn_host: str = "localhost",
    ) -> None:
        self.valid_tokens: set[str] = set(tokens) if tokens is not None else {DEFAULT_TOKEN}
        self.user = user
        self.host = host
        self.cdn_host = cdn_host
        self.port: int | None = None
        self.repos: dict[tuple[str, str], Repo] = {}
        self.request_log: list[LoggedRequest] = []
        self.unhandled: list[tuple[str, str]] = []
        self._failures: dict[str, list[tuple[int, str]]] = {}
        self._seq = 0
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> LocalHub:
        if self._server is not None:
            return self
        hub = self

        class Handler(_Handler):
            pass

        Handler.hub = hub
        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},  # shutdown() waits up to one poll interval
            name=f"LocalHub:{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> LocalHub:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("LocalHub is not started")
        return f"http://{self.host}:{self.port}"

    @property
    def cdn_endpoint(self) -> str:
        if self.port is None:
            raise RuntimeError("LocalHub is not started")
        return f"http://{self.cdn_host}:{self.port}"

    @property
    def token(self) -> str:
        """A valid token (the first in sorted order)."""
        return sorted(self.valid_tokens)[0]

    # ---------------------------------------------------------------- test helpers
    @property
    def requests(self) -> list[tuple[str, str]]:
        """(method, raw path with query) of every request received, in order."""
        with self._lock:
            return [(r.method, r.path) for r in self.request_log]

    def clear_requests(self) -> None:
        with self._lock:
            self.request_log.clear()
            self.unhandled.clear()

    def fail_next(
        self, kind: str, status: int = 500, *, times: int = 1, message: str | None = None
    ) -> None:
        """Make the next ``times`` requests of ``kind`` answer ``status`` (and change nothing)."""
        if kind not in FAILURE_KINDS:
            raise ValueError(
                f"unknown failure kind {kind!r}; expected one of {sorted(FAILURE_KINDS)}"
            )
        msg = message or f"LocalHub: injected failure of {kind}"
        with self._lock:
            self._failures.setdefault(kind, []).extend([(status, msg)] * times)

    def pending_failures(self) -> dict[str, int]:
        with self._lock:
            return {k: len(v) for k, v in self._failures.items() if v}

    def repo(self, repo_id: str, repo_type: str = "model") -> Repo:
        with self._lock:
            try:
                return self.repos[(repo_type, repo_id)]
            except KeyError:
                raise KeyError(f"no {repo_type} repo {repo_id!r} on the LocalHub") from None

    def repo_exists(self, repo_id: str, repo_type: str = "model") -> bool:
        with self._lock:
            return (repo_type, repo_id) in self.repos

    def head(self, repo_id: str, revision: str = "main", repo_type: str = "model") -> str:
        """The commit id ``revision`` (branch, refs/pr/N or commit id) points to."""
        with self._lock:
            oid = self.repo(repo_id, repo_type).resolve(revision)
            if oid is None:
                raise KeyError(f"no revision {revision!r} in {repo_type} repo {repo_id!r}")
            return oid

    def tags(self, repo_id: str, repo_type: str = "model") -> dict[str, tuple[str, str]]:
        """Tag name -> (commit oid, message)."""
        with self._lock:
            return dict(self.repo(repo_id, repo_type).tags)

    def refs(self, repo_id: str, repo_type: str = "model") -> dict[str, str]:
        with self._lock:
            return dict(self.repo(repo_id, repo_type).refs)

    def commits(
        self, repo_id: str, revision: str = "main", repo_type: str = "model"
    ) -> list[Commit]:
        """The first-parent history of ``revision``, oldest (the initial commit) first."""
        with self._lock:
            repo = self.repo(repo_id, repo_type)
            oid: str | None = self.head(repo_id, revision, repo_type)
            out = []
            while oid is not None:
                commit = repo.commits[oid]
                out.append(commit)
                oid = commit.parent
            return out[::-1]

    def files(
        self, repo_id: str, revision: str = "main", repo_type: str = "model"
    ) -> dict[str, bytes]:
        """path -> content of every file at ``revision`` (LFS objects resolved)."""
        with self._lock:
            repo = self.repo(repo_id, repo_type)
            commit = repo.commits[self.head(repo_id, revision, repo_type)]
            return {path: self._content(repo, e) for path, e in sorted(commit.files.items())}

    def lfs_objects(self, repo_id: str, repo_type: str = "model") -> set[str]:
        with self._lock:
            return set(self.repo(repo_id, repo_type).lfs)

    def seed(
        self,
        repo_id: str,
        files: dict[str, bytes],
        *,
        repo_type: str = "model",
        private: bool = False,
        message: str = "Seed files",
    ) -> str:
        """Create the repo if needed and commit ``files`` on main; returns the commit id."""
        with self._lock:
            repo = self.repos.get((repo_type, repo_id)) or self._create(repo_id, repo_type, private)
            parent = repo.refs["main"]
            tree = dict(repo.commits[parent].files)
            gitattributes = self._content(repo, tree[".gitattributes"]).decode()
            for path, data in files.items():
                if _is_lfs_path(path, gitattributes) or len(data) >= LFS_THRESHOLD:
                    sha = hashlib.sha256(data).hexdigest()
                    repo.lfs[sha] = bytes(data)
                    tree[path] = Entry.lfs(sha, len(data))
                else:
                    tree[path] = Entry.regular(data)
            commit = self._new_commit(repo, parent, "main", message, "", tree)
            repo.refs["main"] = commit.oid
            return commit.oid

    # ---------------------------------------------------------------- internals
    @staticmethod
    def _content(repo: Repo, entry: Entry) -> bytes:
        if entry.lfs_sha256 is not None:
            return repo.lfs[entry.lfs_sha256]
        assert entry.content is not None
        return entry.content

    def _take_failure(self, kind: str) -> None:
        with self._lock:
            queue = self._failures.get(kind)
            if queue:
                status, msg = queue.pop(0)
                raise HubError(status, msg, extra={"injected": kind})

    def _new_commit(
        self, repo: Repo, parent: str | None, ref: str, title: str, description: str, files: dict
    ) -> Commit:
        self._seq += 1
        h = hashlib.sha1()
        h.update(
            f"{parent}\n{repo.repo_type}/{repo.repo_id}@{ref}\n{self._seq}\n{title}\n".encode()
        )
        for path in sorted(files):
            h.update(f"{path}\0{files[path].oid}\n".encode())
        commit = Commit(h.hexdigest(), parent, title, description, _now(), dict(files))
        repo.commits[commit.oid] = commit
        return commit

    def _create(self, repo_id: str, repo_type: str, private: bool, sdk: str | None = None) -> Repo:
        repo = Repo(repo_type=repo_type, repo_id=repo_id, private=private, sdk=sdk)
        files = {".gitattributes": Entry.regular(DEFAULT_GITATTRIBUTES.encode())}
        commit = self._new_commit(repo, None, "main", "initial commit", "", files)
        repo.refs["main"] = commit.oid
        self.repos[(repo_type, repo_id)] = repo
        return repo

    def repo_url(self, repo: Repo) -> str:
        return f"{self.endpoint}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}"


# ==================================================================== HTTP side
class _Handler(BaseHTTPRequestHandler):
    hub: LocalHub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes: no 40 ms stalls
    server_version = "LocalHub/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    # ------------------------------------------------------------ plumbing
    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _read_body(self) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self._status = status
        self.send_response(status)
        headers = dict(headers or {})
        headers.setdefault("Content-Length", str(len(body)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, data: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(data).encode()
        self._send(status, body, {"Content-Type": "application/json", **(headers or {})})

    def _dispatch(self, method: str) -> None:
        hub = self.hub
        self._status = None
        host_header = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
        origin = "cdn" if host_header == hub.cdn_host else "hub"
        record = LoggedRequest(method, self.path, origin, "authorization" in self.headers)
        with hub._lock:
            hub.request_log.append(record)
        body = self._read_body()  # always drain the body, even when refusing
        split = urlsplit(self.path)
        self._query = parse_qs(split.query)
        segments = [unquote(s) for s in split.path.split("/")[1:]]
        try:
            if origin == "cdn":
                self._route_cdn(method, segments, body)
            else:
                self._token = self._check_token()
                self._route_hub(method, segments, body)
        except HubError as err:
            headers = {}
            if err.code:
                headers["X-Error-Code"] = err.code
            headers["X-Error-Message"] = err.message
            if err.commit:
                headers["X-Repo-Commit"] = err.commit
            self._json(err.status, {"error": err.message, **err.extra}, headers)
        except Exception as err:  # a bug in the fake Hub: surface it to the client
            self._json(500, {"error": f"LocalHub internal error: {err!r}"})
        finally:
            record.status = self._status

    def _check_token(self) -> str | None:
        auth = self.headers.get("authorization")
        if auth is None:
            return None
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
        if token not in self.hub.valid_tokens:
            raise HubError(401, INVALID_CREDENTIALS)
        return token

    def _require_write(self) -> None:
        if self._token is None:
            raise HubError(401, "Authentication required: send 'authorization: Bearer <token>'")

    def _flag(self, name: str) -> bool:
        value = (self._query.get(name) or [""])[0].lower()
        return value in ("1", "true", "yes")

    def _get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None or (repo.private and self._token is None):
            # The Hub answers 401 to anonymous reads of private repos, 404 otherwise.
            status = 401 if repo is not None else 404
            raise HubError(status, "Repository not found", code="RepoNotFound")
        return repo

    @staticmethod
    def _split_revision(parts: list[str]) -> tuple[str, list[str]]:
        """First path segment(s) as a revision: quoted 'refs%2Fpr%2F1' or raw 'refs/pr/1'."""
        if not parts:
            raise HubError(400, "Missing revision")
        if parts[0] == "refs" and len(parts) >= 3 and parts[1] in ("pr", "heads", "convert"):
            return "/".join(parts[:3]), parts[3:]
        return parts[0], parts[1:]

    def _resolve(self, repo: Repo, revision: str) -> str:
        oid = repo.resolve(revision)
        if oid is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        return oid

    # ------------------------------------------------------------ routing
    def _route_hub(self, method: str, seg: list[str], body: bytes) -> None:
        hub = self.hub
        with hub._lock:
            if seg[:1] == ["api"]:
                rest = seg[1:]
                if method == "POST" and rest == ["repos", "create"]:
                    return self._create_repo(json.loads(body or b"{}"))
                if method == "DELETE" and rest == ["repos", "delete"]:
                    return self._delete_repo(json.loads(body or b"{}"))
                if method == "POST" and rest == ["validate-yaml"]:
                    return self._json(200, {"errors": [], "warnings": []})
                if method == "GET" and rest == ["whoami-v2"]:
                    self._require_write()
                    return self._json(200, self._whoami())
                if len(rest) >= 3 and rest[0] in _REPO_TYPES:
                    repo_type = _REPO_TYPES[rest[0]]
                    repo_id = f"{rest[1]}/{rest[2]}"
                    return self._route_repo_api(method, repo_type, repo_id, rest[3:], body)
            else:
                repo_type = "model"
                if seg and seg[0] in ("datasets", "spaces"):
                    repo_type, seg = _REPO_TYPES[seg[0]], seg[1:]
                if (
                    len(seg) >= 3
                    and seg[1].endswith(".git")
                    and seg[2:5] == ["info", "lfs", "objects"]
                ):
                    repo_id = f"{seg[0]}/{seg[1][: -len('.git')]}"
                    if method == "POST" and seg[5:] == ["batch"]:
                        return self._lfs_batch(repo_type, repo_id, json.loads(body))
                    if method == "POST" and seg[5:] == ["verify"]:
                        return self._lfs_verify(repo_type, repo_id, json.loads(body))
                if len(seg) >= 5 and seg[2] == "resolve" and method in ("GET", "HEAD"):
                    repo_id = f"{seg[0]}/{seg[1]}"
                    revision, path = self._split_revision(seg[3:])
                    return self._resolve_file(repo_type, repo_id, revision, "/".join(path))
            hub.unhandled.append((method, self.path))
            raise HubError(404, f"LocalHub does not implement {method} {urlsplit(self.path).path}")

    def _route_repo_api(
        self, method: str, repo_type: str, repo_id: str, rest: list[str], body: bytes
    ) -> None:
        if method == "GET" and not rest:
            return self._repo_info(repo_type, repo_id, "main")
        if method == "GET" and rest[0] == "revision":
            revision, _ = self._split_revision(rest[1:])
            return self._repo_info(repo_type, repo_id, revision)
        if method == "POST" and rest[0] == "preupload":
            return self._preupload(repo_type, repo_id, "/".join(rest[1:]), json.loads(body))
        if method == "POST" and rest[0] == "commit":
            return self._commit(repo_type, repo_id, "/".join(rest[1:]), body)
        if method == "GET" and rest[0] == "tree":
            revision, path = self._split_revision(rest[1:])
            return self._tree(repo_type, repo_id, revision, "/".join(path).strip("/"))
        if method == "POST" and rest[0] == "paths-info":
            return self._paths_info(repo_type, repo_id, "/".join(rest[1:]), body)
        if method == "GET" and rest == ["refs"]:
            return self._list_refs(repo_type, repo_id)
        if method == "POST" and rest[0] == "tag":
            return self._create_tag(
                repo_type, repo_id, unquote("/".join(rest[1:])), json.loads(body)
            )
        if method == "GET" and rest[0] == "commits":
            revision = "/".join(rest[1:]) or "main"
            return self._list_commits(repo_type, repo_id, revision)
        self.hub.unhandled.append((method, self.path))
        raise HubError(404, f"LocalHub does not implement {method} {urlsplit(self.path).path}")

    # ------------------------------------------------------------ repos
    def _whoami(self) -> dict:
        return {
            "type": "user",
            "name": self.hub.user,
            "fullname": self.hub.user,
            "orgs": [],
            "auth": {
                "type": "access_token",
                "accessToken": {"displayName": "local", "role": "write"},
            },
        }

    def _create_repo(self, payload: dict) -> None:
        self._require_write()
        self.hub._take_failure("create_repo")
        repo_type = payload.get("type") or "model"
        if repo_type not in _URL_PREFIX:
            raise HubError(400, f"Invalid repo type {repo_type!r}")
        name = payload.get("name")
        if not name:
            raise HubError(400, "Missing repo name")
        repo_id = f"{payload.get('organization') or self.hub.user}/{name}"
        existing = self.hub.repos.get((repo_type, repo_id))
        if existing is not None:
            url = self.hub.repo_url(existing)
            raise HubError(409, f"You already created this {repo_type} repo", extra={"url": url})
        if repo_type == "space" and not payload.get("sdk"):
            raise HubError(400, "Missing sdk for a Space")
        private = bool(payload.get("private")) or payload.get("visibility") == "private"
        repo = self.hub._create(repo_id, repo_type, private, payload.get("sdk"))
        self._json(200, {"url": self.hub.repo_url(repo), "name": repo_id, "id": repo_id})

    def _delete_repo(self, payload: dict) -> None:
        self._require_write()
        repo_type = payload.get("type") or "model"
        repo_id = f"{payload.get('organization') or self.hub.user}/{payload.get('name')}"
        if self.hub.repos.pop((repo_type, repo_id), None) is None:
            raise HubError(404, "Repository not found", code="RepoNotFound")
        self._json(200, {})

    def _sibling(self, path: str, entry: Entry, blobs: bool) -> dict:
        out: dict[str, Any] = {"rfilename": path}
        if blobs:
            out["size"] = entry.size
            out["blobId"] = entry.oid
            if entry.lfs_sha256 is not None:
                out["lfs"] = {
                    "sha256": entry.lfs_sha256,
                    "size": entry.size,
                    "pointerSize": entry.pointer_size,
                }
        return out

    def _repo_info(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        self.hub._take_failure("info")
        oid = self._resolve(repo, revision)
        commit = repo.commits[oid]
        blobs = self._flag("blobs")
        data: dict[str, Any] = {
            "_id": hashlib.sha1(f"{repo_type}/{repo_id}".encode()).hexdigest()[:24],
            "id": repo_id,
            "author": repo_id.split("/")[0],
            "sha": oid,
            "private": repo.private,
            "gated": False,
            "disabled": False,
            "downloads": 0,
            "likes": 0,
            "tags": [],
            "createdAt": repo.created_at,
            "lastModified": commit.date,
            "siblings": [self._sibling(p, e, blobs) for p, e in sorted(commit.files.items())],
        }
        if repo_type == "space":
            data["sdk"] = repo.sdk
        if blobs:
            data["usedStorage"] = sum(e.size for e in commit.files.values())
        self._json(200, data)

    # ------------------------------------------------------------ upload
    def _preupload(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> None:
        self._require_write()
        repo = self._get_repo(repo_type, repo_id)
        self.hub._take_failure("preupload")
        oid = repo.resolve(revision)
        if oid is None and not self._flag("create_pr"):
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        files = repo.commits[oid].files if oid is not None else {}
        gitattributes = (
            self.hub._content(repo, files[".gitattributes"]).decode()
            if ".gitattributes" in files
            else ""
        )
        out = []
        for item in payload.get("files", []):
            path, size = item["path"], int(item.get("size", 0))
            sample = base64.b64decode(item.get("sample") or "")
            lfs = (
                _is_lfs_path(path, gitattributes) or size >= LFS_THRESHOLD or _looks_binary(sample)
            )
            existing = files.get(path)
            out.append(
                {
                    "path": path,
                    "uploadMode": "lfs" if lfs else "regular",
                    "shouldIgnore": False,
                    "oid": existing.remote_oid if existing is not None else None,
                }
            )
        self._json(200, {"files": out, "commitOid": oid})

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict) -> None:
        repo = self._get_repo(repo_type, repo_id)
        if payload.get("operation") == "upload":
            self._require_write()
        self.hub._take_failure("lfs_batch")
        prefix = _URL_PREFIX[repo_type]
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            item: dict[str, Any] = {"oid": oid, "size": size, "authenticated": True}
            stored = repo.lfs.get(oid)
            if payload.get("operation") == "download":
                if stored is None:
                    item["error"] = {"code": 404, "message": "Object does not exist"}
                else:
                    href = f"{self.hub.cdn_endpoint}/lfs-cdn/{repo_type}/{repo_id}/{oid}"
                    item["actions"] = {"download": {"href": href}}
            elif stored is None:
                item["actions"] = {
                    "upload": {
                        "href": f"{self.hub.cdn_endpoint}/lfs-upload/{repo_type}/{repo_id}/{oid}",
                    },
                    "verify": {
                        "href": f"{self.hub.endpoint}/{prefix}{repo_id}{_LFS_VERIFY}",
                    },
                }
            objects.append(item)
        self._json(200, {"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_verify(self, repo_type: str, repo_id: str, payload: dict) -> None:
        self._require_write()
        repo = self._get_repo(repo_type, repo_id)
        self.hub._take_failure("lfs_verify")
        stored = repo.lfs.get(payload.get("oid", ""))
        if stored is None or len(stored) != int(payload.get("size", -1)):
            raise HubError(404, "Object not found (or wrong size)")
        self._json(200, {})

    def _commit(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        self._require_write()
        repo = self._get_repo(repo_type, repo_id)
        self.hub._take_failure("commit")
        lines = [json.loads(line) for line in body.splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "The first line of a commit payload must be its header")
        header = lines[0]["value"]
        base = repo.resolve(revision)
        if base is None:
            raise HubError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
        create_pr = self._flag("create_pr")
        is_branch = revision in repo.refs or revision.startswith("refs/heads/")
        if not is_branch:
            raise HubError(400, f"Cannot commit to {revision!r}: not a branch or pull request ref")
        ref = revision[len("refs/heads/") :] if revision.startswith("refs/heads/") else revision
        parent_commit = header.get("parentCommit")
        if parent_commit is not None and parent_commit != base:
            raise HubError(412, "A commit has happened since. Please refresh and try again.")
        files = dict(repo.commits[base].files)
        for line in lines[1:]:
            key, value = line.get("key"), line.get("value") or {}
            path = value.get("path", "").strip("/")
            if key == "file":
                files[path] = Entry.regular(base64.b64decode(value.get("content", "")))
            elif key == "lfsFile":
                oid = value.get("oid", "")
                stored = repo.lfs.get(oid)
                if stored is None:
                    raise HubError(
                        400,
                        f"Your push was rejected because an LFS pointer pointed to a file that "
                        f"does not exist ({path}: sha256 {oid})",
                    )
                if "size" in value and int(value["size"]) != len(stored):
                    raise HubError(
                        400, f"LFS object {oid} has size {len(stored)}, not {value['size']}"
                    )
                files[path] = Entry.lfs(oid, len(stored))
            elif key == "deletedFile":
                if path not in files:
                    raise HubError(
                        404,
                        f"A file with this name doesn't exist: {path}",
                        code="EntryNotFound",
                        commit=base,
                    )
                del files[path]
            elif key == "deletedFolder":
                doomed = [p for p in files if p.startswith(path + "/")] if path else list(files)
                if not doomed:
                    raise HubError(
                        404, f"A folder with this name doesn't exist: {path}", code="EntryNotFound"
                    )
                for p in doomed:
                    del files[p]
            else:
                raise HubError(400, f"Unknown commit operation {key!r}")
        title, description = header.get("summary", ""), header.get("description", "")
        prefix = f"{self.hub.endpoint}/{_URL_PREFIX[repo_type]}{repo_id}"
        if create_pr:
            repo.num_prs += 1
            ref = f"refs/pr/{repo.num_prs}"
        commit = self.hub._new_commit(repo, base, ref, title, description, files)
        repo.refs[ref] = commit.oid
        out = {
            "success": True,
            "commitOid": commit.oid,
            "commitUrl": f"{prefix}/commit/{commit.oid}",
            "hookOutput": "",
        }
        if create_pr:
            out["pullRequestUrl"] = f"{prefix}/discussions/{repo.num_prs}"
        self._json(200, out)

    # ------------------------------------------------------------ listings
    def _tree_entry(self, path: str, entry: Entry) -> dict:
        out: dict[str, Any] = {"type": "file", "oid": entry.oid, "size": entry.size, "path": path}
        if entry.lfs_sha256 is not None:
            out["lfs"] = {
                "oid": entry.lfs_sha256,
                "size": entry.size,
                "pointerSize": entry.pointer_size,
            }
        return out

    @staticmethod
    def _folder_entry(path: str, commit: str) -> dict:
        return {
            "type": "directory",
            "oid": git_blob_sha1(f"{commit}:{path}".encode()),
            "path": path,
        }

    def _tree(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        self.hub._take_failure("tree")
        oid = self._resolve(repo, revision)
        files = repo.commits[oid].files
        recursive = self._flag("recursive")
        prefix = f"{path}/" if path else ""
        if path and path in files:
            raise HubError(400, f"{path} is a file, not a folder")
        below = {p: e for p, e in files.items() if p.startswith(prefix)}
        if path and not below:
            raise HubError(404, f"Entry not found: {path}", code="EntryNotFound", commit=oid)
        folders: set[str] = set()
        out_files = []
        for p, e in sorted(below.items()):
            rel_parts = p[len(prefix) :].split("/")
            for depth in range(1, len(rel_parts)):
                if recursive or depth == 1:
                    folders.add(prefix + "/".join(rel_parts[:depth]))
            if recursive or len(rel_parts) == 1:
                out_files.append(self._tree_entry(p, e))
        self._json(200, [self._folder_entry(f, oid) for f in sorted(folders)] + out_files)

    def _paths_info(self, repo_type: str, repo_id: str, revision: str, body: bytes) -> None:
        repo = self._get_repo(repo_type, repo_id)
        oid = self._resolve(repo, revision)
        files = repo.commits[oid].files
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(body).get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        out = []
        for p in paths:
            p = p.strip("/")
            if p in files:
                out.append(self._tree_entry(p, files[p]))
            elif any(f.startswith(p + "/") for f in files):
                out.append(self._folder_entry(p, oid))
        self._json(200, out)

    def _list_refs(self, repo_type: str, repo_id: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        branches, prs = [], []
        for name, oid in sorted(repo.refs.items()):
            if name.startswith("refs/pr/"):
                prs.append({"name": name, "ref": name, "targetCommit": oid})
            else:
                branches.append({"name": name, "ref": f"refs/heads/{name}", "targetCommit": oid})
        tags = [
            {"name": name, "ref": f"refs/tags/{name}", "targetCommit": oid}
            for name, (oid, _) in sorted(repo.tags.items())
        ]
        data: dict[str, Any] = {"branches": branches, "converts": [], "tags": tags}
        if self._flag("include_prs"):
            data["pullRequests"] = prs
        self._json(200, data)

    def _create_tag(self, repo_type: str, repo_id: str, revision: str, payload: dict) -> None:
        """POST /api/{type}s/{repo}/tag/{revision} {"tag", "message"}: 409 if it exists."""
        self._require_write()
        repo = self._get_repo(repo_type, repo_id)
        self.hub._take_failure("tag")
        oid = self._resolve(repo, revision)
        name = str(payload.get("tag") or "")
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}", name):
            raise HubError(400, f"Invalid tag name {name!r}")
        if name in repo.tags:
            raise HubError(409, f"Tag {name} already exists")
        repo.tags[name] = (oid, str(payload.get("message") or ""))
        self._json(200, {})

    def _list_commits(self, repo_type: str, repo_id: str, revision: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        oid: str | None = self._resolve(repo, revision)
        out = []
        while oid is not None:
            c = repo.commits[oid]
            out.append(
                {
                    "id": c.oid,
                    "authors": [{"user": self.hub.user}],
                    "date": c.date,
                    "title": c.title,
                    "message": c.description,
                }
            )
            oid = c.parent
        self._json(200, out)

    # ------------------------------------------------------------ download
    def _resolve_file(self, repo_type: str, repo_id: str, revision: str, path: str) -> None:
        repo = self._get_repo(repo_type, repo_id)
        self.hub._take_failure("resolve")
        oid = self._resolve(repo, revision)
        entry = repo.commits[oid].files.get(path)
        if entry is None:
            raise HubError(404, "Entry not found", code="EntryNotFound", commit=oid)
        headers = {"X-Repo-Commit": oid, "Accept-Ranges": "bytes"}
        if entry.lfs_sha256 is not None:
            location = f"{self.hub.cdn_endpoint}/lfs-cdn/{repo_type}/{repo_id}/{entry.lfs_sha256}"
            headers.update(
                {
                    "Location": location,
                    "ETag": f'"{entry.oid}"',
                    "X-Linked-Etag": f'"{entry.lfs_sha256}"',
                    "X-Linked-Size": str(entry.size),
                }
            )
            return self._send(302, b"", headers)
        assert entry.content is not None
        headers["ETag"] = f'"{entry.oid}"'
        headers["Content-Type"] = "application/octet-stream"
        self._send_bytes(entry.content, headers)

    def _send_bytes(self, data: bytes, headers: dict[str, str]) -> None:
        rng = self.headers.get("Range")
        m = re.fullmatch(r"bytes=(\d+)-(\d*)", rng.strip()) if rng else None
        if m:
            start = int(m.group(1))
            end = int(m.group(2)) if m.group(2) else len(data) - 1
            end = min(end, len(data) - 1)
            if start >= len(data) or start > end:
                return self._send(416, b"", {**headers, "Content-Range": f"bytes */{len(data)}"})
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
            return self._send(206, data[start : end + 1], headers)
        self._send(200, data, headers)

    # ------------------------------------------------------------ CDN origin
    def _route_cdn(self, method: str, seg: list[str], body: bytes) -> None:
        hub = self.hub
        if "authorization" in self.headers:
            # Presigned storage URLs refuse a second auth mechanism; the Hub token must not leak.
            raise HubError(400, "Only one auth mechanism allowed (authorization header on CDN)")
        with hub._lock:
            if len(seg) == 5 and seg[1] in _URL_PREFIX:
                kind, repo_type, repo_id, oid = seg[0], seg[1], f"{seg[2]}/{seg[3]}", seg[4]
                repo = hub.repos.get((repo_type, repo_id))
                if repo is None:
                    raise HubError(404, "NoSuchBucket")
                if kind == "lfs-upload" and method == "PUT":
                    hub._take_failure("lfs_upload")
                    if hashlib.sha256(body).hexdigest() != oid:
                        raise HubError(
                            400, "BadDigest: the uploaded content does not match its oid"
                        )
                    repo.lfs[oid] = body
                    return self._send(200, b"", {"ETag": f'"{hashlib.md5(body).hexdigest()}"'})
                if kind == "lfs-cdn" and method in ("GET", "HEAD"):
                    hub._take_failure("cdn_download")
                    data = repo.lfs.get(oid)
                    if data is None:
                        raise HubError(404, "NoSuchKey")
                    headers = {
                        "Content-Type": "application/octet-stream",
                        "ETag": f'"{oid}"',
                        "Accept-Ranges": "bytes",
                    }
                    return self._send_bytes(data, headers)
            hub.unhandled.append((method, self.path))
            raise HubError(404, "NoSuchKey")


# ==================================================================== pytest wiring
_UNSET_ENV = (
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
    "HF_TOKEN_PATH",
    "HF_OIDC_RESOURCE",
    "HF_OIDC_ID_TOKEN",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_HUB_CACHE",
    "HUGGINGFACE_HUB_CACHE",
    "HF_ASSETS_CACHE",
    "HF_XET_CACHE",
    "HUGGINGFACE_CO_STAGING",
    "HF_HUB_ENABLE_HF_TRANSFER",
)


def patch_huggingface_hub(monkeypatch: Any, endpoint: str, hf_home: str | Path) -> None:
    """Point an already-imported huggingface_hub at ``endpoint`` with a private ``hf_home``.

    See the module docstring for what is patched and why. Every change goes through
    ``monkeypatch`` and is undone at teardown. huggingface_hub is imported *before* the
    environment changes, so its import-time constants (restored at teardown) are the outer ones.
    """
    import huggingface_hub  # import first: constants read the outer env
    import huggingface_hub.hf_api as hf_api
    import huggingface_hub.utils._cache_assets as cache_assets
    import huggingface_hub.utils._cache_manager as cache_manager
    import huggingface_hub.utils._http as http
    from huggingface_hub import constants

    endpoint = endpoint.rstrip("/")
    home = str(hf_home)
    hub_cache = str(Path(home) / "hub")
    assets_cache = str(Path(home) / "assets")
    token_path = str(Path(home) / "token")

    # environment, for anything that reads it later (subprocesses, fresh imports)
    for name in _UNSET_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", home)
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_UPDATE_CHECK", "1")
    no_proxy = "127.0.0.1,localhost"
    monkeypatch.setenv("NO_PROXY", no_proxy)
    monkeypatch.setenv("no_proxy", no_proxy)

    # constants read at import time
    for name, value in {
        "ENDPOINT": endpoint,
        "HUGGINGFACE_CO_URL_TEMPLATE": endpoint + "/{repo_id}/resolve/{revision}/{filename}",
        "HF_HUB_DISABLE_XET": True,
        "HF_HUB_DISABLE_TELEMETRY": True,
        "HF_HUB_DISABLE_UPDATE_CHECK": True,
        "HF_HUB_OFFLINE": False,
        "HF_HOME": home,
        "default_cache_path": hub_cache,
        "default_assets_cache_path": assets_cache,
        "HF_HUB_CACHE": hub_cache,
        "HUGGINGFACE_HUB_CACHE": hub_cache,
        "HF_ASSETS_CACHE": assets_cache,
        "HUGGINGFACE_ASSETS_CACHE": assets_cache,
        "HF_XET_CACHE": str(Path(home) / "xet"),
        "HF_TOKEN_PATH": token_path,
        "HF_STORED_TOKENS_PATH": str(Path(home) / "stored_tokens"),
        "CHECK_FOR_UPDATE_DONE_PATH": str(Path(home) / ".check_for_update_done"),
        "CHECK_FOR_SKILL_UPDATE_DONE_PATH": str(Path(home) / ".check_for_skill_update_done"),
        "AGENT_HARNESSES_PATH": str(Path(home) / ".agent_harnesses.json"),
    }.items():
        if not hasattr(constants, name):  # a renamed internal must not be skipped silently
            raise RuntimeError(
                f"huggingface_hub {huggingface_hub.__version__} has no constants.{name}: the "
                "local Hub patches an internal that moved; update tests/support/hub_server.py"
            )
        monkeypatch.setattr(constants, name, value)

    # copies of those constants made at import
    monkeypatch.setattr(hf_api.api, "endpoint", endpoint)
    monkeypatch.setattr(cache_manager, "HF_HUB_CACHE", hub_cache)
    monkeypatch.setattr(cache_assets, "HF_ASSETS_CACHE", assets_cache)
    monkeypatch.setattr(
        http, "_HUB_ORIGINS", frozenset({*http._HUB_ORIGINS, http._url_origin(endpoint)})
    )
    # a fresh shared httpx2 client (built with the env above); the old one is put back at teardown
    monkeypatch.setattr(http, "_GLOBAL_CLIENT", None)


def local_hub_env(
    monkeypatch: Any,
    tmp_path: Path,
    *,
    request: Any = None,
    tokens: Iterable[str] | None = None,
    login: str | None = None,
) -> LocalHub:
    """Start a ``LocalHub`` and point huggingface_hub (imported or not) at it for one test.

    ``hf_home`` is ``tmp_path / "hf_home"``. Pass pytest's ``request`` to stop the server at
    teardown (otherwise its daemon thread lives until the process exits). ``login``: a token
    the server accepts and ``HF_TOKEN`` is set to; otherwise no token is set: pass
    ``token=hub.token`` to the client, or ``monkeypatch.setenv("HF_TOKEN", hub.token)``.
    """
    if login is not None:
        tokens = {*(tokens or ()), login}
    hub = LocalHub(tokens=tokens).start()
    if request is not None:
        request.addfinalizer(hub.stop)
    hf_home = Path(tmp_path) / "hf_home"
    hf_home.mkdir(parents=True, exist_ok=True)
    patch_huggingface_hub(monkeypatch, hub.endpoint, hf_home)  # unsets HF_TOKEN
    if login is not None:
        monkeypatch.setenv("HF_TOKEN", login)
    return hub
