"""Calibration statistics for static quantization: percentile ranges of Conv outputs and
inputs (``output_percentile``, ``input_percentile``), the min-max ranges of every other
tensor onnxruntime's quantizer needs (``calibration_ranges``: both from one set of runs,
so the quantizer runs no calibration of its own), and per-channel peaks.

onnxruntime's own percentile and entropy calibrators stack every calibration run of a
tensor into one array, so they fail on Kokoro, whose tensors change length with the text
("inhomogeneous shape"). Here each run is reduced to its two percentiles at once, and the
range is the lowest low and the highest high over the runs, handed to the quantizer as
``TensorQuantOverrides``.

Why outputs: a QLinearConv writes 8-bit outputs, and in Kokoro's generator the second
convolution of each residual pair writes heavy-tailed updates (real weights: standard
deviation 0.47, min-max range 33, so a step of 0.13) into the residual stream; its inputs
quantize well with min-max ranges unless ``smooth-inputs`` moved their per-channel range
into the weights: then their rare peaks are what is left to clip (real weights, quick
harness: DNSMOS 0.040 below fp32 with min-max inputs, 0.020 at the 99.99th percentile).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from publisher.onnx_edit import all_graphs
from publisher.runtime.synth import session_options

if TYPE_CHECKING:
    import onnx

# The shipped graph draws its harmonic source's phases and noise afresh on every run
# (unseeded RandomUniformLike / RandomNormalLike). Calibration runs a copy with this seed,
# so the same build makes the same file: unseeded, two real cpu-int8 builds of one recipe
# differed in 513 of 2110 initializers (the scales equalize-residuals and smooth-inputs
# read from the activations, and the ranges static quantization uses).
RANDOM_OPS = ("RandomUniformLike", "RandomNormalLike", "RandomUniform", "RandomNormal")
CALIBRATION_SEED = 20261207.0


def minmax_tensors(model: onnx.ModelProto, op_types: tuple[str, ...]) -> list[str]:
    """The tensors onnxruntime's MinMax calibrator measures: float inputs and outputs (not
    initializers) of the nodes of ``op_types``, typed by onnx's shape inference."""
    import onnx

    typed = onnx.shape_inference.infer_shapes(model)
    infos = {v.name: v for v in [*typed.graph.value_info, *typed.graph.output, *typed.graph.input]}
    weights = {t.name for t in model.graph.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    found = []
    for node in model.graph.node:
        if node.op_type not in op_types:
            continue
        for name in [*node.input, *node.output]:
            info = infos.get(name)
            if info is None or name in weights or name in found:
                continue
            if info.type.HasField("tensor_type") and info.type.tensor_type.elem_type in floats:
                found.append(name)
    return found


def calibration_ranges(
    model: onnx.ModelProto,
    percentiles: dict[str, float],
    minmax: list[str],
    feeds: list[dict[str, Any]],
) -> tuple[dict[str, tuple[float, float]], dict[str, tuple[Any, Any]]]:
    """(low, high) of each tensor of ``percentiles``: its (100 - p)th and pth percentiles,
    widest over the feeds; and the lowest and highest value of each
    tensor of ``minmax`` (what onnxruntime's MinMax calibrator computes, as float32), from
    one set of runs: every tensor's min and max come from ReduceMin/ReduceMax nodes added
    to the graph, so only the percentile tensors leave it whole."""
    import numpy as np
    import onnx

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    reduced = []
    for i, name in enumerate(minmax):
        for op in ("ReduceMin", "ReduceMax"):
            out = f"publisher_calibration/{i}/{op}"
            probe.graph.node.append(onnx.helper.make_node(op, [name], [out], keepdims=0))
            reduced.append(out)
    wanted = [*percentiles, *reduced]
    ranges: dict[str, tuple[float, float]] = {}
    lows: dict[str, Any] = {}
    highs: dict[str, Any] = {}
    for name, value in _runs(probe, wanted, feeds):
        if name in percentiles:
            p = percentiles[name]
            low, high = tail_percentile(value, 100 - p), tail_percentile(value, p)
            old = ranges.get(name, (np.inf, -np.inf))
            ranges[name] = (min(old[0], low), max(old[1], high))
            continue
        _, index, op = name.split("/")
        tensor = minmax[int(index)]
        value = np.float32(value)
        if op == "ReduceMin":
            lows[tensor] = min(lows.get(tensor, value), value)
        else:
            highs[tensor] = max(highs.get(tensor, value), value)
    return ranges, {t: (lows[t], highs[t]) for t in minmax if t in lows}


def tail_percentile(value: Any, q: float, stride: int = 64) -> float:
    """``np.percentile(value, q)`` (linear interpolation) for a q near 0 or 100, without
    partitioning the whole tensor (the build calls it for every quantized Conv's input and
    output in every calibration run; a real-size [1, 128, 100000] tensor: 0.16 s each).

    Every ``stride``-th value gives a threshold that about twice as many values as the
    percentile needs lie beyond; those few are partitioned exactly. When fewer lie beyond
    it (an unlucky sample), the whole tensor is partitioned as numpy does."""
    import numpy as np

    flat = np.ravel(value)
    n, top = flat.size, q >= 50
    if n < 16 * stride:
        return float(np.percentile(flat, q))
    index = q / 100 * (n - 1)
    first = int(np.floor(index))
    last = min(first + 1, n - 1)
    need = n - first if top else last + 1  # values from order statistic `first` (or `last`) out
    sample = flat[::stride]
    keep = min(sample.size - 1, 2 * need // stride + 16)
    bound = np.partition(sample, sample.size - 1 - keep if top else keep)
    bound = bound[sample.size - 1 - keep] if top else bound[keep]
    tail = flat[flat >= bound] if top else flat[flat <= bound]
    if tail.size < need:
        return float(np.percentile(flat, q))
    offset = n - tail.size if top else 0  # the tail's position among all sorted values
    low_high = np.partition(tail, [first - offset, last - offset])
    a, b = low_high[first - offset], low_high[last - offset]
    t = index - first
    # numpy's own interpolation (lerp, from the nearer end)
    return float(b - (b - a) * (1 - t) if t >= 0.5 else a + (b - a) * t)


def overrides(ranges: dict[str, tuple[float, float]]) -> dict[str, list[dict[str, Any]]]:
    """onnxruntime's ``TensorQuantOverrides`` for the ranges (its rmin/rmax are float32)."""
    import numpy as np

    return {
        name: [{"rmin": np.float32(min(low, 0.0)), "rmax": np.float32(max(high, 0.0))}]
        for name, (low, high) in ranges.items()
    }


def channel_peaks(
    model: onnx.ModelProto, tensors: list[str], feeds: list[dict[str, Any]]
) -> dict[str, Any]:
    """The largest |value| of each channel (axis 1) of each tensor over the feeds."""
    import numpy as np

    peaks: dict[str, Any] = {}
    for name, value in _runs(model, tensors, feeds):
        peak = np.abs(value).max(axis=tuple(a for a in range(value.ndim) if a != 1))
        peaks[name] = np.maximum(peaks.get(name, 0.0), peak)
    return peaks


def _runs(model: onnx.ModelProto, tensors: list[str], feeds: list[dict[str, Any]]):
    """(tensor name, value) for every tensor of every run, the tensors made graph outputs."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    seeded(probe)
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in tensors)
    session = ort.InferenceSession(
        probe.SerializeToString(), session_options(), providers=["CPUExecutionProvider"]
    )
    for feed in feeds:
        yield from zip(tensors, session.run(tensors, feed), strict=True)


def seeded(model: onnx.ModelProto, seed: float = CALIBRATION_SEED) -> onnx.ModelProto:
    """``model`` with every random op given ``seed`` (in place): the same feeds in the same
    order then give the same values in every session."""
    import onnx

    for graph in all_graphs(model.graph):
        for node in graph.node:
            if node.op_type in RANDOM_OPS:
                kept = [a for a in node.attribute if a.name != "seed"]
                del node.attribute[:]
                node.attribute.extend([*kept, onnx.helper.make_attribute("seed", seed)])
    return model
