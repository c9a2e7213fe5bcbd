"""The one place Hub failures become our typed errors (torch-free: publish, the checkpoint
loader and the Space all use it), as huggingface_hub's ``hf_raise_for_status`` turns HTTP
answers into its own. ``hub_error``: a write (commit, tag, Space upload) that failed, on
HTTP (401/403 with or without a token: ``HubAuthError``; 412: ``HubConflictError``; other
statuses: ``HubError``) or in transport (timeouts, no connection: ``HubUnreachableError``).
``download_error``: a read (a file or a snapshot) that failed. Each carries one line that
names the repo, what went wrong, what did not happen and what to do; huggingface_hub is
imported only when a failure is translated."""

from __future__ import annotations

from publisher.runtime.errors import (
    HubAuthError,
    HubConflictError,
    HubError,
    HubUnreachableError,
    first_line,
)


def hub_error(
    repo_id: str,
    exc: Exception,
    *,
    token: str | None = None,
    seconds: float | None = None,
    undone: str = "no commit was made",
) -> HubError:
    """The typed one-line error for ``exc`` raised by a huggingface_hub call on ``repo_id``
    (``seconds``: the timeout in force; ``undone``: what did not happen)."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        return _http_error(repo_id, exc, token, undone)
    return _transport_error(repo_id, exc, seconds or 0, undone)


def _transport_error(repo_id: str, exc: Exception, seconds: float, undone: str) -> HubError:
    name = type(exc).__name__
    if "Timeout" in name:
        return HubUnreachableError(
            repo_id,
            f"{repo_id}: the Hub did not answer within {seconds:g} s ({name}); "
            f"{undone}; try again later or raise PUBLISHER_HUB_TIMEOUT",
        )
    if isinstance(exc, OSError) or "Connect" in name:
        return HubUnreachableError(
            repo_id, f"{repo_id}: cannot reach the Hub ({first_line(exc, 200)}); {undone}"
        )
    return HubError(repo_id, f"{repo_id}: upload failed ({name}: {first_line(exc, 200)}); {undone}")


def _http_error(repo_id: str, exc, token: str | None, undone: str) -> HubError:
    from huggingface_hub import get_token

    status = getattr(getattr(exc, "response", None), "status_code", None)
    if status in (401, 403):
        if not (token or get_token()):
            message = (
                f"{repo_id}: the Hub needs a token with write access (HTTP {status}) and none "
                "is set; set HF_TOKEN or run `hf auth login`"
            )
        else:
            message = (
                f"{repo_id}: the Hub refused the token (HTTP {status}); set HF_TOKEN to a "
                "token with write access or run `hf auth login`"
            )
        return HubAuthError(repo_id, message, status)
    if status == 412:
        return HubConflictError(
            repo_id, f"{repo_id}: the repo moved since it was read (HTTP 412); {undone}", 412
        )
    message = f"{repo_id}: the Hub answered HTTP {status} ({first_line(exc, 200)}); {undone}"
    return HubError(repo_id, message, status)


def download_error(repo: str, what: str, exc: Exception) -> str:
    """One line for a failed download of ``what`` (a file, or "the weights") from
    ``repo`` (ORG/NAME, with @REVISION when one was asked for)."""
    from huggingface_hub.errors import (
        EntryNotFoundError,
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    if isinstance(exc, GatedRepoError):
        return f"model repo {repo} is gated: accept its terms and set HF_TOKEN"
    if isinstance(exc, RepositoryNotFoundError):
        return (
            f"model repo {repo} was not found on the Hub "
            "(or it is private and no HF_TOKEN with access is set)"
        )
    if isinstance(exc, RevisionNotFoundError):
        return f"model repo {repo}: no such revision"
    if isinstance(exc, LocalEntryNotFoundError):
        return f"cannot reach the Hub to fetch {what} from {repo}, and it is not cached"
    if isinstance(exc, EntryNotFoundError):
        return f"model repo {repo} has no {what}"
    if isinstance(exc, HfHubHTTPError):
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return f"the Hub answered HTTP {status} for {what} in {repo}"
    return f"cannot fetch {what} from {repo}: {type(exc).__name__}: {first_line(exc, 200)}"
