"""Isolated Python environments, one per runtime, created once and cached.

``$PUBLISHER_ENVS`` (default ``~/.cache/kokoro-publisher-envs``) holds one virtual
environment per runtime (``python -m venv --without-pip``, then this interpreter's pip
installs the runtime's pinned packages into it with ``--python``). A marker records what
was installed; an environment whose marker does not match is rebuilt. Each is built in a
scratch folder and moved into place whole, so an interrupted install leaves nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from publisher.runtime.errors import PublisherError, first_line
from publisher.workspace import replace_folder, scratch_dir

ENVS_ENV = "PUBLISHER_ENVS"
MARK = "publisher-env.json"
INSTALL_TIMEOUT_S = 900


def envs_root() -> Path:
    raw = os.environ.get(ENVS_ENV, "").strip()
    return Path(raw) if raw else Path.home() / ".cache" / "kokoro-publisher-envs"


def _wanted(packages: tuple[str, ...]) -> dict[str, object]:
    return {"packages": list(packages), "python": sys.version.split()[0]}


def env_python(
    name: str, packages: tuple[str, ...], echo: Callable[[str], None] | None = None
) -> tuple[Path, float]:
    """The interpreter of ``name``'s environment (created now if missing or different)
    and the seconds creating it took (0.0 when it was cached)."""
    root = envs_root() / name.replace(" ", "-")
    python = root / "bin" / "python"
    try:
        mark = json.loads((root / MARK).read_text())
    except (OSError, ValueError):
        mark = None
    same = bool(mark) and {k: mark.get(k) for k in ("packages", "python")} == _wanted(packages)
    if same and python.exists():
        return python, 0.0
    return _create(root, name, packages, echo or (lambda line: None))


def _create(root: Path, name: str, packages, echo) -> tuple[Path, float]:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = scratch_dir(root.parent, root.name)
    start = time.perf_counter()
    echo(f"creating the {name} environment (once; cached in {root}) ...")
    try:
        _run([sys.executable, "-m", "venv", "--without-pip", str(tmp)], name, 120)
        pip = [sys.executable, "-m", "pip", "--python", str(tmp / "bin" / "python")]
        _run([*pip, "install", "--quiet", "--disable-pip-version-check", *packages], name)
        seconds = round(time.perf_counter() - start, 1)
        (tmp / MARK).write_text(json.dumps(_wanted(packages) | {"seconds": seconds}))
        replace_folder(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    echo(f"created the {name} environment in {seconds:.0f} s")
    return root / "bin" / "python", seconds


def _run(cmd: list[str], name: str, timeout: float = INSTALL_TIMEOUT_S) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.CalledProcessError as exc:
        lines = [ln for ln in (exc.stderr or exc.stdout or "").splitlines() if ln.strip()]
        why = lines[-1].strip() if lines else f"exit {exc.returncode}"
        raise PublisherError(
            f"cannot create the {name} environment ({why[:300]}); it needs PyPI (or a pip "
            f"index) once, then it is cached in {envs_root()}"
        ) from None
    except subprocess.TimeoutExpired:
        raise PublisherError(
            f"creating the {name} environment took over {timeout:.0f} s; check the network "
            "to PyPI and try again"
        ) from None
    except OSError as exc:
        raise PublisherError(f"cannot create the {name} environment: {first_line(exc)}") from None
