from __future__ import annotations

import json

import onnx
import pytest
from click.testing import CliRunner

from publisher.cli import main
from publisher.export.fp32 import export_fp32
from publisher.onnx_edit import set_metadata
from publisher.recipe.loader import load_recipe


@pytest.fixture(scope="module")
def exported(tiny, tmp_path_factory):
    path = export_fp32(tiny, load_recipe("fp32"))
    model = onnx.load(str(path))
    set_metadata(model, {"kokoro_config": "{}", "sample_rate": "24000"})
    out = tmp_path_factory.mktemp("io") / "model.onnx"
    onnx.save(model, str(out))
    return out


def test_profile_renames_to_legacy_names_and_keeps_metadata(exported, tmp_path):
    dst = tmp_path / "kokoro-v1.0.onnx"
    result = CliRunner().invoke(
        main, ["convert-io", str(exported), str(dst), "--profile", "kokoro-onnx-legacy"]
    )
    assert result.exit_code == 0, result.output
    assert "input_ids -> tokens" in result.output and "waveform -> audio" in result.output
    model = onnx.load(str(dst))
    assert [i.name for i in model.graph.input] == ["tokens", "style", "speed"]
    assert [o.name for o in model.graph.output] == ["audio", "duration"]
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["sample_rate"] == "24000" and "kokoro_config" in meta
    assert json.loads(meta["publisher.io"])["input_ids"] == "tokens"


def test_explicit_rename_of_a_missing_name_is_refused_and_writes_nothing(exported, tmp_path):
    dst = tmp_path / "out.onnx"
    result = CliRunner().invoke(
        main, ["convert-io", str(exported), str(dst), "--rename", "tokens=input_ids"]
    )
    assert result.exit_code == 1
    assert "no graph input or output named 'tokens'" in result.stderr
    assert not dst.exists()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--rename", "novalue"], "expected OLD=NEW"),
        (["--profile", "nope"], "unknown profile 'nope'"),
        ([], "nothing to rename"),
    ],
)
def test_bad_convert_io_options_are_one_line_errors(exported, tmp_path, args, message):
    result = CliRunner().invoke(
        main, ["convert-io", str(exported), str(tmp_path / "o.onnx"), *args]
    )
    assert result.exit_code == 1
    assert message in result.stderr
