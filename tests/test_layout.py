"""The package layout keeps its promises: no import cycle between publisher's modules (lazy
imports inside functions included), no class defined inside a function, and a runtime
package that imports without torch, onnx or the model side."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import tomllib

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "publisher"


def _lint_imports(cwd: Path, *args: str, path: str | None = None):
    env = dict(os.environ) | ({"PYTHONPATH": path} if path else {})
    run = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    cmd = [sys.executable, "-c", run, "--no-cache", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_the_import_contracts_hold():
    """pyproject.toml's import-linter contracts: no import cycle at any depth (lazy
    imports inside functions count), the runtime package never reaches the torch side, and
    the recipe package never imports pass code (it reads the pass registry as data)."""
    done = _lint_imports(REPO)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 3 kept, 0 broken." in done.stdout


def test_the_cycle_contract_catches_a_cycle_made_by_a_lazy_import(tmp_path):
    pkg = tmp_path / "cyc"
    (pkg / "a").mkdir(parents=True)
    (pkg / "b").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a" / "__init__.py").write_text("from cyc.b import x\n")
    (pkg / "b" / "__init__.py").write_text("x = 1\n\ndef f():\n    import cyc.a\n")
    settings = tomllib.loads(REPO.joinpath("pyproject.toml").read_text())["tool"]["importlinter"]
    ours = next(c for c in settings["contracts"] if c["type"] == "acyclic_siblings")
    assert ours["ancestors"] == ["publisher"]  # the contract this test copies onto "cyc"
    config = tmp_path / "contracts.toml"
    config.write_text(
        '[tool.importlinter]\nroot_package = "cyc"\n\n[[tool.importlinter.contracts]]\n'
        f'name = "{ours["name"]}"\ntype = "acyclic_siblings"\nancestors = ["cyc"]\n'
    )
    done = _lint_imports(tmp_path, "--config", str(config), path=str(tmp_path))
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "BROKEN" in done.stdout
        and ".a -> .b" in done.stdout + done.stderr
        or (".b -> .a" in done.stdout)
    )


def test_no_class_is_defined_inside_a_function():
    nested = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                inner = [n.name for n in ast.walk(node) if isinstance(n, ast.ClassDef)]
                nested += [f"{path.relative_to(REPO)}:{node.name}:{c}" for c in inner]
    assert nested == []


def test_the_runtime_imports_without_torch_onnx_or_the_model_side():
    code = (
        "import importlib, pkgutil, sys\n"
        "import publisher.runtime as r\n"
        "for m in pkgutil.walk_packages(r.__path__, 'publisher.runtime.'):\n"
        "    importlib.import_module(m.name)\n"
        "heavy = [m for m in ('torch', 'onnx', 'kokoro') if m in sys.modules]\n"
        "outside = [m for m in sys.modules if m.startswith('publisher.')\n"
        "           and not m.startswith('publisher.runtime')]\n"
        "print(heavy, outside)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[] []"


def test_the_wheel_lists_every_package_and_the_node_probe():
    """pyproject.toml names its packages by hand (templates/ and recipes/ are mapped in),
    so a new subpackage must be added there or a wheel install would lack it."""
    tool = tomllib.loads(REPO.joinpath("pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(REPO).parts) for p in PACKAGE.rglob("__init__.py")}
    assert on_disk <= set(tool["packages"])
    assert "probe.mjs" in tool["package-data"]["publisher.conformance"]


def test_installed_from_a_wheel_the_recipes_and_templates_are_found(tmp_path):
    """A wheel carries recipes/ and templates/ inside the package (namespace packages, for
    which importlib.resources gives a MultiplexedPath): an installed publisher lists its
    recipes and renders a card template, as the checkout does."""
    target = tmp_path / "site"
    pip = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps"]
    pip += ["--no-build-isolation", "--target", str(target), str(REPO)]
    done = subprocess.run(pip, capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    code = (
        "import publisher, sys\n"
        "from publisher.locations import shipped_dir\n"
        "from publisher.recipe.loader import load_recipe, recipe_files\n"
        "assert publisher.__file__.startswith(sys.argv[1]), publisher.__file__\n"
        "print(sorted(p.stem for p in recipe_files()))\n"
        "templates = shipped_dir('templates')\n"
        "print(load_recipe('cpu-int8').name, (templates / 'README.md.j2').is_file())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(target)}
    run = [sys.executable, "-c", code, str(target)]
    done = subprocess.run(run, capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    names, loaded = done.stdout.splitlines()
    assert "'fp32'" in names and "'cpu-int8'" in names
    assert loaded == "cpu-int8 True"


def _sources():
    for path in sorted((REPO / "publisher").rglob("*.py")):
        yield path, path.read_text(encoding="utf-8")


def test_the_projects_own_modules_are_imported_at_module_level_unless_a_comment_says_why():
    lazy = []
    for path, text in _sources():
        lines = text.splitlines()
        for fn in ast.walk(ast.parse(text)):
            if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            for node in fn.body + [n for s in fn.body for n in ast.walk(s)]:
                own = (
                    isinstance(node, ast.ImportFrom) and (node.module or "").startswith("publisher")
                ) or (isinstance(node, ast.Import) and node.names[0].name.startswith("publisher"))
                if own:
                    above = lines[node.lineno - 2].strip()
                    lazy.append((path.name, node.lineno, above.startswith("#")))
    unexplained = sorted({(name, line) for name, line, said in lazy if not said})
    assert not unexplained, (
        f"imports inside functions without a '# lazy: why' comment: {unexplained}"
    )
    assert len({(n, line) for n, line, _ in lazy}) <= 30


def test_every_error_raised_is_one_of_the_typed_kinds_not_the_bare_base():
    bare = [
        f"{path.relative_to(REPO)}:{node.lineno}"
        for path, text in _sources()
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.Raise)
        and isinstance(node.exc, ast.Call)
        and getattr(node.exc.func, "id", None) == "PublisherError"
    ]
    assert not bare, f"raise a typed PublisherError subclass (runtime/errors.py): {bare}"
