"""Follow a recipe through the code the way a reader does: from ``publisher.build:build``,
each project function it calls, in the order the calls appear, depth first, each function
read once. Prints the stops (functions read), the files (rooms) they are in, and the climbs:
stops that go back into a file already read and left. Static (ast): calls through
``self.``, a module alias, or a name imported from a project module are followed; calls
through a variable holding a function (the pass registry's ``PassSpec.load``) are not.

    python3 scripts/recipe_walk.py [--root PATH] [--start module:function] [--list]

Issue 32 counted 94 stops in 33 files with 27 climbs at its filing; this is the measure
its "at most 10 climbs" is checked with (run it on an old checkout with --root).
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

Function = tuple[str, str]  # (module, qualified name)


def _modules(root: Path) -> dict[str, ast.Module]:
    out = {}
    for path in sorted((root / "publisher").rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = ast.parse(path.read_text(encoding="utf-8"))
    return out


def _in_order(node: ast.AST) -> Iterator[ast.AST]:
    """Every node below ``node`` in source order (depth first)."""
    for child in ast.iter_child_nodes(node):
        yield child
        yield from _in_order(child)


class Project:
    def __init__(self, root: Path) -> None:
        self.modules = _modules(root)
        self.defs: dict[Function, ast.AST] = {}
        self.names: dict[str, dict[str, tuple[str, str | None]]] = {}
        for module, tree in self.modules.items():
            self.names[module] = {}
            for node in tree.body:
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    self.defs[(module, node.name)] = node
                elif isinstance(node, ast.ClassDef):
                    self.defs[(module, node.name)] = node
                    for item in node.body:
                        if isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef):
                            self.defs[(module, f"{node.name}.{item.name}")] = item
            for node in _in_order(tree):  # imports at any depth (lazy ones too)
                self._note_import(module, node)

    def _note_import(self, module: str, node: ast.AST) -> None:
        seen = self.names[module]
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("publisher"):
                    seen[alias.asname or alias.name] = (alias.name, None)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("publisher"):
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if target in self.modules:  # a module
                    seen[alias.asname or alias.name] = (target, None)
                else:
                    seen[alias.asname or alias.name] = (node.module, alias.name)

    def _resolve(self, module: str, cls: str | None, call: ast.Call) -> Function | None:
        f = call.func
        if isinstance(f, ast.Name):
            if (module, f.id) in self.defs:
                return self._callable(module, f.id)
            where = self.names[module].get(f.id)
            if where and where[1] and (where[0], where[1]) in self.defs:
                return self._callable(where[0], where[1])
        elif isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name):
            owner = f.value.id
            if owner == "self" and cls and (module, f"{cls}.{f.attr}") in self.defs:
                return (module, f"{cls}.{f.attr}")
            where = self.names[module].get(owner)
            if where and where[1] is None and (where[0], f.attr) in self.defs:
                return self._callable(where[0], f.attr)
        return None

    def _callable(self, module: str, name: str) -> Function:
        """A class called is its ``__init__`` (or the class itself when it has none)."""
        if isinstance(self.defs[(module, name)], ast.ClassDef):
            init = (module, f"{name}.__init__")
            return init if init in self.defs else (module, name)
        return (module, name)

    def calls(self, fn: Function) -> list[Function]:
        module, name = fn
        cls = name.split(".")[0] if "." in name else None
        node = self.defs[fn]
        if isinstance(node, ast.ClassDef):
            return []
        found = []
        for sub in _in_order(node):
            if isinstance(sub, ast.Call) and (target := self._resolve(module, cls, sub)):
                found.append(target)
        return found


def walk(project: Project, start: Function) -> list[Function]:
    order: list[Function] = []
    seen: set[Function] = set()

    def visit(fn: Function) -> None:
        seen.add(fn)
        order.append(fn)
        for target in project.calls(fn):
            if target not in seen:
                visit(target)

    visit(start)
    return order


def climbs_of(files: list[str]) -> list[int]:
    """The stops that go back into a file read before and left since."""
    return [i for i in range(1, len(files)) if files[i] != files[i - 1] and files[i] in files[:i]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parent.parent)
    parser.add_argument("--start", default="publisher.build:build")
    parser.add_argument("--list", action="store_true", help="print every stop")
    args = parser.parse_args()
    project = Project(args.root)
    module, _, name = args.start.partition(":")
    if (module, name) not in project.defs:
        print(f"recipe_walk: no function {args.start} under {args.root}", file=sys.stderr)
        return 2
    order = walk(project, (module, name))
    files = [m for m, _ in order]
    climbs = climbs_of(files)
    entered: dict[str, int] = {}
    for i in range(len(files)):
        if i == 0 or files[i] != files[i - 1]:
            entered[files[i]] = entered.get(files[i], 0) + 1
    if args.list:
        for i, (m, n) in enumerate(order):
            print(f"{'^' if i in climbs else ' '} {m}:{n}")
    print(f"stops {len(order)}, files {len(set(files))}, climbs {len(climbs)}")
    top = sorted(entered.items(), key=lambda kv: -kv[1])[:3]
    print("most entered: " + ", ".join(f"{m} {n} times" for m, n in top))
    return 0


if __name__ == "__main__":
    sys.exit(main())
