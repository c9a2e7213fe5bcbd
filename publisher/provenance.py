"""What every artifact records about how it was made: versions, host, timings."""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata

log = logging.getLogger(__name__)


def package_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def publisher_version() -> str:
    return package_version("kokoro-onnx-publisher")


def git_commit() -> str:
    """The publisher checkout's git commit: GITHUB_SHA in Actions, else ``git rev-parse``
    beside the package, else "unknown" (an installed wheel has no history)."""
    import subprocess

    sha = os.environ.get("GITHUB_SHA", "").strip()
    if sha:
        return sha
    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


def versions() -> dict[str, str]:
    return {
        "python": platform.python_version(),
        **{
            name: package_version(name)
            for name in ("torch", "onnx", "onnxruntime", "kokoro", "transformers", "numpy")
        },
        "publisher": publisher_version(),
    }


def host() -> dict[str, object]:
    return {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
    }


class StepTimer:
    """Times named steps and reports each as it starts and ends."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.index = 0
        self.seconds: dict[str, float] = {}

    @contextmanager
    def step(self, name: str, detail: str = "") -> Iterator[None]:
        self.index += 1
        log.info("[%d/%d] %s%s ...", self.index, self.total, name, f": {detail}" if detail else "")
        start = time.perf_counter()
        yield
        took = time.perf_counter() - start
        self.seconds[name] = round(took, 3)
        log.info("[%d/%d] %s done in %.1fs", self.index, self.total, name, took)
