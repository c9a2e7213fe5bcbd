"""Which recipes a git change affects: the publish workflow's build plan.

``affected(repo_root, base, head)`` reads ``git diff base...head`` (changes on ``head``
since it left ``base``) and maps the changed paths to recipes:

- ``recipes/X.yaml`` added or edited: X, plus every recipe that ``extends`` X directly or
  through other recipes (the ``extends`` graph is read from ``head``'s versions of the
  files). Abstract recipes (``_base``-style, leading underscore) are never in the plan
  themselves; their dependents are.
- ``recipes/X.yaml`` deleted: X is reported in ``removed`` (its dependents, if any still
  extend it, are rebuilt so that their now-broken ``extends`` fails loudly).
- anything under ``publisher/`` or ``pyproject.toml`` (code and pinned dependencies): every
  recipe.
- only ``templates/`` (and nothing above): ``cards_only``, no recipe to rebuild.
- anything else (tests, docs, workflows): nothing.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import yaml

from publisher.runtime.errors import InputError, PublisherError

RECIPES = "recipes"
CODE_PREFIXES = ("publisher/",)
CODE_FILES = ("pyproject.toml",)
TEMPLATE_PREFIX = "templates/"


@dataclass(frozen=True)
class Affected:
    """The build plan for a change; names are sorted."""

    base: str
    head: str
    recipes: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    cards_only: bool = False
    changed_files: tuple[str, ...] = ()
    reasons: dict[str, str] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        """Whether there is anything to build."""
        return bool(self.recipes)

    def to_json(self) -> dict[str, Any]:
        """The plan as the workflow reads it (``matrix`` feeds ``strategy.matrix``)."""
        return {
            "recipes": list(self.recipes),
            "cards_only": self.cards_only,
            "removed": list(self.removed),
            "matrix": {"include": [{"recipe": name} for name in self.recipes]},
            "any": self.any,
        }

    def json_line(self) -> str:
        return json.dumps(self.to_json())

    def lines(self) -> list[str]:
        """Human-readable summary, one fact a line."""
        n = len(self.changed_files)
        out = [f"{self.base}...{self.head}: {n} file{'s' if n != 1 else ''} changed"]
        width = max((len(name) for name in self.recipes), default=0)
        out += [f"build   {name:<{width}}  {self.reasons.get(name, '')}" for name in self.recipes]
        out += [f"removed {name}" for name in self.removed]
        if self.cards_only:
            out.append("cards only: templates/ changed; no variant to rebuild")
        elif not self.recipes:
            out.append("nothing to build")
        return out


def _git(repo_root: Path, *args: str, input: bytes | None = None) -> bytes:
    try:
        proc = subprocess.run(
            ["git", "-C", str(repo_root), *args],
            input=input,
            capture_output=True,
            check=False,
        )
    except FileNotFoundError:
        raise InputError("git not found on PATH; it is needed to compare revisions") from None
    if proc.returncode != 0:
        message = " ".join(proc.stderr.decode("utf-8", "replace").split()) or "failed"
        raise InputError(f"git {args[0]}: {message}")
    return proc.stdout


def repo_toplevel(cwd: Path | None = None) -> Path:
    """The root of the git work tree holding ``cwd`` (default: the current directory)."""
    where = Path(cwd or Path.cwd())
    try:
        out = _git(where, "rev-parse", "--show-toplevel")
    except PublisherError:
        raise InputError(f"{where}: not inside a git work tree") from None
    return Path(out.decode().strip())


def _commit(repo_root: Path, rev: str, what: str) -> str:
    """The full commit id for ``rev``; a one-line PublisherError naming it when unknown."""
    if not rev or rev.startswith("-"):
        raise InputError(f"{what} {rev!r}: not a revision")
    proc = subprocess.run(
        ["git", "-C", str(repo_root), "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}"],
        capture_output=True,
        check=False,
    )
    if proc.returncode != 0:
        raise InputError(f"{what} {rev!r}: unknown revision (is the history fetched?)")
    return proc.stdout.decode().strip()


def _diff(repo_root: Path, base: str, head: str) -> list[tuple[str, str]]:
    """(status letter, path) for each file changed on ``head`` since the merge base."""
    out = _git(repo_root, "diff", "--name-status", "--no-renames", "-z", f"{base}...{head}")
    fields = out.decode("utf-8", "surrogateescape").split("\0")
    if fields and fields[-1] == "":
        fields.pop()
    return [(fields[i][:1], fields[i + 1]) for i in range(0, len(fields) - 1, 2)]


def _recipe_name(path: str) -> str | None:
    """``recipes/X.yaml`` -> X; anything else (sub-folders, other files) -> None."""
    p = PurePosixPath(path)
    if len(p.parts) == 2 and p.parts[0] == RECIPES and p.suffix == ".yaml":
        return p.stem
    return None


def _extends_graph(repo_root: Path, head: str) -> dict[str, str | None]:
    """Every recipe at ``head`` -> the name it extends (None when it extends nothing)."""
    listing = _git(repo_root, "ls-tree", "--name-only", "-z", head, "--", f"{RECIPES}/")
    paths = listing.decode("utf-8", "surrogateescape").split("\0")
    names = sorted(name for name in map(_recipe_name, paths) if name is not None)
    graph: dict[str, str | None] = {}
    for name in names:
        text = _git(repo_root, "cat-file", "blob", f"{head}:{RECIPES}/{name}.yaml")
        try:
            data = yaml.safe_load(text.decode("utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError):
            data = None  # broken file: its own build fails with the validator's message
        base = data.get("extends") if isinstance(data, dict) else None
        graph[name] = base if isinstance(base, str) else None
    return graph


def _dependents(graph: dict[str, str | None], changed: set[str]) -> dict[str, str]:
    """Recipes reaching a changed one through ``extends`` -> why (the first link)."""
    reasons: dict[str, str] = {}
    for name in graph:
        chain, seen, current = [], {name}, graph[name]
        while current is not None and current not in seen:
            chain.append(current)
            if current in changed:
                via = " -> ".join(chain)
                reasons[name] = f"extends {via}, which changed"
                break
            seen.add(current)
            current = graph.get(current)
    return reasons


def _abstract(name: str) -> bool:
    return name.startswith("_")


def affected(repo_root: Path, base: str, head: str = "HEAD") -> Affected:
    """The recipes to rebuild for the change ``base...head`` in the repository at ``repo_root``."""
    repo_root = Path(repo_root)
    base_id = _commit(repo_root, base, "--base")
    head_id = _commit(repo_root, head, "--head")
    changes = _diff(repo_root, base_id, head_id)
    files = tuple(sorted({path for _, path in changes}))
    graph = _extends_graph(repo_root, head_id)
    concrete = sorted(n for n in graph if not _abstract(n))

    code = sorted(p for p in files if p.startswith(CODE_PREFIXES) or p in CODE_FILES)
    templates = [p for p in files if p.startswith(TEMPLATE_PREFIX)]
    edited: set[str] = set()
    removed: set[str] = set()
    for status, path in changes:
        name = _recipe_name(path)
        if name is None:
            continue
        if status == "D" and name not in graph:
            removed.add(name)
        edited.add(name)

    reasons: dict[str, str] = {}
    if code:
        more = f" and {len(code) - 1} more" if len(code) > 1 else ""
        reasons = dict.fromkeys(concrete, f"{code[0]}{more} changed (code or dependencies)")
    else:
        for name in sorted(edited):
            if name in graph and not _abstract(name):
                reasons[name] = f"{RECIPES}/{name}.yaml changed"
        for name, why in _dependents(graph, edited).items():
            if not _abstract(name):
                reasons.setdefault(name, why)

    recipes = tuple(sorted(reasons))
    return Affected(
        base=base,
        head=head,
        recipes=recipes,
        removed=tuple(sorted(n for n in removed if not _abstract(n))),
        cards_only=bool(templates) and not recipes and not code,
        changed_files=files,
        reasons=reasons,
    )
