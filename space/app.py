"""Kokoro-82M ONNX variants: a Gradio Space to compare variants and vote on them blind.

Model files come from KOKORO_REPO (a Hub model repo, ORG/NAME[@REVISION]) or KOKORO_DIR
(a local staged folder); see README.md. Run locally from a checkout of the publisher:

    KOKORO_DIR=path/to/staged python space/app.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # `python space/app.py` from elsewhere, or an import by path
    sys.path.insert(0, str(HERE))

try:
    import publisher.runtime.synth  # noqa: F401 - the one synthesis implementation, see README.md
except ImportError as exc:  # pragma: no cover - a broken deployment
    raise SystemExit(
        "space/app.py needs the `publisher` package: install the kokoro-onnx-publisher "
        "checkout (pip install -e .) or deploy with `publisher space`, which bundles the "
        f"torch-free modules it uses ({exc})"
    ) from None

from kokoro_space.isolation import launch_options  # noqa: E402
from kokoro_space.ui import build_demo  # noqa: E402

demo = build_demo()

if __name__ == "__main__":
    # KOKORO_ISOLATED=0: serve without cross-origin isolation (WASM on one thread), to compare
    demo.launch(**(launch_options() if os.environ.get("KOKORO_ISOLATED", "1") != "0" else {}))
