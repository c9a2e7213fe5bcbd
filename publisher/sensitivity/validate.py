"""Evidence that a sensitivity ranking ranks well, with REAL quantization.

1. worst-k vs random-k: ``quantize_dynamic(nodes_to_quantize=...)`` on the parity graph for
   the k nodes ranked worst, and for k random candidates (seeded draws); the worst-k graph
   must hurt fidelity clearly more.
2. agreement with the slow method (one real quantization, one new session per node) on
   nodes spread over the ranking: Spearman rank correlation of the two damage scores, and
   the slow method's measured seconds per node, extrapolated to every candidate.
"""

from __future__ import annotations

import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.passes.quantize import quantize_dynamic_file, quiet_quantizer, weight_type
from publisher.runtime.synth import open_session
from publisher.sensitivity.scoring import run_waves

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import numpy as np

    from publisher.recipe.schema import Recipe
    from publisher.sensitivity.results import Ranking
    from publisher.sensitivity.scoring import Probe, Scorer

RANDOM_DRAWS = 3
SEED = 0


def _ranks(x: Sequence[float]) -> np.ndarray:
    """1-based ranks, ties sharing their average rank."""
    import numpy as np

    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), dtype=np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    for value in np.unique(x):
        tied = x == value
        ranks[tied] = ranks[tied].mean()
    return ranks


def spearman(a: Sequence[float], b: Sequence[float]) -> float:
    """Spearman rank correlation (Pearson correlation of average ranks); nan if constant."""
    import numpy as np

    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denom = float(np.sqrt((ra * ra).sum() * (rb * rb).sum()))
    return float((ra * rb).sum() / denom) if denom > 0 else float("nan")


def spread(n: int, m: int) -> list[int]:
    """``m`` indices spread evenly over ``range(n)``, first and last included."""
    import numpy as np

    return sorted({int(round(v)) for v in np.linspace(0, n - 1, min(m, n))})


def quantizer_names(nodes: Sequence[str], op_types: dict[str, str]) -> list[str]:
    """Names as ``quantize_dynamic`` matches them: it first rewrites every Gemm it can
    quantize into ``<name>_MatMul`` (+ ``<name>_Add``), then filters by node name, so a Gemm
    is selected (or excluded) only under its ``_MatMul`` name."""
    return [f"{n}_MatMul" if op_types.get(n) == "Gemm" else n for n in nodes]


def quantize_nodes(
    graph: Path, recipe: Recipe, nodes: Sequence[str], op_types: dict[str, str], out: Path
) -> Path:
    """``quantize_dynamic`` of ``graph`` restricted to ``nodes``, as the quantize-dynamic pass
    does it: one call per weight type (the recipe's for MatMul/Gemm/LSTM, uint8 for Conv)."""

    if not nodes:
        raise ValueError("no nodes to quantize (quantize_dynamic would quantize them all)")
    groups: dict[str, list[str]] = {}
    for node in nodes:
        groups.setdefault(weight_type(op_types[node], "dynamic", recipe), []).append(node)
    src = graph
    with quiet_quantizer():
        for step, (wtype, names) in enumerate(sorted(groups.items())):
            dst = out if step == len(groups) - 1 else out.with_suffix(f".{step}.onnx")
            quantize_dynamic_file(
                src, dst, recipe, wtype, nodes_to_quantize=quantizer_names(names, op_types)
            )
            if src != graph:
                src.unlink()
            src = dst
    return out


def real_damage(
    graph: Path,
    recipe: Recipe,
    ranking: Ranking,
    nodes: Sequence[str],
    probe_list: list[Probe],
    scorer: Scorer,
    workdir: Path,
) -> dict[str, Any]:
    """Quantize ``nodes`` for real, open a new session, score it against the references."""

    start = time.perf_counter()
    ops = {r.node: r.op_type for r in ranking.rows}
    path = quantize_nodes(graph, recipe, nodes, ops, workdir / "quantized.onnx")
    corr, mel = scorer.score(run_waves(open_session(path), probe_list))
    path.unlink()
    return {"damage": corr, "log_mel": mel, "seconds": time.perf_counter() - start}


def validate(
    graph: Path,
    recipe: Recipe,
    ranking: Ranking,
    probe_list: list[Probe],
    scorer: Scorer,
    *,
    k: int,
    sample: int = 8,
    draws: int = RANDOM_DRAWS,
    seed: int = SEED,
) -> dict[str, Any]:
    """Both checks (see module doc); returns the numbers for summary.json."""
    import numpy as np

    names = [r.node for r in ranking.rows]
    k = max(1, min(k, len(names)))
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="sensitivity-") as tmp:
        work = Path(tmp)
        worst = real_damage(graph, recipe, ranking, names[:k], probe_list, scorer, work)
        log.info("  validate: worst-%d real damage %.4g", k, worst["damage"])
        randoms = []
        for _ in range(draws):
            picked = sorted(rng.choice(len(names), size=k, replace=False).tolist())
            result = real_damage(
                graph, recipe, ranking, [names[i] for i in picked], probe_list, scorer, work
            )
            randoms.append({"ranks": [i + 1 for i in picked], **result})
            log.info("  validate: random-%d real damage %.4g", k, result["damage"])
        agreement = []
        for i in spread(len(names), sample):
            row = ranking.rows[i]
            slow = real_damage(graph, recipe, ranking, [row.node], probe_list, scorer, work)
            agreement.append(
                {
                    "rank": row.rank,
                    "node": row.node,
                    "fast_damage": row.damage,
                    "slow_damage": slow["damage"],
                    "fast_log_mel": row.log_mel,
                    "slow_log_mel": slow["log_mel"],
                    "slow_seconds": slow["seconds"],
                }
            )
            log.info(
                "  validate: rank %d fast %.3g slow %.3g", row.rank, row.damage, slow["damage"]
            )
    mean_random = float(np.mean([r["damage"] for r in randoms]))
    median_random = float(np.median([r["damage"] for r in randoms]))
    per_node = float(np.mean([a["slow_seconds"] for a in agreement]))
    ours = ranking.summary.get("wall_seconds", float("nan"))
    return {
        "k": k,
        "worst_k": {"nodes": names[:k], **worst},
        "random_k": randoms,
        "random_k_mean_damage": mean_random,
        "random_k_median_damage": median_random,
        "worst_over_random": worst["damage"] / mean_random if mean_random > 0 else float("inf"),
        "worst_over_random_median": (
            worst["damage"] / median_random if median_random > 0 else float("inf")
        ),
        "worst_beats_every_random": all(worst["damage"] > r["damage"] for r in randoms),
        "agreement": agreement,
        "spearman_damage": spearman(
            [a["fast_damage"] for a in agreement], [a["slow_damage"] for a in agreement]
        ),
        "spearman_log_mel": spearman(
            [a["fast_log_mel"] for a in agreement], [a["slow_log_mel"] for a in agreement]
        ),
        "slow_method": {
            "seconds_per_node": round(per_node, 3),
            "extrapolated_seconds": round(per_node * len(names), 1),
            "speedup_vs_ours": round(per_node * len(names) / ours, 1) if ours else None,
        },
    }
