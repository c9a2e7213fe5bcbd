"""What ``publisher sensitivity`` writes: ranking.csv/.json, summary.json, the top-30 chart,
and the exclude-list snippet with its size estimate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from publisher.sensitivity.results import Ranking

TOP_CHART = 30


def exclude_nodes(ranking: Ranking, threshold: float) -> list[str]:
    """Nodes whose damage is above ``threshold``, worst first."""
    return [r.node for r in ranking.rows if r.damage > threshold]


def size_estimate(ranking: Ranking, excluded: Sequence[str]) -> dict[str, int]:
    """Bytes: fp32 file, and the file after converting every candidate but ``excluded``."""
    skip = set(excluded)
    saved, seen, saved_all, seen_all = 0, set(), 0, set()
    for r in ranking.rows:
        key = ranking.weights.get(r.node, (r.node,))
        if key not in seen_all:
            seen_all.add(key)
            saved_all += r.bytes_now - r.bytes_after
        if r.node not in skip and key not in seen:
            seen.add(key)
            saved += r.bytes_now - r.bytes_after
    return {
        "fp32_bytes": ranking.fp32_bytes,
        "estimated_bytes": ranking.fp32_bytes - saved,
        "all_converted_bytes": ranking.fp32_bytes - saved_all,
        "excluded_nodes": len(skip),
        "converted_nodes": len(ranking.rows) - len(skip),
    }


def excludes_yaml(ranking: Ranking, threshold: float) -> str:
    """The recipe snippet keeping nodes above ``threshold`` unconverted, with sizes."""
    nodes = exclude_nodes(ranking, threshold)
    size = size_estimate(ranking, nodes)
    mib = {k: v / 2**20 for k, v in size.items() if k.endswith("bytes")}
    section, key = ("fp16", "block_names") if ranking.kind == "fp16" else ("quantize", "exclude")
    entries = [*ranking.exclude, *(n for n in nodes if n not in ranking.exclude)]
    lines = [
        f"# publisher sensitivity {ranking.recipe} ({ranking.checkpoint}): damage > {threshold:g}"
        f" keeps {len(nodes)} of {len(ranking.rows)} nodes unconverted",
        f"# estimated size {mib['estimated_bytes']:.1f} MiB (fp32 {mib['fp32_bytes']:.1f} MiB,"
        f" every candidate converted {mib['all_converted_bytes']:.1f} MiB)",
        "precision:",
        f"  {section}:",
    ]
    if not entries:
        return "\n".join([*lines, f"    {key}: []", ""])
    lines.append(f"    {key}:")
    lines += [f"      - {json.dumps(e)}" for e in entries]
    return "\n".join([*lines, ""])


def write_outputs(
    ranking: Ranking, out_dir: Path, threshold: float | None = None, write_excludes: bool = False
) -> dict[str, Path]:
    """ranking.csv/.json, summary.json and top-30 chart in OUT/sensitivity/<recipe>/."""
    import csv

    folder = Path(out_dir) / "sensitivity" / ranking.recipe
    folder.mkdir(parents=True, exist_ok=True)
    paths = {
        "csv": folder / "ranking.csv",
        "json": folder / "ranking.json",
        "summary": folder / "summary.json",
        "png": folder / "top30.png",
    }
    rows = [asdict(r) for r in ranking.rows]
    with paths["csv"].open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    paths["json"].write_text(json.dumps(rows, indent=1) + "\n")
    summary = dict(ranking.summary)
    if threshold is not None:
        excluded = exclude_nodes(ranking, threshold)
        summary["threshold"] = threshold
        summary["exclude"] = excluded
        summary["size"] = size_estimate(ranking, excluded)
        if write_excludes:
            paths["excludes"] = folder / "excludes.yaml"
            paths["excludes"].write_text(excludes_yaml(ranking, threshold))
    paths["summary"].write_text(json.dumps(summary, indent=2) + "\n")
    chart(ranking, paths["png"])
    return paths


def chart(ranking: Ranking, path: Path, top: int = TOP_CHART) -> None:
    """Horizontal bars of the ``top`` worst nodes' damage (log scale)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = ranking.rows[:top][::-1]
    fig, ax = plt.subplots(figsize=(10, 0.28 * len(rows) + 1.5))
    values = [max(r.damage, 1e-12) for r in rows]
    ax.barh(range(len(rows)), values, color="tab:red")
    ax.set_yticks(range(len(rows)), [f"{r.node} ({r.op_type})" for r in rows], fontsize=7)
    ax.set_xscale("log")
    ax.set_xlabel("damage: 1 - spectral correlation with the unconverted graph")
    ax.set_title(f"{ranking.recipe}: {top} most sensitive of {len(ranking.rows)} nodes")
    fig.savefig(path, dpi=90, bbox_inches="tight")
    plt.close(fig)
