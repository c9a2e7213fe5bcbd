"""The numeric side of ``publisher sensitivity``: what converting one weight does to it.

``weight_delta(W) = fake(W) - W`` for the recipe's conversion. int8/uint8 go through
onnxruntime's own ``quantize_data`` with the quantizer's choices (per-tensor or the same
per-channel axis; ConvInteger is always per-tensor; LSTM is int8 per direction, or per gate
row with ``per_channel``), so fake weights equal the dequantized weights ``quantize_dynamic``
writes (tested bit for bit). int4 is blockwise along K like MatMulNBits; fp16 a cast round
trip. ``bytes_after`` estimates a converted weight's stored size.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from publisher.passes.quantize import weight_symmetric, weight_type

if TYPE_CHECKING:
    import numpy as np
    import onnx

    from publisher.recipe.schema import Recipe

FP16_MAX = 65504.0


def attr(node: onnx.NodeProto, name: str, default: float | int) -> float | int:
    import onnx

    for a in node.attribute:
        if a.name == name:
            return onnx.helper.get_attribute_value(a)
    return default


def numel(t: onnx.TensorProto) -> int:
    n = 1
    for d in t.dims:
        n *= int(d)
    return n


def channel_axis(node: onnx.NodeProto, kind: str, per_channel: bool) -> int | None:
    """The per-channel axis onnxruntime's quantizer uses for ``node``'s weight, or None."""
    if node.op_type == "LSTM":
        return 0  # always per axis 0: per direction, or per gate row when per_channel
    if not per_channel or (node.op_type == "Conv" and kind == "dynamic"):
        return None  # ConvInteger (dynamic) is always per-tensor
    if node.op_type == "Conv":
        return 0
    if node.op_type == "Gemm" and attr(node, "transB", 0):
        return 0
    return 1


def bytes_after(t: onnx.TensorProto, node: onnx.NodeProto, kind: str, recipe: Recipe) -> int:
    n = numel(t)
    if kind == "fp16":
        return 2 * n
    if kind == "int4":
        size = recipe.precision.quantize.block_size
        k_axis = 1 if (node.op_type == "Gemm" and attr(node, "transB", 0)) else 0
        k, cols = int(t.dims[k_axis]), n // int(t.dims[k_axis])
        blocks = -(-k // size) * cols
        return -(-n // 2) + blocks * 4 + -(-blocks // 2)  # packed nibbles, fp32 scales, zps
    axis = channel_axis(node, kind, recipe.precision.quantize.per_channel)
    if node.op_type == "LSTM" and recipe.precision.quantize.per_channel:
        channels = int(t.dims[0]) * int(t.dims[1])
    else:
        channels = 1 if axis is None else int(t.dims[axis])
    return n + 5 * channels  # int8 data, fp32 scale and 8-bit zero point per channel


def _fake_int8(w: np.ndarray, qtype: int, symmetric: bool, axis: int | None) -> np.ndarray:
    import numpy as np
    from onnxruntime.quantization.quant_utils import quantize_data

    def one(x: np.ndarray) -> np.ndarray:
        zp, scale, q = quantize_data(x.ravel(), qtype, symmetric)
        deq = (q.astype(np.int32) - np.int32(zp)).astype(np.float32) * np.float32(scale)
        return deq.reshape(x.shape)

    if axis is None:
        return one(w)
    moved = np.moveaxis(w, axis, 0)
    return np.moveaxis(np.stack([one(c) for c in moved]), 0, axis)


def _fake_int4(w: np.ndarray, k_axis: int, block: int, symmetric: bool) -> np.ndarray:
    """Blockwise 4-bit along K (MatMulNBits): symmetric scale = vmax / -8, else min/max."""
    import numpy as np

    m = np.moveaxis(w, k_axis, 0).astype(np.float32)  # [K, cols]
    k = m.shape[0]
    pad = -k % block
    b = np.concatenate([m, np.zeros((pad, m.shape[1]), np.float32)]).reshape(-1, block, m.shape[1])
    if symmetric:
        idx = np.abs(b).argmax(axis=1)
        vmax = np.take_along_axis(b, idx[:, None, :], axis=1)
        scale = np.where(vmax == 0, 1.0, vmax / -8.0).astype(np.float32)
        q = np.clip(np.rint(b / scale) + 8, 0, 15)
        deq = (q - 8) * scale
    else:
        lo = np.minimum(b.min(axis=1, keepdims=True), 0)
        hi = np.maximum(b.max(axis=1, keepdims=True), 0)
        scale = np.where(hi > lo, (hi - lo) / 15.0, 1.0).astype(np.float32)
        zp = np.clip(np.rint(-lo / scale), 0, 15)
        deq = (np.clip(np.rint(b / scale) + zp, 0, 15) - zp) * scale
    deq = deq.reshape(-1, m.shape[1])[:k]
    return np.moveaxis(deq.astype(np.float32), 0, k_axis)


def weight_delta(w: np.ndarray, node: onnx.NodeProto, kind: str, recipe: Recipe) -> np.ndarray:
    """``fake(w) - w`` for one weight input of ``node`` under the recipe's conversion."""
    import numpy as np
    from onnx import TensorProto

    q = recipe.precision.quantize
    w = np.asarray(w, dtype=np.float32)
    if kind == "fp16":
        fake = np.clip(w, -FP16_MAX, FP16_MAX).astype(np.float16).astype(np.float32)
    elif kind == "int4":
        k_axis = 1 if (node.op_type == "Gemm" and attr(node, "transB", 0)) else 0
        fake = _fake_int4(w, k_axis, q.block_size, bool(q.symmetric))
    else:
        wtype = weight_type(node.op_type, kind, recipe)
        qtype = TensorProto.INT8 if wtype == "int8" else TensorProto.UINT8
        sym = weight_symmetric(recipe, kind, wtype)
        if node.op_type == "LSTM":
            rows = w.reshape(-1, w.shape[-1]) if q.per_channel else w
            fake = _fake_int8(rows, qtype, sym, 0).reshape(w.shape)
        else:
            fake = _fake_int8(w, qtype, sym, channel_axis(node, kind, q.per_channel))
    return (fake - w).astype(np.float32)
