"""Where things are: the top-level ``recipes/`` and ``templates/`` folders, and the cache.

In a checkout (and an editable install) they sit beside the package; a wheel carries them
inside it as ``publisher.recipes`` / ``publisher.templates`` (see pyproject.toml).
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path


def shipped_dir(name: str) -> Path:
    """The repository's ``name/`` folder when present, else the packaged copy."""
    beside = Path(__file__).resolve().parent.parent / name
    if beside.is_dir():
        return beside
    # installed: publisher.recipes and publisher.templates are namespace packages (no
    # __init__.py), for which importlib.resources gives a MultiplexedPath, not a folder
    package = importlib.import_module(f"publisher.{name}")
    return Path(next(iter(package.__path__)))


def cache_root() -> Path:
    """Where exports, recovered weights and sensitivity graphs are cached:
    $PUBLISHER_CACHE or ~/.cache/kokoro-publisher."""
    env = os.environ.get("PUBLISHER_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "kokoro-publisher"
