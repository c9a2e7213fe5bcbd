"""Cross-origin isolation for the Space's page, so onnxruntime-web runs WASM on threads.

Browsers give a page SharedArrayBuffer (which onnxruntime-web's multi-threaded WASM needs)
only when it is cross-origin isolated: served with ``Cross-Origin-Opener-Policy:
same-origin`` and ``Cross-Origin-Embedder-Policy: require-corp``. On Hugging Face the
Space's README sets them (``custom_headers``); run anywhere else (``python space/app.py``,
the tests), this ASGI middleware adds them to every HTTP response. Downloads of model files
from the Hub are CORS requests, which require-corp allows.

Hand-written: gradio has no option for response headers; a pure ASGI middleware (not
Starlette's BaseHTTPMiddleware) leaves gradio's streamed responses alone.
"""

from __future__ import annotations

from typing import Any

HEADERS = {
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-embedder-policy": "require-corp",
    "cross-origin-resource-policy": "cross-origin",
}


class CrossOriginIsolation:
    """ASGI middleware adding ``HEADERS`` to every HTTP response."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.raw = [(k.encode(), v.encode()) for k, v in HEADERS.items()]

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_isolated(message: dict) -> None:
            if message["type"] == "http.response.start":
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in HEADERS]
                message = {**message, "headers": [*kept, *self.raw]}
            await send(message)

        await self.app(scope, receive, send_isolated)


def launch_options() -> dict[str, Any]:
    """Keyword arguments for ``demo.launch`` that serve the page cross-origin isolated."""
    from starlette.middleware import Middleware

    return {"app_kwargs": {"middleware": [Middleware(CrossOriginIsolation)]}}
