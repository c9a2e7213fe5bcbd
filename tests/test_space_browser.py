"""The Space in a real browser: headless Chromium (Debian's) driven by Playwright.

Needs /usr/bin/chromium (``apt-get install chromium``) and the playwright package; skipped
with the reason otherwise. Reuses the staged tiny folder of tests/test_space.py.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from publisher.runtime.clients import CHROMIUM as CHROMIUM_PATH
from publisher.runtime.clients import CHROMIUM_ARGS

# gradio's queue calls pandas APIs that pandas 3 deprecates; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:gradio.queueing")

CHROMIUM = Path(CHROMIUM_PATH)

if not CHROMIUM.exists():
    why = f"{CHROMIUM} is missing: install Debian's chromium (apt-get install -y chromium)"
    if os.environ.get("PUBLISHER_REQUIRE_BROWSER"):  # .ci/run and the workflow install it
        pytest.fail(f"PUBLISHER_REQUIRE_BROWSER is set and {why}", pytrace=False)
    pytest.skip(why, allow_module_level=True)
sync_api = pytest.importorskip(
    "playwright.sync_api", reason="the browser test needs playwright (pip install playwright)"
)
pytest.importorskip("gradio", reason="the Space tests need gradio (pip install gradio)")

from test_space import (  # noqa: E402 - the staged folder, launch helper and space/ on sys.path
    VoteStore,
    _gradio_env,  # noqa: F401 - session fixture: gradio temp dir, no analytics
    build_demo,
    launched,
    make_engine,
    staged,  # noqa: F401 - fixture
)


def test_compare_in_a_browser_plays_one_audio_per_variant(staged, tmp_path, capsys):  # noqa: F811
    demo = build_demo(make_engine(staged), VoteStore(tmp_path / "votes.sqlite3"))
    expected = len(demo.space_app.engine.catalog().default_selection())
    shot = tmp_path / "space_compare.png"
    with (
        launched(demo, tmp_path / "dl"),
        sync_api.sync_playwright() as pw,
    ):
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(demo.local_url, wait_until="domcontentloaded")
            box = page.locator("#compare-text textarea")
            box.wait_for(timeout=60_000)
            box.fill("Hello from a headless browser. Two variants say this sentence.")
            start = time.perf_counter()
            page.locator("#compare-btn").click()
            # gr.Audio's player with the src sits in a shadow root: a locator pierces it
            sync_api.expect(page.locator("audio[src]")).to_have_count(expected, timeout=120_000)
            seconds = time.perf_counter() - start
            page.get_by_text(f"{expected} of {expected} variants").wait_for(timeout=10_000)
            players = page.locator("audio[src]").count()
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()

    assert players == expected
    assert shot.is_file() and shot.stat().st_size > 10_000
    with capsys.disabled():
        print(f"\n[space browser] {expected} variants: click to all audio ready {seconds:.2f} s")
        print(f"[space browser] screenshot: {shot}")
