"""Progress bars on long steps: shown to a person, quiet in logs (publisher/progress.py)."""

from __future__ import annotations

import subprocess
import sys

from publisher.progress import progress


def test_a_bar_counts_items_when_shown(monkeypatch, capsys):
    monkeypatch.setenv("PUBLISHER_PROGRESS", "1")
    assert list(progress(["a", "b", "c"], "speech set")) == ["a", "b", "c"]
    err = capsys.readouterr().err
    assert "speech set" in err and "0/3 [" in err  # the total known, time left shown


def test_no_bar_when_stderr_is_not_a_terminal(monkeypatch, capsys):
    monkeypatch.delenv("PUBLISHER_PROGRESS", raising=False)  # pytest's stderr is no tty
    assert list(progress(range(4), "verify", total=4)) == [0, 1, 2, 3]
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("PUBLISHER_PROGRESS", "0")
    assert list(progress(iter("xy"), "bench")) == ["x", "y"]
    assert capsys.readouterr().err == ""


STEPS = """
import logging
from publisher.provenance import StepTimer
{setup}
timer = StepTimer(total=2)
with timer.step("export", "cached"):
    pass
logging.getLogger("publisher.export.cache").warning("entry %s damaged", "e1")
"""


def _steps(setup: str) -> subprocess.CompletedProcess:
    code = STEPS.format(setup=setup)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)


def test_the_library_says_nothing_but_warnings_unless_its_caller_asks():
    quiet = _steps("")
    assert quiet.stdout == "" and quiet.stderr == "entry e1 damaged\n"  # Python's last resort


def test_the_command_line_shows_progress_on_stderr_and_marks_warnings():
    shown = _steps(
        "from publisher.cli.output import show_progress; show_progress(); show_progress()\n"
        "logging.basicConfig()  # as a library may: still each line once"
    )
    assert shown.stdout == ""
    lines = shown.stderr.splitlines()
    assert lines[0] == "[1/2] export: cached ..."
    assert lines[1].startswith("[1/2] export done in ")
    assert lines[2:] == ["warning: entry e1 damaged"]  # once, though configured twice
