"""``publish``: a staged repo folder -> one commit on a Hub model repo, through HfApi only.

huggingface_hub's upload_folder asks the Hub which files it already has (preupload) and
sends only the changed ones, as one commit. The token comes from HF_TOKEN or the
huggingface_hub login; it is never printed, logged or written by this module.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from publisher.runtime.errors import PublisherError


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
    """``ORG/NAME`` by huggingface_hub's own rules (``validate_repo_id``), with the ORG."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("no ORG/")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise PublisherError(
            f"--repo {repo_id!r}: expected ORG/NAME (letters, digits, . _ -)"
        ) from None
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
    from publisher.hub.stage import STAGE_MARK

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
    from publisher.hub.stage import staged_manifest

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

    from publisher.hub.errors import hub_error
    from publisher.hub.session import use_hub_timeouts
    from publisher.hub.stage import STAGE_MARK

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
    except Exception as exc:  # HTTP answers, httpx transport errors, timeouts, OSError
        raise hub_error(repo_id, exc, token=token, seconds=seconds) from None
    return PublishResult(repo_id, info.commit_url, info.pr_url, summary, files, False)
