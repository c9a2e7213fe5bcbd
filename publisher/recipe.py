"""Recipe loading and validation: YAML files -> typed, frozen ``Recipe`` objects.

Every problem is a one-line ``RecipeError``: ``<file>: <field.path>: <message>``.
"""

import hashlib
import json
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from publisher.errors import RecipeError
from publisher.locations import shipped_dir

DEFAULT_RECIPES_DIR: Path = shipped_dir("recipes")
RECIPES_DIR_ENV = "PUBLISHER_RECIPES_DIR"
_INTERNAL = ("name", "source")  # set by the loader, never written in YAML
_CHECKPOINT = r"hub:[^\s/]+/\S+|path:\S.*|onnx:\S.*|recovered:[\w.-]+|synthetic:(?:tiny|full)"
_FAR = 1 << 30  # sort position of a key that is not in the file (e.g. a missing field)


# ---------------------------------------------------------------- value types
def _fail(msg: str, path: str | None = None) -> PydanticCustomError:
    """A validation error whose message is shown verbatim; ``path`` overrides its location."""
    return PydanticCustomError("recipe", "{msg}", {"msg": msg, **({"path": path} if path else {})})


def _show(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    kinds = {dict: "mapping", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _rule(base: Any, ok: Callable[[Any], bool], expected: str) -> Any:
    """``base`` checked by ``ok`` before pydantic sees it; else ``expected ..., got <value>``."""

    def check(v: Any) -> Any:
        if not ok(v):
            raise _fail(f"expected {expected}, got {_show(v)}")
        return v

    return Annotated[base, BeforeValidator(check)]


def int_range(lo: int, hi: int) -> Any:
    """An integer in ``[lo, hi]``; bools, floats (even 64.0) and strings are rejected."""
    return _rule(int, lambda v: type(v) is int and lo <= v <= hi, f"an integer from {lo} to {hi}")


def float_range(lo: float, hi: float) -> Any:
    """A number in ``[lo, hi]``; ints are accepted, bools and strings rejected."""
    expected = f"a number from {lo:g} to {hi:g}"
    return _rule(float, lambda v: type(v) in (int, float) and lo <= v <= hi, expected)


def choice(*options: Any) -> Any:
    """Exactly one of ``options`` (same type too, so ``true`` is not ``1``)."""
    expected = f"one of {', '.join(map(repr, sorted(options)))}"
    return _rule(
        Literal[options], lambda v: any(type(v) is type(o) and v == o for o in options), expected
    )


def pattern(regex: str, what: str) -> Any:
    """A string fully matching ``regex``."""
    expected = f"{what} matching {regex}"
    return _rule(str, lambda v: isinstance(v, str) and bool(re.fullmatch(regex, v)), expected)


Str = _rule(str, lambda v: isinstance(v, str), "a string")
Bool = _rule(bool, lambda v: isinstance(v, bool), "true or false")
Checkpoint = _rule(
    str,
    lambda v: isinstance(v, str) and bool(re.fullmatch(_CHECKPOINT, v)),
    "hub:ORG/NAME, path:DIR, onnx:FILE, recovered:NAME or synthetic:tiny|full",
)


def str_list(item: Any = Str, unique: bool = False) -> Any:
    """A YAML list of ``item`` (stored as a tuple); ``unique`` rejects repeated entries."""

    def check(v: Any) -> list[Any]:
        if not isinstance(v, list):
            raise _fail(f"expected a list of strings, got {_show(v)}")
        for i, x in enumerate(v):
            if unique and x in v[:i]:
                raise _fail(f"duplicate entry {_show(x)}")
        return v

    return Annotated[tuple[item, ...], BeforeValidator(check)]


def _check_str(v: Any) -> str:
    if not isinstance(v, str):
        raise _fail(f"expected a string, got {_show(v)}")
    return v


def _check_description(v: Any) -> str:
    v = _check_str(v).strip()
    if not v:
        raise _fail("must not be empty")
    if "\n" in v or "\r" in v:
        raise _fail("must be a single line")
    if len(v) > 120:
        raise _fail(f"must be at most 120 characters, got {len(v)}")
    return v


def _check_output_path(v: Any) -> str:
    v = _check_str(v)
    if "\\" in v:
        raise _fail(f"expected forward slashes, got {_show(v)}")
    if v.startswith("/"):
        raise _fail(f"expected a relative path, got {_show(v)}")
    if any(part in ("", ".", "..") for part in v.split("/")):
        raise _fail(f"must not contain '.', '..' or empty segments, got {_show(v)}")
    if not v.endswith(".onnx") or v.rsplit("/", 1)[-1] == ".onnx":
        raise _fail(f"expected a path ending in .onnx, got {_show(v)}")
    if len(v) > 200 or not all(
        re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", p) for p in v.split("/")
    ):
        raise _fail(
            "expected at most 200 characters of letters, digits, '.', '_', '-' and '/' "
            f"(no segment starting with '.'), got {_show(v)}"
        )
    return v


# ---------------------------------------------------------------- models
class _Section(BaseModel):
    """Base of every recipe model: strict keys, immutable, must be given a mapping."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @model_validator(mode="before")
    @classmethod
    def require_mapping(cls, data: Any) -> Any:
        if isinstance(data, BaseModel):
            return data
        if not isinstance(data, dict):
            raise _fail(f"expected a mapping, got {_kind(data)}")
        return cls._fill_defaults(data)

    @classmethod
    def _fill_defaults(cls, data: dict[str, Any]) -> dict[str, Any]:
        return data


class Export(_Section):
    opset: int_range(14, 21) = 17
    shape: choice("dynamic", "bucket") = "dynamic"
    bucket: int_range(8, 510) | None = None
    alignment_frames: int_range(8, 4096) | None = None
    output_samples: int_range(1, 10_000_000) | None = None

    @property
    def resolved_alignment_frames(self) -> int | None:
        """Alignment frames for a bucket export: given value, else ``2 * bucket + 8``."""
        if self.alignment_frames is not None:
            return self.alignment_frames
        return None if self.bucket is None else 2 * self.bucket + 8


class Fp16(_Section):
    mode: choice("none", "all", "decoder-only") = "none"
    block_ops: str_list() = ()
    block_names: str_list() = ()


_QUANT_DEFAULTS = {"dynamic": ("int8", None), "static": ("uint8", "uint8"), "int4": ("int4", None)}
_QUANT_WEIGHTS = {
    "none": (),
    "dynamic": ("int8", "uint8"),
    "static": ("int8", "uint8"),
    "int4": ("int4", "uint4"),
}
_QUANT_ACTIVATIONS = {"static": ("int8", "uint8")}


class Quantize(_Section):
    type: choice("none", "dynamic", "static", "int4") = "none"
    weight_type: choice("int8", "uint8", "int4", "uint4") | None = None
    activation_type: choice("int8", "uint8") | None = None
    per_channel: Bool = False
    format: choice("qdq", "qoperator") = "qdq"
    exclude: str_list() = ()
    calibration_samples: int_range(1, 1000) = 32
    block_size: choice(16, 32, 64, 128, 256) = 32
    op_types: str_list(pattern(r"^[A-Za-z][A-Za-z0-9]*$", "an ONNX op type"), unique=True) = ()
    symmetric: Bool = True

    @classmethod
    def _fill_defaults(cls, data: dict[str, Any]) -> dict[str, Any]:
        kind = data.get("type")
        if not isinstance(kind, str) or kind not in _QUANT_DEFAULTS:
            return data
        weight, activation = _QUANT_DEFAULTS[kind]
        data = dict(data)
        for key, default in (("weight_type", weight), ("activation_type", activation)):
            if data.get(key) is None and default is not None:
                data[key] = default
        return data


class Precision(_Section):
    fp16: Fp16 = Field(default_factory=Fp16)
    quantize: Quantize = Field(default_factory=Quantize)


TensorName = pattern(r"^[A-Za-z_][A-Za-z0-9_./:-]*$", "a tensor name")


class IoNames(_Section):
    input_ids: TensorName
    style: TensorName
    speed: TensorName
    input_lengths: TensorName
    waveform: TensorName
    duration: TensorName


IO_PROFILES: dict[str, dict[str, str]] = {
    "onnx-community": {k: k for k in IoNames.model_fields},
    "kokoro-onnx-legacy": {
        **{k: k for k in IoNames.model_fields},
        **{"input_ids": "tokens", "waveform": "audio"},
    },
}


class Io(_Section):
    profile: choice("onnx-community", "kokoro-onnx-legacy", "custom") = "onnx-community"
    names: IoNames | None = None


class Output(_Section):
    path: Annotated[str, BeforeValidator(_check_output_path)] = "onnx/model.onnx"


class RealWeightGates(_Section):
    """Fidelity thresholds for real weights (recovered or original), measured in the
    voiced deterministic mode; each one left out keeps the general value."""

    spectral_correlation: float_range(0, 1) | None = None
    log_mel_distance: float_range(0, 100) | None = None
    duration_agreement: float_range(0, 1) | None = None


class Gates(_Section):
    parity_max_abs: float_range(0, 1) = 5e-4
    parity_min_snr_db: float_range(0, 300) = 60.0
    spectral_correlation: float_range(0, 1) | None = None
    log_mel_distance: float_range(0, 100) | None = None
    duration_agreement: float_range(0, 1) | None = None
    # speech gates (real weights only): WER at most upstream's + margin (absolute), mean
    # overall DNSMOS at most this far below upstream's
    wer_margin: float_range(0, 1) | None = None
    dnsmos_drop: float_range(0, 4) | None = None
    real_weights: RealWeightGates = Field(default_factory=RealWeightGates)

    def for_weights(self, real: bool) -> "Gates":
        """The thresholds that apply: ``real_weights`` overrides on real weights."""
        if not real:
            return self
        override = self.real_weights.model_dump(exclude_none=True)
        return self.model_copy(update=override)


class Card(_Section):
    title: Str = ""
    summary: Str = ""
    notes: Str = ""


class Recipe(_Section):
    """A validated recipe; ``name`` is the file stem, ``source`` the leaf file."""

    name: str = Field(min_length=1)
    source: Path | None = Field(default=None, exclude=True)
    description: Annotated[str, BeforeValidator(_check_description)]
    checkpoint: Checkpoint = "hub:hexgrad/Kokoro-82M"
    export: Export = Field(default_factory=Export)
    precision: Precision = Field(default_factory=Precision)
    passes: str_list(pattern(r"^[a-z0-9-]+$", "a pass name"), unique=True) = ()
    io: Io = Field(default_factory=Io)
    output: Output = Field(default_factory=Output)
    gates: Gates = Field(default_factory=Gates)
    card: Card = Field(default_factory=Card)

    @model_validator(mode="after")
    def check_consistency(self) -> "Recipe":
        """All cross-field rules; each error names the field at fault."""
        e, f, q, io = self.export, self.precision.fp16, self.precision.quantize, self.io
        if e.shape == "bucket" and e.bucket is None:
            raise _fail("required when export.shape is 'bucket'", "export.bucket")
        for key in ("bucket", "alignment_frames", "output_samples"):
            if e.shape != "bucket" and getattr(e, key) is not None:
                raise _fail("only allowed when export.shape is 'bucket'", f"export.{key}")
        if e.alignment_frames is not None and e.bucket and e.alignment_frames < e.bucket:
            msg = f"must be >= export.bucket ({e.bucket}), got {e.alignment_frames}"
            raise _fail(msg, "export.alignment_frames")
        for key in ("block_ops", "block_names"):
            if f.mode == "none" and getattr(f, key):
                msg = "only allowed when precision.fp16.mode is 'all' or 'decoder-only'"
                raise _fail(msg, f"precision.fp16.{key}")
        when = f"when precision.quantize.type is {q.type!r}"
        for key, allowed in (
            ("weight_type", _QUANT_WEIGHTS[q.type]),
            ("activation_type", _QUANT_ACTIVATIONS.get(q.type, ())),
        ):
            value = getattr(q, key)
            if value is not None and value not in allowed:
                expected = ", ".join(map(repr, allowed))
                msg = f"expected one of {expected} {when}" if allowed else f"must be null {when}"
                raise _fail(f"{msg}, got {value!r}", f"precision.quantize.{key}")
        for key in ("exclude", "op_types"):
            if q.type == "none" and getattr(q, key):
                raise _fail(f"must be empty {when}", f"precision.quantize.{key}")
        only = {"format": "static", "calibration_samples": "static", "block_size": "int4"}
        for key, kind in only.items():
            if q.type != kind and getattr(q, key) != Quantize.model_fields[key].default:
                msg = f"only meaningful when precision.quantize.type is {kind!r}"
                raise _fail(msg, f"precision.quantize.{key}")
        if q.per_channel and q.type not in ("dynamic", "static"):
            msg = "only meaningful when precision.quantize.type is 'dynamic' or 'static'"
            raise _fail(msg, "precision.quantize.per_channel")
        if io.profile == "custom" and io.names is None:
            raise _fail("required when io.profile is 'custom'", "io.names")
        if io.profile != "custom" and io.names is not None:
            raise _fail("only allowed when io.profile is 'custom'", "io.names")
        names = list(self.io_names().values())
        for i, n in enumerate(names):
            if n in names[:i]:
                raise _fail(f"tensor names must be distinct, {n!r} is used twice", "io.names")
        return self

    @property
    def display_path(self) -> str:
        """The leaf file as error messages show it (relative to the cwd when inside it)."""
        return _display(self.source) if self.source else f"{self.name}.yaml"

    def io_names(self) -> dict[str, str]:
        """The six tensor names (input_ids, style, speed, input_lengths, waveform, duration)."""
        if self.io.names is not None:
            return self.io.names.model_dump()
        return dict(IO_PROFILES[self.io.profile])


# ---------------------------------------------------------------- YAML loading
class _Loader(yaml.SafeLoader):
    """safe_load, but only true/false are booleans, 1e-4 is a float, keys are unique strings."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            problem = None if isinstance(key, str) else f"keys must be strings, got {_show(key)}"
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


def _display(path: Path) -> str:
    """``path`` relative to the working directory when inside it, else absolute."""
    full = Path(path).resolve()
    try:
        return full.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(full)


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
    shown = _display(path)
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
        got = "an empty file" if data is None else _kind(data)
        raise RecipeError(f"{shown}: expected a mapping of recipe fields, got {got}")
    if _expanded_size(data, {}) > MAX_VALUES:
        raise RecipeError(
            f"{shown}: expands to more than {MAX_VALUES} values (YAML aliases repeating "
            "aliases?); a recipe is a few dozen settings"
        )
    for key in _INTERNAL:
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
    raw, shown = _read(path), _display(path)
    if "extends" not in raw:
        origins: dict[tuple, Path] = {}
        _mark(raw, path, origins, ())
        return raw, origins
    base = raw.pop("extends")
    if not isinstance(base, str) or not re.fullmatch(r"[\w][\w.-]*", base):
        got = _show(base)
        raise RecipeError(f"{shown}: extends: expected a recipe name in this directory, got {got}")
    base_path, stack = path.parent / f"{base}.yaml", (*chain, path)
    if len(stack) > MAX_EXTENDS:
        raise RecipeError(f"{shown}: extends: a chain longer than {MAX_EXTENDS} recipes")
    seen = [p.resolve() for p in stack]
    if base_path.resolve() in seen:
        names = [p.stem for p in stack[seen.index(base_path.resolve()) :]]
        raise RecipeError(f"{shown}: extends: cycle {' -> '.join([*names, base])}")
    if not base_path.is_file():
        raise RecipeError(f"{shown}: extends: no recipe {base!r} in {_display(path.parent)}")
    data, origins = _resolve(base_path, stack)
    return _merge(data, raw, path, origins, ()), origins


# ---------------------------------------------------------------- error formatting
def _unknown_key(model: type[BaseModel]) -> str:
    keys = set(model.model_fields) - set(_INTERNAL) | ({"extends"} if model is Recipe else set())
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
    return f"{_display(file)}: {dotted}: {msg}" if dotted else f"{_display(file)}: {msg}"


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
        raise RecipeError(f"{_display(folder)}: recipes directory not found")
    return [folder / f"{name}.yaml" for name in _names(folder)]


def load_recipe(name_or_path: str | Path, recipes_dir: Path | None = None) -> Recipe:
    """Load a recipe by name (``recipes_dir/<name>.yaml``) or by path; raise RecipeError."""
    text = str(name_or_path)
    path = Path(name_or_path)
    if not (path.is_file() or text.endswith((".yaml", ".yml"))):
        path = Path(recipes_dir or _current_recipes_dir()) / f"{text}.yaml"
    if not path.is_file():
        available = ", ".join(_names(path.parent)) or "none"
        raise RecipeError(f"{_display(path)}: no such recipe file (available: {available})")
    _check_name(path)
    data, origins = _resolve(path, ())
    try:
        return Recipe.model_validate({**data, "name": path.stem, "source": path.resolve()})
    except ValidationError as exc:
        raise RecipeError(_first_error(exc, data, origins, path)) from None


RECIPE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def _check_name(path: Path) -> None:
    """The file stem names the build folder, the Space's row and the Hub commit: plain
    ASCII, no spaces, at most 64 characters, so it works everywhere it appears."""
    if not RECIPE_NAME.fullmatch(path.stem) or path.stem.endswith("."):
        raise RecipeError(
            f"{_display(path)}: the recipe name {path.stem!r} must be 1-64 letters, digits, "
            "'.', '_' or '-', starting with a letter or digit; rename the file"
        )


def list_recipes(recipes_dir: Path | None = None) -> list[Recipe]:
    """Every non-abstract recipe (``*.yaml`` not starting with ``_``), sorted by name."""
    return [load_recipe(path) for path in recipe_files(recipes_dir)]


def recipe_hash(recipe: Recipe) -> str:
    """sha256 of the recipe's canonical JSON (``source`` excluded)."""
    payload = json.dumps(recipe.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()
