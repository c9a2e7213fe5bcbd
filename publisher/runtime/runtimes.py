"""The runtimes of the conformance matrix and which files each is said to serve: data the
recipe schema reads (``target.known_failures`` names them) and the matrix runs."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import metadata

from publisher.runtime.clients import ONNXRUNTIME_WEB
from publisher.runtime.constants import ONNXRUNTIME_FLOORS


@dataclass(frozen=True)
class Claim:
    """What decides the runtimes a built file is said to run in."""

    shape: str  # dynamic or bucket
    min_onnxruntime: str
    sherpa_bundle: bool = False
    kokoro_js_dtype: str | None = None


@dataclass(frozen=True)
class Runtime:
    name: str  # also the column name and the key of target.known_failures
    kind: str  # the probe that runs it (probe.py, or probe.mjs for the npm runtimes)
    packages: tuple[str, ...]  # pip (or npm) requirements of its isolated environment
    onnxruntime: str | None = None  # the onnxruntime release, for the plain sessions
    npm: bool = False  # a node environment (npm packages), run through probe.mjs

    def claims(self, claim: Claim) -> bool:
        """Whether a file is said to run here: every onnxruntime at or above its floor;
        kokoro-onnx the dynamic-shape files (it feeds token ids of any length); fastkokoro
        the fixed-bucket files; sherpa-onnx the builds that carry a sherpa-onnx bundle;
        kokoro-js, and onnxruntime-web in the browser under it, the files kokoro-js loads."""
        if self.onnxruntime:
            return _version(self.onnxruntime) >= _version(claim.min_onnxruntime)
        return {
            "kokoro-onnx": claim.shape == "dynamic",
            "fastkokoro": claim.shape == "bucket",
            "sherpa-onnx": claim.sherpa_bundle,
            "kokoro-js": claim.kokoro_js_dtype is not None,
            "onnxruntime-web": claim.kokoro_js_dtype is not None,
        }[self.kind]


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in text.split(".")[:3] if p.isdigit())


def current_onnxruntime() -> str:
    """The onnxruntime this publisher builds and verifies with (its current release)."""
    return metadata.version("onnxruntime")


def runtimes() -> tuple[Runtime, ...]:
    floors = [
        # onnxruntime before 1.19 was built against numpy 1.x
        Runtime(f"onnxruntime {v}", "onnxruntime", (f"onnxruntime=={v}", "numpy<2"), v)
        for v in ONNXRUNTIME_FLOORS
    ]
    current = current_onnxruntime()
    if current not in ONNXRUNTIME_FLOORS:
        floors.append(
            Runtime(f"onnxruntime {current}", "onnxruntime", (f"onnxruntime=={current}",), current)
        )
    return (
        *floors,
        Runtime("kokoro-onnx 0.6.1", "kokoro-onnx", ("kokoro-onnx==0.6.1",)),
        Runtime("fastkokoro 0.7.0", "fastkokoro", ("fastkokoro[cpu]==0.7.0",)),
        Runtime("sherpa-onnx 2.0.1", "sherpa-onnx", ("sherpa-onnx==2.0.1", "numpy<2")),
        Runtime("kokoro-js 1.2.1", "kokoro-js", ("kokoro-js@1.2.1",), npm=True),
        # WASM in headless Chromium, driven by playwright-core (no browser download)
        Runtime(
            f"onnxruntime-web {ONNXRUNTIME_WEB}",
            "onnxruntime-web",
            (f"onnxruntime-web@{ONNXRUNTIME_WEB}", "playwright-core@1.65.2"),
            npm=True,
        ),
    )


def runtime_names() -> list[str]:
    return [r.name for r in runtimes()]


def floor_runtime(min_onnxruntime: str) -> Runtime:
    return next(r for r in runtimes() if r.onnxruntime == min_onnxruntime)
