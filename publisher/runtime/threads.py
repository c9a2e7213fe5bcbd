"""How many threads a process's onnxruntime sessions and torch use: ``$PUBLISHER_THREADS``,
or each library's own default (one per core) when it is unset or 0.

onnxruntime's pool spins while it waits for work. Two processes on two cores, each with
the default pool, take CPU from each other: the test suite's two workers took 418 s (user
CPU 679 s) with the defaults and 330 s (490 s) with one thread each (AMD EPYC, 2 cores,
one run each). Running several builds side by side, give each cores / builds.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator

from publisher.runtime.errors import InputError

THREADS_ENV = "PUBLISHER_THREADS"
# what torch (OpenMP) and numpy's BLAS read for their pools at start-up
_POOL_ENVS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _value() -> str:
    return os.environ.get(THREADS_ENV, "").strip()


def configured_threads() -> int:
    """``$PUBLISHER_THREADS`` (0: the libraries' default); anything but a whole number is
    an InputError naming the variable."""
    value = _value()
    if not value:
        return 0
    if not value.isdigit():
        expected = "expected a whole number of threads (0 or unset: one per core)"
        raise InputError(f"{THREADS_ENV}={value!r}: {expected}")
    return int(value)


def export_to_pools() -> None:
    """Size the pools torch and BLAS read when they start (and child processes inherit)
    from ``$PUBLISHER_THREADS`` when it is set: it wins over their own variables. Run when
    the package is imported, before torch is; a malformed value is left to
    ``configured_threads`` to report."""
    value = _value()
    if value.isdigit() and int(value) > 0:
        for name in _POOL_ENVS:
            os.environ[name] = value


# Processes working beside this one (verify/beside.py): (is it still running, its threads).
_BESIDE: list[tuple[Callable[[], bool], int]] = []


@contextlib.contextmanager
def sharing(alive: Callable[[], bool], theirs: int) -> Iterator[None]:
    """While ``alive()``, another process uses ``theirs`` of this machine's threads: this
    process's sessions and torch runs take ``own_threads()``, the rest."""
    entry = (alive, theirs)
    _BESIDE.append(entry)
    try:
        yield
    finally:
        _BESIDE.remove(entry)


def total_threads() -> int:
    """The threads this process may use when alone: ``$PUBLISHER_THREADS``, else the cores."""
    return configured_threads() or os.cpu_count() or 1


def own_threads() -> int:
    """Threads for this process's next session or torch run: ``configured_threads()``
    (0: the libraries' default) when nothing runs beside it, else what the processes
    beside it leave (at least 1). Asked at each run, so a process that finished gives its
    threads back."""
    taken = sum(theirs for alive, theirs in _BESIDE if alive())
    if not taken:
        return configured_threads()
    return max(1, total_threads() - taken)
