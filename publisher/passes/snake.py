"""Fold Kokoro's AdaIN affine and Snake scale into the ops around them (exact rewrites).

Every AdaIN in Kokoro is ``(1 + gamma) * InstanceNorm(x) + beta`` with gamma and beta
per channel, computed from the style vector; torch exports it as InstanceNormalization
followed by a Mul and an Add over the whole activation. Most of them are followed by the
Snake activation ``y = xt + sin(alpha * xt)^2 / alpha`` (Mul, Sin, Pow, Mul, Add), and
Snake by a Conv. In the generator those elementwise chains run at 800 and 4800 frames a
second and cost about a fifth of the CPU time of the fp32 file.

Both are per-channel affine maps, so they fold (batch 1, which every Kokoro graph is):

1. AdaIN: ``InstanceNormalization(x, s * (1 + gamma), b * (1 + gamma) + beta)``: the
   scale and bias of InstanceNormalization are inputs, so the style-dependent [C]
   vectors are computed once per run instead of two passes over [C, T].
2. Snake: with ``u = alpha * xt`` (alpha folded into the same scale and bias),
   ``alpha * y = u + sin(u)^2``; the remaining ``1 / alpha`` goes into the next Conv's
   weights (input channel c scaled by 1 / alpha_c; exact, since zero padding stays zero).
   Where that Conv will be quantized (the recipe's precision.quantize, not excluded), a
   weight column multiplied by 1/alpha (alpha reaches 1e-4 in real weights) would take
   over its channel's int8 range, so there the pass multiplies by ``1 / alpha`` instead.

The big elementwise passes per Snake go from seven (Mul, Add, Mul, Sin, Pow, Mul, Add) to
three (Sin, Mul, Add; four before a quantized Conv). Hand-written: no onnx/onnxruntime
optimizer folds an affine into InstanceNormalization's inputs or a Snake into a Conv.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from publisher.onnx_edit import all_graphs
from publisher.passes import PassContext
from publisher.passes.quantize import left_float

if TYPE_CHECKING:
    import onnx

    from publisher.recipe.schema import Recipe

log = logging.getLogger(__name__)


@dataclass
class _Graph:
    """Producer and consumer maps over one graph, and its initializers as arrays."""

    model: onnx.ModelProto

    def __post_init__(self) -> None:
        from onnx import numpy_helper

        g = self.model.graph
        self.producer = {o: n for n in g.node for o in n.output}
        self.consumers: dict[str, list] = {}
        for n in g.node:
            for i in n.input:
                self.consumers.setdefault(i, []).append(n)
        for o in g.output:
            self.consumers.setdefault(o.name, []).append(None)
        self.inits = {t.name: t for t in g.initializer}
        self.array = lambda name: numpy_helper.to_array(self.inits[name])

    def only_reader(self, tensor: str, op_type: str):
        readers = self.consumers.get(tensor, [])
        if len(readers) == 1 and readers[0] is not None and readers[0].op_type == op_type:
            return readers[0]
        return None

    def made_by(self, tensor: str, op_type: str):
        node = self.producer.get(tensor)
        return node if node is not None and node.op_type == op_type else None

    def const(self, tensor: str):
        """The value of an initializer or Constant output, else None."""
        from onnx import numpy_helper

        if tensor in self.inits:
            return self.array(tensor)
        node = self.made_by(tensor, "Constant")
        if node is not None and node.attribute and node.attribute[0].name == "value":
            return numpy_helper.to_array(node.attribute[0].t)
        return None


def _other(node, tensor: str) -> str:
    return node.input[1] if node.input[0] == tensor else node.input[0]


@dataclass
class AdaIN:
    norm: onnx.NodeProto  # InstanceNormalization
    mul: onnx.NodeProto  # * (1 + gamma)
    add: onnx.NodeProto  # + beta
    gain: str  # (1 + gamma), [1, C, 1]
    shift: str  # beta, [1, C, 1]


def find_adains(g: _Graph, norm) -> tuple[list[AdaIN], bool]:
    """Each InstanceNormalization -> Mul(dynamic [1,C,1]) -> Add(dynamic [1,C,1]) chain on
    ``norm`` (onnxruntime's simplifier merges identical norms, so one may feed several), and
    whether every reader of the norm is in one (then the norm itself can go)."""
    if len(norm.input) < 3 or g.const(norm.input[1]) is None or g.const(norm.input[2]) is None:
        return [], False
    found = []
    readers = g.consumers.get(norm.output[0], [])
    for mul in readers:
        if mul is None or mul.op_type != "Mul":
            continue
        add = g.only_reader(mul.output[0], "Add")
        if add is None:
            continue
        gain, shift = _other(mul, norm.output[0]), _other(add, mul.output[0])
        if g.const(gain) is None and g.const(shift) is None:
            found.append(AdaIN(norm, mul, add, gain, shift))
    return found, len(found) == len(readers)


@dataclass
class Snake:
    nodes: list  # Mul(alpha), Sin, Pow, Mul(1/alpha), Add
    alpha: object  # numpy [1, C, 1]
    out: str
    convs: list


def find_snake(g: _Graph, xt: str) -> Snake | None:
    """xt -> Mul(alpha) -> Sin -> Pow(2) -> Mul(1/alpha) -> Add(xt) -> Conv(s), exactly."""
    import numpy as np

    readers = g.consumers.get(xt, [])
    if len(readers) != 2 or None in readers:
        return None
    scale = next((n for n in readers if n.op_type == "Mul"), None)
    alpha = None if scale is None else g.const(_other(scale, xt))
    sin = scale and g.only_reader(scale.output[0], "Sin")
    power = sin and g.only_reader(sin.output[0], "Pow")
    inverse = power and g.only_reader(power.output[0], "Mul")
    if alpha is None or inverse is None or alpha.ndim != 3 or alpha.shape[::2] != (1, 1):
        return None
    exponent, recip = g.const(power.input[1]), g.const(_other(inverse, power.output[0]))
    add = g.only_reader(inverse.output[0], "Add")
    if exponent is None or float(exponent) != 2.0 or recip is None or add is None:
        return None
    if _other(add, inverse.output[0]) != xt or add not in readers:
        return None
    if not np.allclose(recip * alpha, 1.0, rtol=1e-5) or np.any(alpha == 0):
        return None
    convs = g.consumers.get(add.output[0], [])
    if not convs or any(
        c is None or c.op_type != "Conv" or c.input[0] != add.output[0] for c in convs
    ):
        return None
    if any(g.const(c.input[1]) is None or _group(c) != 1 for c in convs):
        return None
    return Snake([scale, sin, power, inverse, add], alpha, add.output[0], convs)


def _group(conv) -> int:
    return next((a.i for a in conv.attribute if a.name == "group"), 1)


class _Writer:
    """New nodes and initializers for one fold, named after the nodes they replace."""

    def __init__(self, g: _Graph) -> None:
        self.g, self.nodes, self.inits = g, [], []

    def const(self, name: str, value, dtype: str = "float32") -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(value.astype(dtype), name))
        return name

    def node(self, op: str, inputs: list[str], name: str, output: str | None = None) -> str:
        """Append ``op``; its output is ``output``, or a tensor named like the node."""
        from onnx import helper

        self.nodes.append(helper.make_node(op, inputs, [output or name], name=name))
        return output or name

    def per_channel(self, op: str, tensor: str, name: str, values) -> str:
        """``tensor`` [1, C, 1] times (or plus) the constant per-channel ``values``."""
        return self.node(op, [tensor, self.const(f"{name}_c", values.reshape(1, -1, 1))], name)

    def flat(self, tensor: str) -> str:
        """[1, C, 1] -> [C] (batch 1), as InstanceNormalization takes its scale and bias."""
        import numpy as np

        shape = self.const(f"{tensor}_shape", np.array([-1]), "int64")
        return self.node("Reshape", [tensor, shape], f"{tensor}_flat")


def fold_one(w: _Writer, a: AdaIN, snake: Snake | None, quantized) -> None:
    """Emit the folded AdaIN (and Snake) into ``w``; see the module docstring."""
    import numpy as np

    g, base = w.g, f"{a.mul.name}/adain"  # unique, and keeps the module's prefix
    ns, nb = g.const(a.norm.input[1]), g.const(a.norm.input[2])
    alpha = np.ones_like(ns) if snake is None else snake.alpha.reshape(-1)
    # alpha * ((1 + gamma) * (ns * xhat + nb) + beta) = scale * xhat + bias
    scale = w.per_channel("Mul", a.gain, f"{base}_scale", ns * alpha)
    bias = w.per_channel("Mul", a.gain, f"{base}_gain_bias", nb * alpha)
    shift = a.shift if snake is None else w.per_channel("Mul", a.shift, f"{base}_beta", alpha)
    bias = w.node("Add", [bias, shift], f"{base}_bias")
    inputs = [a.norm.input[0], w.flat(scale), w.flat(bias)]
    u = w.node("InstanceNormalization", inputs, base, a.add.output[0] if snake is None else None)
    w.nodes[-1].attribute.extend(x for x in a.norm.attribute if x.name == "epsilon")
    if snake is None:
        return
    _, sin_node, pow_node, inv_node, add_node = snake.nodes
    s = w.node("Sin", [u], sin_node.name, sin_node.output[0])
    square = w.node("Mul", [s, s], f"{pow_node.name}_square", pow_node.output[0])
    if any(quantized(c) for c in snake.convs):  # u + sin(u)^2 = alpha * snake: undo alpha
        v = w.node("Add", [u, square], add_node.name, f"{add_node.name}_scaled")
        w.node(
            "Mul",
            [v, w.const(f"{inv_node.name}_c", 1.0 / alpha.reshape(1, -1, 1))],
            inv_node.name,
            snake.out,
        )
        return
    w.node("Add", [u, square], add_node.name, snake.out)
    for conv in snake.convs:  # input channel c of each reader's weight scaled by 1/alpha_c
        weight = g.const(conv.input[1])
        column = alpha.reshape(1, -1, *([1] * (weight.ndim - 2)))
        conv.input[1] = w.const(f"{conv.name}_w_over_alpha", weight / column)


def quantized_conv(recipe: Recipe):
    """Whether the recipe's quantize pass will turn a given Conv node into an 8-bit one."""
    q = recipe.precision.quantize
    ops = set(q.op_types) or {"Conv"}
    if q.type not in ("dynamic", "static") or "Conv" not in ops:
        return lambda conv: False
    return lambda conv: not left_float(conv.name, q.exclude, q.include)


def fold_snake(model: onnx.ModelProto, quantized=lambda conv: False) -> tuple[int, int]:
    """Fold every AdaIN (and the Snake after it) in the main graph; returns (AdaINs, Snakes)."""
    g = _Graph(model)
    plans, removed, emit_at = [], set(), {}
    for node in model.graph.node:
        if node.op_type == "InstanceNormalization":
            adains, whole = find_adains(g, node)
            plans.extend((a, find_snake(g, a.add.output[0])) for a in adains)
            if whole:
                removed.add(id(node))
    for a, snake in plans:
        w = _Writer(g)
        fold_one(w, a, snake, quantized)
        removed.update(id(n) for n in (a.mul, a.add, *(snake.nodes if snake else ())))
        emit_at[id(a.add)] = w
    splice(model, emit_at, removed)
    return len(plans), sum(1 for _, s in plans if s)


def splice(model: onnx.ModelProto, emit_at: dict[int, _Writer], removed: set[int]) -> None:
    """Rewrite the main graph in place: each writer's nodes (and initializers) go where
    the node with that id was, the ``removed`` nodes go, unused initializers with them."""
    nodes = []
    for node in model.graph.node:
        if id(node) in emit_at:
            nodes.extend(emit_at[id(node)].nodes)
            model.graph.initializer.extend(emit_at[id(node)].inits)
        elif id(node) not in removed:
            nodes.append(node)
    del model.graph.node[:]
    model.graph.node.extend(nodes)
    _drop_unused_initializers(model)


def _drop_unused_initializers(model: onnx.ModelProto) -> None:
    used = {i for graph in all_graphs(model.graph) for n in graph.node for i in n.input}
    keep = [t for t in model.graph.initializer if t.name in used]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)


def fold_snake_pass(model: onnx.ModelProto, recipe: Recipe, ctx: PassContext) -> onnx.ModelProto:
    adains, snakes = fold_snake(model, quantized_conv(recipe))
    ctx.notes["folded"] = {"adain": adains, "snake": snakes}
    log.info("folded %d AdaIN affines and %d Snake activations", adains, snakes)
    return model
