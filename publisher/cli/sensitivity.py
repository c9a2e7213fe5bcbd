"""``publisher sensitivity --recipe NAME``: rank the nodes a precision recipe would convert
by the damage converting each one alone does (see publisher/sensitivity/ranking.py).

Registered by publisher.cli with ``main.add_command(sensitivity_command)``. Heavy modules
are imported inside the command so ``publisher --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from publisher.cli.options import checkpoint_option, out_option, recipe_option
from publisher.model import sources
from publisher.recipe.loader import load_recipe
from publisher.runtime.errors import InputError
from publisher.sensitivity.graph import conversion
from publisher.sensitivity.output import excludes_yaml, write_outputs
from publisher.sensitivity.ranking import rank_nodes
from publisher.sensitivity.scoring import check_score

SHOW_TOP = 10


@click.command("sensitivity")
@recipe_option("Recipe whose precision section (quantize or fp16) says what gets converted.")
@checkpoint_option
@out_option("Results go to OUT/sensitivity/NAME/.")
@click.option(
    "--threshold",
    type=click.FloatRange(min=0.0),
    default=None,
    help="Nodes with damage above this stay unconverted: print them as a recipe snippet.",
)
@click.option(
    "--write-excludes",
    is_flag=True,
    help="Also write the snippet to OUT/sensitivity/NAME/excludes.yaml (needs --threshold).",
)
@click.option(
    "--validate",
    "validate_k",
    type=click.IntRange(1, 10_000),
    default=None,
    metavar="K",
    help="Check the ranking with real quantization: worst-K vs random-K nodes, and the "
    "slow one-node-per-session method on 8 nodes (dynamic quantization only).",
)
@click.option(
    "--item",
    "items",
    multiple=True,
    metavar="ID",
    help="Corpus item to score on (repeatable; default: short-1, short-2).",
)
@click.option(
    "--score",
    type=click.Choice(["spectral", "dnsmos"]),
    default="spectral",
    show_default=True,
    help="Damage measure: 1 - spectral correlation, or the drop in DNSMOS overall "
    "(needs the [quality] extra; real weights).",
)
def sensitivity_command(
    recipe_name: str,
    checkpoint: str | None,
    out_dir: Path,
    threshold: float | None,
    write_excludes: bool,
    validate_k: int | None,
    items: tuple[str, ...],
    score: str,
) -> None:
    """Rank the nodes RECIPE would convert by how much converting each alone hurts.

    Uses one instrumented copy of the deterministic (parity-mode) fp32 graph and one run
    per node; writes ranking.csv, ranking.json, summary.json and top30.png.
    """

    if write_excludes and threshold is None:
        raise InputError("--write-excludes needs --threshold")
    recipe = load_recipe(recipe_name)
    conversion(recipe)  # fail before loading weights when nothing would be converted
    check_score(score)
    ckpt = sources.open_checkpoint(checkpoint or recipe.checkpoint)
    ranking = rank_nodes(ckpt, recipe, items=items or None, validate=validate_k, score=score)
    paths = write_outputs(ranking, out_dir, threshold=threshold, write_excludes=write_excludes)
    s = ranking.summary
    click.echo(
        f"ranked {s['candidates']} {s['conversion']} nodes in {s['wall_seconds']:.1f} s "
        f"({s['seconds_per_node']:.3f} s per node, inputs {', '.join(s['inputs'])})"
    )
    for row in ranking.rows[:SHOW_TOP]:
        click.echo(f"{row.rank:4d}  {row.damage:10.3g}  {row.log_mel:8.4f}  {row.node}")
    post = s["conv_post"]
    if post["node"]:
        where = f"rank {post['rank']} of {post['of']}" if post["rank"] else "not a candidate"
        click.echo(f"conv_post ({post['node']}): {where}")
    if "validation" in s:
        v = s["validation"]
        click.echo(
            f"validation: worst-{v['k']} real damage {v['worst_k']['damage']:.4g} vs random-"
            f"{v['k']} mean {v['random_k_mean_damage']:.4g} (x{v['worst_over_random']:.3g}); "
            f"Spearman vs slow method {v['spearman_damage']:.3f} on {len(v['agreement'])} "
            f"nodes; slow method {v['slow_method']['seconds_per_node']:.2f} s per node"
        )
    if threshold is not None:
        click.echo(excludes_yaml(ranking, threshold), nl=False)
    click.echo(f"wrote {', '.join(str(p) for p in paths.values())}")
