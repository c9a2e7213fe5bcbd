from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from publisher.model.checkpoint import state_sha256
from publisher.model.kmodel import run_torch
from publisher.model.sources import open_checkpoint
from publisher.model.synthetic import save_checkpoint
from publisher.runtime.errors import CheckpointError
from publisher.runtime.synth import style_row


def test_synthetic_tiny_is_seeded_and_reproducible(tiny):
    again = open_checkpoint("synthetic:tiny")
    assert again.sha256 == tiny.sha256
    assert again.synthetic and again.source == "synthetic:tiny"


def test_synthetic_voices_have_kokoro_shape(tiny):
    assert tiny.voices
    for voice in tiny.voices.values():
        assert voice.shape == (510, 1, 256) and voice.dtype == np.float32


def test_synthetic_tokens_last_about_three_frames(tiny, tiny_model):
    ids = list(range(1, 60))
    out = run_torch(tiny_model, ids, style_row(tiny.voices["af_heart"], len(ids)))
    mean = out.durations.astype(float).mean()
    assert 2.0 <= mean <= 4.0, mean
    assert out.waveform.size == out.durations.sum() * 600
    rms = float(np.sqrt(np.mean(out.waveform**2)))
    assert 1e-3 < rms < 1.0, rms


def test_path_source_round_trips_a_saved_checkpoint(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path)
    loaded = open_checkpoint(f"path:{tmp_path}")
    assert state_sha256(loaded.state) == tiny.sha256
    assert sorted(loaded.voices) == sorted(tiny.voices)
    assert loaded.synthetic  # the saved config keeps the synthetic marker
    model = loaded.build_model()
    ref = tiny.build_model()
    for (name, a), (_, b) in zip(model.state_dict().items(), ref.state_dict().items(), strict=True):
        assert torch.equal(a, b), name


def test_partial_state_dict_is_an_error_not_a_silent_partial_load(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path)
    state = torch.load(tmp_path / "kokoro-v1_0.pth", weights_only=True)
    dropped = sorted(state["decoder"])[0]
    del state["decoder"][dropped]
    torch.save(state, tmp_path / "kokoro-v1_0.pth")
    with pytest.raises(CheckpointError, match=r"weights for 'decoder' are incomplete: 1 missing"):
        open_checkpoint(f"path:{tmp_path}").build_model()


def test_module_prefixed_keys_load_like_the_real_checkpoint(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path)
    state = torch.load(tmp_path / "kokoro-v1_0.pth", weights_only=True)
    state = {k: {f"module.{n}": v for n, v in sd.items()} for k, sd in state.items()}
    torch.save(state, tmp_path / "kokoro-v1_0.pth")
    got = open_checkpoint(f"path:{tmp_path}").build_model().state_dict()
    want = tiny.build_model().state_dict()
    assert sorted(got) == sorted(want)  # the "module." prefix stripped, nothing missing
    for name, tensor in want.items():
        assert torch.equal(got[name], tensor), name


def test_missing_top_level_module_is_named(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path)
    state = torch.load(tmp_path / "kokoro-v1_0.pth", weights_only=True)
    del state["bert"]
    torch.save(state, tmp_path / "kokoro-v1_0.pth")
    with pytest.raises(CheckpointError, match=r"missing: bert; unknown: none"):
        open_checkpoint(f"path:{tmp_path}").build_model()


def test_weights_that_need_full_pickle_are_refused(tmp_path, tiny):
    save_checkpoint(tiny, tmp_path)
    torch.save({"bert": object()}, tmp_path / "kokoro-v1_0.pth")
    with pytest.raises(CheckpointError, match=r"cannot load kokoro-v1_0.pth"):
        open_checkpoint(f"path:{tmp_path}")


def test_wrong_voice_shape_is_refused(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path)
    torch.save(torch.zeros(510, 128), tmp_path / "voices" / "bad.pt")
    with pytest.raises(CheckpointError, match=r"voice 'bad' has shape \(510, 128\)"):
        open_checkpoint(f"path:{tmp_path}")


@pytest.mark.parametrize(
    "spec,message",
    [
        ("synthetic:huge", "unknown size"),
        ("path:/nonexistent/kokoro", "no such file or directory"),
        (
            "ftp:somewhere",
            "expected hub:ORG/NAME, path:DIR, onnx:FILE, recovered:NAME or synthetic:tiny|full",
        ),
    ],
)
def test_bad_checkpoint_specs_say_what_to_use(spec, message):
    with pytest.raises(CheckpointError, match=message):
        open_checkpoint(spec)


def test_hub_source_fails_fast_offline_and_names_other_sources(monkeypatch, tmp_path):
    # A closed port on loopback stands in for "no network": nothing is listening.
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    start = time.monotonic()
    with pytest.raises(CheckpointError) as err:
        open_checkpoint("hub:hexgrad/Kokoro-82M")
    assert time.monotonic() - start < 10  # no retry loop
    assert "synthetic:tiny|synthetic:full" in str(err.value)
    assert "path:DIR" in str(err.value)
    assert "\n" not in str(err.value)


def test_hub_download_failures_are_one_line_from_the_shared_translator(
    monkeypatch, tmp_path, request
):
    from huggingface_hub import HfApi
    from support.hub_server import local_hub_env

    hub = local_hub_env(monkeypatch, tmp_path, request=request)
    with pytest.raises(CheckpointError) as err:
        open_checkpoint("hub:me/missing")
    assert str(err.value).startswith(
        "hub:me/missing: model repo me/missing was not found on the Hub (or it is private"
    )
    assert str(err.value).endswith("or synthetic:tiny|synthetic:full")
    api = HfApi(token=hub.token)
    api.create_repo("me/empty")
    api.upload_file(path_or_fileobj=b"{}", path_in_repo="config.json", repo_id="me/empty")
    with pytest.raises(CheckpointError) as err:  # no weights in the repo
        open_checkpoint("hub:me/empty")
    assert str(err.value).startswith("hub:me/empty: ") and "\n" not in str(err.value)


def test_hub_source_in_offline_mode_fails_without_network(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    with pytest.raises(CheckpointError, match=r"not in the local cache and HF_HUB_OFFLINE"):
        open_checkpoint("hub:hexgrad/Kokoro-82M")


def test_a_synthetic_checkpoint_is_made_once_then_read_back_and_a_damaged_one_remade(
    tmp_path, monkeypatch, caplog
):
    from publisher.model import synthetic
    from publisher.model.kmodel import TOP_LEVEL_MODULES

    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path))
    model, config = synthetic.synthetic_model("tiny")
    expected = state_sha256({k: getattr(model, k).state_dict() for k in TOP_LEVEL_MODULES})
    made = open_checkpoint("synthetic:tiny")
    (entry,) = (tmp_path / "synthetic").glob("tiny-*/checkpoint.pt")

    def never(size):
        raise AssertionError("made again, not read back")

    with monkeypatch.context() as m:
        m.setattr(synthetic, "synthetic_model", never)
        again = open_checkpoint("synthetic:tiny")
    assert made.sha256 == again.sha256 == state_sha256(again.state) == expected
    assert again.config == config and again.synthetic
    assert sorted(again.voices) == sorted(made.voices)
    for name, voice in made.voices.items():
        assert again.voices[name].dtype == np.float32
        np.testing.assert_array_equal(again.voices[name], voice)

    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF
    entry.write_bytes(bytes(data))
    remade = open_checkpoint("synthetic:tiny")
    assert remade.sha256 == expected
    assert "synthetic checkpoint cache entry" in caplog.text


def test_a_process_opening_a_cached_synthetic_checkpoint_never_imports_kokoro(tmp_path, tiny):
    import os
    import subprocess
    import sys

    env = {**os.environ, "PUBLISHER_CACHE": str(tmp_path)}
    code = (
        "import sys; from publisher.model.sources import open_checkpoint; "
        "c = open_checkpoint('synthetic:tiny'); print(c.sha256, 'kokoro' in sys.modules)"
    )
    runs = [
        subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        for _ in range(2)
    ]
    assert [r.returncode for r in runs] == [0, 0], runs[-1].stderr
    first, second = (r.stdout.split() for r in runs)
    assert first == [tiny.sha256, "True"]  # made: kokoro's classes make the weights
    assert second == [tiny.sha256, "False"]


def test_a_synthetic_checkpoint_is_made_when_the_cache_cannot_be_written(
    tiny, tmp_path, monkeypatch, caplog
):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("PUBLISHER_CACHE", str(blocked / "cache"))  # under a file: no mkdir
    made = open_checkpoint("synthetic:tiny")
    assert made.sha256 == tiny.sha256 and made.synthetic
    assert blocked.read_text() == "not a folder"
    assert "synthetic checkpoint: not kept in the cache" in caplog.text
