"""What a sensitivity run produces: one score per candidate node, and the ranking."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class NodeScore:
    rank: int
    node: str
    op_type: str
    params: int
    bytes_now: int
    bytes_after: int
    damage: float  # mean of 1 - spectral correlation with the unconverted graph
    log_mel: float  # mean log-mel distance to the unconverted graph


@dataclass
class Ranking:
    recipe: str
    checkpoint: str
    kind: str
    graph: Path
    rows: list[NodeScore]
    items: list[str]
    weights: dict[str, tuple[str, ...]]  # node -> weight initializers it converts
    fp32_bytes: int
    exclude: tuple[str, ...]  # the recipe's own exclude globs (kept in the snippet)
    summary: dict[str, Any] = field(default_factory=dict)
