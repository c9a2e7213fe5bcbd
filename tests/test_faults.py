"""Fault injection: each case is a way a careful attacker or a clumsy user broke the tool
(issue 14). Every one asserts the exit status, one ``error:`` line and no traceback,
that nothing of the user's is lost, that nothing half-written is left, and where it
matters that the next run succeeds."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from publisher.cli import main

PUBLISHER = [sys.executable, "-m", "publisher.cli"]


def _cli(*args: str, **kw):
    return CliRunner().invoke(main, list(args), catch_exceptions=False, **kw)


def _one_error_line(result) -> str:
    text = result.stderr if hasattr(result, "stderr") else result
    assert "Traceback" not in text, text
    errors = [line for line in text.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, text
    return errors[0]


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*") if p.name.endswith((".partial", ".tmp")))


# ------------------------------------------------------------------ stage --dest
def test_stage_refuses_a_folder_it_did_not_write_and_keeps_its_files(dist_copy, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.txt").write_text("years of work")
    result = _cli("stage", "--all", "--out", str(dist_copy), "--dest", str(home))
    assert result.exit_code == 1
    assert "did not write" in _one_error_line(result)
    assert (home / "thesis.txt").read_text() == "years of work"
    assert _leftovers(tmp_path) == []


def test_stage_into_the_build_folder_itself_is_refused_and_the_builds_survive(dist_copy):
    result = _cli("stage", "--all", "--out", str(dist_copy), "--dest", str(dist_copy))
    assert result.exit_code == 1
    assert "holds the build" in _one_error_line(result)
    assert (dist_copy / "fp32" / "manifest.json").is_file()


def test_stage_replaces_a_folder_it_staged_before(dist_copy, tmp_path):
    dest = tmp_path / "repo"
    for _ in range(2):
        result = _cli("stage", "--recipe", "fp32", "--out", str(dist_copy), "--dest", str(dest))
        assert result.exit_code == 0, result.output
    assert (dest / "manifest.json").is_file()
    assert _leftovers(tmp_path) == []


# ------------------------------------------------------------------ builds
def _build_cmd(recipe: str, out: Path) -> list[str]:
    return [
        *PUBLISHER,
        "build",
        "--recipe",
        recipe,
        "--checkpoint",
        "synthetic:tiny",
        "--out",
        str(out),
        "--no-speech-gates",
    ]


def _run_until(cmd: list[str], marker: str, sig: int) -> tuple[int, str]:
    """Start ``cmd``; send ``sig`` once ``marker`` appears on its stderr."""
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    seen = []
    for line in proc.stderr:
        seen.append(line)
        if marker in line:
            proc.send_signal(sig)
            break
    seen.append(proc.stderr.read())
    return proc.wait(timeout=120), "".join(seen)


def test_sigterm_mid_build_cleans_up_and_keeps_the_previous_build(dist_copy):
    before = (dist_copy / "fp32" / "manifest.json").read_bytes()
    code, err = _run_until(_build_cmd("fp32", dist_copy), "[6/7] verify", signal.SIGTERM)
    assert code == 143, err
    assert "terminated" in err and "Traceback" not in err
    assert (dist_copy / "fp32" / "manifest.json").read_bytes() == before
    assert _leftovers(dist_copy) == []


@pytest.mark.slow
def test_a_killed_build_and_a_damaged_cache_are_repaired_by_the_next_build(
    tmp_path, repo_root, tiny
):
    """SIGKILL leaves a scratch folder (nothing can run); the next build sweeps it, finds
    the damaged cache entry, names it, rebuilds it, and a recipe whose output is named
    like the build's scratch twin still ships its model."""
    out = tmp_path / "out"
    code, _ = _run_until(_build_cmd("fp32", out), "[6/7] verify", signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert any(p.name.endswith(".partial") for p in out.iterdir())
    from publisher.export.cache import export_key
    from publisher.locations import cache_root
    from publisher.recipe.loader import load_recipe

    recipes = tmp_path / "recipes"
    recipes.mkdir()
    for name in ("_base", "fp16"):  # fp16 changes numbers, so the build makes a twin
        shutil.copy(repo_root / "recipes" / f"{name}.yaml", recipes)
    (recipes / "twinny.yaml").write_text(
        'extends: fp16\ndescription: "output named like the scratch twin"\n'
        "output:\n  path: twin.onnx\n"
    )
    cache = cache_root() / "exports"
    key = export_key(tiny, load_recipe(recipes / "twinny.yaml"), parity=False)
    entry = cache / key / "model.onnx"
    assert entry.is_file()  # exported before the kill
    entry.write_bytes(b"\x00garbage")  # a torn write
    done = subprocess.run(
        _build_cmd(str(recipes / "twinny.yaml"), out), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"export cache entry {entry}" in done.stderr
    manifest = json.loads((out / "twinny" / "manifest.json").read_text())
    assert manifest["verification"]["passed"] and (out / "twinny" / "twin.onnx").is_file()
    assert manifest["files"]["twin.onnx"]["bytes"] == (out / "twinny" / "twin.onnx").stat().st_size
    assert _leftovers(out) == [] and not list(cache.glob("*/.*.tmp"))


def test_out_that_is_a_file_is_refused_before_any_work(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out in (afile / "sub", afile):
        result = _cli(
            "build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(out)
        )
        assert result.exit_code == 1
        assert "is a file" in _one_error_line(result)
        assert "[1/7]" not in result.stderr  # refused before the checkpoint was opened
    assert afile.read_text() == "mine"


def test_out_name_that_is_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "fp32").write_text("mine")
    result = _cli(
        "build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(tmp_path)
    )
    assert result.exit_code == 1
    assert "is not a folder" in _one_error_line(result)
    assert "[1/7]" not in result.stderr


def test_a_full_disk_is_one_line_before_the_build_writes(tmp_path, monkeypatch):
    import publisher.workspace as ws

    real = shutil.disk_usage

    def full(path):
        return real(path)._replace(free=1024)

    monkeypatch.setattr(ws.shutil, "disk_usage", full)
    result = _cli(
        "build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(tmp_path)
    )
    assert result.exit_code == 1
    assert "MiB free" in _one_error_line(result)
    assert list(tmp_path.iterdir()) == []
    assert "[1/7] checkpoint" in result.stderr and "[2/7]" not in result.stderr  # no export


def _three_fp32_models(tiny) -> int:
    """The README's "three times the model": the tiny model's parameters in float32."""
    return 3 * 4 * sum(p.numel() for p in tiny.build_model().parameters())


@pytest.mark.parametrize("margin", [-1, +(2**20)])
def test_the_free_space_threshold_is_three_times_the_model(tmp_path, monkeypatch, tiny, margin):
    import publisher.export.fp32 as fp32
    import publisher.workspace as ws

    real = shutil.disk_usage
    free = _three_fp32_models(tiny) + margin
    monkeypatch.setattr(ws.shutil, "disk_usage", lambda p: real(p)._replace(free=free))

    def exported(*args, **kwargs):
        raise RuntimeError("the export started")

    monkeypatch.setattr(fp32, "export_fp32", exported)
    args = ["build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(tmp_path)]
    if margin < 0:
        result = _cli(*args)
        assert result.exit_code == 1 and "MiB needed" in _one_error_line(result)
    else:  # enough room: the check passes and the export is reached
        with pytest.raises(RuntimeError, match="the export started"):
            _cli(*args)


# ------------------------------------------------------------------ tmpfs: real ENOSPC/EROFS
@pytest.fixture
def small_fs(tmp_path):
    """A 2 MiB tmpfs (real 'no space left' and, remounted, 'read-only file system');
    skipped where the machine does not allow mounting (the simulated cases above stay)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    ok = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True
    )
    if ok.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {ok.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_voices_onto_a_full_disk_is_one_line_and_leaves_no_partial_file(small_fs):
    result = _cli("voices", "--checkpoint", "synthetic:tiny", "--out", str(small_fs / "v"))
    assert result.exit_code == 1
    assert "free" in _one_error_line(result) or "no space" in result.stderr
    assert _leftovers(small_fs) == []


def test_convert_io_onto_a_full_disk_keeps_the_old_file(small_fs, dist_copy):
    (small_fs / "filler").write_bytes(b"\0" * (2 * 2**20 - 64 * 1024))
    dst = small_fs / "out.onnx"
    dst.write_bytes(b"old")
    src = dist_copy / "fp32" / "onnx" / "model.onnx"
    result = _cli("convert-io", str(src), str(dst), "--profile", "kokoro-onnx-legacy")
    assert result.exit_code == 1
    _one_error_line(result)
    assert dst.read_bytes() == b"old" and _leftovers(small_fs) == []


def test_a_read_only_out_is_refused_before_any_work(small_fs):
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    result = _cli(
        "build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(small_fs / "d")
    )
    assert result.exit_code == 1
    assert "read-only" in _one_error_line(result)
    assert "[1/7]" not in result.stderr


# ------------------------------------------------------------------ the shipped graph
def _impostor(path: Path) -> None:
    """A five-node graph with Kokoro's inputs and outputs: noise of a plausible length."""
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [
            helper.make_node("Cast", ["input_ids"], ["f"], to=TensorProto.FLOAT),
            helper.make_node("Tile", ["f", "reps"], ["t"]),
            helper.make_node("Reshape", ["t", "flat"], ["r"]),
            helper.make_node("RandomNormalLike", ["r"], ["waveform"], scale=0.1),
            helper.make_node("Cast", ["input_ids"], ["duration"], to=TensorProto.INT64),
        ],
        "impostor",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "n"]),
            helper.make_tensor_value_info("style", TensorProto.FLOAT, [1, 256]),
            helper.make_tensor_value_info("speed", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("waveform", TensorProto.FLOAT, None),
            helper.make_tensor_value_info("duration", TensorProto.INT64, None),
        ],
        [
            helper.make_tensor("reps", TensorProto.INT64, [2], [1, 1200]),
            helper.make_tensor("flat", TensorProto.INT64, [1], [-1]),
        ],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))


@pytest.mark.slow
def test_a_swapped_shipped_graph_fails_verify(dist_copy):
    folder = dist_copy / "fp32"
    manifest = json.loads((folder / "manifest.json").read_text())
    model = folder / manifest["model"]
    _impostor(model)
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    manifest["files"][manifest["model"]] = {"sha256": digest, "bytes": model.stat().st_size}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    result = _cli("verify", "--recipe", "fp32", "--out", str(dist_copy), "--no-speech-gates")
    assert result.exit_code == 1
    assert "shipped_matches_twin" in _one_error_line(result)
    assert [p.name for p in dist_copy.iterdir() if p.name.startswith(".")] == []


# ------------------------------------------------------------------ manifests
def test_a_build_writes_only_a_manifest_its_own_type_accepts(dist_copy):
    """The manifest a build wrote passes BuildManifest; one with a wrong-typed field is
    refused before it is written, naming the field."""
    from publisher.manifest import new_manifest
    from publisher.runtime.errors import BuildError

    manifest = json.loads((dist_copy / "fp32" / "manifest.json").read_text())
    new_manifest(manifest)
    manifest["checkpoint"]["recovered"] = "maybe"
    with pytest.raises(BuildError, match=r"manifest.json not written: checkpoint.recovered"):
        new_manifest(manifest)


def test_a_manifest_read_and_written_back_keeps_every_field_as_it_was(dist_copy):
    """bench, first-audio and conformance add their section through BuildManifest: the
    rest of the file comes back as written (an older build's too), no defaults added, an
    infinite SNR kept."""
    from publisher.manifest import read_manifest, write_manifest_file

    path = dist_copy / "fp32" / "manifest.json"
    written = json.loads(path.read_text())
    for key in ("first_audio", "conformance"):  # not run on this build
        written.pop(key, None)
    del written["checkpoint"]["origin"]  # as an older build wrote it
    written["verification"]["parity"][0]["snr_db"] = float("inf")
    path.write_text(json.dumps(written))
    manifest = read_manifest(dist_copy / "fp32")
    manifest.bench = {"result": {"label": "fp32"}}
    write_manifest_file(dist_copy / "fp32", manifest)
    assert json.loads(path.read_text()) == written | {"bench": {"result": {"label": "fp32"}}}


@pytest.mark.parametrize(
    "damage",
    [
        lambda m: m.pop("model"),
        lambda m: m.update(files=[]),
        lambda m: m.update(model="../../etc/passwd"),
    ],
    ids=["no-model", "files-not-a-mapping", "model-outside"],
)
@pytest.mark.parametrize("command", ["verify", "bench", "stage"])
def test_a_malformed_manifest_is_one_line(dist_copy, tmp_path, damage, command):
    path = dist_copy / "fp32" / "manifest.json"
    manifest = json.loads(path.read_text())
    damage(manifest)
    path.write_text(json.dumps(manifest))
    args = {
        "verify": ["verify", "--recipe", "fp32", "--out", str(dist_copy)],
        "bench": ["bench", "--recipe", "fp32", "--out", str(dist_copy), "--repeats", "1"],
        "stage": [
            "stage",
            "--recipe",
            "fp32",
            "--out",
            str(dist_copy),
            "--dest",
            str(tmp_path / "r"),
        ],
    }[command]
    result = _cli(*args)
    assert result.exit_code == 1
    assert "not a build manifest" in _one_error_line(result)


def test_bench_on_a_missing_or_non_onnx_model_is_one_line(dist_copy):
    model = dist_copy / "fp32" / "onnx" / "model.onnx"
    model.write_bytes(b"not onnx")
    args = ["bench", "--recipe", "fp32", "--out", str(dist_copy), "--repeats", "1"]
    result = _cli(*args, "--warmup", "0")
    assert result.exit_code == 1  # changed since the build: refused before loading
    assert "model.onnx: changed since it was recorded" in _one_error_line(result)
    manifest_path = dist_copy / "fp32" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())  # as if the build had recorded it
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    manifest["files"]["onnx/model.onnx"] = {"sha256": digest, "bytes": model.stat().st_size}
    manifest_path.write_text(json.dumps(manifest))
    result = _cli(*args, "--warmup", "0")
    assert result.exit_code == 1
    assert "no model could be loaded" in _one_error_line(result)
    model.unlink()
    result = _cli(*args)
    assert result.exit_code == 1
    assert "model.onnx: missing since it was recorded" in _one_error_line(result)


# ------------------------------------------------------------------ recipes
def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    lines = ["a0: &a0 {x: 1, y: 2}"]
    lines += [f"a{i}: &a{i} {{x: *a{i - 1}, y: *a{i - 1}}}" for i in range(1, 40)]
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join([*lines, "description: bomb"]) + "\n")
    start = time.perf_counter()
    result = _cli("validate", str(bomb))
    assert time.perf_counter() - start < 10  # 2^40 values if expanded
    assert result.exit_code == 1
    assert "expands to more than" in _one_error_line(result)


def test_a_very_long_extends_chain_is_one_line(tmp_path):
    for i in range(1000):
        text = f"extends: c{i + 1}\n" if i < 999 else "description: end\n"
        (tmp_path / f"c{i}.yaml").write_text(text)
    result = _cli("validate", str(tmp_path / "c0.yaml"))
    assert result.exit_code == 1
    assert "chain longer than" in _one_error_line(result)


@pytest.mark.parametrize("stem", ["my recipe", "récipe", "a" * 65, "..", "bad\nname"])
def test_recipe_names_that_would_fail_later_are_refused_at_load(tmp_path, stem):
    path = tmp_path / f"{stem}.yaml"
    try:
        path.write_text('description: "x"\n')
    except OSError:
        pytest.skip("the filesystem refuses this name itself")
    result = _cli("validate", str(path))
    assert result.exit_code == 1
    assert "recipe name" in _one_error_line(result)


@pytest.mark.parametrize("out", ["onnx/my model.onnx", "onnx/ünï.onnx", "onnx/.hidden.onnx"])
def test_output_paths_that_runtimes_or_the_space_would_skip_are_refused(tmp_path, out):
    path = tmp_path / "r.yaml"
    path.write_text(f'description: "x"\noutput:\n  path: "{out}"\n')
    result = _cli("validate", str(path))
    assert result.exit_code == 1
    assert "output.path" in _one_error_line(result)


def test_validate_reports_every_broken_recipe_not_only_the_first(repo_root, tmp_path, monkeypatch):
    folder = tmp_path / "recipes"
    shutil.copytree(repo_root / "recipes", folder)
    (folder / "aaa.yaml").write_text("description: [\n")
    (folder / "zzz.yaml").write_text("nope: 1\n")
    monkeypatch.setenv("PUBLISHER_RECIPES_DIR", str(folder))
    result = CliRunner().invoke(main, ["validate"])
    assert result.exit_code == 1
    assert "aaa.yaml" in result.stderr and "zzz.yaml" in result.stderr
    assert "ok  fp32" in result.stdout


# ------------------------------------------------------------------ Hub
@pytest.fixture
def stalled_server():
    """Accepts connections and never answers."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept():
        srv.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(srv.accept()[0])
            except OSError:
                continue

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.getsockname()[1]}"
    stop.set()
    t.join()
    for c in held:
        c.close()
    srv.close()


def test_publish_to_a_stalled_hub_times_out_in_one_line_and_cleans_up(
    dist_copy, tmp_path, stalled_server
):
    tmp = tmp_path / "systemp"
    tmp.mkdir()
    env = os.environ | {
        "HF_ENDPOINT": stalled_server,
        "HF_TOKEN": "hf_stalled_secret",
        "PUBLISHER_HUB_TIMEOUT": "1",
        "TMPDIR": str(tmp),
    }
    cmd = [*PUBLISHER, "publish", "--repo", "me/k", "--recipe", "fp32", "--out", str(dist_copy)]
    done = subprocess.run(
        [*cmd, "--allow-synthetic"], env=env, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 1
    assert "did not answer within 1 s" in _one_error_line(done.stderr)
    assert "hf_stalled_secret" not in done.stderr + done.stdout
    assert list(tmp.iterdir()) == []


def test_a_missing_token_is_not_called_refused(dist_copy, monkeypatch, tmp_path):
    from support.hub_server import local_hub_env

    local_hub_env(monkeypatch, tmp_path, tokens={"hf_only_this"})
    monkeypatch.delenv("HF_TOKEN", raising=False)
    result = _cli(
        "publish", "--repo", "me/k", "--all", "--out", str(dist_copy), "--allow-synthetic"
    )
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert "none is set" in line and "refused" not in line


# ------------------------------------------------------------------ votes
def test_concurrent_votes_for_one_pair_record_exactly_one(tmp_path):
    sys.path.insert(0, str(Path(__file__).parents[1] / "space"))
    from kokoro_space.votes import VoteStore

    store = VoteStore(tmp_path / "votes.sqlite3")
    for trial in range(5):
        barrier = threading.Barrier(4)
        results = []

        def vote(choice, trial=trial, barrier=barrier, results=results):
            barrier.wait()
            results.append(store.record("me/k", "fp32", "q4", choice, "af", 3, pair=f"p{trial}"))

        threads = [threading.Thread(target=vote, args=(c,)) for c in ("A", "B", "tie", "A")]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results) == [False, False, False, True]
    assert store.count("me/k") == 5


def test_an_older_votes_database_gains_the_pair_column(tmp_path):
    import sqlite3

    sys.path.insert(0, str(Path(__file__).parents[1] / "space"))
    from kokoro_space.votes import _SCHEMA, VoteStore

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as con:
        con.execute(_SCHEMA)
        con.execute(
            "INSERT INTO votes (ts, source, variant_a, variant_b, choice, voice, text_chars) "
            "VALUES (1, 's', 'a', 'b', 'A', 'v', 1)"
        )
    store = VoteStore(path)
    assert store.record("s", "a", "b", "B", "v", 1, pair="x")
    assert not store.record("s", "a", "b", "A", "v", 1, pair="x")
    assert store.count("s") == 2


# ------------------------------------------------------------------ smaller
def test_usage_mistakes_exit_1_with_one_line():
    result = CliRunner().invoke(main, ["build", "--no-such-option"])
    assert result.exit_code == 1
    assert "--help" in _one_error_line(result)


def test_staged_folders_follow_the_umask(dist_copy, tmp_path):
    old = os.umask(0o022)
    try:
        _cli("stage", "--recipe", "fp32", "--out", str(dist_copy), "--dest", str(tmp_path / "r"))
    finally:
        os.umask(old)
    assert (tmp_path / "r").stat().st_mode & 0o777 == 0o755


def test_convert_io_refuses_a_graph_that_is_not_kokoro(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    g = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    src = tmp_path / "relu.onnx"
    onnx.save(helper.make_model(g), str(src))
    result = _cli("convert-io", str(src), str(tmp_path / "out.onnx"), "--profile", "onnx-community")
    assert result.exit_code == 1
    assert "not a Kokoro graph" in _one_error_line(result)
    assert not (tmp_path / "out.onnx").exists()


def test_a_python_error_in_the_runtime_is_not_called_a_crash(dist_copy):
    import numpy as np

    from publisher.verify.worker import ModelWorker, VariantFailed

    with ModelWorker(str(dist_copy / "fp32" / "onnx" / "model.onnx"), label="m") as worker:
        with pytest.raises(VariantFailed, match="failed on this input"):
            worker.run([0, 1, 0], np.zeros((1, 3), dtype=np.float32))  # wrong style width
        out, _ = worker.run([0, 1, 2, 0], np.zeros((1, 256), dtype=np.float32))
    assert out.waveform.size > 0


# ------------------------------------------------------------------ promises without a test
def test_ctrl_c_mid_build_exits_130_and_leaves_nothing(tmp_path, monkeypatch):
    import publisher.export.fp32 as fp32

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(fp32, "export_fp32", interrupted)
    out = tmp_path / "dist"
    result = _cli("build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(out))
    assert result.exit_code == 130
    assert result.stderr.strip().splitlines()[-1] == "interrupted"
    assert "Traceback" not in result.output
    assert not out.exists() or _leftovers(out) == []


def test_a_recipe_over_64_kib_is_one_line(tmp_path):
    big = tmp_path / "big.yaml"
    big.write_text("extends: fp32\n" + "# padding\n" * 7000)
    result = _cli("build", "--recipe", str(big), "--out", str(tmp_path / "dist"))
    assert result.exit_code == 1
    line = _one_error_line(result)
    assert f"{big.stat().st_size} bytes; a recipe is at most 65536 bytes" in line
    assert not (tmp_path / "dist").exists()


def test_a_read_only_out_is_refused_before_any_work_without_root(tmp_path, monkeypatch):
    """The simulated twin of the tmpfs case (which needs root): the filesystem answers
    EROFS to the probe write."""
    import errno

    import publisher.workspace as ws

    def read_only(*args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system")

    monkeypatch.setattr(ws.tempfile, "mkstemp", read_only)
    result = _cli(
        "build", "--recipe", "fp32", "--checkpoint", "synthetic:tiny", "--out", str(tmp_path)
    )
    assert result.exit_code == 1
    assert "read-only" in _one_error_line(result)
    assert "[1/7]" not in result.stderr


def test_conformance_exits_1_naming_the_failed_cell(dist_copy, monkeypatch):
    from publisher.conformance import matrix

    def probe(runtime, request, scratch):
        if runtime.name == "kokoro-onnx 0.6.1":
            return {"ok": False, "error": "boom", "seconds": 0.1, "env_seconds": 0.0}
        return {"ok": False, "error": "not run in this test", "seconds": 0.0, "env_seconds": 0}

    monkeypatch.setattr(matrix, "probe", probe)
    result = _cli("conformance", "--recipe", "fp32", "--out", str(dist_copy))
    assert result.exit_code == 1
    assert "fp32 in kokoro-onnx 0.6.1: boom" in result.stderr
    assert "Traceback" not in result.output


def test_a_rebuild_that_fails_a_gate_keeps_the_previous_build(dist_copy, tmp_path):
    before = {p: p.read_bytes() for p in (dist_copy / "fp32").rglob("*") if p.is_file()}
    shipped = Path(__file__).parent.parent / "recipes"
    strict = tmp_path / "recipes" / "fp32.yaml"  # the same name: it would replace dist/fp32
    strict.parent.mkdir()
    shutil.copy(shipped / "_base.yaml", strict.parent / "_base.yaml")
    shutil.copy(shipped / "fp32.yaml", strict.parent / "shipped.yaml")
    strict.write_text("extends: shipped\ngates:\n  parity_max_abs: 0.0\n")
    result = _cli(
        "build", "--recipe", str(strict), "--checkpoint", "synthetic:tiny", "--out", str(dist_copy)
    )
    assert result.exit_code == 1
    assert "gate parity_max_abs failed" in _one_error_line(result)
    after = {p: p.read_bytes() for p in (dist_copy / "fp32").rglob("*") if p.is_file()}
    assert after == before and _leftovers(dist_copy) == []
