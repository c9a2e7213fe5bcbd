"""Static token-bucket graphs (publisher/export/bucket/) on the tiny synthetic model.

The b16 recipe with F set to 40 frames (its default, 5B/2 + 48 = 88, is sized for real
speech) keeps exports quick; the tiny model's durations are about 3 frames a token, so F
overflows from about 12 tokens at speed 1, which the overflow tests use on purpose.
"""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import publisher.runtime.synth as synth
from publisher.export.bucket.shape import bucket_shape, tail_margin_samples
from publisher.export.fp32 import export_fp32
from publisher.export.parity import parity_mode
from publisher.model.kmodel import run_torch
from publisher.passes import PassContext, run_passes
from publisher.passes.bucket_check import BANNED_OPS, bucket_check_pass, op_counts
from publisher.recipe.loader import load_recipe
from publisher.recipe.schema import Export
from publisher.runtime.constants import SAMPLES_PER_FRAME
from publisher.runtime.errors import PublisherError, RecipeError
from publisher.runtime.metrics import spectral_correlation
from publisher.runtime.synth import bucket_info, open_session, run_bucket_once, run_onnx
from publisher.verify.measure import probe_ids

B, F = 16, 40
S = SAMPLES_PER_FRAME * F + tail_margin_samples(B)  # the default output length
# Measured on synthetic:tiny (fp32 parity graph vs unpadded parity-mode torch): about
# 5e-8 max abs on a peak of about 0.035, i.e. float rounding; the bound leaves 20x room.
CONTENT_MAX_ABS = 1e-6
FASTKOKORO_KEYS = (
    "fastkokoro.fixed_alignment_frames",
    "fastkokoro.content_samples_per_duration_frame",
    "fastkokoro.fixed_output_samples",
    "fastkokoro.output_tail_margin_samples",
)


@pytest.fixture(scope="module")
def b16():
    recipe = load_recipe("b16")
    return recipe.model_copy(
        update={"export": recipe.export.model_copy(update={"alignment_frames": F})}
    )


@pytest.fixture(scope="module")
def parity_session(tiny, b16):
    return open_session(export_fp32(tiny, b16, parity=True))


@pytest.fixture(scope="module")
def shipped(tiny, b16, tmp_path_factory):
    """The b16 variant as the build makes it (fp16 decoder, passes, metadata)."""
    from publisher.build import onnx_metadata

    graph = export_fp32(tiny, b16)
    ctx = PassContext(config=tiny.config, metadata=onnx_metadata(b16, tiny), voices=tiny.voices)
    model = run_passes(onnx.load(str(graph)), b16, ctx)
    path = tmp_path_factory.mktemp("b16") / "b16.onnx"
    onnx.save(model, str(path))
    return path


def _style(tiny, n: int) -> np.ndarray:
    return synth.style_row(tiny.voices[tiny.sample_voice], n)


def _torch(model, ids, style, speed):
    with parity_mode(model):
        return run_torch(model, list(ids), style, speed)


@pytest.mark.parametrize("n", [1, 5, 9, 14])
@pytest.mark.parametrize("speed", [1.0, 1.6])
def test_padded_durations_equal_unpadded_durations_exactly(
    tiny, tiny_model, parity_session, n, speed
):
    ids = probe_ids(tiny, n + 2)
    style = _style(tiny, n)
    wave, dur = run_bucket_once(parity_session, ids, style, speed)
    ref = _torch(tiny_model, ids, style, speed)
    assert dur.shape == (B,) and wave.shape == (S,)
    np.testing.assert_array_equal(dur[: n + 2], ref.durations)
    assert not dur[n + 2 :].any()  # zeros on padding


@pytest.mark.parametrize(("n", "speed"), [(1, 1.0), (5, 1.0), (9, 1.0), (14, 1.6)])
def test_bucket_content_matches_the_unpadded_model_and_the_tail_is_exact_zeros(
    tiny, tiny_model, parity_session, n, speed
):
    ids = probe_ids(tiny, n + 2)
    style = _style(tiny, n)
    wave, dur = run_bucket_once(parity_session, ids, style, speed)
    ref = _torch(tiny_model, ids, style, speed)
    assert int(dur.sum()) <= F  # fits: no re-split involved
    content = SAMPLES_PER_FRAME * int(dur.sum())
    assert content == ref.waveform.size  # every sample the unpadded model makes
    assert np.max(np.abs(wave[:content] - ref.waveform)) <= CONTENT_MAX_ABS
    assert spectral_correlation(ref.waveform, wave[:content]) > 0.999999
    assert np.all(wave[content:] == 0.0)


def test_run_onnx_pads_ids_feeds_lengths_and_returns_only_the_content(
    tiny, tiny_model, parity_session
):
    n = 6
    ids, style = probe_ids(tiny, n + 2), _style(tiny, n)
    info = bucket_info(parity_session)
    assert (info.bucket, info.frames, info.samples_per_frame) == (B, F, SAMPLES_PER_FRAME)
    out = run_onnx(parity_session, ids, style)
    ref = _torch(tiny_model, ids, style, 1.0)
    np.testing.assert_array_equal(out.durations, ref.durations)
    assert out.waveform.shape == ref.waveform.shape
    assert out.tail_max_abs == 0.0 and out.pieces == 1


def test_overflow_is_resplit_at_a_space_and_each_piece_matches_the_unpadded_model(
    tiny, tiny_model, parity_session, monkeypatch
):
    space = tiny.config["vocab"][" "]
    words = probe_ids(tiny, 7)
    ids = [*words, space, *words[:4], space, *words[:3]]  # 15 phonemes: over B - 2 = 14
    style, speed = _style(tiny, len(ids)), 0.6  # slow: about 5 frames a token, over F
    calls: list[tuple[list[int], int]] = []

    def recording(session, part, style_row, spd):
        wave, dur = run_bucket_once(session, part, style_row, spd)
        calls.append((list(part), int(dur.sum())))
        return wave, dur

    monkeypatch.setattr(synth, "run_bucket_once", recording)
    out = synth.synthesize_bucket(parity_session, ids, style, speed)
    kept = [part for part, frames in calls if frames <= F]
    assert out.pieces == len(kept) >= 2
    assert any(frames > F for _, frames in calls)  # the duration output showed overflow
    assert sum(kept, []) == ids  # nothing lost or repeated
    assert kept[0][-1] == space  # first cut right after a space, not mid-word
    refs = [_torch(tiny_model, part, style, speed) for part in kept]
    expected = np.concatenate([r.waveform for r in refs])
    assert out.waveform.shape == expected.shape
    assert np.max(np.abs(out.waveform - expected)) <= CONTENT_MAX_ABS
    np.testing.assert_array_equal(out.durations, np.concatenate([r.durations for r in refs]))
    assert out.tail_max_abs == 0.0


def test_bucket_graph_is_static_and_free_of_banned_ops(shipped):
    model = onnx.load(str(shipped))
    counts = op_counts(model)
    assert not [op for op in BANNED_OPS if counts[op]]
    dims = {
        v.name: [
            d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim
        ]
        for v in (*model.graph.input, *model.graph.output)
    }
    assert dims == {
        "input_ids": [1, B],
        "style": [1, 256],
        "speed": [1],
        "input_lengths": [1],
        "waveform": [S],
        "duration": [B],
    }
    # the decoder runs in float16, ALBERT, encoders and predictor stay float32
    weights = {t.name: t.data_type for t in model.graph.initializer}
    assert TensorProto.FLOAT16 in weights.values() and TensorProto.FLOAT in weights.values()


def test_bucket_metadata_carries_the_four_fastkokoro_keys_and_ours(shipped, tiny):
    meta = {p.key: p.value for p in onnx.load(str(shipped)).metadata_props}
    assert all(key in meta for key in FASTKOKORO_KEYS)
    assert meta["fastkokoro.fixed_alignment_frames"] == str(F)
    assert meta["fastkokoro.content_samples_per_duration_frame"] == "600"
    assert meta["fastkokoro.fixed_output_samples"] == str(S)
    assert meta["fastkokoro.output_tail_margin_samples"] == str(tail_margin_samples(B))
    assert meta["publisher.bucket"] == str(B)
    assert json.loads(meta["kokoro_config"])["vocab"] == tiny.config["vocab"]


def test_shipped_bucket_graph_with_random_source_keeps_a_silent_tail(tiny, shipped):
    session = open_session(shipped)
    ids = probe_ids(tiny, 10)
    wave, dur = run_bucket_once(session, ids, _style(tiny, 8))
    content = SAMPLES_PER_FRAME * int(dur.sum())
    assert np.isfinite(wave).all() and np.abs(wave[:content]).max() > 0
    assert np.all(wave[content:] == 0.0)


def _graph_with(op: str) -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [4])
    y = helper.make_tensor_value_info("y", TensorProto.INT64, [1, 4])
    node = helper.make_node(op, ["x"], ["y"], name=f"/{op}")
    return helper.make_model(helper.make_graph([node], "g", [x], [y]))


def test_bucket_check_fails_a_graph_with_nonzero_naming_op_and_count(b16):
    ctx = PassContext(config={})
    with pytest.raises(PublisherError) as err:
        bucket_check_pass(_graph_with("NonZero"), b16, ctx)
    message = str(err.value)
    assert "\n" not in message
    assert "NonZero x1" in message and message.startswith("bucket-check:")


def test_bucket_check_fails_a_graph_with_a_dynamic_output(b16):
    model = _graph_with("Identity")
    model.graph.output[0].type.tensor_type.shape.dim[1].dim_param = "samples"
    with pytest.raises(PublisherError, match=r"bucket-check: .*y \[1, 'samples'\]"):
        bucket_check_pass(model, b16, PassContext(config={}))


def test_output_samples_below_600_per_alignment_frame_is_a_recipe_error(b16):
    bad = b16.model_copy(update={"export": Export(shape="bucket", bucket=16, output_samples=100)})
    with pytest.raises(RecipeError, match=r"export.output_samples: must be at least 600 \*"):
        bucket_shape(bad)
    more = b16.model_copy(
        update={"export": Export(shape="bucket", bucket=16, output_samples=60000)}
    )
    assert bucket_shape(more).output_samples == 60000


def test_bucket_family_recipes_resolve_with_b64_as_default():
    for b in (16, 24, 32, 48, 64, 96, 128):
        r = load_recipe(f"b{b}")
        assert (r.export.shape, r.export.bucket) == ("bucket", b)
        shape = bucket_shape(r)
        assert shape.frames == 5 * b // 2 + 48  # the default: no leaf overrides it
        # fastkokoro plans (S - margin) // 600 frames a call: exactly the graph's F
        assert (shape.output_samples - tail_margin_samples(b)) // SAMPLES_PER_FRAME == shape.frames
        assert r.output.path == f"onnx/kokoro-82m-streaming-b{b}-fp16.onnx"
        assert r.passes[-1] == "bucket-check" and r.precision.fp16.mode == "decoder-only"
    assert "default" in load_recipe("b64").description.lower()


def test_bucket_build_verifies_content_tail_and_reports_skips(tmp_path):
    from publisher.build import build

    result = build(load_recipe("b16"), checkpoint="synthetic:tiny", out_dir=tmp_path)
    v = result.manifest.verification.model_dump()
    assert v["passed"] is True
    gates = {g["gate"]: g for g in v["gates"]}
    assert gates["bucket_tail_silent"]["measured"] == 0.0
    assert gates["bucket_content_complete"]["passed"]
    assert gates["parity_max_abs"]["measured"] <= CONTENT_MAX_ABS
    bucket = v["bucket"]
    assert bucket["skipped_too_long"]  # the corpus sentences are longer than 14 phonemes
    assert all(r["kept_past_anchor_samples"] == 120 * r["frames"] for r in bucket["items"])
    assert "kept past the anchor" in (result.folder / "verify.md").read_text()


def test_stream_plays_the_pieces_in_order_as_each_call_returns(tiny, tiny_model, parity_session):
    space = tiny.config["vocab"][" "]
    words = probe_ids(tiny, 7)
    ids = [*words, space, *words[:4], space, *words[:3]]  # over B - 2: re-split
    style = _style(tiny, len(ids))
    chunks = list(synth.stream(parity_session, ids, style, 0.6))
    pieces = list(synth.iter_bucket(parity_session, ids, style, 0.6))
    assert len(chunks) == len(pieces) >= 2
    first_ids = ids[: len(pieces[0].durations) - 2]  # the first piece is the sentence's start
    ref = _torch(tiny_model, first_ids, style, 0.6)
    assert chunks[0].shape == ref.waveform.shape
    assert np.max(np.abs(chunks[0] - ref.waveform)) <= CONTENT_MAX_ABS
    whole = synth.synthesize_bucket(parity_session, ids, style, 0.6).waveform
    np.testing.assert_array_equal(np.concatenate(chunks), whole)


def test_first_audio_of_a_bucket_file_comes_after_one_call_a_dynamic_file_after_all(
    tiny, tiny_model, shipped
):
    from publisher.bench import Target
    from publisher.first_audio import markdown_table, run_first_audio

    dynamic = export_fp32(tiny, load_recipe("fp32"))
    space = tiny.config["vocab"][" "]
    words = probe_ids(tiny, 7)
    ids = [*words, space, *words, space, *words]  # 23 phonemes: two b16 calls at least
    targets = [Target("b16", str(shipped)), Target("fp32", str(dynamic))]
    voice = tiny.voices[tiny.sample_voice]
    b16, fp32 = run_first_audio(targets, ids, voice, threads=1, warmup=0, repeats=2)
    assert (b16.runs, fp32.runs) == (2, 2) and not b16.error and not fp32.error
    assert b16.chunks >= 2 and 0 < b16.first_audio_seconds < b16.audio_seconds
    assert b16.first_seconds < b16.total_seconds
    assert fp32.chunks == 1 and fp32.first_audio_seconds == fp32.audio_seconds
    table = markdown_table([b16, fp32], "a sentence")
    assert f"| b16 | {b16.first_seconds * 1000:.0f} |" in table
