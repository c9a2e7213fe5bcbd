"""Calibration range helpers (passes/ranges.py) against numpy as the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from publisher.passes.ranges import tail_percentile


@pytest.mark.parametrize("shape", [(1, 128, 20000), (1, 7, 3000), (5,), (1, 64, 333)])
@pytest.mark.parametrize("q", [0.001, 0.01, 0.5, 99.5, 99.99, 99.999])
def test_tail_percentile_equals_numpys(shape, q):
    values = np.random.default_rng(0).standard_t(3, size=shape).astype(np.float32)
    assert tail_percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-6)


def test_tail_percentile_with_ties_equals_numpys():
    values = np.zeros((1, 16, 4096), np.float32)
    values[0, 3, :50] = 7.0  # a few equal peaks and a floor of zeros
    for q in (0.01, 99.99, 99.9):
        assert tail_percentile(values, q) == np.percentile(values, q)


def test_tail_percentile_when_the_sample_misses_the_tail_equals_numpys():
    # the peaks sit exactly on the sampled positions, so the sample puts its threshold
    # above almost all of the tail: the exact fallback must answer
    values = np.zeros(64 * 2000, np.float32)
    values[::64][:300] = np.linspace(10, 20, 300)
    values[1::64][:300] = 5.0
    assert tail_percentile(values, 99.5) == pytest.approx(np.percentile(values, 99.5), rel=1e-6)


def _conv_matmul_graph():
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(2)
    inits = [
        numpy_helper.from_array(rng.normal(0, 0.5, (8, 4, 3)).astype(np.float32), "w"),
        numpy_helper.from_array(rng.normal(0, 0.5, (5, 6)).astype(np.float32), "m"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv", pads=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Transpose", ["r"], ["t"], name="t", perm=[0, 2, 1]),
        helper.make_node("Slice", ["t", "s0", "s1", "s2"], ["sl"], name="slice"),
        helper.make_node("MatMul", ["sl", "m"], ["y"], name="matmul"),
    ]
    inits += [numpy_helper.from_array(np.array([0], np.int64), n) for n in ("s0",)] + [
        numpy_helper.from_array(np.array([5], np.int64), "s1")
    ]
    inits.append(numpy_helper.from_array(np.array([2], np.int64), "s2"))
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, "T"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T", 6])],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_one_set_of_runs_gives_onnxruntimes_own_minmax_calibration(tmp_path):
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantType, quantize_static
    from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

    from publisher.passes.ranges import calibration_ranges, minmax_tensors

    model = _conv_matmul_graph()
    rng = np.random.default_rng(3)
    feeds = [{"x": rng.normal(0, 1 + i, (1, 4, 20 + 7 * i)).astype(np.float32)} for i in range(4)]

    class Reader:
        def __init__(self, runs=feeds):
            self.left = iter(runs)

        def get_next(self):
            return next(self.left, None)

    src = tmp_path / "in.onnx"
    onnx.save(model, str(src))
    options = dict(
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        op_types_to_quantize=["Conv", "MatMul"],
    )
    quantize_static(str(src), str(tmp_path / "theirs.onnx"), Reader(), **options)

    _, minmax = calibration_ranges(model, {}, minmax_tensors(model, ("Conv", "MatMul")), feeds)
    cache = tmp_path / "ranges.json"
    save_tensors_data(TensorsData(CalibrationMethod.MinMax, minmax), cache)
    # no feeds here: the ranges can only come from the cache
    quantize_static(
        str(src), str(tmp_path / "ours.onnx"), Reader([]), calibration_cache_path=cache, **options
    )

    def scales(path):
        m = onnx.load(str(path))
        return {t.name: onnx.numpy_helper.to_array(t).tolist() for t in m.graph.initializer}

    theirs, ours = scales(tmp_path / "theirs.onnx"), scales(tmp_path / "ours.onnx")
    assert any(name.endswith("_scale") for name in theirs)
    assert ours == theirs


def _noisy_graph():
    """y = x + RandomNormalLike(x): an unseeded random source, as Kokoro's harmonic one."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 64])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 64])
    nodes = [
        helper.make_node("RandomNormalLike", ["x"], ["noise"], dtype=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "noise"], ["y"]),
    ]
    graph = helper.make_graph(nodes, "noisy", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


_CALIBRATE = """
import hashlib, sys, numpy as np, onnx
from publisher.passes.ranges import calibration_ranges, channel_peaks
model = onnx.load(sys.argv[1])
feeds = [{"x": np.full((1, 4, 64), k, np.float32)} for k in range(3)]
peaks = channel_peaks(model, ["y"], feeds)["y"]
ranges = calibration_ranges(model, {"y": 99.0}, ["y"], feeds)[0]["y"]
print(hashlib.sha256(peaks.tobytes() + np.array(ranges).tobytes()).hexdigest())
"""


def test_calibration_of_a_graph_with_a_random_source_gives_the_same_figures_every_time(tmp_path):
    """onnxruntime seeds an unseeded random op once per process, so two processes (two
    builds) are compared."""
    import subprocess
    import sys

    import onnx

    model = _noisy_graph()
    path = tmp_path / "noisy.onnx"
    onnx.save(model, str(path))
    command = [sys.executable, "-c", _CALIBRATE, str(path)]
    runs = [subprocess.run(command, capture_output=True, text=True) for _ in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout
    # the file keeps its random source unseeded: only calibration's copy is seeded
    assert not [a for a in onnx.load(str(path)).graph.node[0].attribute if a.name == "seed"]
