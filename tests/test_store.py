"""The reference store (publisher/verify/store.py): upstream torch's side of verification
computed once per checkpoint and input, read back by later processes, checked at read."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import publisher.model.kmodel as kmodel
from publisher.verify import measure, store, worker


@pytest.fixture
def empty_store(tmp_path, monkeypatch):
    monkeypatch.setenv("PUBLISHER_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(measure, "_REFERENCES", {})  # as a new process starts
    return tmp_path / "cache" / store.AREA


def _item(tiny, n: int = 12):
    ids = tuple(measure.probe_ids(tiny, n))
    return measure.Item(f"probe-{n}", ids, tiny.sample_voice, 1.0)


def _no_torch(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("upstream torch ran")

    monkeypatch.setattr(kmodel, "run_torch", refuse)


def test_a_later_process_reads_upstreams_run_from_disk_without_torch(
    tiny, empty_store, monkeypatch
):
    item = _item(tiny)
    style = measure.style_of(tiny, item)
    first = measure.torch_reference(tiny, item, style, voiced=True)
    seeded = store.seeded_torch(tiny, item.ids, 1.0, style, seed=7)
    assert len(list(empty_store.iterdir())) == 2
    monkeypatch.setattr(measure, "_REFERENCES", {})
    _no_torch(monkeypatch)
    again = measure.torch_reference(tiny, item, style, voiced=True)
    np.testing.assert_array_equal(again.waveform, first.waveform)
    np.testing.assert_array_equal(again.durations, first.durations)
    np.testing.assert_array_equal(
        store.seeded_torch(tiny, item.ids, 1.0, style, seed=7).waveform, seeded.waveform
    )


def test_the_key_separates_mode_seed_input_and_checkpoint(tiny):
    item = _item(tiny)
    style = measure.style_of(tiny, item)
    base = store.key(tiny, item.ids, 1.0, style, "random", seed=1)
    others = {
        store.key(tiny, item.ids, 1.0, style, "random", seed=2),
        store.key(tiny, item.ids, 1.0, style, "deterministic-voiced"),
        store.key(tiny, item.ids[:-1], 1.0, style, "random", seed=1),
        store.key(tiny, item.ids, 1.1, style, "random", seed=1),
        store.key(tiny, item.ids, 1.0, style + 1e-3, "random", seed=1),
    }
    other_ckpt = dataclasses.replace(tiny, sha256="0" * 64)
    others.add(store.key(other_ckpt, item.ids, 1.0, style, "random", seed=1))
    assert base not in others and len(others) == 6


def test_a_seeded_upstream_run_is_what_torch_gives_under_that_seed(tiny, tiny_model, empty_store):
    import torch

    item = _item(tiny)
    style = measure.style_of(tiny, item)
    stored = store.seeded_torch(tiny, item.ids, 1.0, style, seed=11)
    torch.manual_seed(11)
    direct = kmodel.run_torch(tiny_model, list(item.ids), style, 1.0)
    np.testing.assert_array_equal(stored.waveform, direct.waveform)
    other = store.seeded_torch(tiny, item.ids, 1.0, style, seed=12)
    assert not np.array_equal(other.waveform, stored.waveform)  # the source is random


def test_a_damaged_entry_is_named_and_computed_again(tiny, empty_store, monkeypatch, caplog):
    item = _item(tiny)
    style = measure.style_of(tiny, item)
    first = measure.torch_reference(tiny, item, style)
    (entry,) = empty_store.glob("*/entry.npz")
    with open(entry, "r+b") as fh:
        fh.seek(entry.stat().st_size // 2)
        fh.write(b"\x00" * 64)
    monkeypatch.setattr(measure, "_REFERENCES", {})
    with caplog.at_level("WARNING", logger="publisher.verify.store"):
        again = measure.torch_reference(tiny, item, style)
    np.testing.assert_array_equal(again.waveform, first.waveform)
    said = [r.getMessage() for r in caplog.records]
    assert any(f"reference store entry {entry}" in line and "rebuilding" in line for line in said)


def test_a_graphs_runs_are_stored_by_its_record_or_its_computation_not_its_metadata(
    tiny, empty_store, monkeypatch, tmp_path
):
    import onnx
    from onnx import numpy_helper

    import publisher.runtime.synth as synth
    from publisher.export.fp32 import export_fp32
    from publisher.recipe.loader import load_recipe

    graph = export_fp32(tiny, load_recipe("fp32"), parity=True)
    item = _item(tiny)
    style = measure.style_of(tiny, item)
    first = measure.StoredRuns(tiny, graph).run(item, style)
    real_run = synth.run_onnx

    def no_onnx(*args, **kwargs):
        raise AssertionError("onnxruntime ran")

    monkeypatch.setattr(synth, "run_onnx", no_onnx)
    again = measure.StoredRuns(tiny, graph).run(item, style)  # a new build, the same export
    np.testing.assert_array_equal(again.waveform, first.waveform)
    np.testing.assert_array_equal(again.durations, first.durations)

    model = onnx.load(str(graph))
    model.metadata_props.add(key="publisher.recipe_sha256", value="one recipe text")
    twin = tmp_path / "twin.onnx"  # a variant's own graph: no record
    onnx.save(model, str(twin))
    monkeypatch.setattr(synth, "run_onnx", real_run)
    built = measure.StoredRuns(tiny, twin).run(item, style)  # runs once, then is stored
    model.metadata_props[-1].value = "the recipe's text changed, not its passes"
    rebuilt = tmp_path / "rebuilt.onnx"
    onnx.save(model, str(rebuilt))
    monkeypatch.setattr(synth, "run_onnx", no_onnx)
    runs = measure.StoredRuns(tiny, rebuilt)
    np.testing.assert_array_equal(runs.run(item, style).waveform, built.waveform)
    assert runs._session is None  # read back, never opened

    init = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    weights = numpy_helper.to_array(init).copy()
    weights.flat[0] += 1.0
    init.CopyFrom(numpy_helper.from_array(weights, init.name))
    changed = tmp_path / "changed.onnx"  # another computation: it runs
    onnx.save(model, str(changed))
    monkeypatch.setattr(synth, "run_onnx", no_onnx)
    with pytest.raises(AssertionError, match="onnxruntime ran"):
        measure.StoredRuns(tiny, changed).run(item, style)


def test_an_unwritable_cache_skips_the_store_and_the_run_still_answers(
    tiny, tmp_path, monkeypatch, caplog
):
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("PUBLISHER_CACHE", str(blocked / "cache"))  # under a file
    monkeypatch.setattr(measure, "_REFERENCES", {})
    item = _item(tiny)
    style = measure.style_of(tiny, item)
    with caplog.at_level("WARNING", logger="publisher.verify.store"):
        out = store.seeded_torch(tiny, item.ids, 1.0, style, seed=3)
    assert out.waveform.size > 0
    assert any("reference store: not kept" in r.getMessage() for r in caplog.records)
    assert blocked.read_text() == "not a folder"  # nothing of the user's touched


def test_a_later_build_of_a_stored_checkpoint_never_builds_its_torch_model(
    tiny_dist, tmp_path, monkeypatch
):
    """tiny_dist's builds stored the exports and upstream's runs: a later build of the
    checkpoint reads them back, and never builds (nor runs) upstream's torch model."""
    from publisher.build import build
    from publisher.model.checkpoint import Checkpoint
    from publisher.recipe.loader import load_recipe

    def refuse(self):
        raise AssertionError("the torch model was built")

    monkeypatch.setattr(Checkpoint, "build_model", refuse)
    result = build(load_recipe("quantized"), "synthetic:tiny", tmp_path)
    assert result.manifest.verification.passed


def test_a_rebuild_that_wrote_the_same_graph_starts_no_model_worker(
    tiny_dist, tmp_path, monkeypatch
):
    """tiny_dist's fp32 build stored its shipped graph's runs by what the graph computes:
    building the recipe again reads them back and starts no worker process."""
    from publisher.build import build
    from publisher.recipe.loader import load_recipe

    def refuse(*args, **kwargs):
        raise AssertionError("a model worker started")

    monkeypatch.setattr(worker, "ModelWorker", refuse)
    result = build(load_recipe("fp32"), "synthetic:tiny", tmp_path)
    shipped = result.manifest.verification.shipped
    assert result.manifest.verification.passed and shipped["ran"] is True
    assert len(shipped["items"]) == measure.SHIPPED_ITEMS
