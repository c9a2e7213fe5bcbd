"""The artifacts publisher writes and others read, typed once (pydantic, torch-free):

* ``BuildManifest``: a build folder's manifest.json (build writes it; verify, bench,
  conformance, stage and publish read it) with its ``VerificationReport``;
* ``VariantEntry``: one variant in a published repo's manifest.json (stage writes it; the
  card, the family merge and the Space read it), with its ``Speech`` and matrix ``Cell``s;
* ``RepoManifest``: a published repo's manifest.json;
* ``BrowserReport``: the Space's per-backend summary of its listeners' in-browser runs
  (the Space writes it, ``publisher stage --browser-report`` puts it in the card).

Writers build these with ``write(...)``, which refuses a field the type does not declare;
readers validate with ``model_validate``, which ignores fields a newer publisher added.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, ValidationError

from publisher.runtime.errors import InputError


class Artifact(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @classmethod
    def write(cls, **fields: Any) -> dict[str, Any]:
        """The JSON-ready dict of a new artifact; an undeclared field is a writer's bug."""
        unknown = sorted(set(fields) - set(cls.model_fields))
        if unknown:
            raise InputError(f"{cls.__name__} has no field {', '.join(unknown)}")
        try:
            return cls.model_validate(fields).model_dump(mode="json")
        except ValidationError as exc:
            raise InputError(f"{cls.__name__}: {first_error(exc)}") from None


def _relative(v: str) -> str:
    if v.startswith("/") or ".." in v.split("/") or "\\" in v:
        raise ValueError("must be a relative path inside the folder")
    return v


RelPath = Annotated[str, AfterValidator(_relative)]


# ---------------------------------------------------------------- a build folder
class Gate(Artifact):
    gate: str
    passed: bool
    measured: float
    threshold: float
    item: str | None = None
    higher_is_better: bool = True


class VerificationReport(Artifact):
    """What verify measured (manifest.json's ``verification``); stage publishes a build
    only when ``passed``. Per-item tables (parity, fidelity, bucket, speech) ride along."""

    model_config = ConfigDict(extra="allow")
    passed: bool = False
    gates: list[Gate] = []
    parity: list[dict[str, Any]] = []
    fidelity: list[dict[str, Any]] = []
    speech: dict[str, Any] | None = None
    floor: dict[str, Any] | None = None


class CheckpointRecord(Artifact):
    source: str
    sha256: str
    synthetic: bool = False
    recovered: bool = False
    origin: Literal["original", "recovered", "synthetic"] | None = None  # older builds: absent
    note: str = ""


class FileRecord(Artifact):
    sha256: str
    bytes: int


class BuildManifest(Artifact):
    """A build's manifest.json. Build checks what it writes against this type before the
    file exists; the other commands read it through ``manifest.read_manifest``, which
    checks it too. Later steps add their own sections (bench, first_audio, conformance);
    ``manifest.write_manifest_file`` writes it back."""

    model_config = ConfigDict(extra="allow")
    recipe: str
    model: RelPath
    checkpoint: CheckpointRecord
    files: dict[str, FileRecord]
    verification: VerificationReport
    recipe_sha256: str | None = None
    resolved_recipe: dict[str, Any] = {}
    io: dict[str, str] = {}
    sherpa_onnx: RelPath | None = None  # the bundle's folder
    passes: dict[str, Any] = {}  # applied (names) and notes (what each reported)
    versions: dict[str, Any] = {}
    host: dict[str, Any] = {}
    steps_seconds: dict[str, float] = {}
    # added by later commands: bench, bench --first-audio, conformance
    bench: dict[str, Any] | None = None
    first_audio: dict[str, Any] | None = None
    conformance: dict[str, Any] | None = None


# ---------------------------------------------------------------- a published repo
class Speech(Artifact):
    """WER and DNSMOS overall of the variant and of upstream Kokoro in the same run."""

    ran: bool
    wer: float | None = None
    reference_wer: float | None = None
    dnsmos: float | None = None
    reference_dnsmos: float | None = None
    speaker_similarity: float | None = None  # mean cosine to upstream's speaker vectors
    same_pieces_wer: float | None = None  # a bucket's split sentences: upstream in its pieces


class HeardCell(Artifact):
    """A text runtime heard through its own front end, beside our own phonemes through
    onnxruntime on the same sentences and voices (``publisher.conformance.heard``)."""

    sentences: int
    wer: float
    dnsmos: float
    ours_wer: float
    ours_dnsmos: float


class Cell(Artifact):
    """One runtime's result for one file (``publisher conformance``)."""

    status: Literal["ok", "fails", "known failure", "not claimed"]
    detail: str | None = None
    seconds: float | None = None
    env_seconds: float | None = None
    match: float | None = None  # feeds cells: how much it sounds like our onnxruntime's run
    heard: HeardCell | None = None  # text cells on real weights: WER and DNSMOS


class VariantEntry(Artifact):
    """One variant of a published repo, as its manifest.json records it."""

    recipe: str
    path: RelPath
    recipe_sha256: str
    checkpoint_sha256: str
    description: str
    summary: str
    sha256: str
    bytes: int
    size_mib: float
    params_by_dtype: str
    params: dict[str, int]
    io: dict[str, str]
    shape: Literal["dynamic", "bucket"]
    worst_spectral_correlation: float | None
    worst_log_mel_distance: float | None
    speech: Speech
    gates: list[Gate]
    bench: dict[str, Any] | None = None
    bench_settings: dict[str, Any] | None = None
    first_audio: dict[str, Any] | None = None  # bench --first-audio: one streamed sentence
    host: dict[str, Any]
    versions: dict[str, Any]
    tensors: list[dict[str, Any]]
    spectrogram: RelPath | None = None
    sherpa_onnx: RelPath | None = None
    extra_files: list[RelPath] = []
    floor: dict[str, Any] | None = None
    conformance: dict[str, Cell] | None = None
    # the card table's formatted columns, kept for the Space
    spectral_correlation: str = "-"
    log_mel_distance: str = "-"
    latency: str = "not measured"
    wer: str = "-"
    dnsmos: str = "-"
    speaker_similarity: str = "-"
    speed: str = "-"  # ratio to the fp32 file in the same bench run
    first_audio_ms: str = "-"  # time to first audio of the streamed sentence


class BackendRuns(Artifact):
    """One backend's runs of one variant in listeners' browsers (the Space's table)."""

    backend: str  # e.g. "wasm, 2 threads", "webgpu"
    variant: str  # the recipe name
    runs: int
    flagged: int  # runs whose audio did not sound like the server's
    median_match: float | None  # spectral correlation to the server's run of the same text
    median_rtf: float | None  # synthesis seconds per second of audio, in the browser


class BrowserReport(Artifact):
    """The Space's browser runs, summarized per backend and variant. Nothing personal:
    the Space keeps a browser's name and major version, no request data."""

    format: Literal[1] = 1
    source: str  # the model repo (or folder) the Space served
    written: str  # ISO 8601, UTC
    rows: list[BackendRuns]


class RepoManifest(Artifact):
    """A published repo's manifest.json. ``stale`` entries may come from older
    publishers, so they stay loosely typed (each has at least recipe, path, sha256)."""

    format: int
    checkpoint: dict[str, Any]
    synthetic: bool
    recovered: bool
    recovered_note: str
    origin: str
    voices: list[str]
    variants: list[VariantEntry]
    stale: list[dict[str, Any]] = []
    figures: dict[str, str | None] = {}
    versions: dict[str, Any] = {}
    browser: BrowserReport | None = None  # the card's "In listeners' browsers" table


def first_error(exc: Exception) -> str:
    """A pydantic ValidationError as ``field.path: message`` (the first error)."""
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return str(exc).splitlines()[0]
    err = errors()[0]
    where = ".".join(str(part) for part in err["loc"]) or "top level"
    return f"{where}: {err['msg']}"
