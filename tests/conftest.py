from __future__ import annotations

import contextlib
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# Set before torch is imported by any test module: quiets its C++ exporter warnings.
os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
# Each pytest-xdist worker's onnxruntime and torch pools sized to its share of the cores
# (publisher/runtime/threads.py): two workers with a pool each per core spun against each
# other. Set before publisher is imported, which passes it to torch's pool. A worker
# inherits the value the controller set (marked), and replaces it; one a user set is kept.
if "PUBLISHER_THREADS" not in os.environ or os.environ.get("_PUBLISHER_TESTS_THREADS"):
    _cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    _workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    os.environ["PUBLISHER_THREADS"] = str(max(1, (_cores or 1) // _workers))
    os.environ["_PUBLISHER_TESTS_THREADS"] = "1"
# publisher passes it to torch's pool when imported: before any test module imports torch
import publisher  # noqa: E402, F401


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--run-fullsize",
        action="store_true",
        help="also run full-size (synthetic:full) checks; minutes each",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-fullsize"):
        return
    skip = pytest.mark.skip(reason="full-size check: run with --run-fullsize")
    for item in items:
        if "fullsize" in item.keywords:
            item.add_marker(skip)


def _run_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This run's temporary root, shared by pytest-xdist's workers (each has its own
    basetemp below it): one cache and one tiny dist a run, not one a worker."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def _make_shared(folder: Path, names: tuple[str, ...], make) -> None:
    """``make(name)`` once a run for each of ``names`` into ``folder``, shared by the
    workers: each builds the names no other worker has started (the second to arrive
    builds beside the first instead of waiting for it), then waits for the rest."""
    from filelock import FileLock, Timeout

    folder.mkdir(exist_ok=True)

    def attempt(name: str, timeout: float) -> None:  # marks beside folder, not in it
        with FileLock(f"{folder}-{name}.lock", timeout=timeout):
            done = folder.with_name(f"{folder.name}-{name}.made")
            if not done.exists():
                make(name)
                done.touch()

    for name in names:
        with contextlib.suppress(Timeout):
            attempt(name, timeout=0)  # another worker is making it
    for name in names:
        attempt(name, timeout=-1)  # wait for it (or make it, if that worker failed)


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Exports go to a cache of this run's own (shared by its workers, whose writes are
    atomic and hash-recorded like any two builds'); the Hub is never contacted."""
    cache = _run_root(tmp_path_factory) / "cache"
    cache.mkdir(exist_ok=True)
    os.environ["PUBLISHER_CACHE"] = str(cache)
    os.environ["TORCH_CPP_LOG_LEVEL"] = "ERROR"
    os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"


@pytest.fixture(scope="session")
def tiny():
    from publisher.model.sources import open_checkpoint

    return open_checkpoint("synthetic:tiny")


@pytest.fixture(scope="session")
def tiny_model(tiny):
    return tiny.build_model()


@pytest.fixture
def repo_root(monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(REPO)
    return REPO


@pytest.fixture(scope="session")
def tiny_dist(tmp_path_factory, tiny) -> Path:
    """fp32, kokoro-v1.0 and quantized built once from synthetic:tiny (read-only: tests
    that change a build copy it first with ``dist_copy``)."""
    from publisher.build import build
    from publisher.recipe.loader import load_recipe

    out = _run_root(tmp_path_factory) / "tiny-dist"
    # fp32 first: a second worker arriving then builds quantized beside it
    _make_shared(
        out,
        ("fp32", "quantized", "kokoro-v1.0"),
        lambda name: build(load_recipe(name), checkpoint="synthetic:tiny", out_dir=out),
    )
    return out


@pytest.fixture
def dist_copy(tiny_dist, tmp_path) -> Path:
    import shutil

    return Path(shutil.copytree(tiny_dist, tmp_path / "dist"))
