"""Rewrite the generator's upsampling ConvTransposes as Convs (exact), so 8-bit kernels run
them.

onnxruntime's CPU provider has no 8-bit ConvTranspose: its quantizers leave Kokoro's two
upsampling layers (``ups.0``: 512 -> 256 channels, stride 10; ``ups.1``: 256 -> 128,
stride 6) float, about 4% of the fast variant's CPU time. A 1-D ConvTranspose with stride
``s`` and kernel ``J * s`` is ``s`` ordinary convolutions of kernel ``J`` over the same
input, one per output phase (the polyphase form): output sample ``q * s + p`` (before the
padding is cropped) is ``sum_j sum_c x[c, q - j] * W[c, o, p + j * s]``. So the pass writes
one Conv with ``O * s`` output channels (channel ``o * s + p`` is phase ``p`` of channel
``o``), padded ``J - 1`` on both sides, then interleaves the phases (Reshape, Transpose,
Reshape) and crops ``pads``: the same numbers in float, and a Conv that the static
quantizer turns into a QLinearConv.

Measured on real weights (docs/fast-cpu.md, third round): ``ups.0`` in 8 bits is not
heard but saves about 1% of ``cpu-int8``'s time, and ``ups.1`` in 8 bits is heard (DNSMOS
0.11 below fp32), so no shipped recipe lists the pass yet.

Hand-written: neither onnx's nor onnxruntime's optimizers turn a ConvTranspose into a
Conv.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from publisher.passes import PassContext
from publisher.passes.quantize import left_float

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Upsample:
    """One eligible ConvTranspose: 1-D, group 1, stride dividing the kernel."""

    node: onnx.NodeProto
    weight: object  # numpy [C, O, K]
    bias: object | None  # numpy [O]
    stride: int
    pads: tuple[int, int]


def _attrs(node) -> dict:
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def eligible(node, inits: dict) -> Upsample | None:
    """The ConvTranspose as an ``Upsample``, or None where the rewrite does not apply."""
    from onnx import numpy_helper

    a = _attrs(node)
    if node.op_type != "ConvTranspose" or node.input[1] not in inits:
        return None
    weight = numpy_helper.to_array(inits[node.input[1]])
    stride = list(a.get("strides", [1]))
    pads = tuple(a.get("pads", [0, 0]))
    output_padding = list(a.get("output_padding", [0]))
    if (
        weight.ndim != 3
        or a.get("group", 1) != 1
        or list(a.get("dilations", [1])) != [1]
        or a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET")
        or "output_shape" in a
        or len(stride) != 1
        or stride[0] < 2
        or weight.shape[2] % stride[0]
        or any(output_padding)
    ):
        return None
    bias = None
    if len(node.input) > 2 and node.input[2]:
        if node.input[2] not in inits:
            return None
        bias = numpy_helper.to_array(inits[node.input[2]])
    return Upsample(node, weight, bias, stride[0], (int(pads[0]), int(pads[1])))


def _phase_weights(up: Upsample):
    """[C, O, J*s] ConvTranspose weights -> [O*s, C, J] Conv weights (see the docstring)."""
    import numpy as np

    c, o, k = up.weight.shape
    s, j = up.stride, k // up.stride
    w = up.weight.reshape(c, o, j, s)  # [c, o, j, p]: tap p + j * s
    w = w[:, :, ::-1, :]  # Conv tap t reads x[q + t - (J - 1)]: j = J - 1 - t
    return np.ascontiguousarray(w.transpose(1, 3, 0, 2).reshape(o * s, c, j))


def rewrite(up: Upsample) -> tuple[list, list]:
    """Nodes and initializers that compute ``up.node``'s output with a Conv."""
    import numpy as np
    from onnx import helper, numpy_helper

    base, s = up.node.name or up.node.output[0], up.stride
    _, o, k = up.weight.shape
    j = k // s
    inits = [
        numpy_helper.from_array(_phase_weights(up).astype(up.weight.dtype), f"{base}/phases_w"),
        numpy_helper.from_array(np.array([1, o, s, -1], np.int64), f"{base}/phases_shape"),
        numpy_helper.from_array(np.array([1, o, -1], np.int64), f"{base}/interleaved_shape"),
        numpy_helper.from_array(np.array([up.pads[0]], np.int64), f"{base}/crop_start"),
        numpy_helper.from_array(np.array([-up.pads[1] or 2**62], np.int64), f"{base}/crop_end"),
        numpy_helper.from_array(np.array([2], np.int64), f"{base}/crop_axis"),
    ]
    conv_in = [up.node.input[0], f"{base}/phases_w"]
    if up.bias is not None:
        inits.append(numpy_helper.from_array(np.repeat(up.bias, s), f"{base}/phases_b"))
        conv_in.append(f"{base}/phases_b")
    conv = helper.make_node(
        "Conv",
        conv_in,
        [f"{base}/phases"],
        name=f"{base}/polyphase",
        kernel_shape=[j],
        pads=[j - 1, j - 1],
    )
    nodes = [
        conv,
        helper.make_node(
            "Reshape", [f"{base}/phases", f"{base}/phases_shape"], [f"{base}/by_phase"]
        ),
        helper.make_node("Transpose", [f"{base}/by_phase"], [f"{base}/by_time"], perm=[0, 1, 3, 2]),
        helper.make_node(
            "Reshape", [f"{base}/by_time", f"{base}/interleaved_shape"], [f"{base}/full"]
        ),
        helper.make_node(
            "Slice",
            [f"{base}/full", f"{base}/crop_start", f"{base}/crop_end", f"{base}/crop_axis"],
            [up.node.output[0]],
        ),
    ]
    return nodes, inits


def polyphase_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    """Each eligible ConvTranspose of the top-level graph that the recipe quantizes (its
    ``precision.quantize`` include/exclude globs) -> Conv + interleave + crop."""
    q, g = recipe.precision.quantize, model.graph
    inits = {t.name: t for t in g.initializer}
    out, count = [], 0
    for node in g.node:
        up = None if left_float(node.name, q.exclude, q.include) else eligible(node, inits)
        if up is None:
            out.append(node)
            continue
        nodes, new_inits = rewrite(up)
        out.extend(nodes)
        g.initializer.extend(new_inits)
        count += 1
    del g.node[:]
    g.node.extend(out)
    used = {i for n in g.node for i in n.input}
    keep = [t for t in g.initializer if t.name in used]
    del g.initializer[:]
    g.initializer.extend(keep)
    ctx.notes["polyphase_upsamples"] = count
    log.info("polyphase-upsample: %d ConvTranspose -> Conv", count)
    return model
