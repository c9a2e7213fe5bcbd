"""Quantization passes over onnxruntime.quantization: dynamic int8, static uint8 (with
calibration from the corpus), and 4-bit weight-only MatMulNBits.

Conv layers always take uint8 weights in the dynamic pass: ConvInteger kernels for int8
weights are missing from some runtimes people load these files in. Exclude globs match
node names. The quantizers log a warning per tensor they cannot type-infer (Kokoro's
shape ops); those go to the log at DEBUG level instead of the terminal.
"""

from __future__ import annotations

import contextlib
import fnmatch
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.passes import PassContext, roundtrip
from publisher.passes import ranges as range_stats
from publisher.passes.ranges import calibration_ranges, minmax_tensors, overrides
from publisher.runtime.corpus import load_corpus
from publisher.runtime.errors import BuildError
from publisher.runtime.synth import padded_ids, style_row

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.passes import Problem
    from publisher.recipe.schema import Recipe

DYNAMIC_OPS = ("MatMul", "Gemm", "LSTM")
STATIC_OPS = ("Conv", "MatMul", "Gemm")


def recipe_problem(recipe: Recipe, name: str) -> Problem | None:
    """``quantize-KIND`` carries out precision.quantize.type KIND, and no other."""
    kind, have = name.removeprefix("quantize-"), recipe.precision.quantize.type
    if have != kind:
        return "passes", f"'{name}' needs precision.quantize.type '{kind}', got {have!r}"
    return None


@contextlib.contextmanager
def quiet_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def left_float(name: str, exclude: tuple[str, ...], include: tuple[str, ...] = ()) -> bool:
    """Whether a node stays float: it matches an ``exclude`` glob, or ``include`` globs are
    given and it matches none of them."""
    if any(fnmatch.fnmatchcase(name, p) for p in exclude):
        return True
    return bool(include) and not any(fnmatch.fnmatchcase(name, p) for p in include)


def excluded_nodes(
    model: onnx.ModelProto, patterns: tuple[str, ...], include: tuple[str, ...] = ()
) -> list[str]:
    return [n.name for n in model.graph.node if left_float(n.name, patterns, include)]


def _qtype(name: str):
    from onnxruntime.quantization import QuantType

    return {"int8": QuantType.QInt8, "uint8": QuantType.QUInt8}[name]


def _keep_metadata(fn):
    def wrapped(model, recipe, ctx):
        metadata = list(model.metadata_props)
        out = fn(model, recipe, ctx)
        del out.metadata_props[:]
        out.metadata_props.extend(metadata)
        return out

    wrapped.__name__ = fn.__name__
    wrapped.__doc__ = fn.__doc__
    return wrapped


DYNAMIC_CONV_WEIGHT = "uint8"  # ConvInteger with int8 weights is missing from some runtimes


def weight_type(op_type: str, kind: str, recipe: Recipe) -> str:
    """The 8-bit weight type a node gets: the recipe's, except in the dynamic pass Conv
    (always ``DYNAMIC_CONV_WEIGHT``) and LSTM (int8 only)."""
    if kind == "dynamic" and op_type == "Conv":
        return DYNAMIC_CONV_WEIGHT
    if kind == "dynamic" and op_type == "LSTM":
        return "int8"
    return recipe.precision.quantize.weight_type


def weight_symmetric(recipe: Recipe, kind: str, wtype: str) -> bool:
    """Whether weights are quantized symmetrically: never unless ``symmetric`` (default true);
    then for the dynamic pass int8 only (uint8 keeps a zero point, onnxruntime's default),
    for the static pass and int4 always. The build's quantizers and ``publisher
    sensitivity``'s fake quantization both take it from here."""
    if not recipe.precision.quantize.symmetric:
        return False
    return wtype == "int8" if kind == "dynamic" else True


def quantize_dynamic_file(
    src: Path,
    dst: Path,
    recipe: Recipe,
    wtype: str,
    *,
    op_types: list[str] | None = None,
    nodes_to_quantize: list[str] | None = None,
    nodes_to_exclude: list[str] | None = None,
) -> None:
    """onnxruntime's ``quantize_dynamic`` with the recipe's settings and ``wtype`` weights."""
    from onnxruntime.quantization import quantize_dynamic

    q = recipe.precision.quantize
    quantize_dynamic(
        str(src),
        str(dst),
        op_types_to_quantize=op_types,
        per_channel=q.per_channel,
        weight_type=_qtype(wtype),
        nodes_to_quantize=nodes_to_quantize,
        nodes_to_exclude=nodes_to_exclude,
        extra_options={"WeightSymmetric": weight_symmetric(recipe, "dynamic", wtype)},
    )


@_keep_metadata
def quantize_dynamic_pass(
    model: onnx.ModelProto, recipe: Recipe, ctx: PassContext
) -> onnx.ModelProto:
    """MatMul/Gemm/LSTM with the recipe's weight type, then Conv with uint8 weights."""
    q = recipe.precision.quantize
    ops = list(q.op_types) or [*DYNAMIC_OPS, "Conv"]
    excluded = excluded_nodes(model, q.exclude, q.include)

    def run(op_types: list[str], wtype: str):
        def tool(src, dst):
            quantize_dynamic_file(
                src, dst, recipe, wtype, op_types=op_types, nodes_to_exclude=excluded
            )

        return tool

    with quiet_quantizer():
        others = [op for op in ops if op != "Conv"]
        if others:
            model = roundtrip(model, run(others, q.weight_type))
        if "Conv" in ops:
            model = roundtrip(model, run(["Conv"], DYNAMIC_CONV_WEIGHT))
    return model


class CorpusReader:
    """Calibration feeds from the corpus's calibration items (never the evaluation ones)."""

    def __init__(self, ctx: PassContext, count: int) -> None:
        if not ctx.voices:
            raise BuildError("static quantization needs the checkpoint's voices")
        vocab = ctx.config["vocab"]
        fallback = sorted(ctx.voices)[0]
        feeds = []
        for item in load_corpus().calibration[:count]:
            ids = item.ids(vocab)
            voice = ctx.voices.get(item.voice, ctx.voices[fallback])
            feeds.append(
                {
                    "input_ids": padded_ids(ids),
                    "style": style_row(voice, len(ids)),
                    "speed": __import__("numpy").array([item.speed], dtype="float32"),
                }
            )
        self.feeds = feeds
        self._feeds = iter(feeds)
        self.count = len(feeds)

    def get_next(self) -> dict[str, Any] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # the calibrator API asks for it
        pass


def peaks_measure(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext, pass_name: str):
    """``tensors -> {tensor: per-channel peak}`` over the recipe's calibration inputs,
    remembered in ``ctx`` (the twin, passed after the shipped graph, reuses them)."""

    count = recipe.precision.quantize.calibration_samples

    def measure(tensors: list[str]) -> dict[str, Any]:
        def compute() -> dict[str, Any]:
            return range_stats.channel_peaks(model, tensors, CorpusReader(ctx, count).feeds)

        return ctx.calibrated((pass_name, count, tuple(tensors)), compute)

    return measure


def conv_percentiles(
    model: onnx.ModelProto, skip: set[str], inputs: float | None, outputs: float | None
) -> dict[str, float]:
    """The percentile each quantized Conv's input and output range comes from (an output
    that is also an input keeps the output's)."""
    convs = [n for n in model.graph.node if n.op_type == "Conv" and n.name not in skip]
    found: dict[str, float] = {}
    if inputs is not None:
        found.update({n.input[0]: inputs for n in convs})
    if outputs is not None:
        found.update({n.output[0]: outputs for n in convs})
    return found


def _calibration(model: onnx.ModelProto, q, percentiles: dict[str, float], reader, ctx):
    """(percentile ranges, min-max ranges as onnxruntime's ``TensorsData``): one set of
    runs over the calibration inputs measures both, on the first graph a build quantizes
    (the shipped one), and its twin, whose file verify measures, takes the same ranges;
    quantize_static reads them as its calibration cache and runs no calibration itself."""
    from onnxruntime.quantization.calibrate import CalibrationMethod, TensorsData

    def measure():
        tensors = minmax_tensors(model, tuple(q.op_types or STATIC_OPS))
        return calibration_ranges(model, percentiles, tensors, reader.feeds)

    key = ("quantize-static", q.calibration_samples, tuple(sorted(percentiles.items())))
    ranges, minmax = ctx.calibrated((*key, q.op_types), measure)
    return ranges, TensorsData(CalibrationMethod.MinMax, minmax)


@_keep_metadata
def quantize_static_pass(
    model: onnx.ModelProto, recipe: Recipe, ctx: PassContext
) -> onnx.ModelProto:
    """Static (calibrated) quantization, QDQ or QOperator, MinMax ranges (Conv outputs and
    inputs: percentile ranges when ``output_percentile``/``input_percentile`` are set, see
    ``passes/ranges.py``)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, quantize_static

    q = recipe.precision.quantize
    reader = CorpusReader(ctx, q.calibration_samples)
    ctx.notes["calibration_items"] = reader.count
    fmt = QuantFormat.QDQ if q.format == "qdq" else QuantFormat.QOperator
    excluded = excluded_nodes(model, q.exclude, q.include)
    percentiles = conv_percentiles(model, set(excluded), q.input_percentile, q.output_percentile)
    ranges, minmax = _calibration(model, q, percentiles, reader, ctx)
    if percentiles:
        ctx.notes["percentile_ranges"] = len(ranges)

    def tool(src, dst):
        from onnxruntime.quantization.calibrate import save_tensors_data

        cache = Path(src).parent / "ranges.json"
        save_tensors_data(minmax, cache)
        quantize_static(
            src,
            dst,
            reader,
            quant_format=fmt,
            op_types_to_quantize=list(q.op_types or STATIC_OPS),
            per_channel=q.per_channel,
            activation_type=_qtype(q.activation_type),
            weight_type=_qtype(q.weight_type),
            nodes_to_exclude=excluded,
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={
                "ActivationSymmetric": False,
                "WeightSymmetric": weight_symmetric(recipe, "static", q.weight_type),
                "TensorQuantOverrides": overrides(ranges),
            },
            calibration_cache_path=cache,
        )

    with quiet_quantizer():
        model = roundtrip(model, tool)
    return dynamic_matmuls(model, recipe) if q.dynamic_include else model


def weight_matmuls(model: onnx.ModelProto, globs: tuple[str, ...], exclude: tuple[str, ...]):
    """Names of the MatMuls matching ``globs`` (and no ``exclude`` glob) whose second
    input is a weight (an initializer)."""
    weights = {t.name for t in model.graph.initializer}
    return [
        n.name
        for n in model.graph.node
        if n.op_type == "MatMul"
        and n.input[1] in weights
        and not left_float(n.name, exclude, globs)
    ]


def dynamic_matmuls(model: onnx.ModelProto, recipe: Recipe) -> onnx.ModelProto:
    """``dynamic_include``'s weight MatMuls, still float after the static pass, with int8
    weights and activation ranges taken per run (onnxruntime's MatMulIntegerToFloat):
    ALBERT's hidden states carry a few channels far above the rest, which one calibrated
    range per tensor would clip or flatten (docs/fast-cpu.md)."""
    q = recipe.precision.quantize
    names = weight_matmuls(model, q.dynamic_include, q.exclude)
    if not names:
        raise BuildError(
            f"precision.quantize.dynamic_include {list(q.dynamic_include)} matches no float "
            "MatMul with a weight; check the node-name globs against the exported graph"
        )

    def tool(src, dst):
        quantize_dynamic_file(
            src, dst, recipe, "int8", op_types=["MatMul"], nodes_to_quantize=names
        )

    with quiet_quantizer():
        return roundtrip(model, tool)


def gemm_to_matmul(model: onnx.ModelProto) -> int:
    """Rewrite Gemm nodes with a constant B (alpha = beta = 1, no transA) as MatMul + Add,
    so the MatMulNBits quantizer (MatMul only) reaches Kokoro's Linear layers."""
    from onnx import helper, numpy_helper

    inits = {t.name: t for t in model.graph.initializer}
    nodes, count = [], 0
    for node in model.graph.node:
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        simple = attrs.get("alpha", 1.0) == 1.0 and attrs.get("beta", 1.0) == 1.0
        if (
            node.op_type != "Gemm"
            or not simple
            or attrs.get("transA", 0)
            or node.input[1] not in inits
        ):
            nodes.append(node)
            continue
        b = numpy_helper.to_array(inits[node.input[1]])
        name = f"{node.input[1]}_matmul"
        model.graph.initializer.append(
            numpy_helper.from_array((b.T if attrs.get("transB", 0) else b).copy(), name)
        )
        mm_out = f"{node.output[0]}_mm" if len(node.input) > 2 else node.output[0]
        nodes.append(
            helper.make_node("MatMul", [node.input[0], name], [mm_out], name=f"{node.name}_matmul")
        )
        if len(node.input) > 2:
            nodes.append(
                helper.make_node(
                    "Add", [mm_out, node.input[2]], [node.output[0]], name=f"{node.name}_bias"
                )
            )
        count += 1
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    used = {i for n in model.graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    return count


@_keep_metadata
def quantize_int4_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    """4-bit weight-only MatMulNBits for MatMul weights (block size, symmetric or not)."""
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    q = recipe.precision.quantize
    ctx.notes["gemm_rewritten_as_matmul"] = gemm_to_matmul(model)
    quantizer = MatMulNBitsQuantizer(
        model,
        block_size=q.block_size,
        is_symmetric=q.symmetric,
        nodes_to_exclude=excluded_nodes(model, q.exclude, q.include),
    )
    with quiet_quantizer():
        quantizer.process()
    return quantizer.model.model
