"""``publisher inspect MODEL [OTHER]``: nodes, params and bytes by (op type, dtype).

Registered by publisher.cli with ``main.add_command(inspect_command)``. Heavy modules are
imported inside the command so ``publisher --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from publisher.inspect_graph import (
    diff_ops,
    format_diff,
    format_table,
    inspect_model,
    to_dict,
    to_json,
)

_MODEL = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("inspect")
@click.argument("model", type=_MODEL)
@click.argument("other", type=_MODEL, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def inspect_command(model: Path, other: Path | None, as_json: bool) -> None:
    """Count MODEL's nodes, parameters and bytes by (op type, dtype).

    With OTHER, show the op-count difference OTHER - MODEL instead. Weights are sized
    from their dims, so external data is never read.
    """
    import onnx  # noqa: F401  (fail here, not mid-walk, when onnx is missing)

    a = inspect_model(model)
    if other is None:
        click.echo(to_json(a) if as_json else format_table(a))
        return
    b = inspect_model(other)
    rows = diff_ops(a, b)
    if as_json:
        diff = [{"op": op, "a": na, "b": nb, "delta": d} for op, na, nb, d in rows]
        click.echo(json.dumps({"a": to_dict(a), "b": to_dict(b), "diff": diff}, indent=2))
    else:
        click.echo(format_diff(a, b, rows))
