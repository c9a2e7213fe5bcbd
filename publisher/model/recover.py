"""Recover a complete Kokoro state dict from a Kokoro-82M ONNX export (``onnx:FILE``).

Works on fp32 graphs and on onnxruntime's dynamic int8 graphs (weights dequantized as
``(q - zero_point) * scale``). Each graph constant is named after the torch module that
reads it, found two ways:

* by the initializer's own name (exporters keep ``module.path.param`` for parameters that
  reach the graph unchanged: biases, embeddings, layer norms, Snake alphas, ...);
* by the path of the node that consumes it (TorchScript keeps torch module paths in node
  names, ``/decoder/generator/resblocks.0/convs1.0/Conv``), for constants the exporter
  computed: weight-normed convolution weights, transposed MatMul weights, LSTM weights.

A path matches the torch module whose dotted name ends with it (a wrapper's prefix such as
``kmodel.`` or ``encoder.`` is skipped). Layouts are undone per consuming op: MatMul
weights are transposed, LSTM gates go from ONNX's i,o,f,c to torch's i,f,g,o, and a
weight-normed layer gets ``weight_v = W`` and ``weight_g = |W|`` over all dims but 0.

Parameters no inference graph carries are filled only from ``FILLED`` (documented below);
anything else missing is an error naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.model.checkpoint import load_pt, validate_voice
from publisher.model.kmodel import TOP_LEVEL_MODULES
from publisher.runtime.errors import CheckpointError

if TYPE_CHECKING:
    import numpy as np
    import onnx

# What an inference graph cannot carry, and the value each gets (the only fills allowed):
# - the ALBERT pooler (Kokoro never reads pooler_output);
# - the affine scale/shift of the InstanceNorm inside AdaIN (kokoro's AdaIN1d/AdaIN
#   blocks): exporters fold it away when it is the identity, which it is in Kokoro-82M.
FILLED = {
    "bert.pooler": "zeros: the ALBERT pooler is not used by Kokoro at inference",
    "InstanceNorm1d": "identity (weight 1, bias 0): folded away by the exporter",
}
_ONNX_TO_TORCH_GATES = (0, 2, 3, 1)  # ONNX blocks i,o,f,c -> torch i,f,g(c),o
_ALIASES = {"weight": "gamma", "bias": "beta"}
_REPEAT = re.compile(r"_\d+$")  # scope of a repeated call: attention_3 -> attention


@dataclass
class Recovery:
    """The recovered state dict (per top-level module) and what was done to get it."""

    state: dict[str, dict[str, Any]]
    mapped: dict[str, str] = field(default_factory=dict)  # torch key -> how it was found
    filled: dict[str, str] = field(default_factory=dict)  # torch key -> FILLED reason
    values_from_file: int = 0
    values_total: int = 0
    zero_norm_channels: int = 0  # weight-normed output channels that are all zero

    def summary(self) -> dict[str, Any]:
        return {
            "parameters_mapped": len(self.mapped),
            "parameters_filled": len(self.filled),
            "values_from_file": self.values_from_file,
            "values_total": self.values_total,
            "zero_norm_channels": self.zero_norm_channels,
            "filled": {
                reason: sum(1 for r in self.filled.values() if r == reason)
                for reason in sorted(set(self.filled.values()))
            },
        }


class _Graph:
    """Constants of an ONNX graph, dequantized on demand, and who consumes them."""

    def __init__(self, model: onnx.ModelProto) -> None:
        from onnx import numpy_helper

        self.inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
        for node in model.graph.node:  # Constant nodes are constants too
            if node.op_type == "Constant" and node.attribute and node.attribute[0].t.dims:
                self.inits[node.output[0]] = numpy_helper.to_array(node.attribute[0].t)
        self.nodes = list(model.graph.node)
        self.consumers: dict[str, list[tuple[Any, int]]] = {}
        for node in self.nodes:
            for i, name in enumerate(node.input):
                self.consumers.setdefault(name, []).append((node, i))

    def dequantized(self, name: str, node: Any, index: int) -> np.ndarray | None:
        """The float value of input ``index`` of ``node`` if it is a graph constant."""
        import numpy as np

        value = self.inits.get(name)
        if value is None:
            return None
        if value.dtype.kind == "f":
            return value.astype(np.float32)
        if not name.endswith("_quantized"):
            return None
        scale, zero = self._quant_params(name, node, index)
        if scale is None:
            raise CheckpointError(f"cannot find the scale of quantized constant '{name}'")
        shape = _param_shape(node.op_type, value.ndim, scale.size)
        q = value.astype(np.float32) - zero.astype(np.float32).reshape(
            shape if zero.size > 1 else ()
        )
        return q * scale.astype(np.float32).reshape(shape if scale.size > 1 else ())

    def _quant_params(self, name: str, node: Any, index: int) -> tuple[Any, Any]:
        import numpy as np

        base = name.removesuffix("_quantized")
        if node.op_type == "DynamicQuantizeLSTM":  # W: scale 8, zp 9; R: scale 10, zp 11
            s, z = (8, 9) if index == 1 else (10, 11)
            return self.inits.get(node.input[s]), self.inits.get(node.input[z])
        if node.op_type in ("MatMulInteger", "ConvInteger"):
            zero = self.inits.get(node.input[3]) if len(node.input) > 3 else None
            return self.inits.get(base + "_scale"), _or_zero(zero, np)
        if node.op_type == "Gather":  # Gather_quant: a DequantizeLinear reads the output
            for reader, _ in self.consumers.get(node.output[0], []):
                if reader.op_type == "DequantizeLinear":
                    zero = self.inits.get(reader.input[2]) if len(reader.input) > 2 else None
                    return self.inits.get(reader.input[1]), _or_zero(zero, np)
        return self.inits.get(base + "_scale"), _or_zero(self.inits.get(base + "_zero_point"), np)


def _param_shape(op: str, ndim: int, size: int) -> tuple[int, ...]:
    """How a per-axis scale or zero point broadcasts against its quantized tensor."""
    if op == "DynamicQuantizeLSTM":  # per direction of [dirs, in, 4H]
        return (size, 1, 1)
    if op == "MatMulInteger":  # per output column of B [in, out]
        return (1, size)
    return (size, *([1] * (ndim - 1)))  # per output channel of a weight


def _or_zero(zero: Any, np: Any) -> Any:
    return zero if zero is not None else np.zeros((), dtype=np.float32)


class _Target:
    """The torch model's expected keys and module names, for suffix matching."""

    def __init__(self, model: Any, top_level: tuple[str, ...], computed: set[str]) -> None:
        import torch

        self.expected = {
            k: tuple(v.shape)
            for k, v in model.state_dict().items()
            if k.split(".")[0] in top_level and k not in computed
        }
        self.modules = {n: m for n, m in model.named_modules() if n}
        self._by_tail: dict[str, list[str]] = {}
        for name in self.modules:
            parts = name.split(".")
            for i in range(len(parts)):
                self._by_tail.setdefault(".".join(parts[i:]), []).append(name)
        self.lstm = {n for n, m in self.modules.items() if isinstance(m, torch.nn.LSTM)}
        self.linear = {n for n, m in self.modules.items() if isinstance(m, torch.nn.Linear)}

    def module(self, parts: list[str]) -> str | None:
        """The one module whose dotted name ends with the longest suffix of ``parts``."""
        hits = self.candidates(parts)
        return hits[0] if len(hits) == 1 else None

    def candidates(self, parts: list[str]) -> list[str]:
        """The modules whose dotted names end with the longest suffix of ``parts`` that
        names any; more than one when the path lost its prefix (``/lstm/LSTM``)."""
        ambiguous: list[str] = []
        for attempt in (parts, [_REPEAT.sub("", p) for p in parts]):
            for i in range(len(attempt)):
                hits = self._by_tail.get(".".join(attempt[i:]))
                if hits and len(hits) == 1:
                    return hits
                if hits:  # ambiguous at this length: a shorter suffix is worse
                    ambiguous = ambiguous or hits
                    break
        return ambiguous

    def weight_normed(self, module: str) -> bool:
        return f"{module}.weight_g" in self.expected


def recover_state(model: onnx.ModelProto, target_model: Any, computed: set[str]) -> Recovery:
    """Map every constant of ``model`` onto ``target_model``'s parameters (see module doc)."""

    graph = _Graph(model)
    target = _Target(target_model, TOP_LEVEL_MODULES, computed)
    found: dict[str, tuple[np.ndarray, str]] = {}
    for name in graph.inits:
        for node, index in graph.consumers.get(name, []):
            for key, value, how in _params_for(graph, target, name, node, index):
                _keep(found, key, value, how, target)
    return _complete(found, target, target_model)


def _params_for(graph: _Graph, target: _Target, name: str, node: Any, index: int):
    """(torch key, value, how) for one constant as read by one node; empty if none."""
    value = graph.dequantized(name, node, index)
    if value is None:
        return []
    op = node.op_type
    if op in ("LSTM", "DynamicQuantizeLSTM") and index in (1, 2, 3):
        module = _lstm_module(graph, target, node)
        return _lstm_params(module, value, index, op != "LSTM") if module else []
    role = _role(op, index, node)
    if role is None and op == "Add":  # a Linear exported as MatMul + Add
        module = target.module(_scope(node.name))
        if module in target.linear and value.ndim == 1:
            role = "bias", "as-is"
    if role is None:  # read by Mul, FastGelu...: only its own name can tell
        key = _named_key(target, name.removesuffix("_quantized"))
        return [(key, value, f"name {key}")] if key else []
    param, layout = role
    module, how = _module_for(target, name, node, param)
    if module is None:
        return []
    value = _layout(value, layout, node)
    if param == "weight" and target.weight_normed(module):
        return _weight_norm(module, value, how)
    for alias in (param, _ALIASES.get(param)):  # kokoro's own LayerNorm: gamma, beta
        if f"{module}.{alias}" in target.expected:
            return [(f"{module}.{alias}", value, how)]
    return []


def _lstm_module(graph: _Graph, target: _Target, node: Any) -> str | None:
    """The torch LSTM an LSTM node runs; a path that lost its prefix (``/lstm/LSTM`` for
    both ``text_encoder.lstm`` and ``predictor.lstm``) is settled by the input weights'
    shape."""
    fits = []
    for module in target.candidates(_scope(node.name)):
        w = graph.dequantized(node.input[1], node, 1) if module in target.lstm else None
        if w is not None:
            (key, value, _), *_ = _lstm_params(module, w, 1, node.op_type != "LSTM")
            fits += [module] if target.expected.get(key) == value.shape else []
    return fits[0] if len(fits) == 1 else None


def _named_key(target: _Target, base: str) -> str | None:
    """The parameter an initializer's own name spells (``encoder.bert_encoder.bias``,
    ``decoder.decoder.generator.resblocks.0.alpha1.0``), or None."""
    parts = base.split(".")
    for i in range(len(parts) - 1, 0, -1):
        module = target.module(parts[:i])
        key = f"{module}.{'.'.join(parts[i:])}"
        if module and key in target.expected:
            return key
    return None


def _role(op: str, index: int, node: Any) -> tuple[str, str] | None:
    """(parameter name, layout) of input ``index`` of an ``op`` node, or None."""
    weights = {
        ("Conv", 1),
        ("ConvInteger", 1),
        ("ConvTranspose", 1),
        ("Gather", 0),
    }
    if (op, index) in weights:
        return "weight", "as-is"
    if op in ("MatMul", "MatMulInteger") and index == 1:
        return "weight", "transpose"
    if op == "Gemm" and index in (1, 2):
        trans = any(a.name == "transB" and a.i for a in node.attribute)
        return ("weight", "as-is" if trans else "transpose") if index == 1 else ("bias", "as-is")
    if op in ("Conv", "ConvTranspose") and index == 2:
        return "bias", "as-is"
    if op == "LayerNormalization" and index in (1, 2):
        return ("weight", "as-is") if index == 1 else ("bias", "as-is")
    if op == "SkipLayerNormalization" and index in (2, 3):
        return ("weight", "as-is") if index == 2 else ("bias", "as-is")
    if op == "InstanceNormalization" and index in (1, 2):
        return ("weight", "as-is") if index == 1 else ("bias", "as-is")
    return None


def _module_for(target: _Target, name: str, node: Any, param: str) -> tuple[str | None, str]:
    """The module a constant belongs to: its reader's path first (an exporter may share one
    initializer among layers with equal values, under one layer's name), else its name."""
    module = target.module(_scope(node.name))
    if module and _holds(target, module, param):
        return module, f"node {node.name}"
    base = name.removesuffix("_quantized")
    parts = base.split(".")
    if len(parts) > 1 and parts[-1] in ("weight", "bias", "gamma", "beta"):
        module = target.module(parts[:-1])
        if module and _holds(target, module, parts[-1]):
            return module, f"name {base}"
    return None, ""


def _holds(target: _Target, module: str, param: str) -> bool:
    if param == "weight" and target.weight_normed(module):
        return True
    return any(f"{module}.{p}" in target.expected for p in (param, _ALIASES.get(param)))


def _scope(node_name: str) -> list[str]:
    """``/decoder/generator/ups.0/ConvTranspose`` -> ['decoder', 'generator', 'ups.0']."""
    return [p for p in node_name.split("/")[:-1] if p]


def _layout(value: np.ndarray, layout: str, node: Any) -> np.ndarray:
    return value.T.copy() if layout == "transpose" and value.ndim == 2 else value


def _weight_norm(module: str, w: np.ndarray, how: str):
    """weight_v = W, weight_g = |W| over all dims but 0; an all-zero channel (int8 rounding
    can zero one) gets v = 1 and g = 0, which computes the same zero weight without NaN."""
    import numpy as np

    w = w.astype(np.float32).copy()
    norms = np.sqrt((w.reshape(w.shape[0], -1).astype(np.float64) ** 2).sum(axis=1))
    zero = norms == 0
    w[zero] = 1.0
    g = norms.astype(np.float32).reshape(-1, *([1] * (w.ndim - 1)))
    return [
        (f"{module}.weight_v", w, how + " (weight norm: v)"),
        (f"{module}.weight_g", g, how + f" (weight norm: g; {int(zero.sum())} zero channels)"),
    ]


def _lstm_params(module: str, value: np.ndarray, index: int, quantized: bool):
    """ONNX LSTM W [dirs,4H,in] / R [dirs,4H,H] / B [dirs,8H] (DynamicQuantizeLSTM keeps W
    and R transposed: [dirs,in,4H]) -> torch weight_ih/hh_l0[_reverse], bias_ih/hh_l0."""
    import numpy as np

    out = []
    for d in range(value.shape[0]):
        suffix = "_l0" + ("_reverse" if d == 1 else "")
        how = f"LSTM {module} input {index} direction {d}"
        if index in (1, 2):
            m = value[d].T if quantized else value[d]
            kind = "ih" if index == 1 else "hh"
            out.append((f"{module}.weight_{kind}{suffix}", _gates(m), how))
        else:
            half = value.shape[1] // 2
            out.append((f"{module}.bias_ih{suffix}", _gates(value[d, :half]), how))
            out.append((f"{module}.bias_hh{suffix}", _gates(value[d, half:]), how))
    return [(k, np.ascontiguousarray(v), h) for k, v, h in out]


def _gates(m: np.ndarray) -> np.ndarray:
    import numpy as np

    blocks = np.split(m, 4, axis=0)
    return np.concatenate([blocks[i] for i in _ONNX_TO_TORCH_GATES], axis=0)


def _keep(found: dict, key: str, value: np.ndarray, how: str, target: _Target) -> None:
    """Record a value; a second reading of the same parameter must agree with the first."""
    import numpy as np

    shape = target.expected.get(key)
    if shape is None:
        return
    if value.shape != shape:
        if value.size == int(np.prod(shape)):
            value = value.reshape(shape)  # e.g. a [1, C, 1] Snake alpha read as [C]
        else:
            raise CheckpointError(
                f"{key}: the graph holds shape {value.shape} ({how}), Kokoro expects {shape}"
            )
    if key in found:
        first, first_how = found[key]
        if not np.allclose(first, value, rtol=1e-5, atol=1e-6):
            raise CheckpointError(f"{key}: two different values in the graph ({first_how}; {how})")
        return
    found[key] = (value, how)


def _complete(found: dict, target: _Target, target_model: Any) -> Recovery:
    """Fill what the FILLED list allows; anything else missing is an error."""
    import torch

    state: dict[str, dict[str, Any]] = {}
    rec = Recovery(state)
    missing = []
    defaults = target_model.state_dict()
    for key, shape in target.expected.items():
        top, rest = key.split(".", 1)
        if key in found:
            value, how = found[key]
            tensor = torch.from_numpy(value.astype("float32")).reshape(shape)
            rec.mapped[key] = how
            rec.values_from_file += tensor.numel()
            if how.endswith("zero channels)"):
                rec.zero_norm_channels += int(how.rsplit("; ", 1)[1].split()[0])
        else:
            reason = _fill_reason(key, target)
            if reason is None:
                missing.append(key)
                continue
            tensor = _fill_value(key, defaults[key])
            rec.filled[key] = reason
        rec.values_total += tensor.numel()
        state.setdefault(top, {})[rest] = tensor.to(defaults[key].dtype)
    if missing:
        raise CheckpointError(
            f"the graph does not carry {len(missing)} of Kokoro's parameters "
            f"({', '.join(missing[:4])}{'...' if len(missing) > 4 else ''}); "
            "is it a Kokoro-82M export?"
        )
    return rec


def _fill_reason(key: str, target: _Target) -> str | None:
    if key.startswith("bert.pooler."):
        return FILLED["bert.pooler"]
    module = target.modules.get(key.rsplit(".", 1)[0])
    if module is not None and type(module).__name__ == "InstanceNorm1d":
        return FILLED["InstanceNorm1d"]
    return None


def _fill_value(key: str, like: Any) -> Any:
    import torch

    if key.startswith("bert.pooler."):
        return torch.zeros_like(like)
    return torch.ones_like(like) if key.endswith(".weight") else torch.zeros_like(like)


def read_voices(folder: Path, source: str) -> dict[str, np.ndarray]:
    """Voices beside an ONNX file: ``voices.npz`` or ``voices/`` of .bin/.pt/.npy files."""
    import numpy as np

    npz = folder / "voices.npz"
    if npz.is_file():
        try:
            with np.load(npz, allow_pickle=False) as data:
                return {k: validate_voice(k, data[k], source) for k in sorted(data.files)}
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{source}: cannot read {npz}: {exc}") from None
    voices: dict[str, np.ndarray] = {}
    for path in sorted((folder / "voices").glob("*")):
        if path.suffix == ".bin":
            raw = np.fromfile(path, dtype="<f4")
            if raw.size != 510 * 256:
                raise CheckpointError(
                    f"{source}: {path.name} holds {raw.size} floats, expected 510x256"
                )
            arr = raw.reshape(510, 1, 256)
        elif path.suffix == ".npy":
            arr = np.load(path, allow_pickle=False)
        elif path.suffix == ".pt":
            arr = load_pt(path, source).numpy()
        else:
            continue
        voices[path.stem] = validate_voice(path.stem, arr, source)
    if not voices:
        raise CheckpointError(
            f"{source}: no voices beside the model: put voices.npz or voices/*.bin|.pt|.npy "
            f"in {folder}"
        )
    return voices
