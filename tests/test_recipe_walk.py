"""scripts/recipe_walk.py: the reading walk issue 32 measures the wiring with."""

from __future__ import annotations

import importlib.util
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _walker():
    spec = importlib.util.spec_from_file_location(
        "recipe_walk", REPO / "scripts" / "recipe_walk.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_walk_reads_each_function_once_in_call_order_and_counts_going_back(tmp_path):
    pkg = tmp_path / "publisher"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "build.py").write_text(
        "from publisher import b\n"
        "from publisher.c import helper\n\n"
        "def build():\n"
        "    b.one()\n"
        "    helper()\n"
        "    b.Thing().go()\n"
        "    b.one()\n"
    )
    (pkg / "b.py").write_text(
        "def one():\n    pass\n\n"
        "class Thing:\n"
        "    def __init__(self):\n        self.go()\n"
        "    def go(self):\n        pass\n"
    )
    (pkg / "c.py").write_text("def helper():\n    import publisher.b\n    publisher.b.one()\n")
    walker = _walker()
    order = walker.walk(walker.Project(tmp_path), ("publisher.build", "build"))
    assert order == [
        ("publisher.build", "build"),
        ("publisher.b", "one"),
        ("publisher.c", "helper"),
        ("publisher.b", "Thing.__init__"),  # back into b: a climb
        ("publisher.b", "Thing.go"),
    ]
    files = [m for m, _ in order]
    assert walker.climbs_of(files) == [3]
