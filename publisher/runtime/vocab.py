"""Kokoro-82M's config.json (with the phoneme vocab), shipped as package data: torch-free,
so the text front end and the Space read it without the model side."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any


def packaged_config() -> dict[str, Any]:
    """The real Kokoro-82M config.json (with vocab) shipped inside the package."""
    text = (
        resources.files("publisher.runtime.data").joinpath("kokoro_config.json").read_text("utf-8")
    )
    return json.loads(text)
