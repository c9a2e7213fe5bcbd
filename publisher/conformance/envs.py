"""Isolated environments, one per runtime, created once and cached.

``$PUBLISHER_ENVS`` (default ``~/.cache/kokoro-publisher-envs``) holds one environment
per runtime: a virtual environment (``python -m venv --without-pip``, then this
interpreter's pip installs the runtime's pinned packages into it with ``--python``), or
for the npm runtimes (kokoro-js, onnxruntime-web) a folder of pinned ``node_modules``. A
marker records what was installed; an environment whose marker does not match is
rebuilt. Each is built in a scratch folder and moved into place whole, so an interrupted
install leaves nothing.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from filelock import FileLock, Timeout

from publisher.runtime.clients import ONNXRUNTIME_WEB
from publisher.runtime.errors import RunError, first_line
from publisher.workspace import replace_folder, scratch_dir

log = logging.getLogger(__name__)

ENVS_ENV = "PUBLISHER_ENVS"
MARK = "publisher-env.json"
INSTALL_TIMEOUT_S = 900


def envs_root() -> Path:
    raw = os.environ.get(ENVS_ENV, "").strip()
    return Path(raw) if raw else Path.home() / ".cache" / "kokoro-publisher-envs"


def _wanted(packages: tuple[str, ...], npm: bool) -> dict[str, object]:
    tool = {"node": _node_version()} if npm else {"python": sys.version.split()[0]}
    return {"packages": list(packages), **tool}


def environment(
    name: str,
    packages: tuple[str, ...],
    npm: bool = False,
) -> tuple[Path, float]:
    """The root of ``name``'s environment (created now if missing or different) and the
    seconds creating it took (0.0 when it was cached): a Python venv (``bin/python``),
    or with ``npm`` a folder whose ``node_modules`` holds the npm packages."""
    root = envs_root() / name.replace(" ", "-")
    wanted = _wanted(packages, npm)
    if _ready(root, wanted, npm):
        return root, 0.0
    # Two processes needing the same missing environment (two builds, test workers):
    # the second waits for the first's install instead of installing it again and then
    # swapping the folder out from under the first.
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        with FileLock(root.parent / f".{root.name}.lock", timeout=INSTALL_TIMEOUT_S + 60):
            if _ready(root, wanted, npm):
                return root, 0.0
            return _create(root, name, packages, npm)
    except Timeout:
        raise RunError(
            f"another process has been creating the {name} environment in {root} for over "
            f"{INSTALL_TIMEOUT_S // 60} minutes; stop it or remove {root}, then retry"
        ) from None


def _ready(root: Path, wanted: dict[str, object], npm: bool) -> bool:
    try:
        mark = json.loads((root / MARK).read_text())
    except (OSError, ValueError):
        return False
    ready = root / ("node_modules" if npm else "bin/python")
    return {k: mark.get(k) for k in wanted} == wanted and ready.exists()


def _create(root: Path, name: str, packages, npm: bool) -> tuple[Path, float]:
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = scratch_dir(root.parent, root.name)
    start = time.perf_counter()
    log.info("creating the %s environment (once; cached in %s) ...", name, root)
    try:
        (_install_npm if npm else _install_pip)(tmp, name, packages)
        seconds = round(time.perf_counter() - start, 1)
        (tmp / MARK).write_text(json.dumps(_wanted(packages, npm) | {"seconds": seconds}))
        replace_folder(tmp, root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("created the %s environment in %.0f s", name, seconds)
    return root, seconds


def _install_pip(folder: Path, name: str, packages: tuple[str, ...]) -> None:
    _run([sys.executable, "-m", "venv", "--without-pip", str(folder)], name, 120)
    pip = [sys.executable, "-m", "pip", "--python", str(folder / "bin" / "python")]
    _run([*pip, "install", "--quiet", "--disable-pip-version-check", *packages], name)


def _install_npm(folder: Path, name: str, packages: tuple[str, ...]) -> None:
    """``npm install`` of the pinned packages into ``folder`` (onnxruntime-node's CUDA
    download skipped: the CPU binaries ship in its package)."""
    (folder / "package.json").write_text(json.dumps({"private": True, "name": "env"}))
    env = os.environ | {"ONNXRUNTIME_NODE_INSTALL_CUDA": "skip"}
    cmd = ["npm", "install", "--no-audit", "--no-fund", "--save-exact", *packages]
    _run(cmd, name, cwd=folder, env=env)


def _node_version() -> str:
    if not shutil.which("node") or not shutil.which("npm"):
        raise RunError(
            "the kokoro-js and onnxruntime-web cells need node and npm on PATH "
            "(apt-get install nodejs npm)"
        )
    try:
        out = subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RunError(f"cannot run `node --version` ({first_line(exc)})") from None
    return out.stdout.strip()


def _run(cmd: list[str], name: str, timeout: float = INSTALL_TIMEOUT_S, **kwargs: object) -> None:
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=timeout, **kwargs)
    except subprocess.CalledProcessError as exc:
        text = (exc.stderr or exc.stdout or "").splitlines()
        lines = [ln for ln in text if ln.strip() and "complete log of this run" not in ln]
        why = lines[-1].strip() if lines else f"exit {exc.returncode}"
        raise RunError(
            f"cannot create the {name} environment ({why[:300]}); it needs PyPI or npm's "
            f"registry once, then it is cached in {envs_root()}"
        ) from None
    except subprocess.TimeoutExpired:
        raise RunError(
            f"creating the {name} environment took over {timeout:.0f} s; check the network "
            "to PyPI (or npm's registry) and try again"
        ) from None
    except OSError as exc:
        raise RunError(f"cannot create the {name} environment: {first_line(exc)}") from None


def onnxruntime_web_dist() -> Path:
    """The ``dist/`` folder of the pinned onnxruntime-web npm package (the matrix's
    environment, installed now if missing): what the Space's in-browser mode serves."""
    root, _ = environment(
        f"onnxruntime-web {ONNXRUNTIME_WEB}",
        (f"onnxruntime-web@{ONNXRUNTIME_WEB}",),
        npm=True,
    )
    return root / "node_modules" / "onnxruntime-web" / "dist"
