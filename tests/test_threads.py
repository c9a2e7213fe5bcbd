"""$PUBLISHER_THREADS: the size of onnxruntime's and torch's pools in every process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import onnx
import pytest
from click.testing import CliRunner
from onnx import TensorProto, helper

from publisher.cli import main
from publisher.runtime.errors import InputError
from publisher.runtime.synth import open_session
from publisher.runtime.threads import configured_threads

REPO = Path(__file__).resolve().parent.parent


def _graph(path: Path) -> Path:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return path


def test_a_session_takes_the_configured_thread_count_unless_told_one(tmp_path, monkeypatch):
    graph = _graph(tmp_path / "relu.onnx")
    monkeypatch.setenv("PUBLISHER_THREADS", "1")
    assert open_session(graph).get_session_options().intra_op_num_threads == 1
    assert open_session(graph, threads=2).get_session_options().intra_op_num_threads == 2
    monkeypatch.delenv("PUBLISHER_THREADS")
    assert open_session(graph).get_session_options().intra_op_num_threads == 0  # its default


@pytest.mark.parametrize("value", ["two", "-1", "1.5"])
def test_a_malformed_thread_count_is_an_input_error_naming_the_variable(value, monkeypatch):
    monkeypatch.setenv("PUBLISHER_THREADS", value)
    with pytest.raises(InputError, match=rf"^PUBLISHER_THREADS='{value}': expected a whole"):
        configured_threads()


def test_a_build_with_a_malformed_thread_count_stops_before_any_work(tmp_path, monkeypatch):
    monkeypatch.setenv("PUBLISHER_THREADS", "many")
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "dist"
    result = CliRunner().invoke(
        main, ["build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(out)]
    )
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "error: PUBLISHER_THREADS='many': expected a whole number of threads "
        "(0 or unset: one per core)"
    ]
    assert not (out / "fp32").exists()
    assert not list(tmp_path.glob("cache/*"))  # no checkpoint opened, nothing exported


@pytest.mark.parametrize("threads", ["1", ""])
def test_importing_publisher_sizes_torchs_pool_from_the_thread_count(threads):
    env = {k: v for k, v in os.environ.items() if not k.endswith("_NUM_THREADS")}
    env["PUBLISHER_THREADS"] = threads
    code = "import publisher, torch; print(torch.get_num_threads())"
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO
    )
    assert done.returncode == 0, done.stderr
    cores = len(os.sched_getaffinity(0))
    assert int(done.stdout) == (1 if threads else cores)


def test_a_process_working_beside_takes_its_share_until_it_stops(tmp_path, monkeypatch):
    from publisher.runtime.threads import own_threads, sharing

    graph = _graph(tmp_path / "relu.onnx")
    monkeypatch.setenv("PUBLISHER_THREADS", "4")
    running = [True]
    with sharing(lambda: running[0], 3):
        assert own_threads() == 1
        assert open_session(graph).get_session_options().intra_op_num_threads == 1
        running[0] = False  # the process beside finished: its threads come back
        assert own_threads() == 4
    monkeypatch.delenv("PUBLISHER_THREADS")  # unset: the cores are what is shared
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    with sharing(lambda: True, 1):
        assert own_threads() == 1
    assert own_threads() == 0  # alone again: the libraries' own default


def test_torch_runs_take_the_share_left_by_a_process_beside(tiny, tiny_model, monkeypatch):
    import numpy as np
    import torch

    from publisher.model.kmodel import run_torch
    from publisher.runtime.threads import sharing

    monkeypatch.setenv("PUBLISHER_THREADS", "2")
    before = torch.get_num_threads()
    style = np.asarray(tiny.voices[tiny.sample_voice][10, 0], dtype=np.float32)
    try:
        with sharing(lambda: True, 1):
            run_torch(tiny_model, [5, 6, 7, 8], style)
            assert torch.get_num_threads() == 1
        run_torch(tiny_model, [5, 6, 7, 8], style)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
