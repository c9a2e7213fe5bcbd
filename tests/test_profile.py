"""``bench --profile``: onnxruntime's profile by op type and module, multiply-adds counted
from the graph, and the fraction of the measured GEMM peak."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from publisher.cli import main
from publisher.profile import macs_of, module_of


@pytest.mark.parametrize(
    ("op", "inputs", "outputs", "weight", "expected"),
    [
        # Conv1d 16 -> 32 channels, kernel 3, 100 frames: 32*100 outputs x 16*3 each
        ("Conv", [[1, 16, 100], [32, 16, 3]], [[1, 32, 100]], None, 32 * 100 * 16 * 3),
        # the profiler reports a prepacked weight; the graph's shape is passed instead
        ("QLinearConv", [[1, 16, 100]], [[1, 32, 100]], [32, 16, 3], 32 * 100 * 16 * 3),
        # ConvTranspose 8 -> 4 channels, kernel 20, stride 10: every input x 4*20
        ("ConvTranspose", [[1, 8, 50], [8, 4, 20]], [[1, 4, 500]], None, 8 * 50 * 4 * 20),
        ("MatMul", [[1, 7, 64], [64, 128]], [[1, 7, 128]], None, 7 * 128 * 64),
        # bidirectional LSTM, 10 steps, input 64, hidden 32: 2 dirs x 4 gates x (64 + 32)
        ("LSTM", [[10, 1, 64]], [[10, 2, 1, 32]], [2, 128, 64], 10 * 2 * 128 * (64 + 32)),
        ("Sin", [[1, 16, 100]], [[1, 16, 100]], None, 0),
    ],
)
def test_multiply_adds_of_each_kernel_come_from_its_shapes(op, inputs, outputs, weight, expected):
    assert macs_of(op, inputs, outputs, weight) == expected


def test_nodes_are_grouped_by_kokoro_module():
    assert module_of("/decoder/generator/resblocks.1/convs1.0/Conv") == "generator: stage 1 (x10)"
    assert module_of("/decoder/generator/resblocks.4/convs1.0/Conv_token_12") == (
        "generator: stage 2 (x6)"
    )
    assert module_of("/bert/encoder/MatMul") == "text: ALBERT"
    assert module_of("/decoder/decode.0/conv1/Conv") == "decoder: encode/decode blocks"


def test_bench_profile_reports_op_shares_and_the_peak_fraction(dist_copy, tmp_path):
    report = tmp_path / "report"
    args = ["bench", "--recipe", "fp32", "--recipe", "quantized", "--out", str(dist_copy)]
    args += ["--threads", "1", "--repeats", "1", "--warmup", "0", "--max-phonemes", "30"]
    result = CliRunner().invoke(main, [*args, "--profile", "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads((report / "profile.json").read_text())
    assert data["peak"]["fp32_gmacs"] > 0 and data["peak"]["int8_gmacs"] > 0
    models = {m["label"]: m for m in data["models"]}
    assert set(models) == {"fp32", "quantized"}
    for m in models.values():
        assert sum(r["share"] for r in m["ops"]) == pytest.approx(1.0)
        assert sum(m["modules"].values()) == pytest.approx(1.0)
        assert m["audio_seconds"] > 0 and m["wall_seconds"] > 0
    # the same network counted through float Conv and through 8-bit kernels whose weights
    # onnxruntime prepacks: the multiply-adds per run agree (the counts are per run of the
    # same inputs; the random source moves durations of a tiny model by a frame at most)
    fp32, int8 = models["fp32"], models["quantized"]
    per_audio = [m["macs"] / m["audio_seconds"] for m in (fp32, int8)]
    assert per_audio[1] == pytest.approx(per_audio[0], rel=0.05)
    int8_ops = {r["op"] for r in int8["ops"] if r["macs"]}
    assert int8_ops & {"ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM"}
    assert any(r["peak_fraction"] for r in fp32["ops"] if r["op"] == "Conv")
    assert "of peak" in result.output and "generator: stage 2 (x6)" in result.output
    assert (report / "profile.png").stat().st_size > 5000


def test_bench_profile_skips_a_file_that_would_not_load_and_profiles_the_rest(dist_copy, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    report = tmp_path / "report"
    args = ["bench", "--recipe", "fp32", "--out", str(dist_copy), "--onnx", str(broken)]
    args += ["--threads", "1", "--repeats", "1", "--warmup", "0", "--max-phonemes", "30"]
    result = CliRunner().invoke(main, [*args, "--profile", "--report", str(report)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    rows = {r["label"]: r for r in json.loads((report / "bench.json").read_text())["results"]}
    assert "onnxruntime cannot load it" in rows["broken.onnx"]["error"]
    profiled = json.loads((report / "profile.json").read_text())["models"]
    assert [m["label"] for m in profiled] == ["fp32"]
