from __future__ import annotations

import onnx
import pytest

from publisher.export.fp32 import export_fp32
from publisher.recipe.loader import load_recipe
from publisher.verify.measure import check_parity

RANDOM_OPS = {"RandomNormalLike", "RandomUniformLike", "RandomNormal", "RandomUniform"}


@pytest.fixture(scope="module")
def fp32_recipe():
    return load_recipe("fp32")


@pytest.fixture(scope="module")
def parity_graph(tiny, tiny_model, fp32_recipe):
    return export_fp32(tiny, fp32_recipe, parity=True)


def test_fp32_export_passes_the_onnx_checker_with_dynamic_length(tiny, tiny_model, fp32_recipe):
    path = export_fp32(tiny, fp32_recipe)
    onnx.checker.check_model(str(path))
    model = onnx.load(str(path))
    ids = model.graph.input[0].type.tensor_type.shape.dim
    assert [i.name for i in model.graph.input] == ["input_ids", "style", "speed"]
    assert [o.name for o in model.graph.output] == ["waveform", "duration"]
    assert ids[1].dim_param == "tokens"
    assert model.opset_import[0].version == fp32_recipe.export.opset


def test_parity_graph_matches_torch_sample_by_sample(tiny, tiny_model, parity_graph):
    results = check_parity(tiny, parity_graph, tokens=(5, 12, 40, 130, 510))
    for r in results:
        assert r.durations_equal, r
        assert r.max_abs_error <= 1e-4, r
        assert r.snr_db >= 60, r


def test_shipped_graph_differs_from_parity_graph_only_by_the_noise(
    tiny, tiny_model, fp32_recipe, parity_graph
):
    """The shipped graph keeps the random NSF source: it must not pass as deterministic."""
    shipped = export_fp32(tiny, fp32_recipe)
    ops_shipped = {n.op_type for n in onnx.load(str(shipped)).graph.node}
    assert RANDOM_OPS & ops_shipped
    ops_parity = {n.op_type for n in onnx.load(str(parity_graph)).graph.node}
    assert not RANDOM_OPS & ops_parity


def test_export_is_cached_per_checkpoint_and_settings(tiny, fp32_recipe, monkeypatch):
    first = export_fp32(tiny, fp32_recipe)

    def boom(*args, **kwargs):
        raise AssertionError("exported again instead of using the cache")

    monkeypatch.setattr("publisher.export.dynamic.export_dynamic", boom)
    assert export_fp32(tiny, fp32_recipe) == first
    with pytest.raises(AssertionError, match="exported again"):
        export_fp32(
            tiny,
            fp32_recipe.model_copy(
                update={"export": fp32_recipe.export.model_copy(update={"opset": 18})}
            ),
        )


def test_parity_detects_a_broken_graph(tiny, tiny_model, parity_graph, tmp_path):
    """A decoder weight changed in the graph must show up as a parity failure."""
    from onnx import numpy_helper

    model = onnx.load(str(parity_graph))
    inits = {t.name: t for t in model.graph.initializer}
    last_conv = [n for n in model.graph.node if n.op_type == "Conv" and n.input[1] in inits][-1]
    init = inits[last_conv.input[1]]  # the generator's conv_post: a decoder weight
    arr = numpy_helper.to_array(init).copy()
    arr.flat[: arr.size // 2] = 0.0
    init.CopyFrom(numpy_helper.from_array(arr, init.name))
    broken = tmp_path / "broken.onnx"
    onnx.save(model, str(broken))
    (r,) = check_parity(tiny, broken, tokens=(40,))
    assert r.max_abs_error > 1e-3 or not r.durations_equal


def _sine_ops(path) -> int:
    return sum(n.op_type == "Sin" for n in onnx.load(str(path)).graph.node)


def test_voiced_graph_keeps_the_sine_and_no_random_op(tiny, tiny_model, fp32_recipe):
    """The fidelity twin of real weights: deterministic, but the harmonic sine is there
    (the noise-only parity graph has it replaced by zeros)."""
    voiced = export_fp32(tiny, fp32_recipe, parity=True, voiced=True)
    parity = export_fp32(tiny, fp32_recipe, parity=True)
    assert voiced != parity
    assert not RANDOM_OPS & {n.op_type for n in onnx.load(str(voiced)).graph.node}
    assert _sine_ops(voiced) > _sine_ops(parity)


def test_voiced_mode_is_deterministic_and_restores_the_random_source(tiny, tiny_model):
    import numpy as np
    import torch

    from publisher.export.parity import parity_mode
    from publisher.model.kmodel import run_torch
    from publisher.verify.measure import probe_ids

    ids, style = probe_ids(tiny, 40), tiny.voices[tiny.sample_voice][37]
    with parity_mode(tiny_model, voiced=True):
        a = run_torch(tiny_model, ids, style).waveform
        b = run_torch(tiny_model, ids, style).waveform
    with parity_mode(tiny_model):
        silent = run_torch(tiny_model, ids, style).waveform
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - silent)) > 1e-3 * np.max(np.abs(a))  # the sine is heard
    torch.manual_seed(1)
    c = run_torch(tiny_model, ids, style).waveform
    torch.manual_seed(2)
    d = run_torch(tiny_model, ids, style).waveform
    assert not np.array_equal(c, d)  # random source back after the switch


def test_fidelity_is_voiced_for_real_weights_only(tiny):
    from dataclasses import replace

    from publisher.verify.measure import voiced_fidelity

    assert not voiced_fidelity(tiny)
    assert not voiced_fidelity(replace(tiny, synthetic=False))  # a saved copy of tiny
    config = {k: v for k, v in tiny.config.items() if k != "publisher_synthetic"}
    assert voiced_fidelity(replace(tiny, synthetic=False, config=config))
