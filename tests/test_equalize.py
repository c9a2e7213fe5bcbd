"""equalize-residuals (passes/equalize.py): per-channel scales on the generator's residual
streams leave the float graph's output as it was, and change the weights that write them."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from publisher.passes import PassContext
from publisher.passes.equalize import equalize_pass
from publisher.passes.quantize import CorpusReader
from publisher.passes.snake import fold_snake
from publisher.recipe.loader import load_recipe
from publisher.runtime.errors import ExportError

UPS = "/decoder/generator/ups.0/ConvTranspose"


@pytest.fixture
def tiny_ctx(tiny) -> PassContext:
    return PassContext(config=tiny.config, voices=tiny.voices)


def _weight(model: onnx.ModelProto, node_name: str) -> np.ndarray:
    node = next(n for n in model.graph.node if n.name == node_name)
    init = next(t for t in model.graph.initializer if t.name == node.input[1])
    return numpy_helper.to_array(init)


def test_equalized_graph_computes_what_it_computed_and_its_stream_writers_changed(
    tiny_dist, tiny_ctx
):
    model = onnx.load(str(tiny_dist / "fp32" / "onnx" / "model.onnx"))
    fold_snake(model)
    before = model.SerializeToString()
    after = equalize_pass(model, load_recipe("cpu-int8"), tiny_ctx)
    assert len(tiny_ctx.notes["equalized_stages"]) == 2
    # every convs1 of the generator's residual pairs (6 blocks + 2 source blocks, 3 each)
    # and conv1 of the decoder's 5 blocks: each read by a norm only
    assert tiny_ctx.notes["equalized_convs_before_a_norm"] == 29
    assert all(spread > 1.0 for spread in tiny_ctx.notes["equalized_stages"])
    original = onnx.ModelProto.FromString(before)
    assert not np.allclose(_weight(original, UPS), _weight(after, UPS))
    feed = CorpusReader(tiny_ctx, 2).feeds[1]
    want = ort.InferenceSession(before).run(None, feed)
    got = ort.InferenceSession(after.SerializeToString()).run(None, feed)
    np.testing.assert_array_equal(got[1], want[1])  # durations
    np.testing.assert_allclose(got[0], want[0], atol=1e-5 * np.abs(want[0]).max())


def test_a_graph_without_the_generator_is_one_line(tiny_ctx):
    model = onnx.helper.make_model(onnx.helper.make_graph([], "empty", [], []), ir_version=8)
    with pytest.raises(ExportError, match="equalize-residuals: the graph has no node .*"):
        equalize_pass(model, load_recipe("cpu-int8"), tiny_ctx)
