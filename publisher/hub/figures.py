"""Pictures the card embeds: size against CPU speed for every benchmarked variant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from publisher.hub.card import SIZE_SPEED_FIGURE


def size_speed_figure(variants: list[dict[str, Any]], folder: Path) -> str | None:
    """Write ``figures/size_speed.png`` under ``folder`` (file size in MiB against the
    benchmark's real-time factor, one labelled point per variant); None when no variant
    has a benchmark, so the card shows no empty chart."""
    points = [
        (v["bytes"] / 2**20, v["bench"]["rtf"], v["recipe"])
        for v in variants
        if (v.get("bench") or {}).get("rtf")
    ]
    if not points:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    try:
        for size, rtf, name in points:
            ax.scatter([size], [rtf], s=36)
            ax.annotate(name, (size, rtf), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel("file size (MiB)")
        ax.set_ylabel("real-time factor on CPU (lower is faster)")
        ax.set_title("Size and speed of each variant (median of the benchmark)")
        ax.grid(alpha=0.3)
        ax.set_xlim(0, max(p[0] for p in points) * 1.2)  # room for the labels
        ax.set_ylim(0, max(p[1] for p in points) * 1.2)
        path = Path(folder) / SIZE_SPEED_FIGURE
        path.parent.mkdir(parents=True, exist_ok=True)
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
    finally:
        plt.close(fig)
    return SIZE_SPEED_FIGURE
