"""``publish``: built variants -> one commit on a Hub model repo that describes the whole
family (see ``publisher.hub.family``), through huggingface_hub's HfApi only.

Each attempt reads the repo at its head (``repo_info`` with file metadata, ``manifest.json``),
stages against it and commits with ``parent_commit`` set to that head: if another publish
moved the repo meanwhile the Hub refuses the commit (HTTP 412) and the publish re-reads,
re-stages and tries again (``ATTEMPTS`` in all), so no publish overwrites another's rows.
Unchanged files are not sent (create_commit's preupload check). Each commit is tagged with
the publisher version, its git commit and the Hub commit. The token comes from HF_TOKEN or
the huggingface_hub login; it is never printed, logged or written by this module.
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from publisher.hub.browser_runs import read_browser_report
from publisher.hub.card import render_card
from publisher.hub.family import RemoteFile, RemoteState
from publisher.hub.session import use_hub_timeouts
from publisher.hub.stage import STAGE_MARK, check_staged, stage
from publisher.manifest import file_sha256, read_manifest
from publisher.provenance import git_commit, publisher_version
from publisher.runtime.artifacts import RepoManifest, first_error
from publisher.runtime.errors import HubConflictError, PublisherError, PublishError
from publisher.runtime.hub_errors import hub_error

ATTEMPTS = 3
log = logging.getLogger(__name__)


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
    deletions: list[str] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # "recipe (path): why"
    tag: str | None = None
    changed: bool = True  # False: the repo already held exactly this (no commit made)
    hub_read: bool = True  # False: a dry run that could not read the repo


def check_repo_id(repo_id: str) -> str:
    """``ORG/NAME`` by huggingface_hub's own rules (``validate_repo_id``), with the ORG."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        if repo_id.count("/") != 1:
            raise HFValidationError("no ORG/")
        validate_repo_id(repo_id)
    except HFValidationError:
        raise PublishError(
            f"--repo {repo_id!r}: expected ORG/NAME (letters, digits, . _ -)"
        ) from None
    return repo_id


def commit_message(
    manifest: dict[str, Any], built: list[str], deletions: list[str]
) -> tuple[str, str]:
    """Summary names the recipes built (and pruned files); the description lists every
    variant the card describes with its recipe hash."""
    if built:
        summary = f"publisher: {', '.join(built)}"
        if len(summary) > 120:
            summary = f"publisher: {len(built)} variants ({', '.join(built[:4])}, ...)"
    else:
        summary = "publisher: card and manifest"
    if deletions:
        summary += f"; delete {len(deletions)} file(s)"
    if manifest.get("stale"):
        summary += f"; {len(manifest['stale'])} stale"
    lines = [
        f"- {v['recipe']}: recipe sha256 {v['recipe_sha256']}, file {v['path']}"
        for v in manifest["variants"]
    ]
    lines += [f"- stale {v['recipe']}: {v['stale_reason']}" for v in manifest.get("stale", [])]
    lines += [f"- deleted {p}" for p in deletions]
    ck = manifest["checkpoint"]
    lines.append(f"- checkpoint {ck['source']} sha256 {ck['sha256']}")
    return summary, "\n".join(lines)


def plan(folder: Path) -> list[tuple[str, int]]:
    """The files a publish uploads: everything staged but stage's own marker."""

    return [
        (p.relative_to(folder).as_posix(), p.stat().st_size)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.relative_to(folder).as_posix() != STAGE_MARK
    ]


def publish(
    folders: list[Path],
    repo_id: str,
    *,
    existing_recipes: set[str] | None = None,
    dry_run: bool = False,
    create_pr: bool = False,
    revision: str | None = None,
    allow_synthetic: bool = False,
    allow_recovered: bool = False,
    private: bool = False,
    token: str | None = None,
    browser_report: Path | None = None,
) -> PublishResult:
    """Stage ``folders`` against the repo's current state and commit the family (see module
    doc); ``existing_recipes`` given: prune recorded variants whose recipe is not in it;
    ``browser_report``: the Space's in-browser runs for the card (else the repo's own).
    ``dry_run`` only reads the repo (and plans from this run alone if it cannot)."""
    check_repo_id(repo_id)
    if browser_report:  # a bad file is one line before any network call
        read_browser_report(browser_report)
    if not dry_run:  # refuse before any network call
        _refuse(*_blocked(_build_checkpoints(folders), allow_synthetic, allow_recovered))
    hub = _Hub(repo_id, token, revision)

    def attempt() -> PublishResult | None:
        remote, read = hub.read(quiet=dry_run)
        with tempfile.TemporaryDirectory(prefix="publisher-stage-") as tmp:
            where = (Path(tmp) / "repo", repo_id)
            staged = _stage(folders, where, remote, existing_recipes, browser_report)
            built = sorted(
                {_recipe(f) for f in folders} & {v["recipe"] for v in staged.manifest["variants"]}
            )
            summary, description = commit_message(staged.manifest, built, staged.deletions)
            result = PublishResult(
                repo_id,
                None,
                None,
                summary,
                plan(staged.folder),
                dry_run,
                deletions=staged.deletions,
                stale=[
                    f"{v['recipe']} ({v['path']}): {v['stale_reason']}"
                    for v in staged.manifest["stale"]
                ],
                hub_read=read,
            )
            blocked, recovered_blocked = _blocked(staged.manifest, allow_synthetic, allow_recovered)
            if dry_run:
                result.synthetic_blocked, result.recovered_blocked = blocked, recovered_blocked
                return result
            _refuse(blocked, recovered_blocked)
            check_staged(staged.folder)  # what is uploaded is what stage recorded
            done = hub.commit(
                staged.folder, staged.deletions, summary, description, remote, create_pr, private
            )
        return _finished(result, done)

    return _retrying(repo_id, attempt)


def publish_card(
    repo_id: str,
    *,
    dry_run: bool = False,
    create_pr: bool = False,
    revision: str | None = None,
    token: str | None = None,
) -> PublishResult:
    """Re-render README.md from the repo's own manifest.json with the current templates and
    commit it alone (nothing is built; no model file is touched)."""
    from pydantic import ValidationError

    check_repo_id(repo_id)
    hub = _Hub(repo_id, token, revision)

    def attempt() -> PublishResult | None:
        remote, _ = hub.read()
        if not remote.manifest:
            raise PublishError(
                f"{repo_id}: no manifest.json at {hub.revision}; publish variants first "
                "(publisher publish --all)"
            )
        try:
            manifest = RepoManifest.model_validate(remote.manifest).model_dump(mode="json")
        except ValidationError as exc:
            raise PublishError(
                f"{repo_id}: its manifest.json is not one this publisher reads "
                f"({first_error(exc)}); publish the variants again (publisher publish --all)"
            ) from None
        with tempfile.TemporaryDirectory(prefix="publisher-card-") as tmp:
            folder = Path(tmp)
            (folder / "README.md").write_text(render_card(manifest, repo_id), encoding="utf-8")
            summary = "publisher: model card from the current templates"
            result = PublishResult(repo_id, None, None, summary, plan(folder), dry_run)
            if dry_run:
                return result
            done = hub.commit(folder, [], summary, "", remote, create_pr, private=False)
        return _finished(result, done)

    return _retrying(repo_id, attempt)


def _finished(result: PublishResult, done) -> PublishResult | None:
    """The result with what the commit gave; None when the repo moved (try again)."""
    if done is None:
        return None
    result.commit_url, result.pr_url, result.tag = done
    result.changed = result.commit_url is not None
    return result


def _retrying(repo_id: str, attempt) -> PublishResult:
    """``attempt()`` until it returns a result, at most ``ATTEMPTS`` times."""
    for n in range(1, ATTEMPTS + 1):
        result = attempt()
        if result is not None:
            return result
        if n < ATTEMPTS:
            log.info(
                "%s moved while publishing; re-reading it (attempt %d of %d)",
                repo_id,
                n + 1,
                ATTEMPTS,
            )
    raise PublishError(
        f"{repo_id}: the repo kept moving ({ATTEMPTS} attempts, each refused because another "
        "commit landed first); no commit was made; run the publish again"
    )


def _recipe(folder: Path) -> str:
    return read_manifest(folder).recipe


def _stage(folders, where, remote, existing_recipes, browser_report):
    dest, repo_id = where
    return stage(
        folders,
        dest,
        repo_id=repo_id,
        remote=remote,
        existing_recipes=existing_recipes,
        browser_report=browser_report,
    )


def _build_checkpoints(folders: list[Path]) -> dict[str, bool]:
    """Whether any of the builds is synthetic / recovered (their manifests, no network)."""

    checkpoints = [read_manifest(f).checkpoint for f in folders]
    return {
        "synthetic": any(c.synthetic for c in checkpoints),
        "recovered": any(c.recovered for c in checkpoints),
    }


def _blocked(
    flags: dict[str, Any], allow_synthetic: bool, allow_recovered: bool
) -> tuple[bool, bool]:
    synthetic = bool(flags.get("synthetic"))
    recovered = bool(flags.get("recovered")) and not synthetic
    return synthetic and not allow_synthetic, recovered and not allow_recovered


def _refuse(blocked: bool, recovered_blocked: bool) -> None:
    if blocked:
        raise PublishError(
            "refusing to publish a synthetic build (random weights) to the Hub; "
            "pass --allow-synthetic if that is really what you want"
        )
    if recovered_blocked:
        raise PublishError(
            "refusing to publish a build from recovered weights (an approximation of "
            "hexgrad's model, not the original) to the Hub; pass --allow-recovered if that "
            "is really what you want (the card says what they are)"
        )


class _Hub:
    """The Hub calls of one publish, every failure turned into one line by ``hub_error``."""

    def __init__(self, repo_id: str, token: str | None, revision: str | None) -> None:
        from huggingface_hub import HfApi

        self.seconds = use_hub_timeouts()
        self.repo_id, self.token = repo_id, token
        self.revision = revision or "main"
        self.api = HfApi(token=token)

    def _error(self, exc: Exception, undone: str = "no commit was made") -> PublisherError:
        return hub_error(self.repo_id, exc, token=self.token, seconds=self.seconds, undone=undone)

    def read(self, quiet: bool = False) -> tuple[RemoteState, bool]:
        """The repo at the head of the revision (empty state: no repo or no such branch yet).
        ``quiet``: a failure to read gives an empty state and False instead of an error."""
        from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

        try:
            info = self.api.repo_info(
                self.repo_id, revision=self.revision, files_metadata=True, timeout=self.seconds
            )
        except (RepositoryNotFoundError, RevisionNotFoundError):
            return RemoteState(), True
        except Exception as exc:
            if quiet:
                return RemoteState(), False
            raise self._error(exc, "nothing was read or changed") from None
        files = {
            s.rfilename: RemoteFile(s.size or 0, s.lfs.sha256 if s.lfs else None)
            for s in info.siblings or []
        }
        manifest = self._manifest(info.sha) if "manifest.json" in files else None
        return RemoteState(info.sha, manifest, files), True

    def _manifest(self, sha: str) -> dict[str, Any]:
        try:
            path = self.api.hf_hub_download(
                self.repo_id, "manifest.json", revision=sha, etag_timeout=self.seconds
            )
        except Exception as exc:
            raise self._error(exc, "nothing was read or changed") from None
        try:
            data = json.loads(Path(path).read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict) or not isinstance(data.get("variants"), list):
            raise PublishError(
                f"{self.repo_id}: manifest.json on the Hub is not a publisher manifest; fix or "
                "delete it on the Hub, then publish again"
            )
        return data

    def commit(self, folder, deletions, summary, description, remote, create_pr, private):
        """(commit url, pr url, tag); (None, None, None) when nothing changed; None when the
        repo moved since ``remote`` was read."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        ops: list[Any] = [CommitOperationAdd(path, str(folder / path)) for path, _ in plan(folder)]
        ops += [CommitOperationDelete(path) for path in deletions]
        try:
            head = remote.head or self._create(private)
            shared = _one_per_shared_content(ops[: len(ops) - len(deletions)], folder)
            if shared:  # sent first, so the commit finds them present and sends each once
                self.api.preupload_lfs_files(
                    self.repo_id, additions=shared, revision=self.revision, create_pr=create_pr
                )
            info = self.api.create_commit(
                self.repo_id,
                ops,
                commit_message=summary,
                commit_description=description,
                revision=self.revision,
                create_pr=create_pr,
                parent_commit=head,
            )
        except Exception as exc:  # HTTP answers, transport errors, timeouts, OSError
            error = self._error(exc)
            if isinstance(error, HubConflictError):
                return None  # another publish landed first: read, stage and try again
            raise error from None
        if info.oid == head and not info.pr_url:
            return None, None, None  # nothing changed: no commit, no tag
        tag = None if create_pr else self._tag(info.oid)
        return info.commit_url, info.pr_url, tag

    def _create(self, private: bool) -> str:
        self.api.create_repo(self.repo_id, repo_type="model", private=private, exist_ok=True)
        if self.revision != "main":
            self.api.create_branch(self.repo_id, branch=self.revision, exist_ok=True)
        return self.api.repo_info(self.repo_id, revision=self.revision, timeout=self.seconds).sha

    def _tag(self, oid: str) -> str | None:
        """Tag the new commit ``publisher-VERSION-gGIT-HUB`` (unique per Hub commit); a tag
        that fails does not undo the commit, so it only warns."""

        git = git_commit()
        tag = f"publisher-{publisher_version()}-g{git[:7]}-{oid[:7]}"
        message = f"kokoro-onnx-publisher {publisher_version()}, git commit {git}"
        try:
            self.api.create_tag(self.repo_id, tag=tag, revision=oid, tag_message=message)
        except Exception as exc:
            log.warning("%s", self._error(exc, "the commit stands, untagged"))
            return None
        return tag


def _one_per_shared_content(additions: list[Any], folder: Path) -> list[Any]:
    """The first of each group of additions holding the same bytes (a sherpa-onnx bundle's
    model.onnx is the variant's file): huggingface_hub would upload each path's copy."""

    by_size: dict[int, list[Any]] = {}
    for op in additions:
        by_size.setdefault((folder / op.path_in_repo).stat().st_size, []).append(op)
    first: dict[str, Any] = {}
    shared: list[Any] = []
    for group in (g for g in by_size.values() if len(g) > 1):
        for op in group:
            digest = file_sha256(folder / op.path_in_repo)
            if digest in first and first[digest] not in shared:
                shared.append(first[digest])
            first.setdefault(digest, op)
    return shared
