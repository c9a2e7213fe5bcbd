"""A recipe's own passes kept in the cache (publisher/passes/stored.py): a rebuild reads
the shipped graph and its twin back instead of quantizing again, a changed setting or a
damaged entry makes them again, and the card and gates are not part of the key."""

from __future__ import annotations

import json
import logging

import pytest

from publisher.build import build
from publisher.manifest import read_manifest
from publisher.passes import quantize, simplify, stored
from publisher.recipe.loader import load_recipe


def _refuse(*args, **kwargs):
    raise AssertionError("a pass ran")


def test_a_rebuild_reads_its_passes_back_and_writes_the_same_file(tiny_dist, tmp_path, monkeypatch):
    """tiny_dist built quantized (simplify, quantize-dynamic): building it again runs
    neither pass and ships the same bytes."""
    monkeypatch.setattr(simplify, "simplify_pass", _refuse)
    monkeypatch.setattr(quantize, "quantize_dynamic_pass", _refuse)
    result = build(load_recipe("quantized"), "synthetic:tiny", tmp_path, floor=False)
    before = tiny_dist / "quantized" / read_manifest(tiny_dist / "quantized").model
    assert result.model_path.read_bytes() == before.read_bytes()
    notes = json.loads((result.folder / "manifest.json").read_text())["passes"]["notes"]
    assert notes["stored_passes"]["key"]
    # the notes the passes wrote when they ran come back with the graphs
    assert (
        notes["nodes_moved"]
        == read_manifest(tiny_dist / "quantized").passes["notes"]["nodes_moved"]
    )


def test_a_damaged_entry_is_named_and_its_passes_run_again(
    tiny_dist, tmp_path, monkeypatch, caplog
):
    recipe = load_recipe("quantized")
    build(recipe, "synthetic:tiny", tmp_path / "a", floor=False, speech=False)
    key = build_key(recipe)
    shipped = stored.cache_root() / stored.AREA / f"{key}-shipped" / "model.onnx"
    shipped.write_bytes(shipped.read_bytes()[:-10] + b"0123456789")
    ran = []
    real = quantize.quantize_dynamic_pass
    monkeypatch.setattr(quantize, "quantize_dynamic_pass", lambda *a: ran.append(1) or real(*a))
    with caplog.at_level(logging.WARNING):
        result = build(recipe, "synthetic:tiny", tmp_path / "b", floor=False, speech=False)
    assert len(ran) == 2  # the shipped graph and its twin
    assert "stored passes entry" in caplog.text and str(shipped) in caplog.text
    assert result.manifest.verification.passed
    assert stored.cached_entry_ok(shipped)  # written again, whole


def build_key(recipe) -> str:
    from publisher.export.fp32 import export_fp32
    from publisher.model.sources import open_checkpoint

    ckpt = open_checkpoint("synthetic:tiny")
    shipped = export_fp32(ckpt, recipe)
    twin = export_fp32(ckpt, recipe, parity=True)  # synthetic weights: the noise-only twin
    return stored.pass_key(recipe, ckpt, shipped, twin)


def _changed(recipe, **sections):
    data = recipe.model_dump(mode="json")
    for section, value in sections.items():
        data[section] = {**data[section], **value} if isinstance(value, dict) else value
    return type(recipe).model_validate(data)


@pytest.mark.parametrize(
    ("section", "value", "same"),
    [
        ("card", {"title": "Another title"}, True),
        ("gates", {"spectral_correlation": 0.5}, True),
        ("description", "Another description", True),
        ("precision", {"quantize": {"type": "dynamic", "exclude": []}}, False),
        ("io", {"profile": "kokoro-onnx-legacy"}, False),
    ],
)
def test_the_key_follows_what_passes_read_and_not_the_card_or_gates(
    tiny, tmp_path, section, value, same
):
    recipe = load_recipe("quantized")
    shipped, twin = tmp_path / "a.onnx", tmp_path / "b.onnx"
    shipped.write_bytes(b"shipped")
    twin.write_bytes(b"twin")
    base = stored.pass_key(recipe, tiny, shipped, twin)
    other = stored.pass_key(_changed(recipe, **{section: value}), tiny, shipped, twin)
    assert (base == other) is same
    twin.write_bytes(b"another twin")
    assert stored.pass_key(recipe, tiny, shipped, twin) != base


def test_the_key_follows_the_thread_count_calibration_runs_with(tiny, tmp_path, monkeypatch):
    recipe = load_recipe("quantized")
    shipped, twin = tmp_path / "a.onnx", tmp_path / "b.onnx"
    shipped.write_bytes(b"shipped")
    twin.write_bytes(b"twin")
    monkeypatch.setenv("PUBLISHER_THREADS", "1")
    one = stored.pass_key(recipe, tiny, shipped, twin)
    monkeypatch.setenv("PUBLISHER_THREADS", "2")
    assert stored.pass_key(recipe, tiny, shipped, twin) != one


def test_a_recipe_of_cheap_passes_alone_is_not_stored():
    assert not stored.worth_storing(load_recipe("fp32"))  # simplify only
    assert not stored.worth_storing(load_recipe("kokoro-v1.0"))  # no passes
    assert stored.worth_storing(load_recipe("quantized"))
    assert stored.worth_storing(load_recipe("cpu-int8"))


def test_a_full_cache_costs_one_warning_and_leaves_no_entry_behind(
    tiny_dist, tmp_path, monkeypatch, caplog
):
    """A recipe whose passes are not stored yet (quantized with other IO names: another
    key), with the cache's disk full: the build passes and no part of the entry is left."""
    import errno

    recipe = _changed(load_recipe("quantized"), io={"profile": "kokoro-onnx-legacy"})

    def full(target, write):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(stored, "store", full)
    with caplog.at_level(logging.WARNING):
        result = build(recipe, "synthetic:tiny", tmp_path, floor=False, speech=False)
    assert result.manifest.verification.passed
    warned = [r.getMessage() for r in caplog.records if "stored passes" in r.getMessage()]
    assert len(warned) == 1 and "No space left on device" in warned[0]
    key = build_key(recipe)
    assert not list((stored.cache_root() / stored.AREA).glob(f"{key}-*"))
