"""The recipe schema: typed, frozen section models with field rules and their messages.

``publisher.recipe.loader`` reads YAML into these; every problem is a one-line
``RecipeError``: ``<file>: <field.path>: <message>``.
"""

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    model_validator,
)
from pydantic_core import PydanticCustomError

from publisher.runtime.constants import HEARD_WER_MARGIN, ONNXRUNTIME_FLOORS
from publisher.runtime.runtimes import runtime_names

LOADER_FIELDS = ("name", "source")  # set by the loader, never written in YAML
_CHECKPOINT = r"hub:[^\s/]+/\S+|path:\S.*|onnx:\S.*|recovered:[\w.-]+|synthetic:(?:tiny|full)"


# ---------------------------------------------------------------- value types
def _fail(msg: str, path: str | None = None) -> PydanticCustomError:
    """A validation error whose message is shown verbatim; ``path`` overrides its location."""
    return PydanticCustomError("recipe", "{msg}", {"msg": msg, **({"path": path} if path else {})})


def show_value(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def kind_of(value: Any) -> str:
    kinds = {dict: "mapping", str: "string", bool: "boolean", int: "integer", float: "number"}
    return "null" if value is None else kinds.get(type(value), type(value).__name__)


def _rule(base: Any, ok: Callable[[Any], bool], expected: str) -> Any:
    """``base`` checked by ``ok`` before pydantic sees it; else ``expected ..., got <value>``."""

    def check(v: Any) -> Any:
        if not ok(v):
            raise _fail(f"expected {expected}, got {show_value(v)}")
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
            raise _fail(f"expected a list of strings, got {show_value(v)}")
        for i, x in enumerate(v):
            if unique and x in v[:i]:
                raise _fail(f"duplicate entry {show_value(x)}")
        return v

    return Annotated[tuple[item, ...], BeforeValidator(check)]


def _check_str(v: Any) -> str:
    if not isinstance(v, str):
        raise _fail(f"expected a string, got {show_value(v)}")
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
        raise _fail(f"expected forward slashes, got {show_value(v)}")
    if v.startswith("/"):
        raise _fail(f"expected a relative path, got {show_value(v)}")
    if any(part in ("", ".", "..") for part in v.split("/")):
        raise _fail(f"must not contain '.', '..' or empty segments, got {show_value(v)}")
    if not v.endswith(".onnx") or v.rsplit("/", 1)[-1] == ".onnx":
        raise _fail(f"expected a path ending in .onnx, got {show_value(v)}")
    if len(v) > 200 or not all(
        re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]*", p) for p in v.split("/")
    ):
        raise _fail(
            "expected at most 200 characters of letters, digits, '.', '_', '-' and '/' "
            f"(no segment starting with '.'), got {show_value(v)}"
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
            raise _fail(f"expected a mapping, got {kind_of(data)}")
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
        """Alignment frames for a bucket export: given value, else ``5 * bucket // 2 + 48``.

        The default holds real speech: upstream Kokoro (recovered:kokoro-v1.0) timing the
        corpus's 34 sentences cut at B - 2 phonemes on word boundaries needs about 3.4
        frames per phoneme plus 20-30 for the call's two pads; at speed 1 this rule holds
        99.2-100% of those calls for B = 16 ... 128, where 2B + 8 held 2% (b16) to 94%
        (b128) and every other call was re-split mid-phrase (docs/measurements.md,
        ``scripts/streaming_report.py``)."""
        if self.alignment_frames is not None:
            return self.alignment_frames
        return None if self.bucket is None else 5 * self.bucket // 2 + 48


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
    # node-name globs: when given, only matching nodes are quantized (exclude still applies)
    include: str_list() = ()
    calibration_samples: int_range(1, 1000) = 32
    # static: Conv outputs get this percentile of the calibration data (both tails) as their
    # range instead of min-max (passes/ranges.py)
    output_percentile: float_range(90, 100) | None = None
    # static: the same for the inputs of the quantized Convs (their min-max otherwise)
    input_percentile: float_range(90, 100) | None = None
    # static: node-name globs whose MatMuls with a weight are then quantized dynamically
    # (int8 weights, activation ranges taken per run), for layers whose activations have
    # outlier channels that one calibrated range would clip (ALBERT: passes/quantize.py)
    dynamic_include: str_list() = ()
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
    # also write a sherpa-onnx bundle (sherpa-onnx/<recipe>/: model with sherpa's
    # metadata, voices.bin, tokens.txt, espeak-ng-data, lexicons); dynamic shape only
    sherpa_onnx: Bool = False


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
    # mean cosine of the variant's and upstream's speaker vectors, same sentence and voice
    speaker_similarity: float_range(0, 1) | None = None
    real_weights: RealWeightGates = Field(default_factory=RealWeightGates)

    def for_weights(self, real: bool) -> "Gates":
        """The thresholds that apply: ``real_weights`` overrides on real weights."""
        if not real:
            return self
        override = self.real_weights.model_dump(exclude_none=True)
        return self.model_copy(update=override)


def _known_failures(v: Any) -> dict[str, str]:
    if not isinstance(v, dict):
        raise _fail(f"expected a mapping of runtime name to reason, got {show_value(v)}")
    names = runtime_names()
    for key, reason in v.items():
        if key not in names:
            raise _fail(f"unknown runtime {show_value(key)} (runtimes: {', '.join(names)})")
        if not isinstance(reason, str) or not reason.strip():
            raise _fail(f"{key}: give the documented reason as a non-empty string")
    return v


class Target(_Section):
    """Where the file must run: the oldest onnxruntime it is checked in (the build fails if
    it does not load and run there), the highest ai.onnx opset it may carry, runtimes
    where a failure is a known, documented exception (runtime name -> reason), and how
    much higher than our own phonemes' WER a text runtime's own front end may be heard
    (real weights; ``publisher conformance``)."""

    min_onnxruntime: choice(*ONNXRUNTIME_FLOORS) = ONNXRUNTIME_FLOORS[0]
    opset: int_range(14, 23) | None = None
    known_failures: Annotated[dict[str, str], BeforeValidator(_known_failures)] = Field(
        default_factory=dict
    )
    heard_wer_margin: float_range(0, 1) = HEARD_WER_MARGIN


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
    target: Target = Field(default_factory=Target)
    card: Card = Field(default_factory=Card)

    @model_validator(mode="after")
    def check_consistency(self) -> "Recipe":
        """All cross-field rules; each error names the field at fault."""
        e, f, q, io = self.export, self.precision.fp16, self.precision.quantize, self.io
        if self.target.opset is not None and e.opset > self.target.opset:
            msg = f"export.opset {e.opset} is above target.opset {self.target.opset}"
            raise _fail(msg, "target.opset")
        if self.output.sherpa_onnx and e.shape == "bucket":
            msg = "sherpa-onnx feeds exactly three inputs; a bucket graph cannot run there"
            raise _fail(msg, "output.sherpa_onnx")
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
        for key in ("exclude", "include", "op_types"):
            if q.type == "none" and getattr(q, key):
                raise _fail(f"must be empty {when}", f"precision.quantize.{key}")
        only = {
            "format": "static",
            "calibration_samples": "static",
            "output_percentile": "static",
            "input_percentile": "static",
            "dynamic_include": "static",
            "block_size": "int4",
        }
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
        return shown_path(self.source) if self.source else f"{self.name}.yaml"

    @property
    def is_bucket(self) -> bool:
        """A static token-bucket graph (``export.shape: bucket``), not a dynamic one."""
        return self.export.shape == "bucket"

    def io_names(self) -> dict[str, str]:
        """The six tensor names (input_ids, style, speed, input_lengths, waveform, duration)."""
        if self.io.names is not None:
            return self.io.names.model_dump()
        return dict(IO_PROFILES[self.io.profile])


def shown_path(path: Path) -> str:
    """``path`` relative to the working directory when inside it, else absolute."""
    full = Path(path).resolve()
    try:
        return full.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(full)
