from __future__ import annotations

import json

from click.testing import CliRunner

from publisher.cli import main


def test_bench_times_onnx_and_torch_interleaved_and_records_results(dist_copy, tmp_path):
    report = tmp_path / "report"
    result = CliRunner().invoke(
        main,
        [
            "bench",
            "--recipe",
            "fp32",
            "--out",
            str(dist_copy),
            "--torch",
            "--threads",
            "1",
            "--repeats",
            "2",
            "--warmup",
            "1",
            "--max-phonemes",
            "40",
            "--report",
            str(report),
        ],
    )
    assert result.exit_code == 0, result.output
    data = json.loads((report / "bench.json").read_text())
    rows = {r["label"]: r for r in data["results"]}
    assert set(rows) == {"fp32", "torch (cpu)"}
    for r in rows.values():
        assert r["total_seconds"] > 0 and r["rtf"] > 0 and r["peak_rss_mib"] > 0
        assert all(v["runs"] == 2 and v["p90"] >= v["median"] for v in r["per_item"].values())
    assert rows["fp32"]["ratio_to_baseline"] == 1.0
    assert rows["fp32"]["size_mib"] > 1
    assert (report / "bench.png").stat().st_size > 5000
    assert "| fp32 |" in (report / "bench.md").read_text()
    manifest = json.loads((dist_copy / "fp32" / "manifest.json").read_text())
    assert manifest["bench"]["result"]["label"] == "fp32"


def test_bench_without_models_is_a_clear_error():
    result = CliRunner().invoke(main, ["bench"])
    assert result.exit_code == 1
    assert "nothing to benchmark" in result.stderr


def test_bench_takes_an_external_onnx_file_as_its_own_row(dist_copy, tmp_path):
    import shutil

    outside = tmp_path / "elsewhere.onnx"
    shutil.copy(dist_copy / "fp32" / "onnx" / "model.onnx", outside)
    report = tmp_path / "report"
    args = ["bench", "--recipe", "fp32", "--out", str(dist_copy), "--onnx", str(outside)]
    args += ["--threads", "1", "--repeats", "1", "--max-phonemes", "25", "--report", str(report)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = {r["label"]: r for r in json.loads((report / "bench.json").read_text())["results"]}
    assert set(rows) == {"fp32", "elsewhere.onnx"}
    assert rows["elsewhere.onnx"]["size_mib"] == rows["fp32"]["size_mib"]
    assert rows["elsewhere.onnx"]["total_seconds"] > 0
    assert rows["elsewhere.onnx"]["wer"] is None  # not heard without --listen
    assert "| WER | DNSMOS |" in (report / "bench.md").read_text()


def test_bench_with_a_missing_external_file_is_one_line(dist_copy, tmp_path):
    missing = tmp_path / "nope.onnx"
    args = ["bench", "--recipe", "fp32", "--out", str(dist_copy), "--onnx", str(missing)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "nope.onnx: no such file" in result.stderr
    assert "Traceback" not in result.output
