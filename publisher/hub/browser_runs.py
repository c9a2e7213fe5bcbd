"""The Space's in-browser runs on the model card: reading the report the Space exports
(its "Report for the model card (JSON)" button, or its ``/browser_report`` API) and
the card's per-backend table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from publisher.runtime.artifacts import BrowserReport, first_error
from publisher.runtime.errors import InputError, first_line

HOW_TO_GET = "download it from the Space's 'Report for the model card (JSON)' button"


def read_browser_report(path: Path) -> dict[str, Any]:
    """A ``BrowserReport`` file, checked; one line naming the file and field otherwise."""
    try:
        raw = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; {HOW_TO_GET}") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"{path}: not a JSON file ({first_line(exc)})") from None
    try:
        return BrowserReport.model_validate(raw).model_dump(mode="json")
    except ValidationError as exc:
        raise InputError(
            f"{path}: not a browser report from the Space ({first_error(exc)}); {HOW_TO_GET}"
        ) from None


def keep_current(report: dict[str, Any], recipes: set[str]) -> tuple[dict[str, Any], list[str]]:
    """The report with only the rows of variants the repo holds, and a note per dropped
    variant (a report from before a variant was pruned, or from another repo)."""
    kept = [r for r in report["rows"] if r["variant"] in recipes]
    gone = sorted({r["variant"] for r in report["rows"]} - recipes)
    note = "browser report: {} is not a variant of this repo; its rows are left out"
    notes = [note.format(v) for v in gone]
    return report | {"rows": kept}, notes


def browser_table(manifest: dict[str, Any]) -> dict[str, Any] | None:
    """The card's "In listeners' browsers" table, or None without a report."""
    report = manifest.get("browser")
    if not report or not report.get("rows"):
        return None
    paths = {v["recipe"]: v["path"] for v in manifest["variants"]}
    rows = [
        {
            "backend": r["backend"],
            "path": paths[r["variant"]],
            "runs": r["runs"],
            "flagged": r["flagged"],
            "match": "-" if r["median_match"] is None else f"{r['median_match']:.4f}",
            "rtf": "-" if r["median_rtf"] is None else f"{r['median_rtf']:.2f}",
        }
        for r in report["rows"]
        if r["variant"] in paths
    ]
    if not rows:
        return None
    return {"source": report["source"], "written": report["written"], "rows": rows}
