"""Recipe loading: strict YAML (bounded, unique keys, only true/false booleans), ``extends``
chains, and validation against ``publisher.recipe.schema`` into frozen ``Recipe`` objects.
"""

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any, get_args

import yaml
from pydantic import BaseModel, ValidationError

from publisher.locations import shipped_dir
from publisher.recipe.passes import check_recipe
from publisher.recipe.schema import LOADER_FIELDS, Recipe, kind_of, show_value, shown_path
from publisher.runtime.errors import RecipeError

DEFAULT_RECIPES_DIR: Path = shipped_dir("recipes")
RECIPES_DIR_ENV = "PUBLISHER_RECIPES_DIR"
_FAR = 1 << 30  # sort position of a key that is not in the file (e.g. a missing field)


# ---------------------------------------------------------------- YAML loading
class _Loader(yaml.SafeLoader):
    """safe_load, but only true/false are booleans, 1e-4 is a float, keys are unique strings."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            problem = (
                None if isinstance(key, str) else f"keys must be strings, got {show_value(key)}"
            )
            problem = problem or (f"duplicate key {key!r}" if key in seen else None)
            if problem:
                raise yaml.constructor.ConstructorError(None, None, problem, key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_BOOL, _FLOAT = "tag:yaml.org,2002:bool", "tag:yaml.org,2002:float"
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_BOOL, _FLOAT)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), "tTfF")
_Loader.add_implicit_resolver(
    _FLOAT,
    re.compile(
        r"^(?:[-+]?[0-9][0-9_]*(?:\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[eE][-+]?[0-9]+)"
        r"|[-+]?\.[0-9_]+(?:[eE][-+]?[0-9]+)?|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"
    ),
    "-+0123456789.",
)


MAX_BYTES = 64 * 1024  # recipes are a few hundred bytes; YAML bombs are bounded by both
MAX_VALUES = 10_000
MAX_EXTENDS = 16


def _expanded_size(value: Any, memo: dict[int, int]) -> int:
    """How many values ``value`` holds once every YAML alias is expanded; linear in the
    document (shared objects are counted once per visit of their parent, memoized)."""
    if not isinstance(value, dict | list):
        return 1
    key = id(value)
    if key not in memo:
        memo[key] = 0  # a recursive alias counts as nothing more (and cannot loop)
        items = value.items() if isinstance(value, dict) else enumerate(value)
        memo[key] = 1 + sum(_expanded_size(v, memo) for _, v in items)
    return memo[key]


def _read(path: Path) -> dict[str, Any]:
    shown = shown_path(path)
    try:
        if path.stat().st_size > MAX_BYTES:
            raise RecipeError(
                f"{shown}: {path.stat().st_size} bytes; a recipe is at most {MAX_BYTES} bytes"
            )
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(
            f"{shown}: cannot read: {getattr(exc, 'strerror', None) or exc}"
        ) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise RecipeError(f"{shown}: invalid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise RecipeError(f"{shown}: invalid YAML: {' '.join(str(exc).split())}") from None
    if not isinstance(data, dict):
        got = "an empty file" if data is None else kind_of(data)
        raise RecipeError(f"{shown}: expected a mapping of recipe fields, got {got}")
    if _expanded_size(data, {}) > MAX_VALUES:
        raise RecipeError(
            f"{shown}: expands to more than {MAX_VALUES} values (YAML aliases repeating "
            "aliases?); a recipe is a few dozen settings"
        )
    for key in LOADER_FIELDS:
        if key in data:
            raise RecipeError(f"{shown}: {key}: {_unknown_key(Recipe)}")
    return data


def _mark(value: Any, file: Path, origins: dict[tuple, Path], here: tuple) -> None:
    origins[here] = file
    if isinstance(value, dict):
        for key, sub in value.items():
            _mark(sub, file, origins, (*here, key))


def _merge(base: dict, child: dict, file: Path, origins: dict[tuple, Path], prefix: tuple) -> dict:
    """Deep-merge ``child`` over ``base``: mappings merge, anything else replaces."""
    out = dict(base)
    for key, value in child.items():
        here = (*prefix, key)
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            origins[here] = file
            out[key] = _merge(out[key], value, file, origins, here)
        else:
            for stale in [p for p in origins if p[: len(here)] == here]:
                del origins[stale]
            out[key] = value
            _mark(value, file, origins, here)
    return out


def _resolve(path: Path, chain: tuple[Path, ...]) -> tuple[dict, dict[tuple, Path]]:
    """Read ``path`` and its ``extends:`` chain; return merged data and key origins."""
    raw, shown = _read(path), shown_path(path)
    if "extends" not in raw:
        origins: dict[tuple, Path] = {}
        _mark(raw, path, origins, ())
        return raw, origins
    base = raw.pop("extends")
    if not isinstance(base, str) or not re.fullmatch(r"[\w][\w.-]*", base):
        got = show_value(base)
        raise RecipeError(f"{shown}: extends: expected a recipe name in this directory, got {got}")
    base_path, stack = path.parent / f"{base}.yaml", (*chain, path)
    if len(stack) > MAX_EXTENDS:
        raise RecipeError(f"{shown}: extends: a chain longer than {MAX_EXTENDS} recipes")
    seen = [p.resolve() for p in stack]
    if base_path.resolve() in seen:
        names = [p.stem for p in stack[seen.index(base_path.resolve()) :]]
        raise RecipeError(f"{shown}: extends: cycle {' -> '.join([*names, base])}")
    if not base_path.is_file():
        raise RecipeError(f"{shown}: extends: no recipe {base!r} in {shown_path(path.parent)}")
    data, origins = _resolve(base_path, stack)
    return _merge(data, raw, path, origins, ()), origins


# ---------------------------------------------------------------- error formatting
def _unknown_key(model: type[BaseModel]) -> str:
    keys = set(model.model_fields) - set(LOADER_FIELDS) | (
        {"extends"} if model is Recipe else set()
    )
    return f"unknown key (expected one of: {', '.join(sorted(keys))})"


def _section_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] = Recipe
    for part in loc:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        kinds = (field.annotation, *get_args(field.annotation)) if field else ()
        found = [t for t in kinds if isinstance(t, type) and issubclass(t, BaseModel)]
        if not found:
            return None
        model = found[0]
    return model


def _position(data: Any, loc: tuple) -> tuple[int, ...]:
    """Where ``loc`` appears in the merged file data, for a file-order sort."""
    pos, node = [], data
    for part in loc:
        if isinstance(node, dict) and part in node:
            pos.append(list(node).index(part))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            pos.append(part)
        else:
            return (*pos, _FAR)
        node = node[part]
    return tuple(pos)


def _first_error(exc: ValidationError, data: dict, origins: dict[tuple, Path], leaf: Path) -> str:
    def loc(err: Any) -> tuple:
        path = (err.get("ctx") or {}).get("path")
        return tuple(path.split(".")) if path else tuple(err["loc"])

    err = min(exc.errors(include_url=False), key=lambda e: _position(data, loc(e)))
    where = loc(err)
    section = _section_at(where[:-1]) if err["type"] == "extra_forbidden" else None
    if section is not None:
        msg = _unknown_key(section)
    elif err["type"] == "missing":
        msg = "required field is missing"
    else:
        msg = err["msg"].removeprefix("Value error, ").splitlines()[0]
    dotted = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in where).lstrip(".")
    file = next(
        (origins[where[:n]] for n in range(len(where), 0, -1) if where[:n] in origins), leaf
    )
    return f"{shown_path(file)}: {dotted}: {msg}" if dotted else f"{shown_path(file)}: {msg}"


# ---------------------------------------------------------------- public API
def recipes_dir() -> Path:
    """The recipes directory: ``$PUBLISHER_RECIPES_DIR`` or the repository's ``recipes/``."""
    return Path(os.environ.get(RECIPES_DIR_ENV) or DEFAULT_RECIPES_DIR)


_current_recipes_dir = recipes_dir  # the ``recipes_dir`` parameters below shadow the function


def _names(folder: Path) -> list[str]:
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.name.startswith(("_", ".")))


def recipe_files(recipes_dir: Path | None = None) -> list[Path]:
    """Every non-abstract recipe file in the folder (loaded or not)."""
    folder = Path(recipes_dir or _current_recipes_dir())
    if not folder.is_dir():
        raise RecipeError(f"{shown_path(folder)}: recipes directory not found")
    return [folder / f"{name}.yaml" for name in _names(folder)]


def load_recipe(name_or_path: str | Path, recipes_dir: Path | None = None) -> Recipe:
    """Load a recipe by name (``recipes_dir/<name>.yaml``) or by path; raise RecipeError."""
    text = str(name_or_path)
    path = Path(name_or_path)
    if not (path.is_file() or text.endswith((".yaml", ".yml"))):
        path = Path(recipes_dir or _current_recipes_dir()) / f"{text}.yaml"
    if not path.is_file():
        available = ", ".join(_names(path.parent)) or "none"
        raise RecipeError(f"{shown_path(path)}: no such recipe file (available: {available})")
    _check_name(path)
    data, origins = _resolve(path, ())
    try:
        recipe = Recipe.model_validate({**data, "name": path.stem, "source": path.resolve()})
    except ValidationError as exc:
        raise RecipeError(_first_error(exc, data, origins, path)) from None
    if problem := check_recipe(recipe):  # the registry's rules, then each listed pass's own check
        where, msg = problem
        file = origins.get(tuple(where.split(".")), origins.get(("passes",), path))
        raise RecipeError(f"{shown_path(file)}: {where}: {msg}")
    return recipe


RECIPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _check_name(path: Path) -> None:
    """The file stem names the build folder, the Space's row and the Hub commit: plain
    ASCII, no spaces, at most 64 characters, so it works everywhere it appears."""
    if not RECIPE_NAME.fullmatch(path.stem) or path.stem.endswith("."):
        raise RecipeError(
            f"{shown_path(path)}: the recipe name {path.stem!r} must be 1-64 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit; rename the file"
        )


def list_recipes(recipes_dir: Path | None = None) -> list[Recipe]:
    """Every non-abstract recipe (``*.yaml`` not starting with ``_``), sorted by name."""
    return [load_recipe(path) for path in recipe_files(recipes_dir)]


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the recipe's canonical JSON (``source`` excluded)."""
    payload = json.dumps(recipe.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
