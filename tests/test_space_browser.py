"""The Space in a real browser: headless Chromium (Debian's) driven by Playwright.

Needs /usr/bin/chromium (``apt-get install chromium``) and the playwright package; skipped
with the reason otherwise. Reuses the staged tiny folder of tests/test_space.py.
"""

from __future__ import annotations

import contextlib
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


@pytest.fixture(scope="module")
def ort_folder(tmp_path_factory) -> Path:
    """onnxruntime-web bundled as `publisher space` bundles it (the pinned npm release)."""
    from publisher.conformance.envs import onnxruntime_web_dist
    from publisher.hub.space import bundle_onnxruntime_web

    return bundle_onnxruntime_web(tmp_path_factory.mktemp("space_bundle"), onnxruntime_web_dist())


@contextlib.contextmanager
def _page(demo, tmp_path: Path, height: int = 1400):
    """The demo served locally and one headless Chromium page, closed after."""
    with launched(demo, tmp_path / "dl"), sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser.new_page(viewport={"width": 1280, "height": height})
        finally:
            browser.close()


PARAGRAPH = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background. "
    "It is easy to tell the depth of a well."
)


def _run_in_browser(page, demo, garble: str | None = None) -> None:
    page.goto(demo.local_url, wait_until="domcontentloaded")
    box = page.locator("#compare-text textarea")
    box.wait_for(timeout=60_000)
    box.fill(PARAGRAPH)
    if garble:  # the test hook run_in_browser.js calls on each output before sending it
        page.evaluate(
            "name => { globalThis.__kokoroAlterOutput = (variant, wave) => {"
            " if (variant === name) for (let i = 0; i < wave.length; i++)"
            " wave[i] = Math.sin(i * 0.37) * 0.3; }; }",
            garble,
        )
    page.get_by_text("Run in my browser (onnxruntime-web)").click()
    page.locator("#browser-btn").click()
    page.get_by_text("variants ran in your browser and were compared").wait_for(timeout=180_000)
    for table in ("#browser-table", "#browser-summary"):  # rendered after the status
        cell = page.locator(f"{table} [role=gridcell]", has_text="wasm").first
        cell.wait_for(timeout=30_000)


def _table(page, elem_id: str) -> list[list[str]]:
    """The rows a gr.Dataframe shows (its grid of role=row / role=gridcell)."""
    found = []
    for row in page.locator(f"#{elem_id} [role=row]").all():
        cells = [c.strip() for c in row.locator("[role=gridcell]").all_text_contents()]
        if cells and cells[0]:
            found.append(cells)
    return found


def test_both_variants_run_in_the_browser_with_figures_players_and_a_verdict(
    staged,  # noqa: F811
    ort_folder,
    tmp_path,
):
    votes = VoteStore(tmp_path / "votes.sqlite3")
    demo = build_demo(make_engine(staged), votes, ort_folder=ort_folder)
    shot = tmp_path / "space_browser_mode.png"
    with _page(demo, tmp_path) as page:
        _run_in_browser(page, demo)
        players = page.locator("#browser-players audio[src^='blob:']").count()
        lines = page.locator("#browser-players .browser-run").all_inner_texts()
        rows = _table(page, "browser-table")
        summary = _table(page, "browser-summary")
        page.screenshot(path=str(shot), full_page=True)
        isolated, cores = page.evaluate("[crossOriginIsolated, navigator.hardwareConcurrency]")

    # served cross-origin isolated, onnxruntime-web runs WASM on up to 4 of the cores
    assert isolated is True
    threads = max(1, min(4, cores))
    wasm = f"wasm, {threads} threads" if threads > 1 else "wasm"
    assert players == 2, lines
    assert all(f"in your browser ({wasm})" in line and "RTF" in line for line in lines), lines
    by_name = {r[0]: r for r in rows}
    assert set(by_name) == {"fp32", "quantized"}, rows
    for row in by_name.values():
        assert row[1] == wasm and row[-1] == "ok", row
        assert float(row[-2]) >= 0.9  # sounds like the server's own run of the file
        assert float(row[6]) > 0 and float(row[9]) > 0  # browser and server synthesis times
        # three sentences, three calls: the first plays before the paragraph is done
        assert 0 < float(row[8]) < float(row[6])
    assert {(r[0], r[1], r[2], r[3]) for r in summary} == {
        (wasm, "fp32", "1", "0"),
        (wasm, "quantized", "1", "0"),
    }
    assert shot.is_file()


def test_a_garbled_browser_output_is_flagged_and_recorded(staged, ort_folder, tmp_path):  # noqa: F811
    votes = VoteStore(tmp_path / "votes.sqlite3")
    demo = build_demo(make_engine(staged), votes, ort_folder=ort_folder)
    with _page(demo, tmp_path) as page:
        _run_in_browser(page, demo, garble="quantized")
        status = page.locator("#browser-status").inner_text()
        rows = {r[0]: r for r in _table(page, "browser-table")}

    assert "quantized does not sound like the server's run" in status
    assert rows["quantized"][-1] == "FLAGGED: differs from the server"
    assert rows["fp32"][-1] == "ok"
    summary = {r.variant: r for r in votes.browser_summary(demo.space_app.engine.source.label)}
    assert summary["quantized"].flagged == 1 and summary["fp32"].flagged == 0


@pytest.mark.parametrize(
    ("navigator", "backend"),
    [
        ("{gpu: {requestAdapter: async () => ({name: 'adapter'})}}", "webgpu"),
        ("{gpu: {requestAdapter: async () => null}}", "wasm"),  # listed, no adapter
        ("{gpu: {requestAdapter: async () => { throw new Error('blocked'); }}}", "wasm"),
        ("{}", "wasm"),
    ],
)
def test_the_page_picks_webgpu_only_when_the_browser_gives_an_adapter(navigator, backend):
    from kokoro_space.browser_ui import JS_DIR

    choose = (JS_DIR / "choose_backend.js").read_text()
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            got = page.evaluate(f"(async () => ({choose})({navigator}))()")
        finally:
            browser.close()
    assert got == backend
