"""Count an ONNX graph's nodes, parameters and bytes by (op type, dtype); diff op counts.

The table is the equivalent of ``count --size --count-by op+dtype`` in the usual ONNX
inspection tools, with these rules (all graphs are walked: the main graph first, then every
subgraph of Loop/If/Scan and any other GRAPH/GRAPHS attribute, level by level):

* A *weight tensor* is an initializer (of any graph) or the value of a ``Constant`` node.
  Each one is counted once, however many nodes consume it.
* A ``Constant`` node is its own row ``(Constant, value dtype)`` and carries its value's
  params and bytes; consumers of its output do not count them again.
* Every other weight tensor is attributed to the FIRST node (in walk order) that consumes
  it, in the row ``(that node's op, that tensor's dtype)``. Initializers no node consumes
  land in the row ``(unused), dtype`` with zero nodes, so the totals still add up.
* A node is counted (``nodes``) in the row of its *primary dtype*: the dtype of the
  largest weight tensor among its explicit inputs (most elements, then most bytes, then
  the first in input order), whether or not that tensor was attributed to it. A node with
  no weight inputs has dtype ``-``. So a DequantizeLinear of int8 data with a float32
  scale counts as one ``(DequantizeLinear, int8)`` node; the scale's params sit in
  ``(DequantizeLinear, float32)`` (possibly a row with zero nodes).
* params = element count (from the dims, so external data is never read); bytes =
  ceil(elements * bits / 8) per tensor: int4/uint4 are half a byte each, strings count
  their stored length. Ops outside the default domain are labelled ``domain::Op``.

Models are loaded with ``load_external_data=False``, so graphs over 2 GB (which must use
external data) are inspected without reading their weights.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from publisher.runtime.errors import InputError, first_line

NO_WEIGHTS = "-"
UNUSED = "(unused)"

# bits per element for the TensorProto data types that are not whole numpy itemsizes or
# whose onnx names we rename; the rest come from onnx's numpy mapping.
_BITS = {
    "UINT4": 4,
    "INT4": 4,
    "FLOAT4E2M1": 4,
    "UINT2": 2,
    "INT2": 2,
    "FLOAT6E2M3": 6,
    "FLOAT6E3M2": 6,
    "FLOAT8E4M3FN": 8,
    "FLOAT8E4M3FNUZ": 8,
    "FLOAT8E5M2": 8,
    "FLOAT8E5M2FNUZ": 8,
    "FLOAT8E8M0": 8,
    "BFLOAT16": 16,
}
_NAMES = {"FLOAT": "float32", "DOUBLE": "float64"}


@dataclass
class Row:
    op_type: str
    dtype: str
    nodes: int = 0
    params: int = 0
    bytes: int = 0


@dataclass
class Totals:
    nodes: int = 0
    params: int = 0
    bytes: int = 0


@dataclass
class IOSpec:
    name: str
    dtype: str
    shape: str


@dataclass
class GraphStats:
    path: str
    rows: list[Row]
    totals: Totals
    file_bytes: int  # the .onnx file plus the external data files it references
    opset: int | None  # default-domain opset
    ir_version: int
    inputs: list[IOSpec] = field(default_factory=list)
    outputs: list[IOSpec] = field(default_factory=list)
    metadata_keys: list[str] = field(default_factory=list)
    opsets: dict[str, int] = field(default_factory=dict)  # every imported domain
    graphs: int = 1  # main graph plus subgraphs walked
    external_data: bool = False

    def op_counts(self) -> Counter[str]:
        """Node count per op type, summed over dtypes."""
        counts: Counter[str] = Counter()
        for r in self.rows:
            if r.nodes:
                counts[r.op_type] += r.nodes
        return counts


@dataclass
class _Weight:
    dtype: str
    params: int
    bytes: int
    claimed: bool = False


# ---------------------------------------------------------------- tensor sizes


def dtype_name(elem_type: int) -> str:
    """``float32``, ``float16``, ``int8``, ``int4``, ... for a TensorProto data type."""
    from onnx import TensorProto

    try:
        name = TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"type{elem_type}"
    return _NAMES.get(name, name.lower())


def _bits(elem_type: int) -> int:
    from onnx import TensorProto, helper

    name = TensorProto.DataType.Name(elem_type)
    if name in _BITS:
        return _BITS[name]
    return helper.tensor_dtype_to_np_dtype(elem_type).itemsize * 8


def _tensor_weight(t: Any) -> _Weight:
    """Size of a TensorProto from its dims and type; never reads external data."""
    from onnx import TensorProto

    n = math.prod(t.dims)
    if t.data_type == TensorProto.STRING:
        size = sum(len(s) for s in t.string_data)
    elif t.data_type == TensorProto.UNDEFINED:
        size = 0
    else:
        size = (n * _bits(t.data_type) + 7) // 8
    return _Weight(dtype_name(t.data_type), n, size)


def _constant_weight(node: Any) -> _Weight:
    """The value of a Constant node, whichever ``value*`` attribute holds it."""
    for a in node.attribute:
        if a.name == "value":
            return _tensor_weight(a.t)
        if a.name == "sparse_value":  # counts the stored (non-zero) values
            return _tensor_weight(a.sparse_tensor.values)
        if a.name == "value_float":
            return _Weight("float32", 1, 4)
        if a.name == "value_floats":
            return _Weight("float32", len(a.floats), 4 * len(a.floats))
        if a.name == "value_int":
            return _Weight("int64", 1, 8)
        if a.name == "value_ints":
            return _Weight("int64", len(a.ints), 8 * len(a.ints))
        if a.name == "value_string":
            return _Weight("string", 1, len(a.s))
        if a.name == "value_strings":
            return _Weight("string", len(a.strings), sum(len(s) for s in a.strings))
    return _Weight(NO_WEIGHTS, 0, 0)


# ---------------------------------------------------------------- loading


def _load(path: Path) -> Any:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf DecodeError, OSError, ...: report one line
        raise InputError(f"{path}: not an ONNX model ({first_line(exc)})") from None
    if not model.HasField("graph"):
        raise InputError(f"{path}: not an ONNX model (no graph)")
    return model


def _external_location(t: Any) -> str | None:
    """The file an externally stored tensor's data lives in (None: stored inline)."""
    from onnx import TensorProto

    if t.data_location != TensorProto.EXTERNAL:
        return None
    return next((e.value for e in t.external_data if e.key == "location"), None)


def _value_info(v: Any) -> IOSpec:
    tt = v.type
    kind = tt.WhichOneof("value")
    if kind != "tensor_type":
        return IOSpec(v.name, kind or "?", "?")
    dtype = dtype_name(tt.tensor_type.elem_type)
    if not tt.tensor_type.HasField("shape"):
        return IOSpec(v.name, dtype, "?")
    dims = []
    for d in tt.tensor_type.shape.dim:
        which = d.WhichOneof("value")
        dims.append(str(d.dim_value) if which == "dim_value" else d.dim_param or "?")
    return IOSpec(v.name, dtype, "[" + ", ".join(dims) + "]")


def _op_label(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}::{node.op_type}"


def _is_constant(node: Any) -> bool:
    return node.op_type == "Constant" and node.domain in ("", "ai.onnx")


# ---------------------------------------------------------------- public API


def inspect_model(path: str | os.PathLike[str]) -> GraphStats:
    """Load ``path`` (without external data) and count it by (op type, dtype).

    Raises PublisherError with one line when the file is not an ONNX model.
    """
    from onnx import AttributeProto

    path = Path(path)
    model = _load(path)
    rows: dict[tuple[str, str], Row] = {}

    def row(op: str, dtype: str) -> Row:
        key = (op, dtype)
        if key not in rows:
            rows[key] = Row(op, dtype)
        return rows[key]

    initializers: list[_Weight] = []
    external: set[str | None] = set()
    queue: deque[tuple[Any, tuple[dict[str, _Weight], ...]]] = deque([(model.graph, ())])
    n_graphs = 0
    while queue:
        graph, outer = queue.popleft()
        n_graphs += 1
        local: dict[str, _Weight] = {}
        for t in graph.initializer:
            external.add(_external_location(t))
            local[t.name] = _tensor_weight(t)
            initializers.append(local[t.name])
        constants: dict[int, _Weight] = {}  # node index -> its value
        for i, node in enumerate(graph.node):
            if _is_constant(node):
                w = _constant_weight(node)
                w.claimed = True
                constants[i] = w
                for out in node.output:
                    if out:
                        local[out] = w
        scope = (local, *outer)

        for i, node in enumerate(graph.node):
            if _is_constant(node):
                w = constants[i]
                r = row("Constant", w.dtype)
                r.nodes += 1
                r.params += w.params
                r.bytes += w.bytes
            else:
                op = _op_label(node)
                weights: list[_Weight] = []
                for name in node.input:
                    w = _resolve(name, scope) if name else None
                    if w is not None and all(w is not x for x in weights):
                        weights.append(w)
                primary = NO_WEIGHTS
                if weights:
                    # max() keeps the first of equals, i.e. input order breaks ties
                    primary = max(weights, key=lambda w: (w.params, w.bytes)).dtype
                row(op, primary).nodes += 1
                for w in weights:
                    if not w.claimed:
                        w.claimed = True
                        r = row(op, w.dtype)
                        r.params += w.params
                        r.bytes += w.bytes
            for a in node.attribute:
                if a.type == AttributeProto.TENSOR:
                    external.add(_external_location(a.t))
                elif a.type == AttributeProto.TENSORS:
                    external.update(_external_location(t) for t in a.tensors)
                elif a.type == AttributeProto.GRAPH:
                    queue.append((a.g, scope))
                elif a.type == AttributeProto.GRAPHS:
                    queue.extend((g, scope) for g in a.graphs)

    for w in initializers:
        if not w.claimed:
            r = row(UNUSED, w.dtype)
            r.params += w.params
            r.bytes += w.bytes

    ordered = sorted(rows.values(), key=lambda r: (-r.bytes, r.op_type, r.dtype))
    totals = Totals(
        nodes=sum(r.nodes for r in ordered),
        params=sum(r.params for r in ordered),
        bytes=sum(r.bytes for r in ordered),
    )
    external.discard(None)
    data_files = [path.parent / loc for loc in sorted(external)]
    file_bytes = path.stat().st_size + sum(f.stat().st_size for f in data_files if f.is_file())
    opsets = {(o.domain or "ai.onnx"): o.version for o in model.opset_import}
    init_names = {t.name for t in model.graph.initializer}
    return GraphStats(
        path=str(path),
        rows=ordered,
        totals=totals,
        file_bytes=file_bytes,
        opset=opsets.get("ai.onnx"),
        ir_version=model.ir_version,
        inputs=[_value_info(v) for v in model.graph.input if v.name not in init_names],
        outputs=[_value_info(v) for v in model.graph.output],
        metadata_keys=[p.key for p in model.metadata_props],
        opsets=opsets,
        graphs=n_graphs,
        external_data=bool(external),
    )


def _resolve(name: str, scope: tuple[dict[str, _Weight], ...]) -> _Weight | None:
    """The weight a value name refers to, innermost graph first (None: not a weight)."""
    for level in scope:
        if name in level:
            return level[name]
    return None


def diff_ops(a: GraphStats, b: GraphStats) -> list[tuple[str, int, int, int]]:
    """(op, count in a, count in b, b - a) for every op whose node count differs,
    largest |delta| first, then by op name."""
    ca, cb = a.op_counts(), b.op_counts()
    out = [(op, ca[op], cb[op], cb[op] - ca[op]) for op in set(ca) | set(cb) if ca[op] != cb[op]]
    return sorted(out, key=lambda t: (-abs(t[3]), t[0]))


def _mib(n: int) -> str:
    return f"{n / 2**20:.3f}"


def _signature(specs: list[IOSpec]) -> str:
    return ", ".join(f"{s.name}: {s.dtype}{s.shape}" for s in specs) or "none"


def format_table(stats: GraphStats) -> str:
    """Markdown table ``| op | dtype | nodes | params | MiB |`` (bytes desc, then op),
    a totals row, and one line with file size, opset and the IO signature."""
    lines = ["| op | dtype | nodes | params | MiB |", "|---|---|---:|---:|---:|"]
    for r in sorted(stats.rows, key=lambda r: (-r.bytes, r.op_type, r.dtype)):
        lines.append(f"| {r.op_type} | {r.dtype} | {r.nodes} | {r.params:,} | {_mib(r.bytes)} |")
    t = stats.totals
    lines.append(f"| **total** | | {t.nodes} | {t.params:,} | {_mib(t.bytes)} |")
    opset = stats.opset if stats.opset is not None else "?"
    extra = [f"{d} {v}" for d, v in sorted(stats.opsets.items()) if d != "ai.onnx"]
    lines.append("")
    lines.append(
        f"file {_mib(stats.file_bytes)} MiB ({stats.file_bytes:,} bytes"
        + (", external data" if stats.external_data else "")
        + f"), opset {opset}"
        + (f" ({', '.join(extra)})" if extra else "")
        + f", ir {stats.ir_version}, graphs {stats.graphs}; "
        + f"inputs {_signature(stats.inputs)} -> outputs {_signature(stats.outputs)}"
    )
    return "\n".join(lines)


def format_diff(a: GraphStats, b: GraphStats, rows: list[tuple[str, int, int, int]]) -> str:
    """Markdown table ``| op | a | b | delta |`` of ``diff_ops(a, b)``, with a line per model."""
    lines = [
        f"a: {a.path} ({a.totals.nodes} nodes, {a.totals.params:,} params, "
        f"{_mib(a.totals.bytes)} MiB)",
        f"b: {b.path} ({b.totals.nodes} nodes, {b.totals.params:,} params, "
        f"{_mib(b.totals.bytes)} MiB)",
        "",
    ]
    if not rows:
        lines.append("no op-count differences")
        return "\n".join(lines)
    lines += ["| op | a | b | delta |", "|---|---:|---:|---:|"]
    for op, na, nb, delta in rows:
        lines.append(f"| {op} | {na} | {nb} | {delta:+d} |")
    return "\n".join(lines)


def to_dict(stats: GraphStats) -> dict[str, Any]:
    """GraphStats as plain JSON-serialisable data."""
    return asdict(stats)


def to_json(stats: GraphStats) -> str:
    """GraphStats as an indented JSON document."""
    return json.dumps(to_dict(stats), indent=2)
