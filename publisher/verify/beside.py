"""The speech set heard in a second process while this one runs the verification inputs.

A real build's verification on two cores kept 1.3-1.7 of them busy (user+sys CPU over
wall: ``quantized`` after ``fp32`` 1.29, a first ``fp32`` 1.66): the recognizer runs on
one thread, DNSMOS's small models and Kokoro's own runs gain 1.4-1.8x from a second
thread, and the parent waits while the speech worker synthesizes. The speech set does
not depend on the verification inputs, so a child process hears it (``listen``, which
fills the reference store) beside the parent's parity and fidelity runs, each process
with half the threads (``runtime/threads.sharing``). The parent's ``listen`` afterwards
reads every sentence back; whatever the child did not finish (it failed, or crashed) the
parent computes as it always did, so the child changes when work is done, never what
is measured.

Started only where it pays: speech gates that will run, at least two threads to share,
and a sentence not yet in the store.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from publisher.runtime.threads import THREADS_ENV, export_to_pools, sharing, total_threads
from publisher.verify import listen as speech_set
from publisher.verify.worker import process_context

if TYPE_CHECKING:
    from publisher.model.checkpoint import Checkpoint

log = logging.getLogger(__name__)


def _orphaned(parent: int) -> None:
    """Exit when the build that started this process is gone (killed, not stopped)."""
    while True:
        time.sleep(1)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)


def _hear(ckpt: Checkpoint, graph: str, graph_key: str, env: dict[str, str], parent: int) -> None:
    """The child: ``listen`` with its share of the threads, silent (the parent reports)."""
    threading.Thread(target=_orphaned, args=(parent,), daemon=True).start()
    os.environ.clear()
    os.environ.update(env)
    export_to_pools()  # for BLAS, and torch when imported later
    if "torch" in sys.modules:  # receiving the checkpoint's tensors imported it already
        sys.modules["torch"].set_num_threads(int(env[THREADS_ENV]))
    sys.stdout = sys.stderr = open(os.devnull, "w")  # noqa: SIM115 (lives as long as we do)
    logging.disable(logging.CRITICAL)
    try:
        speech_set.listen(ckpt, graph, graph_key)
    except BaseException:  # the parent hears the sentence again and reports what went wrong
        os._exit(1)


def worth_hearing_beside(ckpt: Checkpoint, graph_key: str) -> bool:
    return (
        total_threads() >= 2
        and speech_set.skip_reason(ckpt) is None
        and not speech_set.heard_already(ckpt, graph_key)
    )


@contextlib.contextmanager
def heard_beside(
    ckpt: Checkpoint, graph: str, graph_key: str, wanted: bool = True
) -> Iterator[None]:
    """Hear the speech set of ``graph`` in a child process while the body runs; wait for
    it at the end (stop it when the body raised)."""
    if not wanted or not worth_hearing_beside(ckpt, graph_key):
        yield
        return
    theirs = total_threads() // 2
    env = {**os.environ, THREADS_ENV: str(theirs), "PUBLISHER_PROGRESS": "0"}
    proc: Any = process_context().Process(
        target=_hear, args=(ckpt, graph, graph_key, env, os.getpid())
    )
    try:
        proc.start()
    except Exception as exc:  # the checkpoint cannot be sent, no process can start: inline
        log.info("  speech set: heard after the inputs (no second process: %s)", exc)
        yield
        return
    log.info("  speech set: heard in a second process beside the inputs (%d threads)", theirs)
    try:
        with sharing(proc.is_alive, theirs):
            yield
    except BaseException:
        proc.kill()
        raise
    finally:
        proc.join()
