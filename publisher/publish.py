"""``publish``: a staged repo folder -> one commit on a Hub model repo, through HfApi only.

huggingface_hub's upload_folder asks the Hub which files it already has (preupload) and
sends only the changed ones, as one commit. The token comes from HF_TOKEN or the
huggingface_hub login; it is never printed, logged or written by this module.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.errors import PublisherError, first_line

REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,95}/[A-Za-z0-9][A-Za-z0-9._-]{0,95}$")


@dataclass
class PublishResult:
    repo_id: str
    commit_url: str | None
    pr_url: str | None
    message: str
    files: list[tuple[str, int]]
    dry_run: bool
    synthetic_blocked: bool = False  # a real publish would be refused (dry runs only)
    recovered_blocked: bool = False  # likewise, for weights recovered from an ONNX export


def check_repo_id(repo_id: str) -> str:
    if not REPO_ID.match(repo_id) or ".." in repo_id:
        raise PublisherError(f"--repo {repo_id!r}: expected ORG/NAME (letters, digits, . _ -)")
    return repo_id


def commit_message(manifest: dict[str, Any]) -> tuple[str, str]:
    """Summary names the recipes; the description lists each recipe's hash."""
    names = [v["recipe"] for v in manifest["variants"]]
    summary = f"publisher: {', '.join(names)}"
    if len(summary) > 120:
        summary = f"publisher: {len(names)} variants ({', '.join(names[:4])}, ...)"
    lines = [
        f"- {v['recipe']}: recipe sha256 {v['recipe_sha256']}, file {v['path']}"
        for v in manifest["variants"]
    ]
    ck = manifest["checkpoint"]
    lines.append(f"- checkpoint {ck['source']} sha256 {ck['sha256']}")
    return summary, "\n".join(lines)


def plan(folder: Path) -> list[tuple[str, int]]:
    """The files a publish uploads: everything staged but stage's own marker."""
    from publisher.stage import STAGE_MARK

    return [
        (p.relative_to(folder).as_posix(), p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() != STAGE_MARK
    ]


def publish(
    folder: Path,
    repo_id: str,
    *,
    dry_run: bool = False,
    create_pr: bool = False,
    revision: str | None = None,
    allow_synthetic: bool = False,
    allow_recovered: bool = False,
    private: bool = False,
    token: str | None = None,
) -> PublishResult:
    """Upload a staged folder (see ``stage``) as one commit; ``dry_run`` touches no network."""
    from publisher.stage import staged_manifest

    check_repo_id(repo_id)
    manifest = staged_manifest(folder)
    summary, description = commit_message(manifest)
    files = plan(folder)
    blocked = bool(manifest.get("synthetic")) and not allow_synthetic
    recovered = bool(manifest.get("recovered")) and not manifest.get("synthetic")
    recovered_blocked = recovered and not allow_recovered
    if dry_run:
        return PublishResult(repo_id, None, None, summary, files, True, blocked, recovered_blocked)
    if blocked:
        raise PublisherError(
            "refusing to publish a synthetic build (random weights) to the Hub; "
            "pass --allow-synthetic if that is really what you want"
        )
    if recovered_blocked:
        raise PublisherError(
            "refusing to publish a build from recovered weights (an approximation of "
            "hexgrad's model, not the original) to the Hub; pass --allow-recovered if that "
            "is really what you want (the card says what they are)"
        )
    return _upload(
        folder,
        repo_id,
        summary,
        description,
        files,
        create_pr=create_pr,
        revision=revision,
        private=private,
        token=token,
    )


def _upload(
    folder, repo_id, summary, description, files, *, create_pr, revision, private, token
) -> PublishResult:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from publisher.hub_session import use_hub_timeouts
    from publisher.stage import STAGE_MARK

    seconds = use_hub_timeouts()
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        if revision and revision != "main" and not create_pr:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="model",
            revision=revision,
            commit_message=summary,
            commit_description=description,
            create_pr=create_pr,
            ignore_patterns=[STAGE_MARK],
        )
    except HfHubHTTPError as exc:
        raise PublisherError(_http_error(repo_id, exc, token)) from None
    except Exception as exc:  # httpx transport errors, timeouts, OSError and the like
        raise PublisherError(_transport_error(repo_id, exc, seconds)) from None
    return PublishResult(repo_id, info.commit_url, info.pr_url, summary, files, False)


def _transport_error(repo_id: str, exc: Exception, seconds: float) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return (
            f"{repo_id}: the Hub did not answer within {seconds:g} s ({name}); no commit "
            "was made; try again later or raise PUBLISHER_HUB_TIMEOUT"
        )
    if isinstance(exc, OSError) or "Connect" in name:
        return f"{repo_id}: cannot reach the Hub ({first_line(exc, 200)}); no commit was made"
    return f"{repo_id}: upload failed ({name}: {first_line(exc, 200)}); no commit was made"


def _http_error(repo_id: str, exc, token: str | None = None) -> str:
    from huggingface_hub import get_token

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        if not (token or get_token()):
            return (
                f"{repo_id}: the Hub needs a token with write access (HTTP {status}) and none "
                "is set; set HF_TOKEN or run `hf auth login`"
            )
        return (
            f"{repo_id}: the Hub refused the token (HTTP {status}); set HF_TOKEN to a token "
            "with write access or run `hf auth login`"
        )
    return f"{repo_id}: the Hub answered HTTP {status} ({first_line(exc, 200)}); no commit was made"
