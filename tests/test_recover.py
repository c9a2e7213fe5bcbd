"""onnx:FILE recovery (round trips on synthetic:tiny) and the strict loader on real-shaped
checkpoints. The real-weights source has its own module (test_recovered.py)."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from publisher.export.parity import parity_mode
from publisher.model.checkpoint import Checkpoint
from publisher.model.kmodel import computed_buffers, new_kmodel, run_torch
from publisher.model.sources import open_checkpoint
from publisher.model.synthetic import save_checkpoint
from publisher.runtime.errors import CheckpointError
from publisher.runtime.synth import style_row

IDS = [50, 83, 54, 156, 57, 135, 16, 65, 156, 87, 158, 54, 46, 102, 16, 50, 83]


def _beside_voices(model: Path, voices: dict, dest: Path) -> Path:
    """``model`` copied into ``dest`` with the voices as voices/*.npy beside it."""
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "voices").mkdir()
    for name, arr in voices.items():
        np.save(dest / "voices" / f"{name}.npy", arr)
    return Path(shutil.copy2(model, dest / model.name))


def _effective(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every learned tensor as the forward pass uses it (weight norm applied)."""
    out = {}
    state = model.state_dict()
    for name, tensor in state.items():
        if name.endswith("weight_v"):
            g = state[name[: -len("v")] + "g"]
            out[name[: -len("_v")]] = torch._weight_norm(tensor, g, 0)
        elif not name.endswith("weight_g") and name not in computed_buffers(model):
            out[name] = tensor
    return out


@pytest.fixture(scope="module")
def distinct(tiny, tiny_model, tmp_path_factory) -> Checkpoint:
    """synthetic:tiny with every learned tensor nudged by seeded noise: torch's default
    init gives many layers equal values (biases 0, Snake alphas 1), which the exporter
    merges into one shared constant, a sharing real weights never have."""
    gen = torch.Generator().manual_seed(7)
    computed = computed_buffers(tiny_model)
    state = {
        top: {
            name: t
            if f"{top}.{name}" in computed or not t.is_floating_point()
            else t * (1 + 0.1 * torch.rand(t.shape, generator=gen))
            + 0.01 * torch.randn(t.shape, generator=gen)
            for name, t in sd.items()
        }
        for top, sd in tiny.state.items()
    }
    folder = tmp_path_factory.mktemp("distinct-tiny")
    save_checkpoint(replace(tiny, state=state), folder)
    return open_checkpoint(f"path:{folder}")


@pytest.fixture(scope="module")
def graphs(distinct, tmp_path_factory) -> dict[str, Path]:
    """The fp32 and quantized recipes' shipped graphs of ``distinct`` (unverified)."""
    import onnx

    from publisher.build import prepare
    from publisher.provenance import StepTimer
    from publisher.recipe.loader import load_recipe

    out = tmp_path_factory.mktemp("graphs")
    paths = {}
    for name in ("fp32", "quantized"):
        p = prepare(load_recipe(name), distinct.source, StepTimer(total=6))
        onnx.save(p.variant, str(out / f"{name}.onnx"))
        paths[name] = out / f"{name}.onnx"
    return paths


@pytest.fixture(scope="module")
def recovered_fp32(graphs, tmp_path_factory, distinct):
    path = _beside_voices(graphs["fp32"], distinct.voices, tmp_path_factory.mktemp("fp32"))
    return open_checkpoint(f"onnx:{path}")


@pytest.fixture(scope="module")
def distinct_model(distinct) -> torch.nn.Module:
    return distinct.build_model()


def test_fp32_build_recovers_every_weight_exactly(recovered_fp32, distinct_model):
    got = _effective(recovered_fp32.build_model())
    want = _effective(distinct_model)
    assert sorted(got) == sorted(want)
    for name, tensor in want.items():
        if name.startswith("bert.pooler."):  # no graph carries it: filled with zeros
            assert not got[name].any(), name
            continue
        torch.testing.assert_close(got[name], tensor, rtol=1e-5, atol=1e-6, msg=name)


def test_fp32_recovery_synthesizes_the_same_audio(recovered_fp32, distinct_model, distinct):
    style = style_row(distinct.voices["af_heart"], len(IDS))
    model = recovered_fp32.build_model()
    with parity_mode(distinct_model), parity_mode(model):
        want = run_torch(distinct_model, IDS, style)
        got = run_torch(model, IDS, style)
    assert np.array_equal(got.durations, want.durations)
    assert np.max(np.abs(got.waveform - want.waveform)) < 1e-4


def test_recovered_checkpoint_is_marked_and_keeps_the_graph_config(recovered_fp32, distinct):
    assert recovered_fp32.recovered and recovered_fp32.origin == "synthetic"
    assert recovered_fp32.config["publisher_synthetic"] == distinct.config["publisher_synthetic"]
    assert sorted(recovered_fp32.voices) == sorted(distinct.voices)
    summary = recovered_fp32.provenance["recovery"]
    assert summary["parameters_mapped"] > 0
    assert summary["values_from_file"] <= summary["values_total"]


def test_int8_build_recovers_within_one_quantization_step(
    graphs, tmp_path, distinct_model, distinct
):
    ckpt = open_checkpoint(f"onnx:{_beside_voices(graphs['quantized'], distinct.voices, tmp_path)}")
    got = _effective(ckpt.build_model())
    changed = 0
    for name, want in _effective(distinct_model).items():
        if name.startswith("bert.pooler."):
            continue
        step = float(want.max() - want.min()) / 127 if want.numel() > 1 else 0.0
        diff = float((got[name] - want).abs().max())
        assert diff <= step + 1e-6, (name, diff, step)
        changed += diff > 1e-6
    assert changed > 0  # the file really was quantized: some weights moved


def test_recovery_is_deterministic_and_cached(graphs, tmp_path, distinct, monkeypatch):
    path = _beside_voices(graphs["fp32"], distinct.voices, tmp_path / "m")
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache-a"))
    first = open_checkpoint(f"onnx:{path}")
    cached = open_checkpoint(f"onnx:{path}")
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache-b"))
    fresh = open_checkpoint(f"onnx:{path}")
    assert first.sha256 == cached.sha256 == fresh.sha256
    assert list((tmp_path / "cache-a" / "recovered" / "onnx").iterdir())


def test_a_damaged_cache_entry_is_recovered_again(graphs, tmp_path, distinct, monkeypatch):
    path = _beside_voices(graphs["fp32"], distinct.voices, tmp_path / "m")
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    first = open_checkpoint(f"onnx:{path}")
    (entry,) = (tmp_path / "cache" / "recovered" / "onnx").iterdir()
    (entry / "state.pt").write_bytes(b"not a state dict")
    assert open_checkpoint(f"onnx:{path}").sha256 == first.sha256


def test_a_cached_state_with_flipped_bytes_is_named_and_recovered_again(
    graphs, tmp_path, distinct, monkeypatch, caplog
):
    path = _beside_voices(graphs["fp32"], distinct.voices, tmp_path / "m")
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    first = open_checkpoint(f"onnx:{path}")
    (entry,) = (tmp_path / "cache" / "recovered" / "onnx").iterdir()
    state = entry / "state.pt"
    with open(state, "r+b") as fh:  # 4 KiB in the middle: still a loadable state dict
        fh.seek(state.stat().st_size // 2)
        fh.write(os.urandom(4096))
    with caplog.at_level("WARNING", logger="publisher.model.recovered"):
        again = open_checkpoint(f"onnx:{path}")
    assert again.sha256 == first.sha256
    (line,) = [r.getMessage() for r in caplog.records]
    assert f"recovered cache entry {state}: changed since it was written" in line
    caplog.clear()
    assert open_checkpoint(f"onnx:{path}").sha256 == first.sha256 and not caplog.records


def test_a_recovery_that_differs_from_the_known_state_hash_is_one_line(
    graphs, tmp_path, distinct, monkeypatch
):
    from publisher.model.recovered import from_onnx

    path = _beside_voices(graphs["fp32"], distinct.voices, tmp_path / "m")
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    with pytest.raises(CheckpointError, match=r"gave state hash \w{12}, expected 000000000000"):
        from_onnx(path, spec="recovered:test", expect_state="0" * 64)
    assert not list((tmp_path / "cache").rglob("state.pt"))  # nothing wrong was cached


def test_a_graph_that_is_not_kokoro_names_what_is_missing(tmp_path, tiny):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    (tmp_path / "m").mkdir()
    onnx.save(helper.make_model(graph), tmp_path / "m" / "other.onnx")
    _beside_voices(tmp_path / "m" / "other.onnx", tiny.voices, tmp_path / "m2")
    with pytest.raises(CheckpointError, match=r"does not carry \d+ of Kokoro's parameters"):
        open_checkpoint(f"onnx:{tmp_path / 'm2' / 'other.onnx'}")


def test_missing_voices_and_missing_file_are_one_line_each(graphs, tmp_path):
    model = Path(shutil.copy2(graphs["fp32"], tmp_path))
    with pytest.raises(CheckpointError, match=r"no voices beside the model: put voices.npz"):
        open_checkpoint(f"onnx:{model}")
    with pytest.raises(CheckpointError, match=r"no such file"):
        open_checkpoint(f"onnx:{tmp_path / 'absent.onnx'}")


def test_voices_npz_beside_the_file_is_read(graphs, tmp_path, tiny):
    model = Path(shutil.copy2(graphs["fp32"], tmp_path))
    np.savez(tmp_path / "voices.npz", **tiny.voices)
    assert sorted(open_checkpoint(f"onnx:{model}").voices) == sorted(tiny.voices)


def test_a_checkpoint_shaped_like_hexgrads_loads(tiny, tiny_model, tmp_path):
    """hexgrad's kokoro-v1_0.pth has "module." prefixes and predates the STFT buffers."""
    save_checkpoint(tiny, tmp_path)
    state = torch.load(tmp_path / "kokoro-v1_0.pth", weights_only=True)
    assert not [k for k in state["decoder"] if k.startswith("generator.stft.")]
    state = {key: {f"module.{n}": v for n, v in sd.items()} for key, sd in state.items()}
    torch.save(state, tmp_path / "kokoro-v1_0.pth")
    model = open_checkpoint(f"path:{tmp_path}").build_model()
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_a_checkpoint_saved_with_kokoros_custom_stft_buffers_loads(tiny, tiny_model, tmp_path):
    """A state dict of KModel(disable_complex=True) carries CustomSTFT's computed bases."""
    custom = new_kmodel(tiny.config, disable_complex=True).decoder
    buffers = {k: v for k, v in custom.state_dict().items() if k in computed_buffers(custom)}
    assert any(k.startswith("generator.stft.") for k in buffers)
    save_checkpoint(tiny, tmp_path)
    state = torch.load(tmp_path / "kokoro-v1_0.pth", weights_only=True)
    state["decoder"].update(buffers)
    torch.save(state, tmp_path / "kokoro-v1_0.pth")
    model = open_checkpoint(f"path:{tmp_path}").build_model()
    for name, tensor in tiny_model.state_dict().items():
        assert torch.equal(model.state_dict()[name], tensor), name


def test_a_missing_learned_weight_still_fails_when_buffers_are_optional(tiny, tmp_path):
    save_checkpoint(tiny, tmp_path)
    state = torch.load(tmp_path / "kokoro-v1_0.pth", weights_only=True)
    del state["decoder"]["generator.conv_post.bias"]
    torch.save(state, tmp_path / "kokoro-v1_0.pth")
    with pytest.raises(CheckpointError, match=r"'decoder' are incomplete: 1 missing"):
        open_checkpoint(f"path:{tmp_path}").build_model()


@pytest.fixture(scope="module")
def recovered_build(graphs, distinct, tmp_path_factory) -> Path:
    """fp32 built from an export whose metadata does not say synthetic: what a build from
    a real export looks like (recovered, not synthetic)."""

    import onnx

    from publisher.build import build
    from publisher.recipe.loader import load_recipe

    model = onnx.load(str(graphs["fp32"]))
    for prop in model.metadata_props:
        if prop.key == "publisher.synthetic":
            prop.value = "false"
    folder = tmp_path_factory.mktemp("unmarked")
    onnx.save(model, str(folder / "export.onnx"))
    path = _beside_voices(folder / "export.onnx", distinct.voices, folder / "src")
    out = tmp_path_factory.mktemp("dist")
    # random weights that are not marked synthetic: the speech set would run for minutes
    # on a model that does not speak (the real-weight speech run is a benchmark)
    build(load_recipe("fp32"), checkpoint=f"onnx:{path}", out_dir=out, speech=False)
    return out / "fp32"


def test_a_build_without_speech_gates_records_them_as_skipped(recovered_build):
    import json

    manifest = json.loads((recovered_build / "manifest.json").read_text())
    speech = manifest["verification"]["speech"]
    assert speech == {"ran": False, "skipped": "speech gates switched off (--no-speech-gates)"}
    assert "word_error_rate" not in {g["gate"] for g in manifest["verification"]["gates"]}
    assert "Skipped: speech gates switched off" in (recovered_build / "verify.md").read_text()


def test_a_build_from_recovered_weights_is_marked_in_model_and_manifest(recovered_build):
    import json

    import onnx

    manifest = json.loads((recovered_build / "manifest.json").read_text())
    assert manifest["checkpoint"]["recovered"] is True
    assert manifest["checkpoint"]["synthetic"] is False
    assert manifest["checkpoint"]["origin"] == "recovered"
    meta = {
        p.key: p.value
        for p in onnx.load(str(recovered_build / "onnx" / "model.onnx")).metadata_props
    }
    assert meta["publisher.recovered"] == "true" and meta["publisher.weights"] == "recovered"


def test_recovered_builds_are_carded_as_such_and_not_published_without_the_flag(
    recovered_build, tmp_path, monkeypatch
):
    from huggingface_hub import ModelCard

    from publisher.hub.publish import publish
    from publisher.hub.stage import stage
    from publisher.runtime.errors import PublisherError

    staged = stage([recovered_build], tmp_path / "repo", repo_id="me/kokoro")
    text = (staged.folder / "README.md").read_text()
    assert "recovered-weights" in ModelCard(text).data.tags
    assert text.split("---", 2)[2].lstrip().startswith("> **Recovered weights: not hexgrad's")
    assert staged.manifest["origin"] == "recovered"
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    assert publish([recovered_build], "me/kokoro", dry_run=True).recovered_blocked
    with pytest.raises(PublisherError, match=r"refusing to publish a build from recovered"):
        publish([recovered_build], "me/kokoro")


def test_publish_cli_refuses_recovered_builds_and_allow_recovered_publishes_them_marked(
    recovered_build, tmp_path, monkeypatch, request
):
    from click.testing import CliRunner
    from huggingface_hub import ModelCard
    from support.hub_server import local_hub_env

    from publisher.cli import main

    hub = local_hub_env(monkeypatch, tmp_path, request=request, login="hf_test-token-0123")
    out = str(recovered_build.parent)
    args = ["publish", "--repo", "me/kokoro", "--recipe", "fp32", "--out", out]
    refused = CliRunner().invoke(main, args)
    assert refused.exit_code == 1 and "Traceback" not in refused.output
    assert "refusing to publish a build from recovered" in refused.stderr
    assert not hub.repo_exists("me/kokoro")
    done = CliRunner().invoke(main, [*args, "--allow-recovered"])
    assert done.exit_code == 0, done.output
    files = hub.files("me/kokoro")
    card = files["README.md"].decode()
    assert "recovered-weights" in ModelCard(card).data.tags
    assert card.split("---", 2)[2].lstrip().startswith("> **Recovered weights: not hexgrad's")
    assert json.loads(files["manifest.json"])["recovered"] is True
