"""Snake before an 8-bit Conv as a table lookup: no Sin over the audio-rate tensors.

After ``fold-snake`` and static quantization, every Snake that feeds a QLinearConv is

    u = InstanceNormalization(x, scale, bias)            # alpha folded in
    q = QuantizeLinear(c * (u + sin(u)^2), s, zp)        # uint8, one range per tensor

with ``c`` a constant per channel (``1 / alpha`` and the smoothing scale). The Conv only
ever sees ``q``: 256 levels of a function of ``u`` alone, per channel. ``f(u) = u +
sin(u)^2`` never decreases (``f' = 1 + sin 2u >= 0``), so per channel the levels 0 and
255 are reached at two points ``u_lo`` and ``u_hi`` and ``q`` is constant beyond them.
This pass cuts ``[u_lo, u_hi]`` into ``TABLE_SIZE`` bins and writes

    i = Cast<int32>(Clip(InstanceNormalization(x, k * scale, k * bias + b), 0, N - 1))
    q = GatherElements(table[1, C, N], i, axis=2)     # uint8, the same tensor name

where ``k, b`` map ``u_lo .. u_hi`` onto ``0 .. N`` (folded into InstanceNormalization's
scale and bias, which are [C] vectors computed from the style) and ``table[c, j]`` is
``QuantizeLinear`` of the Snake at bin j's centre. The only new error is the bin: one bin
holds ``256 / N`` output levels on average (an eighth at N = 2048), up to twice that
where the slope peaks when the interval spans whole periods of ``sin^2`` (a channel whose
256 levels fall within part of a period can see more), beside the half level every uint8
rounding already costs. Measured against the Sin chain: at most one level, on about 1% of
the values (tests/test_snake_lut.py).

Why: onnxruntime's CPU Sin runs on one thread at about 2 ns an element (Mul: 0.1), and the
Snake chain (Sin, Mul, Add, Mul, QuantizeLinear) was about a third of ``cpu-int8``'s time;
Clip, Cast and GatherElements are three cheap passes (GatherElements over a 2 KiB row per
channel). Hand-written: no onnx or onnxruntime tool turns an elementwise chain into a
table. Every runtime the file claims runs these standard ops.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from publisher.passes import PassContext
from publisher.passes.snake import _Graph, _other, _Writer, splice

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from publisher.recipe.schema import Recipe

log = logging.getLogger(__name__)
TABLE_SIZE = 2048  # bins per channel (uint8 entries): an eighth of an output level a bin
_INT32 = 6  # onnx.TensorProto.INT32


@dataclass
class QuantizedSnake:
    norm: onnx.NodeProto  # InstanceNormalization writing u
    nodes: list  # Sin, Mul (square), Add, [Mul (c)], QuantizeLinear
    scale: np.ndarray  # c per channel, [C]
    step: float  # QuantizeLinear's scale
    zero: int  # its zero point (uint8)
    out: str  # the uint8 tensor the Conv's DequantizeLinear reads


def _readers(g: _Graph, tensor: str) -> list:
    unique = []
    for n in g.consumers.get(tensor, []):
        if n is None or all(n is not m for m in unique):
            unique.append(n)
    return unique


def _only(g: _Graph, tensor: str, op_type: str):
    readers = _readers(g, tensor)
    if len(readers) == 1 and readers[0] is not None and readers[0].op_type == op_type:
        return readers[0]
    return None


def find_quantized_snake(g: _Graph, sin) -> QuantizedSnake | None:
    """The chain above around ``sin``, exactly, or None."""
    import numpy as np

    u = sin.input[0]
    norm = g.made_by(u, "InstanceNormalization")
    square = _only(g, sin.output[0], "Mul")
    if norm is None or square is None or list(square.input) != [sin.output[0]] * 2:
        return None
    add = _only(g, square.output[0], "Add")
    if add is None or _other(add, square.output[0]) != u:
        return None
    if {id(n) for n in _readers(g, u)} != {id(sin), id(add)}:
        return None
    nodes, tensor, c = [sin, square, add], add.output[0], None
    mul = _only(g, tensor, "Mul")
    if mul is not None:
        c = g.const(_other(mul, tensor))
        if c is None or c.ndim != 3 or c.shape[0] != 1 or c.shape[2] != 1:
            return None
        nodes, tensor = [*nodes, mul], mul.output[0]
    quant = _only(g, tensor, "QuantizeLinear")
    if quant is None or len(quant.input) < 3 or any(a.name == "axis" for a in quant.attribute):
        return None
    step, zero = g.const(quant.input[1]), g.const(quant.input[2])
    if step is None or zero is None or step.size != 1 or zero.dtype != np.uint8:
        return None
    channels = None if c is None else c.reshape(-1)
    return QuantizedSnake(norm, [*nodes, quant], channels, float(step), int(zero), quant.output[0])


def snake(u: np.ndarray) -> np.ndarray:
    """Kokoro's Snake with alpha folded in: ``u + sin(u)^2`` (alpha times the activation)."""
    import numpy as np

    return u + np.sin(u) ** 2


def inverse_snake(target: np.ndarray) -> np.ndarray:
    """The ``u`` with ``snake(u) = target`` (``snake`` never decreases; it lies in
    ``[target - 1, target]``), by bisection to float64 precision."""
    import numpy as np

    lo, hi = target - 1.0, target.astype(np.float64)
    for _ in range(60):
        mid = (lo + hi) / 2
        below = snake(mid) < target
        lo, hi = np.where(below, mid, lo), np.where(below, hi, mid)
    return (lo + hi) / 2


def table(qs: QuantizedSnake, channels: int, size: int = TABLE_SIZE):
    """(table [1, C, size] uint8, k [C], b [C]): ``floor(k * u + b)`` is u's bin."""
    import numpy as np

    c = np.ones(channels) if qs.scale is None else qs.scale.astype(np.float64)
    safe = np.where(c == 0, 1.0, c)
    # the outputs where QuantizeLinear reaches 0 and 255 (half a level inside the ends)
    ends = np.stack([(-0.5 - qs.zero) * qs.step / safe, (255.5 - qs.zero) * qs.step / safe])
    lo, hi = inverse_snake(ends.min(axis=0)), inverse_snake(ends.max(axis=0))
    lo, hi = np.where(c == 0, -1.0, lo), np.where(c == 0, 1.0, hi)
    k = size / (hi - lo)
    centres = lo[:, None] + (np.arange(size)[None, :] + 0.5) / k[:, None]
    levels = np.rint(c[:, None] * snake(centres) / qs.step) + qs.zero
    lut = np.clip(levels, 0, 255).astype(np.uint8)[None]
    return lut, k, -lo * k


def _channels(g: _Graph, qs: QuantizedSnake) -> int | None:
    if qs.scale is not None:
        return qs.scale.size
    scale = g.const(qs.norm.input[1])
    return None if scale is None else scale.size


def rewrite(g: _Graph, qs: QuantizedSnake, size: int = TABLE_SIZE) -> _Writer | None:
    """The nodes replacing ``qs`` (the InstanceNormalization included), or None when
    its channel count cannot be read from a constant."""
    import numpy as np

    channels = _channels(g, qs)
    if channels is None:
        return None
    lut, k, b = table(qs, channels, size)
    w, base = _Writer(g), f"{qs.norm.name}/lut"
    scale = w.node("Mul", [qs.norm.input[1], w.const(f"{base}_k", k)], f"{base}_scale")
    bias = w.node("Mul", [qs.norm.input[2], w.const(f"{base}_k2", k)], f"{base}_bias_k")
    bias = w.node("Add", [bias, w.const(f"{base}_b", b)], f"{base}_bias")
    index = w.node("InstanceNormalization", [qs.norm.input[0], scale, bias], f"{base}_norm")
    w.nodes[-1].attribute.extend(a for a in qs.norm.attribute if a.name == "epsilon")
    ends = [w.const(f"{base}_lo", np.array(0.0)), w.const(f"{base}_hi", np.array(size - 1.0))]
    index = w.node("Clip", [index, *ends], f"{base}_clip")
    index = w.node("Cast", [index], f"{base}_index")
    w.nodes[-1].attribute.append(_int_attr("to", _INT32))
    w.node("GatherElements", [w.const(f"{base}_table", lut, "uint8"), index], base, qs.out)
    w.nodes[-1].attribute.append(_int_attr("axis", 2))
    return w


def _int_attr(name: str, value: int):
    from onnx import helper

    return helper.make_attribute(name, value)


def snake_tables(model: onnx.ModelProto, size: int = TABLE_SIZE) -> int:
    """Rewrite every quantized Snake of the main graph in place; returns how many."""
    g = _Graph(model)
    emit_at, removed = {}, set()
    for node in model.graph.node:
        qs = find_quantized_snake(g, node) if node.op_type == "Sin" else None
        w = None if qs is None else rewrite(g, qs, size)
        if w is not None:
            emit_at[id(qs.nodes[-1])] = w
            removed.update(id(n) for n in (qs.norm, *qs.nodes))
    splice(model, emit_at, removed)
    return len(emit_at)


def snake_lut_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    count = snake_tables(model)
    ctx.notes["snake_tables"] = count
    log.info("replaced %d quantized Snake activations by %d-entry tables", count, TABLE_SIZE)
    return model
