"""Run the Space the way a newcomer does and time it in a real browser.

    KOKORO_DIR=/tmp/full/repo python scripts/space_browser_check.py --shot /tmp/space.png

Starts ``python space/app.py`` (a separate process, exactly the README's command) on a free
port of 127.0.0.1 with KOKORO_DIR, opens it in headless Debian Chromium through Playwright,
types a text, clicks Compare with the default variant selection (the reference plus the next
two variants of manifest.json) and waits until every variant has an ``audio[src]``. Prints
the time from click to the last audio, the status line, the figures table and the screenshot
path. ``--runs N`` clicks N times (the first click also opens the sessions). With
``--in-browser`` it then opens "Run in my browser" and waits until the page has run the
same variants in Chromium with onnxruntime-web (WASM here) and the server has compared
them, and prints that table too (onnxruntime-web is bundled into a temporary folder as
``publisher space`` does, unless KOKORO_ORT_DIR names one). ``--report FILE`` then saves
the Space's per-backend report through its ``/browser_report`` API (gradio_client), the
file ``publisher stage --browser-report`` reads. A benchmark to run and report, not a test.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from publisher.runtime.clients import CHROMIUM, CHROMIUM_ARGS

ROOT = Path(__file__).resolve().parent.parent
TEXT = (
    "The quick brown fox jumps over the lazy dog. Kokoro speaks this sentence with each "
    "variant, so you can hear what precision does to the voice."
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_up(url: str, proc: subprocess.Popen, timeout: float) -> float:
    start = time.perf_counter()
    while time.perf_counter() - start < timeout:
        if proc.poll() is not None:
            raise SystemExit(f"space/app.py exited with code {proc.returncode} before serving")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return time.perf_counter() - start
        except OSError:
            time.sleep(0.25)
    raise SystemExit(f"space/app.py did not answer on {url} within {timeout:.0f} s")


# Evaluated in the page every 100 ms (cheap; polling from Python would take CPU from the
# server being timed): the status's result line once this click's result is in. gradio
# shows "processing" over the old result while the request runs; the line carries the
# server's time, so a new result differs from the previous one.
WAIT_RESULT = """(before) => {
    const el = document.querySelector('#compare-status');
    if (!el) return false;
    const text = el.innerText;
    if (text.includes('processing')) { window.__busy = true; return false; }
    const line = text.split('\\n').find((ln) => ln.includes('variants spoke')) || '';
    return line && (window.__busy || line !== before) ? line : false;
}"""

# gradio 6's Dataframe is an ARIA grid: a header <tr>, then div rows of role=gridcell
TABLE_ROWS = """() => Array.from(
    document.querySelectorAll('#compare-table tr, #compare-table [role=row]')).map(
    (row) => Array.from(row.querySelectorAll('th, [role=gridcell]')).map(
        (c) => c.innerText.trim()))"""


def _wait_status(page, before: str, timeout: float) -> str:
    page.evaluate("() => { window.__busy = false; }")
    handle = page.wait_for_function(WAIT_RESULT, arg=before, polling=100, timeout=timeout * 1000)
    return str(handle.json_value())


BROWSER_ROWS = TABLE_ROWS.replace("#compare-table", "#browser-table")


def _in_browser(page) -> None:
    page.get_by_text("Run in my browser (onnxruntime-web)").click()
    start = time.perf_counter()
    page.locator("#browser-btn").click()
    done = page.get_by_text("variants ran in your browser and were compared")
    done.wait_for(timeout=900_000)
    page.locator("#browser-table [role=gridcell]").first.wait_for(timeout=60_000)
    print(f"[space] in the browser: compared {time.perf_counter() - start:.1f} s after the click")
    for line in page.locator("#browser-players .browser-run").all_inner_texts():
        print("    " + line.strip())
    seen = set()
    for cells in page.evaluate(BROWSER_ROWS):
        if any(cells) and tuple(cells) not in seen:
            seen.add(tuple(cells))
            print("    " + " | ".join(cells))


def _save_report(url: str, target: Path) -> None:
    import shutil

    from gradio_client import Client

    path = Client(url, verbose=False).predict(api_name="/browser_report")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(path, target)
    print(f"[space] browser report: {target.resolve()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text", default=TEXT)
    parser.add_argument("--runs", type=int, default=2, help="clicks (the first opens sessions)")
    parser.add_argument("--shot", type=Path, default=Path("space_compare.png"))
    parser.add_argument("--in-browser", action="store_true", help="also run the in-browser mode")
    parser.add_argument("--report", type=Path, help="save the Space's browser report here")
    args = parser.parse_args()
    if not os.environ.get("KOKORO_DIR"):
        raise SystemExit("set KOKORO_DIR to a staged folder (publisher stage --dest DIR)")
    from playwright.sync_api import expect, sync_playwright

    port = _free_port()
    env = {
        **os.environ,
        "GRADIO_SERVER_NAME": "127.0.0.1",
        "GRADIO_SERVER_PORT": str(port),
        "GRADIO_ANALYTICS_ENABLED": "False",
    }
    url = f"http://127.0.0.1:{port}/"
    if args.in_browser and not env.get("KOKORO_ORT_DIR"):
        import tempfile

        from publisher.conformance.envs import onnxruntime_web_dist
        from publisher.hub.space import bundle_onnxruntime_web

        folder = Path(tempfile.mkdtemp(prefix="space-ort-"))
        bundled = bundle_onnxruntime_web(folder, onnxruntime_web_dist())
        env["KOKORO_ORT_DIR"] = str(bundled)
    proc = subprocess.Popen([sys.executable, str(ROOT / "space" / "app.py")], env=env)
    try:
        up = _wait_up(url, proc, timeout=180)
        print(f"[space] serving {url} {up:.1f} s after start")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto(url, wait_until="domcontentloaded")
            box = page.locator("#compare-text textarea")
            box.wait_for(timeout=60_000)
            box.fill(args.text)
            before = ""
            for run in range(1, args.runs + 1):
                start = time.perf_counter()
                page.locator("#compare-btn").click()
                text = _wait_status(page, before, timeout=600)
                total = int(re.search(r"of (\d+) variants", text).group(1))
                expect(page.locator("audio[src]")).to_have_count(total, timeout=60_000)
                seconds = time.perf_counter() - start
                print(f"[space] click {run}: {total} audio players ready {seconds:.2f} s after")
                print(f"[space]   status: {text}")
                before = text
            print("[space] figures table:")
            seen = set()
            for cells in page.evaluate(TABLE_ROWS):
                if any(cells) and tuple(cells) not in seen:
                    seen.add(tuple(cells))
                    print("    " + " | ".join(cells))
            if args.in_browser:
                _in_browser(page)
            args.shot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.shot), full_page=True)
            browser.close()
        print(f"[space] screenshot: {args.shot.resolve()}")
        if args.report:
            _save_report(url, args.report)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
