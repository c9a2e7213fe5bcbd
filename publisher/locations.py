"""Where the top-level ``recipes/`` and ``templates/`` folders are.

In a checkout (and an editable install) they sit beside the package; a wheel carries them
inside it as ``publisher.recipes`` / ``publisher.templates`` (see pyproject.toml).
"""

from __future__ import annotations

from pathlib import Path


def shipped_dir(name: str) -> Path:
    """The repository's ``name/`` folder when present, else the packaged copy."""
    beside = Path(__file__).resolve().parent.parent / name
    if beside.is_dir():
        return beside
    from importlib import resources

    return Path(str(resources.files(f"publisher.{name}")))
