"""Percentile ranges of Conv outputs and inputs for static quantization
(``output_percentile``, ``input_percentile``).

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

if TYPE_CHECKING:
    import onnx


def percentile_ranges(
    model: onnx.ModelProto, percentiles: dict[str, float], feeds: list[dict[str, Any]]
) -> dict[str, tuple[float, float]]:
    """(low, high) of each tensor: its (100 - p)th and pth percentiles, widest over feeds."""
    import numpy as np

    ranges: dict[str, tuple[float, float]] = {}
    for name, value in _runs(model, list(percentiles), feeds):
        p = percentiles[name]
        low, high = np.percentile(value, [100 - p, p])
        old = ranges.get(name, (np.inf, -np.inf))
        ranges[name] = (min(old[0], float(low)), max(old[1], float(high)))
    return ranges


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
    del probe.graph.output[:]
    probe.graph.output.extend(onnx.helper.make_empty_tensor_value_info(t) for t in tensors)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(
        probe.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    for feed in feeds:
        yield from zip(tensors, session.run(tensors, feed), strict=True)
