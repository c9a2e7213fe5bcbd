"""Typed errors. Every PublisherError is a user-facing problem: the CLI prints its
message as one line and exits non-zero, without a traceback."""

from __future__ import annotations


def first_line(exc: BaseException, limit: int = 160) -> str:
    """The first line of an exception's message (or its type name), at most ``limit``
    characters: what a one-line error quotes from a library's exception."""
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:limit]


class PublisherError(Exception):
    """A problem the user can fix; ``str(err)`` is the one line the CLI prints."""

    exit_code = 1


class InputError(PublisherError):
    """Something the caller gave is missing or wrong: a file or folder (a build folder that
    is not one, a report that does not parse, an --out on a full or read-only disk), an
    option, text a voice cannot speak."""


class BuildError(PublisherError):
    """A build or analysis step cannot go on: export, passes, verification, sensitivity."""


class PublishError(PublisherError):
    """The staged repo, its card or the Space cannot be assembled from what was built (the
    Hub's own failures are ``HubError``)."""


class RunError(PublisherError):
    """A runtime cannot load or run a file, or cannot be set up (an isolated environment,
    a probe, the speech scoring tools)."""


class RecipeError(PublisherError):
    """A recipe file is missing, unparsable, or fails validation."""


class CheckpointError(PublisherError):
    """A checkpoint source cannot be parsed, reached, or loaded completely."""


class ExportError(BuildError):
    """The ONNX export failed or produced a graph that does not check."""


class HubError(PublisherError):
    """A Hub call failed: ``repo_id``, the HTTP ``status`` (None for a transport failure:
    timeout, no connection) and the one line to print."""

    def __init__(self, repo_id: str, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.repo_id = repo_id
        self.status = status


class HubAuthError(HubError):
    """The Hub wants a token (none set) or refused the one given (HTTP 401/403)."""


class HubConflictError(HubError):
    """The repo moved since it was read: a commit's parent is no longer its head (412)."""


class HubUnreachableError(HubError):
    """No answer: a timeout or no connection; nothing reached the Hub."""


class ChangedFileError(InputError):
    """A file of a build folder (or a staged folder) is missing or no longer the bytes
    whose sha256 was recorded when it was written."""


class VerificationError(BuildError):
    """A variant failed a verification gate. Carries the measured value."""

    def __init__(self, gate: str, measured: float, threshold: float, *, detail: str = "") -> None:
        self.gate = gate
        self.measured = measured
        self.threshold = threshold
        self.detail = detail
        msg = f"gate {gate} failed: measured {measured:.6g}, required {threshold:.6g}"
        if detail:
            msg += f" ({detail})"
        super().__init__(msg)


class ShapeMismatchError(VerificationError):
    """The ONNX output has a different shape than the torch reference."""

    def __init__(self, what: str, expected: tuple[int, ...], got: tuple[int, ...]) -> None:
        self.expected = expected
        self.got = got
        super().__init__(
            f"{what}_shape",
            float(len(got)),
            float(len(expected)),
            detail=f"{what}: torch {expected}, onnx {got}",
        )
        self.args = (f"{what} shape differs: torch {expected}, onnx {got}",)

    def __str__(self) -> str:
        return self.args[0]
