"""The ``publisher`` command line: thin click wrappers over the library functions.

Heavy modules (torch, onnx, onnxruntime) are imported inside the commands that need them,
so ``publisher --help`` stays instant.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys

import click

from publisher.cli.bench import bench_command
from publisher.cli.build import build_command, verify_command
from publisher.cli.cache import cache_group
from publisher.cli.changed import changed_command
from publisher.cli.conformance import conformance_command
from publisher.cli.convert_io import convert_io_command
from publisher.cli.inspect import inspect_command
from publisher.cli.output import one_line, show_progress
from publisher.cli.publish import publish_command, stage_command, voices_command
from publisher.cli.recipes import list_command, validate_command
from publisher.cli.sensitivity import sensitivity_command
from publisher.cli.space import space_command
from publisher.runtime.errors import PublisherError
from publisher.workspace import os_error_line


class _Group(click.Group):
    """Every failure a user can cause ends as one line on stderr and exit status 1:
    a PublisherError, a usage mistake, an OSError nobody anticipated (full disk,
    read-only folder). Ctrl-C exits 130 and SIGTERM 143, both after cleanup ran."""

    def main(self, args=None, prog_name=None, complete_var=None, **extra):
        extra.pop("standalone_mode", None)
        show_progress()
        previous = _on_sigterm()
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as err:
            hint = f" (see `{err.ctx.command_path} --help`)" if err.ctx else ""
            click.echo(f"error: {err.format_message()}{hint}", err=True)
            code = 1
        except click.ClickException as err:
            click.echo(f"error: {err.format_message()}", err=True)
            code = 1
        except click.Abort:
            click.echo("interrupted", err=True)
            code = 130
        finally:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGTERM, previous)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except PublisherError as err:  # one line, whatever a quoted name holds
            click.echo(f"error: {one_line(err)}", err=True)
            ctx.exit(err.exit_code)
        except BrokenPipeError:  # `publisher ... | head`: the reader left; nothing to say
            ctx.exit(1)
        except OSError as err:
            click.echo(f"error: {os_error_line(err)}", err=True)
            ctx.exit(1)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(130)
        except _Terminated:
            click.echo("terminated", err=True)
            ctx.exit(143)


class _Terminated(BaseException):
    """Raised by SIGTERM so that every ``finally`` and ``except BaseException`` cleanup
    runs (the default action kills the process where it stands)."""


def _on_sigterm():
    def handler(signum, frame):
        raise _Terminated()

    try:
        return signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an embedding application): leave it alone
        return signal.getsignal(signal.SIGTERM)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="kokoro-onnx-publisher")
def main() -> None:
    """Build, verify and publish Kokoro-82M ONNX variants from YAML recipes."""
    # torch's exporter logs C++ warnings about prim::PackPadded shape inference on every
    # export; they are about its own inference, not ours. Must be set before torch loads.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")


def _register_commands() -> None:
    for command in (
        list_command,
        validate_command,
        build_command,
        verify_command,
        bench_command,
        conformance_command,
        inspect_command,
        convert_io_command,
        voices_command,
        stage_command,
        publish_command,
        changed_command,
        space_command,
        sensitivity_command,
        cache_group,
    ):
        main.add_command(command)


_register_commands()
