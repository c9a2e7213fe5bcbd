"""Timeouts for every Hub call: huggingface_hub's shared client waits forever by default
(a server that accepts the connection and never answers would hang a publish).

``PUBLISHER_HUB_TIMEOUT`` (seconds, default 60) bounds each connect, read, write and pool
wait; a slow but moving 300 MB upload is fine, a stalled one fails in one line.
"""

from __future__ import annotations

import os

DEFAULT_TIMEOUT_S = 60.0
_configured: float | None = None


def hub_timeout() -> float:
    """Seconds from PUBLISHER_HUB_TIMEOUT (a positive number), else the default."""
    raw = os.environ.get("PUBLISHER_HUB_TIMEOUT", "").strip()
    try:
        value = float(raw) if raw else DEFAULT_TIMEOUT_S
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def use_hub_timeouts() -> float:
    """Make huggingface_hub's shared HTTP client time out; returns the seconds used."""
    global _configured
    seconds = hub_timeout()
    if _configured == seconds:
        return seconds
    import huggingface_hub

    try:  # keeps huggingface_hub's own request hook (headers, offline mode)
        from huggingface_hub.utils._http import default_client_factory as base
    except ImportError:  # renamed in a later release: a plain client still times out
        import httpx2

        def base():
            return httpx2.Client(follow_redirects=True)

    def factory():
        client = base()
        client.timeout = seconds  # one number bounds connect, read, write and pool waits
        return client

    huggingface_hub.set_client_factory(factory)
    _configured = seconds
    return seconds
