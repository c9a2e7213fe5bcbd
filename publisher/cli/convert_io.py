"""``publisher convert-io IN.onnx OUT.onnx``: rename an existing file's tensors for a runtime.

For people who already hold an exported Kokoro file and only need the names another
runtime reads (today they run sor4onnx by hand). Metadata is kept; ``publisher.io`` is
updated. A name that is not a graph input/output is refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from publisher.onnx_edit import set_metadata
from publisher.passes.io_names import rename_tensors
from publisher.recipe.schema import IO_PROFILES
from publisher.runtime.constants import BUCKET_INPUT_ROLES, OUTPUT_ROLES
from publisher.runtime.errors import InputError, first_line
from publisher.workspace import atomic_path, check_writable_folder


def _check_kokoro(model, src: Path) -> None:
    """A Kokoro graph: int64 token ids, a float style vector and a float speed in, at
    least the waveform out. Anything else is refused before a name is touched."""
    import onnx

    ins, outs = list(model.graph.input), list(model.graph.output)

    def elem(v) -> int:
        return v.type.tensor_type.elem_type

    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    looks = (
        len(ins) in (3, 4)
        and 1 <= len(outs) <= 2
        and elem(ins[0]) == onnx.TensorProto.INT64
        and elem(ins[1]) in floats
        and elem(ins[2]) in floats
    )
    if not looks:
        shown = ", ".join(i.name for i in ins) or "none"
        raise InputError(
            f"{src}: not a Kokoro graph (inputs {shown}; expected int64 token ids, a float "
            "style vector and a float speed, then the waveform out)"
        )


def _current_roles(model) -> dict[str, str]:
    """Role -> current name, by position: ids, style, speed[, lengths] -> wave, duration."""
    ins = [i.name for i in model.graph.input]
    outs = [o.name for o in model.graph.output]
    roles = dict(zip(BUCKET_INPUT_ROLES, ins, strict=False))
    roles.update(zip(OUTPUT_ROLES, outs, strict=False))
    return roles


def convert_io(
    src: Path, dst: Path, mapping: dict[str, str] | None = None, profile: str | None = None
) -> dict[str, str]:
    """Rename ``src``'s IO (explicit old->new mapping, or a profile by role); write ``dst``."""
    import onnx

    try:
        model = onnx.load(str(src))
    except Exception as exc:
        raise InputError(f"{src}: not an ONNX model ({first_line(exc)})") from None
    _check_kokoro(model, src)
    if profile:
        if profile not in IO_PROFILES:
            raise InputError(f"unknown profile '{profile}' (known: {', '.join(IO_PROFILES)})")
        names = IO_PROFILES[profile]
        mapping = {old: names[role] for role, old in _current_roles(model).items()}
    if not mapping:
        raise InputError("nothing to rename: give --profile or --rename OLD=NEW")
    rename_tensors(model, mapping)
    set_metadata(model, {"publisher.io": json.dumps(_current_roles(model), sort_keys=True)})
    onnx.checker.check_model(model)
    dst.parent.mkdir(parents=True, exist_ok=True)
    check_writable_folder(dst.parent, "output", need_bytes=model.ByteSize())
    with atomic_path(dst) as tmp:  # a full disk leaves dst as it was and no .tmp behind
        onnx.save(model, str(tmp))
    return mapping


def _parse_renames(pairs: tuple[str, ...]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old or not new:
            raise InputError(f"--rename {pair!r}: expected OLD=NEW")
        out[old] = new
    return out


@click.command("convert-io")
@click.argument("src", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.argument("dst", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--profile",
    default=None,
    help="onnx-community (input_ids..waveform) or kokoro-onnx-legacy (tokens..audio).",
)
@click.option(
    "--rename",
    "renames",
    multiple=True,
    metavar="OLD=NEW",
    help="Explicit renames (repeatable); instead of --profile.",
)
def convert_io_command(src: Path, dst: Path, profile: str | None, renames: tuple[str, ...]) -> None:
    """Rename the inputs/outputs of an existing Kokoro ONNX file, keeping its metadata."""
    if profile and renames:
        raise InputError("give --profile or --rename, not both")
    if src.resolve() == dst.resolve():
        raise InputError(f"{dst}: would overwrite the input; write to another file")
    done = convert_io(src, dst, _parse_renames(renames) or None, profile)
    changed = {k: v for k, v in done.items() if k != v}
    summary = ", ".join(f"{k} -> {v}" for k, v in changed.items()) or "names already matched"
    click.echo(f"wrote {dst}: {summary}")
