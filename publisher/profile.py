"""``bench --profile``: where each model's time goes, and how close it runs to this CPU's peak.

onnxruntime's own profiler times every kernel; the events carry each node's input and
output shapes, so the multiply-adds of every Conv, ConvTranspose, MatMul, Gemm and LSTM
(float or 8-bit) are counted from the shapes of that very run. The peak is what this CPU
reaches in the same process on a large GEMM through the same runtime: a float MatMul and
an 8-bit MatMulInteger (uint8 x int8, the kernels static 8-bit convolutions use). Each op
type's row then says which fraction of that peak it runs at.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.runtime.constants import SAMPLE_RATE
from publisher.runtime.errors import RunError
from publisher.runtime.synth import bucket_info, feeds_for, open_session

if TYPE_CHECKING:
    import onnx

log = logging.getLogger(__name__)

INT8_OPS = frozenset(
    {
        "QLinearConv",
        "ConvInteger",
        "MatMulInteger",
        "QLinearMatMul",
        "DynamicQuantizeLSTM",
        "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul",
        "QGemm",
    }
)
# (path fragment, module), first match wins: Kokoro's modules as torch names them. Matched
# anywhere in the node name, so exports that nest the model (kokoro-onnx's file names its
# nodes /encoder/bert/..., /decoder/decoder/generator/...) group the same way.
MODULES = (
    ("/generator/m_source/", "generator: harmonic source"),
    ("/generator/analysis/", "generator: source STFT"),
    ("/generator/stft/", "generator: source STFT"),
    ("/generator/noise", "generator: source convs"),
    ("/generator/ups.0/", "generator: stage 1 (x10)"),
    ("/generator/resblocks.0/", "generator: stage 1 (x10)"),
    ("/generator/resblocks.1/", "generator: stage 1 (x10)"),
    ("/generator/resblocks.2/", "generator: stage 1 (x10)"),
    ("/generator/ups.1/", "generator: stage 2 (x6)"),
    ("/generator/resblocks", "generator: stage 2 (x6)"),
    ("/generator/conv_post/", "generator: conv_post + iSTFT"),
    ("/generator/synthesis/", "generator: conv_post + iSTFT"),
    ("/generator/", "generator: other"),
    ("/decode", "decoder: encode/decode blocks"),
    ("/encode/", "decoder: encode/decode blocks"),
    ("/bert", "text: ALBERT"),
    ("/text_encoder_1/", "predictor: text encoder"),
    ("/predictor/text_encoder/", "predictor: text encoder"),
    ("/text_encoder/", "text encoder"),
    ("/lstm/", "predictor: duration"),
    ("/duration_proj/", "predictor: duration"),
    ("/shared/", "predictor: F0/N"),
    ("/F0.", "predictor: F0/N"),
    ("/N.", "predictor: F0/N"),
)


def module_of(node_name: str) -> str:
    """Kokoro's module for a node name (onnxruntime keeps the name's path when it fuses)."""
    for fragment, module in MODULES:
        if fragment in node_name:
            return module
    return "other (alignment, shapes)"


def _prod(values) -> int:
    out = 1
    for v in values:
        out *= int(v)
    return out


def _shapes(arg: list[dict[str, list[int]]]) -> list[list[int]]:
    return [next(iter(d.values())) for d in arg]


WEIGHT_INPUT = {"QLinearConv": 3, "QLinearMatMul": 3}  # else input 1
_TOKEN = re.compile(r"_token_\d+$")


def weight_dims(model: onnx.ModelProto) -> dict[str, list[int]]:
    """Each node's weight shape as stored (through a DequantizeLinear in QDQ files): the
    profiler reports weights as onnxruntime prepacked them, not their real shape."""
    inits = {t.name: list(t.dims) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    dims = {}
    for node in model.graph.node:
        index = WEIGHT_INPUT.get(node.op_type, 1)
        if len(node.input) <= index:
            continue
        name = node.input[index]
        if name in producer and producer[name].op_type == "DequantizeLinear":
            name = producer[name].input[0]
        if name in inits:
            dims[node.name] = inits[name]
    return dims


def macs_of(
    op: str, inputs: list[list[int]], outputs: list[list[int]], weight: list[int] | None = None
) -> int:
    """Multiply-adds of one kernel call from its shapes (0 for ops without a dot product);
    ``weight``: the node's stored weight shape, when the event's is a prepacked one."""
    if not inputs or not outputs:
        return 0
    out = outputs[0]
    index = WEIGHT_INPUT.get(op, 1)
    if weight is None and len(inputs) > index:
        weight = inputs[index]
    if op in ("Conv", "FusedConv", "ConvInteger", "NchwcConv", "QLinearConv") and weight:
        return _prod(out) * _prod(weight[1:])
    if op == "ConvTranspose" and weight:
        return _prod(inputs[0]) * _prod(weight[1:])
    if op in (
        "MatMul",
        "FusedMatMul",
        "Gemm",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "DynamicQuantizeMatMul",
        "QLinearMatMul",
        "QGemm",
        "MatMulNBits",
    ):
        return _prod(out) * int(inputs[0][-1])
    if op in ("LSTM", "DynamicQuantizeLSTM") and weight and len(weight) == 3:
        (seq, batch), (dirs, gates, width) = inputs[0][:2], weight
        return seq * batch * dirs * gates * (width + gates // 4)
    return 0


@dataclass
class OpRow:
    op: str
    seconds: float = 0.0
    macs: int = 0
    calls: int = 0
    share: float = 0.0
    gmacs_per_s: float | None = None
    peak_fraction: float | None = None  # of the fp32 or int8 peak, by the op's kind


@dataclass
class ModelProfile:
    label: str
    path: str
    runs: int
    audio_seconds: float
    wall_seconds: float
    kernel_seconds: float
    macs: int
    ops: list[OpRow] = field(default_factory=list)
    modules: dict[str, float] = field(default_factory=dict)  # module -> share of kernel time

    @property
    def gmacs_per_audio_second(self) -> float:
        return self.macs / 1e9 / self.audio_seconds if self.audio_seconds else 0.0


@dataclass
class Peak:
    fp32_gmacs: float
    int8_gmacs: float
    threads: int


def _gemm_model(int8: bool, n: int):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    if int8:
        w = numpy_helper.from_array(rng.integers(-127, 127, (n, n), dtype=np.int8), "w")
        node = helper.make_node("MatMulInteger", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.UINT8, TensorProto.INT32
    else:
        w = numpy_helper.from_array(rng.standard_normal((n, n)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["a", "w"], ["y"])
        a_type, y_type = TensorProto.FLOAT, TensorProto.FLOAT
    graph = helper.make_graph(
        [node],
        "gemm",
        [helper.make_tensor_value_info("a", a_type, [n, n])],
        [helper.make_tensor_value_info("y", y_type, [n, n])],
        [w],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def measure_peak(threads: int, n: int = 1024, repeats: int = 20) -> Peak:
    """GMAC/s of an n x n x n GEMM in onnxruntime, float32 and uint8 x int8 (best run)."""
    import numpy as np

    rates = []
    for int8 in (False, True):
        with tempfile.TemporaryDirectory(prefix="publisher-peak-") as tmp:
            path = Path(tmp) / "gemm.onnx"
            path.write_bytes(_gemm_model(int8, n).SerializeToString())
            sess = open_session(path, threads)
        rng = np.random.default_rng(1)
        a = rng.integers(0, 255, (n, n), dtype=np.uint8) if int8 else rng.standard_normal((n, n))
        feeds = {"a": a if int8 else a.astype(np.float32)}
        sess.run(None, feeds)
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            sess.run(None, feeds)
            best = min(best, time.perf_counter() - start)
        rates.append(n**3 / best / 1e9)
    return Peak(rates[0], rates[1], threads)


def parse_events(
    events: list[dict[str, Any]], skip_runs: int, weights: dict[str, list[int]]
) -> tuple[dict, dict, float]:
    """Per op type (seconds, macs, calls), per module seconds, and the wall time of the
    model runs after the first ``skip_runs`` (the warm-up)."""
    runs = sorted((e for e in events if e.get("name") == "model_run"), key=lambda e: e["ts"])
    kept = runs[skip_runs:]
    if not kept:
        raise RunError("the onnxruntime profile holds no model run to read")
    windows = [(e["ts"], e["ts"] + e["dur"]) for e in kept]
    ops: dict[str, list[float]] = defaultdict(lambda: [0.0, 0, 0])
    modules: dict[str, float] = defaultdict(float)
    for e in events:
        if e.get("cat") != "Node" or not e.get("name", "").endswith("_kernel_time"):
            continue
        if not any(lo <= e["ts"] <= hi for lo, hi in windows):
            continue
        args, node = e.get("args", {}), e["name"][: -len("_kernel_time")]
        op = args.get("op_name", "?")
        seconds = e["dur"] / 1e6
        macs = macs_of(
            op,
            _shapes(args.get("input_type_shape", [])),
            _shapes(args.get("output_type_shape", [])),
            weights.get(_TOKEN.sub("", node)),
        )
        row = ops[op]
        row[0], row[1], row[2] = row[0] + seconds, row[1] + macs, row[2] + 1
        modules[module_of(node)] += seconds
    wall = sum(hi - lo for lo, hi in windows) / 1e6
    return ops, modules, wall


Input = tuple  # (token ids, style row [1, 256], speed)


def profile_model(
    label: str, path: str, inputs: list[Input], threads: int, peak: Peak
) -> ModelProfile:
    """Run ``inputs`` once to warm up, once profiled; the op and module breakdown. A bucket
    graph takes the inputs that fit its width."""

    with tempfile.TemporaryDirectory(prefix="publisher-profile-") as tmp:
        sess = open_session(path, threads, str(Path(tmp) / "ort"))
        info = bucket_info(sess)
        feeds = [
            feeds_for(sess, list(ids), style, speed)
            for ids, style, speed in inputs
            if info is None or len(ids) + 2 <= info.bucket
        ]
        if not feeds:
            raise RunError(f"{label}: no profiling input fits its {info.bucket}-token bucket")
        audio = 0.0
        for rep in range(2):
            for feed in feeds:
                out = sess.run(None, feed)
                audio += out[0].size / SAMPLE_RATE if rep else 0.0
        events = json.loads(Path(sess.end_profiling()).read_text())
    import onnx  # heavy: only for reading weight shapes

    weights = weight_dims(onnx.load(path, load_external_data=False))
    ops, modules, wall = parse_events(events, len(feeds), weights)
    kernel = sum(v[0] for v in ops.values()) or 1e-12
    rows = []
    for op, (seconds, macs, calls) in sorted(ops.items(), key=lambda kv: -kv[1][0]):
        row = OpRow(op, seconds, int(macs), int(calls), seconds / kernel)
        if macs and seconds:
            row.gmacs_per_s = macs / seconds / 1e9
            ref = peak.int8_gmacs if op in INT8_OPS else peak.fp32_gmacs
            row.peak_fraction = row.gmacs_per_s / ref
        rows.append(row)
    shares = {m: s / kernel for m, s in sorted(modules.items(), key=lambda kv: -kv[1])}
    total_macs = sum(int(v[1]) for v in ops.values())
    return ModelProfile(label, path, len(feeds), audio, wall, kernel, total_macs, rows, shares)


def profile_targets(
    targets: list[tuple[str, str]], inputs: list[Input], threads: int
) -> tuple[Peak, list[ModelProfile]]:
    """The peak, then each (label, .onnx path) profiled on ``inputs``, one after another."""
    peak = measure_peak(threads or 0)
    log.info(
        "peak on this CPU (%s threads): fp32 %.1f GMAC/s, int8 %.1f GMAC/s",
        threads or "default",
        peak.fp32_gmacs,
        peak.int8_gmacs,
    )
    profiles = []
    for label, path in targets:
        log.info("profiling %s ...", label)
        profiles.append(profile_model(label, path, inputs, threads, peak))
    # a busy moment depresses one measurement: measure again after, keep the higher peak
    again = measure_peak(threads or 0)
    best = Peak(
        max(peak.fp32_gmacs, again.fp32_gmacs), max(peak.int8_gmacs, again.int8_gmacs), peak.threads
    )
    for p in profiles:
        for row in p.ops:
            if row.gmacs_per_s:
                ref = best.int8_gmacs if row.op in INT8_OPS else best.fp32_gmacs
                row.peak_fraction = row.gmacs_per_s / ref
    return best, profiles


def markdown(peak: Peak, profiles: list[ModelProfile], top: int = 10) -> str:
    """One table per model: op types by share of kernel time, with the peak fraction."""
    lines = [
        f"Peak measured in the same process ({peak.threads or 'default'} threads, "
        f"1024^3 GEMM in onnxruntime): fp32 {peak.fp32_gmacs:.1f} GMAC/s, "
        f"uint8 x int8 {peak.int8_gmacs:.1f} GMAC/s.",
        "",
    ]
    for p in profiles:
        rate = p.macs / 1e9 / p.kernel_seconds
        lines += [
            f"### {p.label}",
            "",
            f"{p.gmacs_per_audio_second:.1f} GMAC per second of audio; "
            f"{p.wall_seconds:.2f} s for {p.audio_seconds:.2f} s of audio "
            f"(RTF {p.wall_seconds / p.audio_seconds:.3f}); {rate:.1f} GMAC/s overall.",
            "",
            "| op type | share | seconds | calls | GMAC/s | of peak |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in p.ops[:top]:
            rate_s = f"{r.gmacs_per_s:.1f}" if r.gmacs_per_s else "-"
            frac = f"{r.peak_fraction:.0%}" if r.peak_fraction is not None else "-"
            lines.append(
                f"| {r.op} | {r.share:.1%} | {r.seconds:.3f} | {r.calls} | {rate_s} | {frac} |"
            )
        lines += ["", "| module | share |", "|---|---:|"]
        lines += [f"| {m} | {s:.1%} |" for m, s in p.modules.items()]
        lines.append("")
    return "\n".join(lines)


def chart(profiles: list[ModelProfile], path: Path, top: int = 8) -> None:
    """Stacked bars: each model's run time split by op type (seconds per second of audio)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ops: list[str] = []
    for p in profiles:
        ops += [r.op for r in p.ops[:top] if r.op not in ops]
    fig, ax = plt.subplots(figsize=(9, 1.2 + 0.6 * len(profiles)))
    cmap = plt.get_cmap("tab20")
    for y, p in enumerate(profiles):
        left = 0.0
        by_op = {r.op: r.seconds / p.audio_seconds for r in p.ops}
        for k, op in enumerate([*ops, "other"]):
            width = (
                by_op.get(op, 0.0)
                if op != "other"
                else sum(v for o, v in by_op.items() if o not in ops)
            )
            ax.barh(y, width, left=left, color=cmap(k % 20), label=op if y == 0 else None)
            left += width
    ax.set_yticks(range(len(profiles)), [p.label for p in profiles])
    ax.invert_yaxis()
    ax.set_xlabel("seconds of kernel time per second of audio (lower is faster)")
    ax.legend(ncol=5, fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    ax.set_title("Where the time goes (onnxruntime profile, by op type)")
    fig.tight_layout()
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)


def write_outputs(peak: Peak, profiles: list[ModelProfile], report_dir: Path) -> dict[str, Path]:
    """profile.json, profile.md and profile.png in ``report_dir``."""
    report_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: report_dir / f"profile.{k}" for k in ("json", "md", "png")}
    data = {"peak": asdict(peak), "models": [asdict(p) for p in profiles]}
    paths["json"].write_text(json.dumps(data, indent=2) + "\n")
    paths["md"].write_text(markdown(peak, profiles))
    chart(profiles, paths["png"])
    return paths
