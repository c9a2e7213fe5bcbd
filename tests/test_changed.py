"""``publisher changed``: which recipes a git change affects (publisher/changed.py).

Each test builds a throwaway git repository in tmp_path holding a copy of the real
``recipes/`` plus stand-ins for the code, the card template and pyproject.toml, commits a
change on top, and compares the plan with an expectation computed independently: the
recipes whose resolved content (``recipe_hash``) an edit actually changes.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import click
import pytest
import yaml
from click.testing import CliRunner

from publisher.changed import affected
from publisher.cli.changed import changed_command
from publisher.recipe.loader import list_recipes, recipe_hash
from publisher.runtime.errors import PublisherError

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not on PATH")


def git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


def commit(repo: Path, message: str) -> str:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--no-verify", "-m", message)
    return git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    root.mkdir()
    git(root, "init", "-q")
    for key, value in (
        ("user.name", "Test"),
        ("user.email", "test@example.com"),
        ("commit.gpgsign", "false"),
        ("core.hooksPath", "/dev/null"),
    ):
        git(root, "config", "--local", key, value)
    shutil.copytree(REPO / "recipes", root / "recipes")
    (root / "publisher").mkdir()
    (root / "publisher" / "x.py").write_text("X = 1\n")
    (root / "templates").mkdir()
    (root / "templates" / "README.md.j2").write_text("# {{ title }}\n")
    (root / "pyproject.toml").write_text('[project]\nname = "x"\n')
    (root / "README.md").write_text("docs\n")
    (root / "tests").mkdir()
    (root / "tests" / "test_x.py").write_text("def test_x():\n    pass\n")
    commit(root, "initial")
    return root


def all_recipes(repo: Path) -> list[str]:
    return [r.name for r in list_recipes(repo / "recipes")]


def hashes(repo: Path) -> dict[str, str]:
    return {r.name: recipe_hash(r) for r in list_recipes(repo / "recipes")}


def edit_recipe(repo: Path, name: str) -> None:
    """Change a field no shipped recipe overrides, so every dependent really changes."""
    path = repo / "recipes" / f"{name}.yaml"
    data = yaml.safe_load(path.read_text())
    gates = data.setdefault("gates", {})
    gates["parity_min_snr_db"] = float(gates.get("parity_min_snr_db", 60.0)) - 0.5
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def edit_and_expect(repo: Path, name: str) -> list[str]:
    """Edit ``name`` and return the recipes whose resolved content changed (the oracle)."""
    before = hashes(repo)
    edit_recipe(repo, name)
    after = hashes(repo)
    return sorted(n for n in after if before.get(n) != after[n])


def test_leaf_recipe(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    expected = edit_and_expect(repo, "fp32")
    commit(repo, "fp32")
    plan = affected(repo, base)
    assert "fp32" in expected
    assert list(plan.recipes) == expected
    assert plan.removed == () and not plan.cards_only and plan.any


def test_base_recipe_reaches_every_dependent(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    expected = edit_and_expect(repo, "_base")
    commit(repo, "_base")
    plan = affected(repo, base)
    assert list(plan.recipes) == expected
    assert "_base" not in plan.recipes
    # the real recipes include chains (q4f16 -> q4 -> _base): transitive dependents count
    assert {"fp32", "q4", "q4f16"} <= set(expected)


@pytest.mark.parametrize("name", ["q4", "quantized", "uint8"])
def test_mid_recipe_reaches_its_children(repo: Path, name: str) -> None:
    base = git(repo, "rev-parse", "HEAD")
    expected = edit_and_expect(repo, name)
    commit(repo, name)
    assert list(affected(repo, base).recipes) == expected
    assert len(expected) >= 2  # the recipe and at least one recipe extending it


def test_transitive_chain_and_abstract_middle(repo: Path) -> None:
    recipes = repo / "recipes"
    (recipes / "_mid.yaml").write_text("extends: fp32\n")
    (recipes / "chain-a.yaml").write_text('extends: _mid\ndescription: "a"\n')
    (recipes / "chain-b.yaml").write_text('extends: chain-a\ndescription: "b"\n')
    base = commit(repo, "chain")
    edit_recipe(repo, "fp32")
    commit(repo, "fp32")
    plan = affected(repo, base)
    assert plan.recipes == ("chain-a", "chain-b", "fp32")
    assert plan.reasons["chain-b"] == "extends chain-a -> _mid -> fp32, which changed"
    # editing the abstract middle: its dependents, never itself
    (recipes / "_mid.yaml").write_text("extends: fp32\ncard:\n  notes: changed\n")
    middle = commit(repo, "mid")
    assert affected(repo, f"{middle}~1", middle).recipes == ("chain-a", "chain-b")


def test_added_recipe(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "recipes" / "new.yaml").write_text('extends: _base\ndescription: "new"\n')
    commit(repo, "new recipe")
    assert affected(repo, base).recipes == ("new",)


def test_template_only_is_cards_only(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "templates" / "README.md.j2").write_text("# {{ title }} (new)\n")
    commit(repo, "card")
    plan = affected(repo, base)
    assert plan.cards_only and plan.recipes == () and not plan.any
    assert plan.to_json()["matrix"] == {"include": []}


def test_template_with_recipe_is_not_cards_only(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "templates" / "README.md.j2").write_text("# {{ title }} (new)\n")
    edit_recipe(repo, "fp32")
    commit(repo, "card and fp32")
    plan = affected(repo, base)
    assert not plan.cards_only and "fp32" in plan.recipes


@pytest.mark.parametrize("path", ["publisher/x.py", "publisher/new/module.py", "pyproject.toml"])
def test_code_or_dependencies_rebuild_everything(repo: Path, path: str) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / path).parent.mkdir(parents=True, exist_ok=True)
    (repo / path).write_text("# changed\n")
    (repo / "templates" / "README.md.j2").write_text("# {{ title }} (new)\n")
    commit(repo, "code")
    plan = affected(repo, base)
    assert list(plan.recipes) == all_recipes(repo)
    assert not plan.cards_only and plan.any


def test_docs_and_tests_only_build_nothing(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    (repo / "README.md").write_text("more docs\n")
    (repo / "tests" / "test_x.py").write_text("def test_y():\n    pass\n")
    (repo / "recipes" / "notes.txt").write_text("not a recipe\n")
    commit(repo, "docs")
    plan = affected(repo, base)
    assert plan.recipes == () and plan.removed == () and not plan.cards_only and not plan.any
    assert plan.json_line() == json.dumps(
        {
            "recipes": [],
            "cards_only": False,
            "removed": [],
            "matrix": {"include": []},
            "any": False,
        }
    )


def test_deleted_recipe_is_removed(repo: Path) -> None:
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "-q", "recipes/uint8f16.yaml")
    commit(repo, "drop uint8f16")
    plan = affected(repo, base)
    assert plan.removed == ("uint8f16",) and plan.recipes == ()


def test_deleted_parent_rebuilds_its_children(repo: Path) -> None:
    """A child still extending a deleted recipe is planned, so its build fails loudly."""
    base = git(repo, "rev-parse", "HEAD")
    git(repo, "rm", "-q", "recipes/q4.yaml")
    commit(repo, "drop q4")
    plan = affected(repo, base)
    assert plan.removed == ("q4",) and plan.recipes == ("q4f16",)


def test_three_dot_diff_ignores_changes_on_base(repo: Path) -> None:
    """Only changes on head since it left base count (base...head)."""
    fork = git(repo, "rev-parse", "HEAD")
    (repo / "publisher" / "x.py").write_text("X = 2\n")
    main_tip = commit(repo, "code on main")
    git(repo, "checkout", "-q", "-b", "feature", fork)
    edit_recipe(repo, "kokoro-v1.0")
    commit(repo, "recipe on feature")
    assert affected(repo, main_tip, "feature").recipes == ("kokoro-v1.0",)
    assert list(affected(repo, "feature", main_tip).recipes) == all_recipes(repo)


def test_bad_revision_is_one_line(repo: Path) -> None:
    with pytest.raises(PublisherError, match=r"^--base 'no-such-rev': unknown revision"):
        affected(repo, "no-such-rev")
    with pytest.raises(PublisherError, match=r"^--head 'nope~3': unknown revision"):
        affected(repo, "HEAD", "nope~3")


# ---------------------------------------------------------------- CLI
def cli() -> click.Group:
    """The real CLI once publisher.cli registers ``changed``; else an equivalent group."""
    from publisher.cli import _Group, main

    if "changed" in main.commands:
        return main
    return _Group("publisher", commands=[changed_command])


def test_cli_json(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = git(repo, "rev-parse", "HEAD")
    expected = edit_and_expect(repo, "q4")
    head = commit(repo, "q4")
    (repo / "publisher").mkdir(exist_ok=True)
    monkeypatch.chdir(repo / "publisher")  # any folder inside the work tree
    result = CliRunner().invoke(cli(), ["changed", "--base", base, "--head", head, "--json"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0]) == {
        "recipes": expected,
        "cards_only": False,
        "removed": [],
        "matrix": {"include": [{"recipe": name} for name in expected]},
        "any": True,
    }


def test_cli_human(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = git(repo, "rev-parse", "HEAD")
    edit_recipe(repo, "fp32")
    git(repo, "rm", "-q", "recipes/uint8f16.yaml")
    commit(repo, "fp32, drop uint8f16")
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(cli(), ["changed", "--base", base])
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0] == f"{base}...HEAD: 2 files changed"
    assert "build   fp32  recipes/fp32.yaml changed" in lines
    assert "removed uint8f16" in lines


def test_cli_bad_base_exits_1_with_one_line(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(repo)
    result = CliRunner().invoke(cli(), ["changed", "--base", "deadbeef", "--json"])
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: --base 'deadbeef': unknown revision (is the history fetched?)"
    ]


def test_cli_outside_a_repository(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    result = CliRunner().invoke(cli(), ["changed", "--base", "HEAD~1"])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [f"error: {tmp_path}: not inside a git work tree"]
