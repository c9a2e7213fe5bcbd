"""Rank the nodes a precision recipe would convert by how much converting each one ALONE
hurts fidelity (``publisher sensitivity``).

Method: one instrumented copy of the deterministic (parity-mode) fp32 graph (after the
recipe's passes that precede its precision pass, e.g. ``simplify``), one session,
one run per candidate node. ``publisher.sensitivity.graph.instrument`` adds an input
``sensitivity_switches`` [K] and wraps candidate i in ``If(switch_i != 0)``, whose ``then``
branch runs the node on ``W + s_i * (fake(W) - W)`` (fake = the recipe's int8/uint8/int4/
fp16 rounding, precomputed in numpy) and, for quantization, on ``DequantizeLinear(
DynamicQuantizeLinear(x))`` of its float input. All switches 0 is the plain graph (checked);
switch i alone is "convert node i only". Damage = mean over a few fixed short corpus inputs
of ``1 - spectral_correlation(baseline, converted)``; the log-mel distance is kept too. No
reload, no new session and no random source between trials, so the scores carry no noise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.locations import cache_root
from publisher.passes import PASSES, PassContext, plan
from publisher.runtime.errors import BuildError, InputError
from publisher.runtime.synth import open_session, session_options
from publisher.sensitivity.graph import SWITCHES, conversion, find_candidates, instrument
from publisher.sensitivity.results import NodeScore, Ranking
from publisher.sensitivity.scoring import Probe, Scorer, check_score, probes, run_waves
from publisher.sensitivity.validate import validate as validate_ranking
from publisher.workspace import cached_entry_ok, store

if TYPE_CHECKING:
    from publisher.model.checkpoint import Checkpoint
    from publisher.recipe.schema import Recipe

BASELINE_TOLERANCE = 1e-4  # all-switches-off vs the plain parity graph, max abs
PROGRESS_EVERY = 10
log = logging.getLogger(__name__)


def passes_before_precision(recipe: Recipe) -> list[str]:
    """The recipe's passes that run before its first precision pass (e.g. ``simplify``):
    the graph the quantizer sees, so candidates and names match the build."""
    out = []
    for name in recipe.passes:
        if PASSES[name].converts_precision:
            break
        out.append(name)
    return out


def ranked_graph(ckpt: Checkpoint, recipe: Recipe) -> Path:
    """The parity-mode fp32 export after ``passes_before_precision`` (cached like exports)."""
    import hashlib

    import onnx
    import onnxruntime as ort

    # lazy: the export side imports torch and kokoro; a cached ranked graph needs neither
    from publisher.export.fp32 import export_fp32

    graph = export_fp32(ckpt, recipe, parity=True)
    before = passes_before_precision(recipe)
    if not before:
        return graph
    plan(recipe)  # unknown pass names are a recipe error
    blob = f"{graph.parent.name}|{','.join(before)}|{ort.__version__}".encode()
    target = cache_root() / "sensitivity" / hashlib.sha256(blob).hexdigest()[:24] / "model.onnx"
    if cached_entry_ok(
        target, what="sensitivity cache entry"
    ):  # sha256 recorded when written, checked at every read
        return target
    ctx = PassContext(config=ckpt.config, voices=ckpt.voices)
    model = onnx.load(str(graph))
    for name in before:
        model = PASSES[name].load()(model, recipe, ctx)
    store(target, lambda tmp: onnx.save(model, str(tmp)))
    return target


def conv_post(model: Any) -> str | None:
    """The generator's output conv: a node named ``*conv_post*``, else the last generator Conv."""
    names = [n.name for n in model.graph.node]
    hit = [n for n in names if "conv_post" in n]
    if hit:
        return hit[0]
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    gen = [n.name for n in convs if "/generator/" in n.name] or [n.name for n in convs]
    return gen[-1] if gen else None


def _trials(session: Any, n: int, probe_list: list[Probe], scorer: Scorer) -> list:
    """(damage, log-mel) with switch i alone on, for every i; progress every 10 nodes."""
    import numpy as np

    start, scores = time.perf_counter(), []
    switches = np.zeros(n, dtype=np.float32)
    for i in range(n):
        switches[:] = 0
        switches[i] = 1
        scores.append(scorer.score(run_waves(session, probe_list, {SWITCHES: switches})))
        if (i + 1) % PROGRESS_EVERY == 0 or i + 1 == n:
            spent = time.perf_counter() - start
            left = spent / (i + 1) * (n - i - 1)
            log.info("  %d/%d nodes, %.0f s, about %.0f s left", i + 1, n, spent, left)
    return scores


def rank_nodes(
    ckpt: Checkpoint,
    recipe: Recipe,
    *,
    items: Sequence[str] | None = None,
    validate: int | None = None,
    sample: int = 8,
    score: str = "spectral",
) -> Ranking:
    """Score every candidate node of ``recipe`` alone; ``validate=k`` also runs the checks
    of ``publisher.sensitivity.validate`` (real quantization of worst-k vs random-k, and
    agreement with the slow one-node-per-session method on ``sample`` nodes). ``score``
    picks the damage measure (see ``Scorer``)."""
    import numpy as np
    import onnx
    import onnxruntime as ort

    check_score(score)
    kind = conversion(recipe)
    if validate is not None and kind != "dynamic":
        raise InputError(f"--validate needs precision.quantize.type 'dynamic', got {kind!r}")
    start = time.perf_counter()
    graph = ranked_graph(ckpt, recipe)
    model = onnx.load(str(graph))
    cands = find_candidates(model, recipe)
    if not cands:
        raise BuildError(f"recipe {recipe.name}: every convertible node is excluded")
    probe_list = probes(ckpt, items)
    plain = open_session(graph)
    refs = run_waves(plain, probe_list)
    tick = time.perf_counter()
    run_waves(plain, probe_list)  # one timed pass: the cost of a trial without switches
    plain_seconds = time.perf_counter() - tick
    del plain
    log.info(
        "sensitivity %s: %d %s candidates, %d inputs",
        recipe.name,
        len(cands),
        kind,
        len(probe_list),
    )
    wired = instrument(model, cands, recipe).SerializeToString()
    session = ort.InferenceSession(wired, session_options(), providers=["CPUExecutionProvider"])
    del wired
    base = run_waves(session, probe_list, {SWITCHES: np.zeros(len(cands), np.float32)})
    drift = max(float(np.max(np.abs(a - b))) for a, b in zip(refs, base, strict=True))
    if drift > BASELINE_TOLERANCE:
        raise BuildError(f"instrumented graph drifts from the parity graph by {drift:.3g}")
    setup = time.perf_counter() - start
    scorer = Scorer(base, score)
    scores = _trials(session, len(cands), probe_list, scorer)
    del session
    order = sorted(range(len(cands)), key=lambda i: (-scores[i][0], -scores[i][1], i))
    rows = [
        NodeScore(r, c.name, c.op_type, c.params, c.bytes_now, c.bytes_after, *scores[i])
        for r, (i, c) in enumerate(((i, cands[i]) for i in order), 1)
    ]
    own = recipe.precision.fp16.block_names if kind == "fp16" else recipe.precision.quantize.exclude
    ranking = Ranking(
        recipe=recipe.name,
        checkpoint=ckpt.source,
        kind=kind,
        graph=graph,
        rows=rows,
        items=[p.id for p in probe_list],
        weights={c.name: c.weight_names for c in cands},
        fp32_bytes=graph.stat().st_size,
        exclude=tuple(own),
    )
    trials = time.perf_counter() - start - setup
    post = conv_post(model)
    where = next((r for r in rows if r.node == post), None)
    ranking.summary = {
        "method": (
            "one instrumented parity graph, one session, one run per node: node i runs on "
            "W + s_i*(fake(W)-W) (and a fake-quantized input) when switch i is on"
        ),
        "recipe": recipe.name,
        "checkpoint": ckpt.source,
        "conversion": kind,
        "score": score,
        "damage_is": "mean DNSMOS overall drop" if score == "dnsmos" else "mean 1 - spectral corr",
        "candidates": len(cands),
        "trials": len(cands),
        "runs": (len(cands) + 2) * len(probe_list),
        "inputs": ranking.items,
        "graph": str(graph),
        "passes_before_ranking": passes_before_precision(recipe),
        "baseline_max_abs_vs_parity_graph": drift,
        "setup_seconds": round(setup, 2),
        "trial_seconds": round(trials, 2),
        "seconds_per_node": round(trials / len(cands), 4),
        "plain_pass_seconds": round(plain_seconds, 4),  # same inputs, plain parity graph
        "node_cost_in_plain_passes": round(trials / len(cands) / plain_seconds, 3),
        "wall_seconds": round(time.perf_counter() - start, 2),
        "conv_post": {
            "node": post,
            "rank": where.rank if where else None,
            "of": len(rows),
            "damage": where.damage if where else None,
        },
    }
    if validate is not None:
        ranking.summary["validation"] = validate_ranking(
            graph,
            recipe,
            ranking,
            probe_list,
            scorer if drift == 0 else Scorer(refs, score),
            k=validate,
            sample=sample,
        )
    ranking.summary["wall_seconds_with_validation"] = round(time.perf_counter() - start, 2)
    return ranking
