"""Equalize the generator's residual streams per channel before 8-bit quantization.

In each upsampling stage of Kokoro's iSTFTNet generator, every residual block adds the
second convolution of each pair (``convs2.k``) into a stream that starts at the stage's
upsampling (``ups.i``) plus its source branch (``noise_convs.i`` -> ``noise_res.i``), and
the stage's mean goes through a LeakyReLU into the next ``ups`` (or ``conv_post``). A
QLinearConv writes its output in 8 bits with one range per tensor, and some channels of
those updates are several times larger than others (real weights: the largest channel
peak 3-12x the median one), so most channels get a few levels.

Scaling channel c of the whole stream by s_c is exact: InstanceNormalization, which every
reader inside the blocks applies first, ignores a positive per-channel scale, LeakyReLU
commutes with it, and the stream's writers (ups, noise_convs, every convs2) take s_c on
their output channel while the next ups or conv_post takes 1/s_c on its input channel.
s_c is one over the geometric mean, over the stage's convs2, of channel c's peak on the
calibration inputs, so every channel of those outputs spans about the same range.

Hand-written: onnxruntime's quantizer has no cross-layer equalization, and this one needs
to know where Kokoro's residual streams are (node names from the torch export).
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

from publisher.passes import PassContext
from publisher.passes.quantize import peaks_measure
from publisher.runtime.errors import ExportError

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe

log = logging.getLogger(__name__)
GEN = "/decoder/generator/"


def stage_nodes(names: set[str], stage: int, kernels: int, last: bool) -> dict[str, list[str]]:
    """The writers (output channels scaled), the reader (input channels scaled by the
    inverse) and the convs2 whose outputs set the scale, for one generator stage."""
    blocks = [f"resblocks.{stage * kernels + j}" for j in range(kernels)]
    convs2 = sorted(
        n
        for n in names
        if (
            m := re.fullmatch(
                re.escape(GEN) + r"(resblocks\.\d+|noise_res\.\d+)/convs2\.\d+/Conv", n
            )
        )
        and (m.group(1) in blocks or m.group(1) == f"noise_res.{stage}")
    )
    reader = f"{GEN}conv_post/Conv" if last else f"{GEN}ups.{stage + 1}/ConvTranspose"
    plan = {
        "convs2": convs2,
        "writers": [*convs2, f"{GEN}noise_convs.{stage}/Conv", f"{GEN}ups.{stage}/ConvTranspose"],
        "reader": [reader],
    }
    missing = [n for group in plan.values() for n in group if n not in names]
    if missing or not convs2:
        raise ExportError(
            f"equalize-residuals: the graph has no node {missing[0] if missing else 'convs2'}; "
            "this pass knows Kokoro's iSTFTNet generator only (remove it from the recipe's passes)"
        )
    return plan


def scale_initializer(inits: dict, name: str, factor, axis: int) -> None:
    """Multiply initializer ``name`` (in ``inits``, name -> TensorProto) by the vector
    ``factor`` along ``axis``, in place."""
    from onnx import numpy_helper

    array = numpy_helper.to_array(inits[name]).astype("float32")
    shape = [1] * array.ndim
    shape[axis] = -1
    inits[name].CopyFrom(numpy_helper.from_array(array * factor.reshape(shape), name))


def normalized_convs(model: onnx.ModelProto, within: str = "/decoder/") -> list:
    """Convs whose every reader is an InstanceNormalization: it ignores a positive scale per
    channel, so their output channels can be equalized on their own (``convs1.k`` of each
    residual pair, ``conv1`` of the decoder blocks)."""
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    return [
        n
        for n in model.graph.node
        if n.op_type == "Conv"
        and n.name.startswith(within)
        and readers.get(n.output[0])
        and all(
            r.op_type == "InstanceNormalization" and r.input[0] == n.output[0]
            for r in readers[n.output[0]]
        )
    ]


def _unit_scale(peaks) -> Any:
    """One over each channel's peak, with geometric mean 1 (magnitudes stay put)."""
    import numpy as np

    scale = 1.0 / np.maximum(peaks, 1e-6)
    return scale / np.exp(np.log(scale).mean())


def equalize(model: onnx.ModelProto, measure, kernels: int, stages: int) -> tuple[list[float], int]:
    """Equalize every stage's residual stream and every conv that feeds a norm, in place;
    the largest/smallest scale ratio of each stage, and how many such convs. ``measure``:
    the channel peaks of a list of tensors (``channel_peaks`` over calibration feeds)."""
    import numpy as np

    by_name = {n.name: n for n in model.graph.node}
    inits = {t.name: t for t in model.graph.initializer}
    readers: dict[str, int] = {}
    for node in model.graph.node:
        for i in node.input:
            readers[i] = readers.get(i, 0) + 1
    plans = [stage_nodes(set(by_name), i, kernels, i == stages - 1) for i in range(stages)]
    normed = normalized_convs(model)
    tensors = [by_name[n].output[0] for p in plans for n in p["convs2"]]
    peaks = measure(tensors + [n.output[0] for n in normed])
    for node in normed:  # exact: the norm after it divides the scale out again
        _check_private(node, readers, inits)
        scale = _unit_scale(peaks[node.output[0]])
        for index in range(1, len(node.input)):
            scale_initializer(inits, node.input[index], scale, 0)
    spreads = []
    for plan in plans:
        logs = np.stack([np.log(peaks[by_name[n].output[0]] + 1e-6) for n in plan["convs2"]])
        scale = np.exp(-logs.mean(axis=0))
        scale = scale / np.exp(np.log(scale).mean())  # geometric mean 1: magnitudes stay put
        spreads.append(float(scale.max() / scale.min()))
        for name in plan["writers"]:
            node = by_name[name]
            out_axis = 1 if node.op_type == "ConvTranspose" else 0
            _check_private(node, readers, inits)
            scale_initializer(inits, node.input[1], scale, out_axis)
            if len(node.input) > 2:
                scale_initializer(inits, node.input[2], scale, 0)
        node = by_name[plan["reader"][0]]
        _check_private(node, readers, inits)
        scale_initializer(
            inits, node.input[1], 1.0 / scale, 0 if node.op_type == "ConvTranspose" else 1
        )
    return spreads, len(normed)


def _check_private(node, readers: dict[str, int], inits: dict) -> None:
    for name in node.input[1:]:
        if name not in inits or readers.get(name, 0) != 1:
            raise ExportError(
                f"equalize-residuals: {node.name} does not own a constant {name!r}; "
                "run it right after simplify and fold-snake"
            )


def equalize_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    net = ctx.config["istftnet"]
    measure = peaks_measure(model, recipe, ctx, "equalize-residuals")
    kernels, stages = len(net["resblock_kernel_sizes"]), len(net["upsample_rates"])
    spreads, normed = equalize(model, measure, kernels, stages)
    ctx.notes["equalized_stages"] = [round(s, 2) for s in spreads]
    ctx.notes["equalized_convs_before_a_norm"] = normed
    log.info("equalized %d generator stages and %d convs before a norm", len(spreads), normed)
    return model
