"""The one place Hub failures become our errors: HTTP answers (401/403 with or without a
token, other statuses) and transport failures (timeouts, no connection), each one line
that names the repo, what went wrong, that nothing was changed, and what to do."""

from __future__ import annotations

from publisher.runtime.errors import PublisherError, first_line


def hub_error(
    repo_id: str,
    exc: Exception,
    *,
    token: str | None = None,
    seconds: float | None = None,
    undone: str = "no commit was made",
) -> PublisherError:
    """A one-line ``PublisherError`` for ``exc`` raised by a huggingface_hub call on
    ``repo_id`` (``seconds``: the timeout in force; ``undone``: what did not happen)."""
    from huggingface_hub.errors import HfHubHTTPError

    if isinstance(exc, HfHubHTTPError):
        return PublisherError(_http_error(repo_id, exc, token, undone))
    return PublisherError(_transport_error(repo_id, exc, seconds or 0, undone))


def _transport_error(repo_id: str, exc: Exception, seconds: float, undone: str) -> str:
    name = type(exc).__name__
    if "Timeout" in name:
        return (
            f"{repo_id}: the Hub did not answer within {seconds:g} s ({name}); "
            f"{undone}; try again later or raise PUBLISHER_HUB_TIMEOUT"
        )
    if isinstance(exc, OSError) or "Connect" in name:
        return f"{repo_id}: cannot reach the Hub ({first_line(exc, 200)}); {undone}"
    return f"{repo_id}: upload failed ({name}: {first_line(exc, 200)}); {undone}"


def _http_error(repo_id: str, exc, token: str | None, undone: str) -> str:
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
    return f"{repo_id}: the Hub answered HTTP {status} ({first_line(exc, 200)}); {undone}"
