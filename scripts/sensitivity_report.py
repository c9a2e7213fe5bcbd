"""Full-size sensitivity measurement: rank, validate, and report the figures.

    PUBLISHER_CACHE=/tmp/full/cache python scripts/sensitivity_report.py \\
        --checkpoint synthetic:full --validate 10 --out /tmp/full/sens

Without --recipe it ranks a dynamic int8 recipe with no excludes (the repository's
``quantized`` recipe minus its conv_post exclude), so the run shows whether the ranking
finds conv_post by itself. Writes the usual OUT/sensitivity/NAME/ files plus report.md.
Minutes on two cores; run it alone.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

REFERENCE_MINUTES = 76.0  # the reference tool's estimate: ~920 reload+session trials
DEFAULT_RECIPE = """\
description: "Dynamic int8 without excludes: what sensitivity should find by itself"
checkpoint: synthetic:full
passes: [simplify, quantize-dynamic]
precision:
  quantize:
    type: dynamic
    weight_type: int8
"""


def _report(s: dict, rows: list, threshold: float) -> str:
    v = s.get("validation")
    minutes = s["wall_seconds"] / 60
    lines = [
        f"# Sensitivity: {s['recipe']} on {s['checkpoint']}",
        "",
        f"- candidates: {s['candidates']} ({s['conversion']}), inputs {', '.join(s['inputs'])}",
        f"- passes before ranking: {', '.join(s['passes_before_ranking']) or 'none'}",
        f"- ranking wall time: {s['wall_seconds']:.1f} s ({minutes:.2f} min; setup "
        f"{s['setup_seconds']:.1f} s, {s['seconds_per_node']:.3f} s per node)",
        f"- one node costs {s['node_cost_in_plain_passes']:.2f} plain passes of the parity graph "
        f"over the same inputs ({s['plain_pass_seconds']:.3f} s per pass at the start)",
        f"- load average (1, 5, 15 min) at start {s.get('load_average_at_start')}, "
        f"at end {s.get('load_average_at_end')}",
        f"- vs the reference tool's {REFERENCE_MINUTES:.0f} min estimate: "
        f"{REFERENCE_MINUTES / minutes:.1f}x faster",
        f"- baseline (all switches off) vs parity graph: max abs "
        f"{s['baseline_max_abs_vs_parity_graph']:.3g}",
        f"- conv_post ({s['conv_post']['node']}): rank {s['conv_post']['rank']} of "
        f"{s['conv_post']['of']}, damage {s['conv_post']['damage']}",
    ]
    if v:
        slow = v["slow_method"]
        lines += [
            f"- slow method (real quantize_dynamic + new session per node): "
            f"{slow['seconds_per_node']:.1f} s per node, extrapolated "
            f"{slow['extrapolated_seconds'] / 60:.1f} min for {s['candidates']} nodes "
            f"({slow['speedup_vs_ours']}x our time)",
            f"- worst-{v['k']} really quantized: damage {v['worst_k']['damage']:.4g}, "
            f"log-mel {v['worst_k']['log_mel']:.4g}",
            *(
                f"- random-{v['k']} draw {i + 1}: damage {r['damage']:.4g}, "
                f"log-mel {r['log_mel']:.4g} (ranks {r['ranks']})"
                for i, r in enumerate(v["random_k"])
            ),
            f"- worst / mean random: {v['worst_over_random']:.3g}x, worst / median random: "
            f"{v['worst_over_random_median']:.3g}x; worst beats every draw: "
            f"{v['worst_beats_every_random']}",
            f"- Spearman (fast vs slow, {len(v['agreement'])} nodes): damage "
            f"{v['spearman_damage']:.3f}, log-mel {v['spearman_log_mel']:.3f}",
            "",
            "| rank | node | fast damage | slow damage | fast log-mel | slow log-mel |",
            "|---|---|---|---|---|---|",
            *(
                f"| {a['rank']} | {a['node']} | {a['fast_damage']:.3g} | {a['slow_damage']:.3g}"
                f" | {a['fast_log_mel']:.3g} | {a['slow_log_mel']:.3g} |"
                for a in v["agreement"]
            ),
        ]
    lines += ["", f"## Top 15 (threshold {threshold:g})", "", "| rank | node | op | damage |"]
    lines += ["|---|---|---|---|"]
    lines += [f"| {r.rank} | {r.node} | {r.op_type} | {r.damage:.3g} |" for r in rows[:15]]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", default="synthetic:full")
    parser.add_argument("--recipe", default=None, help="recipe name or path (default: above)")
    parser.add_argument("--validate", type=int, default=10, help="k for worst-k vs random-k")
    parser.add_argument("--sample", type=int, default=8, help="nodes for the slow method")
    parser.add_argument("--threshold", type=float, default=1e-4)
    parser.add_argument("--out", type=Path, default=Path("/tmp/full/sens"))
    args = parser.parse_args()
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")

    from publisher.cli.output import show_progress
    from publisher.model.sources import open_checkpoint
    from publisher.recipe.loader import load_recipe
    from publisher.sensitivity.output import write_outputs
    from publisher.sensitivity.ranking import rank_nodes

    args.out.mkdir(parents=True, exist_ok=True)
    if args.recipe is None:
        path = args.out / "int8-dynamic.yaml"
        path.write_text(DEFAULT_RECIPE)
        args.recipe = str(path)
    recipe = load_recipe(args.recipe)
    load_start = os.getloadavg()
    start = time.perf_counter()
    ckpt = open_checkpoint(args.checkpoint)
    opened = time.perf_counter() - start
    show_progress()  # the ranking's progress lines on stderr, as the command shows them
    ranking = rank_nodes(ckpt, recipe, validate=args.validate or None, sample=args.sample)
    ranking.summary["checkpoint_open_seconds"] = round(opened, 2)
    ranking.summary["load_average_at_start"] = [round(x, 2) for x in load_start]
    ranking.summary["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
    paths = write_outputs(ranking, args.out, threshold=args.threshold, write_excludes=True)
    text = _report(ranking.summary, ranking.rows, args.threshold)
    report = paths["summary"].parent / "report.md"
    report.write_text(text)
    print(text)
    print(json.dumps({k: str(p) for k, p in {**paths, "report": report}.items()}, indent=1))


if __name__ == "__main__":
    main()
