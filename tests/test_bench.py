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


def test_two_builds_of_one_recipe_get_a_row_each(dist_copy, tmp_path):
    import shutil

    other = tmp_path / "older" / "fp32"
    shutil.copytree(dist_copy / "fp32", other)
    report = tmp_path / "report"
    args = ["bench", str(dist_copy / "fp32"), str(other), "--threads", "1", "--repeats", "1"]
    args += ["--max-phonemes", "25", "--report", str(report)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((report / "bench.json").read_text())["results"]
    assert [r["label"] for r in rows] == ["fp32 (dist)", "fp32 (older)"]
    assert all(r["total_seconds"] > 0 for r in rows)


def test_bench_with_a_missing_external_file_is_one_line(dist_copy, tmp_path):
    missing = tmp_path / "nope.onnx"
    args = ["bench", "--recipe", "fp32", "--out", str(dist_copy), "--onnx", str(missing)]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1
    assert "nope.onnx: no such file" in result.stderr
    assert "Traceback" not in result.output


def test_bench_first_audio_writes_its_report_the_manifest_row_and_the_card_table(
    dist_copy, tmp_path
):
    from publisher.hub.stage import stage

    report = tmp_path / "report"
    args = ["bench", "--recipe", "fp32", "--recipe", "quantized", "--out", str(dist_copy)]
    args += ["--threads", "1", "--repeats", "1", "--warmup", "0", "--max-phonemes", "25"]
    result = CliRunner().invoke(main, [*args, "--first-audio", "--report", str(report)])
    assert result.exit_code == 0, result.output
    data = json.loads((report / "first_audio.json").read_text())
    assert data["settings"]["sentence"] == "The source of the huge river is the clear spring."
    rows = {r["label"]: r for r in data["results"]}
    assert set(rows) == {"fp32", "quantized"}
    for r in rows.values():  # dynamic files: the whole sentence in one call
        assert r["runs"] == 3 and r["chunks"] == 1 and r["first_seconds"] > 0
        assert r["first_audio_seconds"] == r["audio_seconds"] > 1.0
    assert (report / "first_audio.png").stat().st_size > 5000
    assert "Time to first audio" in result.output
    manifest = json.loads((dist_copy / "fp32" / "manifest.json").read_text())
    assert manifest["first_audio"]["result"] == rows["fp32"]
    staged = stage([dist_copy / "fp32", dist_copy / "quantized"], tmp_path / "repo")
    card = (staged.folder / "README.md").read_text()
    assert "### Time to first audio" in card
    ms = f"{rows['fp32']['first_seconds'] * 1000:.0f}"
    assert f"| `onnx/model.onnx` | {ms} | {rows['fp32']['audio_seconds']:.2f} | 1 |" in card
