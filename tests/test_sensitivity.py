"""publisher.sensitivity: candidates, the switched graph, ranking, validation, the command."""

from __future__ import annotations

import json

import click
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import yaml
from click.testing import CliRunner
from onnx import TensorProto, helper, numpy_helper

from publisher.cli.sensitivity import sensitivity_command
from publisher.export.fp32 import export_fp32
from publisher.recipe.loader import load_recipe
from publisher.runtime.errors import PublisherError
from publisher.sensitivity.graph import (
    SWITCHES,
    conversion,
    find_candidates,
    instrument,
    weight_delta,
)
from publisher.sensitivity.output import excludes_yaml, size_estimate
from publisher.sensitivity.ranking import rank_nodes
from publisher.sensitivity.scoring import Scorer, probes, run_waves
from publisher.sensitivity.validate import quantize_nodes, spearman, spread

INT8 = """\
description: "int8 dynamic for sensitivity tests"
checkpoint: synthetic:tiny
precision:
  quantize:
    type: dynamic
    weight_type: int8
{extra}passes: [quantize-dynamic]
"""
ITEMS = ["short-1"]  # one 20-phoneme input keeps a full tiny ranking to a few seconds


def _recipe(folder, name="int8", extra="", text=None):
    path = folder / f"{name}.yaml"
    path.write_text(text if text is not None else INT8.format(extra=extra))
    return load_recipe(path)


@pytest.fixture(scope="module")
def int8(tmp_path_factory):
    return _recipe(tmp_path_factory.mktemp("recipes"))


@pytest.fixture(scope="module")
def int8_some(tmp_path_factory):
    """Without the generator's resblocks: 101 of tiny's 173 candidates, a quicker ranking."""
    extra = '    exclude: ["/decoder/generator/resblocks.*"]\n'
    return _recipe(tmp_path_factory.mktemp("recipes"), extra=extra)


@pytest.fixture(scope="module")
def graph(tiny, int8):
    path = export_fp32(tiny, int8, parity=True)
    return path, onnx.load(str(path))


@pytest.fixture(scope="module")
def ranked(tiny, int8_some):
    """One validated ranking on tiny, shared by the tests that read it."""
    return rank_nodes(tiny, int8_some, items=ITEMS, validate=5, sample=6)


def _switched(model, cands, recipe):
    data = instrument(model, cands, recipe).SerializeToString()
    return ort.InferenceSession(data, providers=["CPUExecutionProvider"])


def test_candidates_are_exactly_the_nodes_quantize_dynamic_converts(graph, int8, tmp_path):
    path, model = graph
    cands = find_candidates(model, int8)
    ops = {c.name: c.op_type for c in cands}
    assert set(ops.values()) == {"Conv", "Gemm", "MatMul", "LSTM"}  # ConvTranspose stays
    from onnxruntime.quantization import quantize_dynamic

    quantize_dynamic(str(path), str(tmp_path / "all.onnx"))
    quantized = onnx.load(str(tmp_path / "all.onnx")).graph.node
    converted = {n.name for n in model.graph.node} - {n.name for n in quantized}
    assert converted == set(ops)
    integer_ops = ("ConvInteger", "MatMulInteger", "DynamicQuantizeLSTM")
    assert sum(n.op_type in integer_ops for n in quantized) == len(cands)


@pytest.mark.parametrize("extra", ["", "    per_channel: true\n", "    weight_type: uint8\n"])
def test_fake_weights_equal_the_dequantized_weights_quantize_dynamic_writes(graph, tmp_path, extra):
    text = INT8.format(extra=extra).replace("int8\n    weight_type: uint8", "uint8")
    recipe = _recipe(tmp_path, text=text)
    path, model = graph
    cands = find_candidates(model, recipe)
    ops = {c.name: c.op_type for c in cands}
    out = quantize_nodes(path, recipe, list(ops), ops, tmp_path / "q.onnx")
    q = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(out)).graph.initializer}
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for c in cands:
        node = model.graph.node[c.index]
        for j in c.weights:
            name, w = node.input[j], inits[node.input[j]]
            fake = w + weight_delta(w, node, "dynamic", recipe)
            data = q[f"{name}_quantized"].astype(np.float32)
            scale, zp = q[f"{name}_scale"], q[f"{name}_zero_point"].astype(np.float32)
            if c.op_type == "LSTM":  # stored transposed; scales per direction (or gate row)
                data = np.transpose(data, (0, 2, 1))
                scale = scale.reshape(scale.shape + (1,) * (3 - scale.ndim))
                zp = zp.reshape(zp.shape + (1,) * (3 - zp.ndim))
            deq = (data - zp) * scale
            if c.op_type == "Gemm" and any(a.name == "transB" and a.i for a in node.attribute):
                deq = deq.T  # the quantizer transposes B when it rewrites Gemm to MatMul
            assert np.array_equal(deq.astype(np.float32), fake), (c.name, extra)


def _shared_weight_model(path):
    """x -> MatMul(W) -> Relu -> MatMul(W) -> Relu -> MatMul(W) -> MatMul(V)."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(size=(8, 8)).astype(np.float32), name)
        for name in ("W", "V")
    ]
    nodes = [
        helper.make_node("MatMul", ["x", "W"], ["a"], "first"),
        helper.make_node("Relu", ["a"], ["r"], "relu"),
        helper.make_node("MatMul", ["r", "W"], ["b"], "second"),
        helper.make_node("Relu", ["b"], ["t"], "relu_2"),
        helper.make_node("MatMul", ["t", "W"], ["c"], "third"),
        helper.make_node("MatMul", ["c", "V"], ["y"], "fourth"),
    ]
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 8]) for n in ("x", "y")]
    graph = helper.make_graph(nodes, "shared", io[:1], io[1:], weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    onnx.save(model, str(path))
    return model


def test_switch_i_equals_quantize_dynamic_of_node_i_even_for_a_shared_weight(tmp_path):
    # quantize_dynamic stores a shared weight once: quantizing "first" or "second" alone
    # makes every other reader of W read DequantizeLinear(int8 W), "first" included, while
    # quantizing the last reader "third" leaves the float W to the others
    recipe = _recipe(tmp_path)
    model = _shared_weight_model(tmp_path / "m.onnx")
    cands = find_candidates(model, recipe)
    assert [c.name for c in cands] == ["first", "second", "third", "fourth"]
    session = _switched(model, cands, recipe)
    x = np.random.default_rng(1).normal(size=(2, 8)).astype(np.float32)
    plain = ort.InferenceSession(str(tmp_path / "m.onnx")).run(None, {"x": x})[0]
    switches = np.zeros(len(cands), np.float32)
    assert np.array_equal(session.run(None, {"x": x, SWITCHES: switches})[0], plain)
    ops = {c.name: c.op_type for c in cands}
    for i, c in enumerate(cands):
        switches[:] = 0
        switches[i] = 1
        fake = session.run(None, {"x": x, SWITCHES: switches})[0]
        out = quantize_nodes(tmp_path / "m.onnx", recipe, [c.name], ops, tmp_path / "q.onnx")
        real = ort.InferenceSession(str(out)).run(None, {"x": x})[0]
        np.testing.assert_allclose(fake, real, rtol=1e-5, atol=1e-5)
        assert not np.allclose(fake, plain, rtol=1e-5, atol=1e-5)


def test_all_switches_off_is_the_parity_graph_and_one_switch_changes_it(tiny, int8, graph):
    path, model = graph
    cands = find_candidates(model, int8)
    probe = probes(tiny, ITEMS)
    plain = run_waves(ort.InferenceSession(str(path)), probe)[0]
    session = _switched(model, cands, int8)
    switches = np.zeros(len(cands), np.float32)
    off = run_waves(session, probe, {SWITCHES: switches})[0]
    assert np.max(np.abs(off - plain)) < 1e-6
    post = next(i for i, c in enumerate(cands) if c.name.endswith("conv_post/Conv"))
    switches[post] = 1
    on = run_waves(session, probe, {SWITCHES: switches})[0]
    assert on.shape == plain.shape and 1e-6 < np.max(np.abs(on - plain)) < 0.5


def test_ranking_covers_every_candidate_once_worst_first(ranked, graph, int8_some):
    names = [r.node for r in ranked.rows]
    assert sorted(names) == sorted(c.name for c in find_candidates(graph[1], int8_some))
    assert not [n for n in names if n.startswith("/decoder/generator/resblocks.")]
    assert len(set(names)) == len(names) == ranked.summary["candidates"]
    assert [r.rank for r in ranked.rows] == list(range(1, len(names) + 1))
    damages = [r.damage for r in ranked.rows]
    assert damages == sorted(damages, reverse=True) and damages[0] > 0
    assert ranked.summary["baseline_max_abs_vs_parity_graph"] < 1e-6
    post = ranked.summary["conv_post"]
    assert post["node"] == "/decoder/generator/conv_post/Conv" and 1 <= post["rank"] <= len(names)


def test_exclude_globs_remove_nodes_from_the_ranking(tiny, tmp_path):
    globs = '    exclude: ["/decoder/*", "/bert/*", "/text_encoder/*"]\n'
    recipe = _recipe(tmp_path, extra=globs)
    ranking = rank_nodes(tiny, recipe, items=ITEMS)
    names = [r.node for r in ranking.rows]
    assert names and not [n for n in names if n.startswith(("/decoder/", "/bert/", "/text_"))]
    assert ranking.summary["conv_post"]["rank"] is None  # excluded, so not ranked


def test_fast_damage_ranks_nodes_like_real_one_node_quantization(ranked):
    v = ranked.summary["validation"]
    assert len(v["agreement"]) == 6
    assert [a["rank"] for a in v["agreement"]][0] == 1
    # measured 1.0 on tiny: fake quantization reproduces the quantizer's weights exactly,
    # so the scores differ only by integer vs float accumulation
    assert v["spearman_damage"] > 0.8


def test_worst_k_nodes_hurt_more_than_random_k_when_really_quantized(ranked):
    v = ranked.summary["validation"]
    assert len(v["random_k"]) == 3 and v["worst_beats_every_random"]
    assert v["worst_k"]["damage"] > 10 * v["random_k_mean_damage"]  # measured ~1e5 times


def test_spearman_handles_ties_and_order():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 1, 2, 3], [5, 5, 6, 7]) == pytest.approx(1.0)
    assert spread(173, 6) == [0, 34, 69, 103, 138, 172]


def test_excludes_snippet_is_a_recipe_fragment_and_shrinks_less(ranked, tmp_path):
    threshold = ranked.rows[3].damage
    text = excludes_yaml(ranked, threshold)
    snippet = yaml.safe_load(text)
    excluded = snippet["precision"]["quantize"]["exclude"]
    assert excluded == ["/decoder/generator/resblocks.*", *(r.node for r in ranked.rows[:3])]
    merged = INT8.format(extra=f"    exclude: {json.dumps(excluded)}\n")
    recipe = _recipe(tmp_path, "merged", text=merged)
    path = ranked.graph
    left = {c.name for c in find_candidates(onnx.load(str(path)), recipe)}
    assert left == {r.node for r in ranked.rows[3:]}
    size = size_estimate(ranked, excluded[1:])
    assert size["all_converted_bytes"] < size["estimated_bytes"] < size["fp32_bytes"]


def test_fp16_and_int4_recipes_switch_their_own_conversions(tiny, graph, tmp_path):
    fp16 = _recipe(
        tmp_path,
        "fp16",
        text='description: "fp16"\nprecision:\n  fp16:\n    mode: all\n    block_ops: [LSTM]\n'
        "passes: [fp16]\n",
    )
    int4 = _recipe(
        tmp_path,
        "int4",
        text='description: "int4"\nprecision:\n  quantize:\n    type: int4\n    block_size: 32\n'
        "passes: [quantize-int4]\n",
    )
    path, model = graph
    probe = probes(tiny, ITEMS)
    plain = run_waves(ort.InferenceSession(str(path)), probe)[0]
    for recipe, ops in ((fp16, {"Conv", "LayerNormalization"}), (int4, {"MatMul", "Gemm"})):
        cands = find_candidates(model, recipe)
        found = {c.op_type for c in cands}
        assert ops <= found and "LSTM" not in found
        assert all(c.bytes_after < c.bytes_now for c in cands)
        session = _switched(model, cands, recipe)
        switches = np.zeros(len(cands), np.float32)
        assert np.array_equal(run_waves(session, probe, {SWITCHES: switches})[0], plain)
        switches[:] = 1
        assert not np.array_equal(run_waves(session, probe, {SWITCHES: switches})[0], plain)


def test_cli_writes_ranking_files_and_the_excludes_snippet(tiny, tmp_path):
    recipe = tmp_path / "q8.yaml"
    recipe.write_text(INT8.format(extra='    exclude: ["/bert/*", "/decoder/generator/*"]\n'))
    out = tmp_path / "out"
    args = ["--recipe", str(recipe), "--out", str(out), "--item", "short-1"]
    result = CliRunner().invoke(
        sensitivity_command, [*args, "--threshold", "1e-9", "--write-excludes"]
    )
    assert result.exit_code == 0, result.output
    folder = out / "sensitivity" / "q8"
    rows = json.loads((folder / "ranking.json").read_text())
    csv_lines = (folder / "ranking.csv").read_text().splitlines()
    assert csv_lines[0] == "rank,node,op_type,params,bytes_now,bytes_after,damage,log_mel"
    assert len(csv_lines) == len(rows) + 1 and rows[0]["rank"] == 1
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["candidates"] == len(rows) and (folder / "top30.png").stat().st_size > 0
    snippet = yaml.safe_load((folder / "excludes.yaml").read_text())
    excluded = snippet["precision"]["quantize"]["exclude"]
    assert excluded[:2] == ["/bert/*", "/decoder/generator/*"]  # the recipe's own globs
    assert excluded[2:] == [r["node"] for r in rows if r["damage"] > 1e-9] != []
    assert "precision:\n  quantize:\n    exclude:" in result.output
    assert "estimated size" in result.output


def test_recipe_without_precision_conversion_is_a_one_line_error(tiny, tmp_path):
    plain = _recipe(tmp_path, "plain", text='description: "fp32 only"\n')
    with pytest.raises(PublisherError, match="nothing to rank") as err:
        conversion(plain)
    assert "\n" not in str(err.value)
    with pytest.raises(PublisherError, match="nothing to rank"):
        rank_nodes(tiny, plain)

    from publisher.cli import _Group

    @click.group(cls=_Group)
    def cli() -> None:
        pass

    cli.add_command(sensitivity_command)
    result = CliRunner().invoke(cli, ["sensitivity", "--recipe", str(tmp_path / "plain.yaml")])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: recipe plain: nothing to rank")


def _voiced(seconds: float = 2.0, rate: int = 24000) -> np.ndarray:
    """A speech-like test signal: a gliding 120-180 Hz buzz with 20 harmonics, syllable-rate
    amplitude modulation (4 Hz)."""
    t = np.arange(int(seconds * rate)) / rate
    phase = 2 * np.pi * np.cumsum(150 + 30 * np.sin(2 * np.pi * 0.5 * t)) / rate
    buzz = sum(np.sin(k * phase) / k for k in range(1, 21))
    return (0.3 * buzz * (0.55 + 0.45 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_dnsmos_score_is_zero_for_the_reference_and_positive_for_a_noisy_copy():
    clean = _voiced()
    noisy = clean + np.random.default_rng(0).normal(0, 0.2, clean.size).astype(np.float32)
    scorer = Scorer([clean], score="dnsmos")
    same, _ = scorer.score([clean.copy()])
    worse, mel = scorer.score([noisy])
    assert same == 0.0
    assert worse > 0.3 and mel > 0  # DNSMOS (speechmos's own models) hears the noise


def test_an_unknown_score_or_missing_dnsmos_tools_is_one_line(tiny, int8, monkeypatch, tmp_path):
    with pytest.raises(PublisherError, match="unknown sensitivity score 'wer'"):
        rank_nodes(tiny, int8, score="wer")
    monkeypatch.setattr(
        "publisher.runtime.speech.missing_tools", lambda: "speech gates need speechmos"
    )
    recipe = tmp_path / "q8.yaml"
    recipe.write_text(INT8.format(extra=""))
    result = CliRunner().invoke(sensitivity_command, ["--recipe", str(recipe), "--score", "dnsmos"])
    assert result.exit_code != 0
    assert "--score dnsmos: speech gates need speechmos" in str(result.exception or result.output)
