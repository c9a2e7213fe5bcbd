"""Run a model in a child process: a crash (quantized Kokoro files have segfaulted some
onnxruntime versions) becomes a ``VariantCrashed`` error instead of killing the build,
and each model's peak memory and timings are measured in isolation.

The child serves requests over a pipe: ``("run", ids, style, speed)`` answers
``(waveform, durations, seconds)``; ``("stream", ids, style, speed)`` answers the
``StreamTiming`` of a streamed synthesis (ONNX only); ``("stats",)`` answers peak RSS in MiB.
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from publisher.model import kmodel, sources
from publisher.runtime import synth
from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.errors import RunError, first_line
from publisher.runtime.synth import Synthesis, open_session, stream
from publisher.runtime.threads import own_threads

if TYPE_CHECKING:
    import numpy as np


@dataclass(frozen=True)
class StreamTiming:
    """One streamed synthesis: seconds until the first chunk of audio was ready and the
    seconds of audio it holds; seconds until the last; how many chunks (calls)."""

    first_seconds: float
    first_audio_seconds: float
    total_seconds: float
    audio_seconds: float
    chunks: int


def _stream_timing(session: Any, ids: list[int], style: Any, speed: float) -> StreamTiming:
    t0 = time.perf_counter()
    chunks, first, samples = 0, None, 0
    for chunk in stream(session, ids, style, speed):
        if first is None:
            first = (time.perf_counter() - t0, chunk.size / SAMPLE_RATE)
        chunks, samples = chunks + 1, samples + chunk.size
    total = time.perf_counter() - t0
    if first is None:
        raise RunError("the graph returned no audio")
    return StreamTiming(first[0], first[1], total, samples / SAMPLE_RATE, chunks)


class VariantCrashed(RunError):
    """The child process running a model died (segfault, abort, out of memory)."""


class VariantFailed(RunError):
    """The runtime raised an error on an input (the child process lives on)."""


def _peak_rss_mib() -> float:
    """This process's peak resident memory. On Linux from VmHWM: ru_maxrss survives execve,
    so a spawned child would report the parent's size at fork time (measured: every model
    showed the same 989 MiB)."""
    import resource
    import sys

    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def _open(kind: str, target: str, threads: int) -> Any:
    if kind == "onnx":
        return open_session(target, threads=threads)
    import torch

    if threads:
        torch.set_num_threads(threads)
    return sources.open_checkpoint(target).build_model()


def process_context() -> Any:
    """Children fork from one server process that imported this module and onnxruntime
    once (forkserver): a spawned child imported them again, 0.41-0.70 s a worker against
    0.23-0.38 s forked (measured, a tiny fp32 file). Spawn where there is no forkserver."""
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload([__name__, "onnxruntime"])
    return ctx


def _serve(conn: Any, kind: str, target: str, threads: int, env: dict) -> None:
    # as a spawned child would be: the parent's environment now, not the server's when it
    # started (the cache folder, thread settings); multiprocessing sets the folder itself
    os.environ.clear()
    os.environ.update(env)
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")

    start = time.perf_counter()
    try:
        model = _open(kind, target, threads)
    except Exception as exc:  # reported to the parent as one line
        conn.send(("error", f"{type(exc).__name__}: {exc}".splitlines()[0]))
        return
    conn.send(("ready", time.perf_counter() - start))
    run = synth.run_onnx if kind == "onnx" else kmodel.run_torch
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        if msg[0] == "stop":
            return
        if msg[0] == "stats":
            conn.send(("stats", _peak_rss_mib()))
            continue
        kind_of_run, ids, style, speed = msg
        t0 = time.perf_counter()
        try:
            if kind_of_run == "stream":
                if kind != "onnx":
                    raise RunError("streamed timing needs an ONNX file, not torch")
                conn.send(("stream", _stream_timing(model, ids, style, speed)))
                continue
            out = run(model, ids, style, speed)
        except Exception as exc:  # the runtime refused the input: a message, not a crash
            conn.send(("error", f"{type(exc).__name__}: {first_line(exc, 300)}"))
            continue
        seconds = time.perf_counter() - t0
        conn.send(("out", out.waveform, out.durations, seconds, out.piece_lengths))


class ModelWorker:
    """One model (an ONNX file, or ``torch:<checkpoint spec>``) served by a child process."""

    def __init__(self, target: str, threads: int = 0, label: str | None = None) -> None:
        kind, spec = ("torch", target[6:]) if target.startswith("torch:") else ("onnx", target)
        self.label = label or target
        ctx = process_context()
        self._conn, child = ctx.Pipe()
        args = (child, kind, spec, threads, dict(os.environ))
        self._proc = ctx.Process(target=_serve, args=args, daemon=True)
        self._proc.start()
        child.close()
        reply = self._recv()
        if reply[0] == "error":
            self.close()
            raise RunError(f"{self.label}: cannot load: {reply[1]}")
        self.load_seconds: float = reply[1]

    def _recv(self) -> tuple:
        try:
            return self._conn.recv()
        except (EOFError, ConnectionError, OSError):
            self._proc.join(timeout=5)
            code = self._proc.exitcode
            how = f"signal {-code}" if code is not None and code < 0 else f"exit status {code}"
            raise VariantCrashed(f"{self.label}: the runtime crashed ({how})") from None

    def run(self, ids: list[int], style: np.ndarray, speed: float = 1.0) -> tuple[Synthesis, float]:
        self._conn.send(("run", list(ids), style, float(speed)))
        reply = self._recv()
        if reply[0] == "error":
            raise VariantFailed(f"{self.label}: the model failed on this input: {reply[1]}")
        _, wave, dur, seconds, lengths = reply
        return Synthesis(wave, dur, pieces=max(1, len(lengths)), piece_lengths=lengths), seconds

    def stream(self, ids: list[int], style: np.ndarray, speed: float = 1.0) -> StreamTiming:
        """Time a streamed synthesis (a bucket graph's calls piece by piece)."""
        self._conn.send(("stream", list(ids), style, float(speed)))
        reply = self._recv()
        if reply[0] == "error":
            raise VariantFailed(f"{self.label}: the model failed on this input: {reply[1]}")
        return reply[1]

    def peak_rss_mib(self) -> float:
        self._conn.send(("stats",))
        return self._recv()[1]

    def close(self) -> None:
        if self._proc.is_alive():
            with contextlib.suppress(BrokenPipeError, OSError):
                self._conn.send(("stop",))
            self._proc.join(timeout=10)
        if self._proc.is_alive():
            self._proc.kill()
        self._conn.close()

    def __enter__(self) -> ModelWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def started_on_first_run(
    target: str, label: str, stack: contextlib.ExitStack
) -> Callable[[list[int], np.ndarray, float], Synthesis]:
    """``run(ids, style, speed)`` on a ModelWorker for ``target``, started (inside
    ``stack``, which closes it) on the first call: a caller that reads its runs back from
    the reference store starts no process."""
    started: list[ModelWorker] = []

    def run(ids: list[int], style: np.ndarray, speed: float = 1.0) -> Synthesis:
        if not started:  # its threads: what a process working beside this one leaves
            worker = ModelWorker(target, threads=own_threads(), label=label)
            started.append(stack.enter_context(worker))
        return started[0].run(ids, style, speed)[0]

    return run
