"""Issue 16's scenario end to end on built variants (not a test): against the local Hub
server (tests/support/hub_server.py), through the real `publisher publish` CLI in separate
processes, as the workflow runs it:

  1. publish DIST/A            2. publish DIST/B            3. DIST/C and DIST/D at once (race)
  4. a template change: --card-only                          5. C's recipe deleted: --prune
  6. a hand-made change of A's file on the Hub, then publish B again: A listed as stale

After each step: the repo's .onnx files must equal the manifest's variants plus stale
entries, and every current variant must carry its figures. Prints the commit list.

    python scripts/family_scenario.py --out /tmp/rw --variants fp32 quantized q8f16 uint8f16
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
REPO = "me/kokoro-family"
TOKEN = "hf_scenario_token_0123456789"


def main() -> None:
    from support.hub_server import LocalHub

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, required=True, help="folder with the built variants")
    ap.add_argument("--save", type=Path, help="write the final card, manifest and figures here")
    ap.add_argument("--variants", nargs=4, required=True, metavar=("A", "B", "C", "D"))
    args = ap.parse_args()
    a, b, c, d = args.variants
    work = Path(tempfile.mkdtemp(prefix="family-"))
    hub = LocalHub(tokens={TOKEN}).start()
    env = _env(hub, work)
    try:
        step("1 publish A", hub, lambda: [_cli(env, args.out, "--recipe", a)])
        step("2 publish B", hub, lambda: [_cli(env, args.out, "--recipe", b)])
        step(
            "3 race C and D",
            hub,
            lambda: [
                _cli(env, args.out, "--recipe", c, wait=False),
                _cli(env, args.out, "--recipe", d, wait=False),
            ],
        )
        templates = work / "templates"
        shutil.copytree(ROOT / "templates", templates)
        page = templates / "README.md.j2"
        page.write_text(page.read_text().replace("## Voices", "## Voices and their names"))
        step(
            "4 --card-only",
            hub,
            lambda: [_cli({**env, "SCENARIO_TEMPLATES": str(templates)}, None, "--card-only")],
        )
        recipes = Path(shutil.copytree(ROOT / "recipes", work / "recipes"))
        (recipes / f"{c}.yaml").unlink()
        step(
            "5 --prune",
            hub,
            lambda: [_cli({**env, "PUBLISHER_RECIPES_DIR": str(recipes)}, None, "--prune")],
        )
        _hand_edit(hub, env)
        step("6 hand edit, publish B", hub, lambda: [_cli(env, args.out, "--recipe", b)])
        print("\ncommits (oldest first):")
        for commit in hub.commits(REPO):
            print(f"  {commit.oid[:10]}  {commit.title}  ({len(commit.files)} files)")
        print("tags:", ", ".join(sorted(hub.tags(REPO))))
        if args.save:
            _save(hub, args.save)
    finally:
        hub.stop()
        shutil.rmtree(work, ignore_errors=True)


def _save(hub, folder: Path) -> None:
    for path, data in hub.files(REPO).items():
        if path in ("README.md", "manifest.json") or path.startswith("figures/"):
            (folder / path).parent.mkdir(parents=True, exist_ok=True)
            (folder / path).write_bytes(data)
    print(f"final card, manifest and figures in {folder}")


def _env(hub, work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    return env | {
        "HF_ENDPOINT": hub.endpoint,
        "HF_TOKEN": TOKEN,
        "HF_HOME": str(work / "hf"),
        "HF_HUB_DISABLE_XET": "1",
        "HF_HUB_DISABLE_TELEMETRY": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "PYTHONPATH": str(ROOT / "scripts"),
    }


def _cli(env, out, *args, wait=True):
    cmd = [sys.executable, "-c", _RUNNER, "publish", "--repo", REPO, "--allow-recovered"]
    cmd += (["--out", str(out)] if out else []) + list(args)
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    if wait:
        proc.wait()
    return proc


# The CLI, with the templates folder swapped when SCENARIO_TEMPLATES is set (a template
# change without touching the checkout).
_RUNNER = """
import os, sys
from publisher import locations
real = locations.shipped_dir
alt = os.environ.get("SCENARIO_TEMPLATES")
if alt:
    from pathlib import Path
    locations.shipped_dir = lambda name: Path(alt) if name == "templates" else real(name)
from publisher.cli import main
sys.argv = ["publisher", *sys.argv[1:]]
main()
"""


def step(name: str, hub, start_procs) -> None:
    start = time.perf_counter()
    procs = start_procs()
    outputs = [p.communicate()[0] for p in procs]
    took = time.perf_counter() - start
    print(f"\n== {name} ({took:.1f} s)")
    for p, out in zip(procs, outputs, strict=True):
        lines = [
            ln
            for ln in out.splitlines()
            if not ln.startswith("[") and "it/s]" not in ln and "B/s]" not in ln
        ]
        print("\n".join(f"   {ln}" for ln in lines if ln.strip()))
        if p.returncode != 0:
            raise SystemExit(f"{name}: exit {p.returncode}")
    check(hub)


def check(hub) -> None:
    files = hub.files(REPO)
    manifest = json.loads(files["manifest.json"])
    onnx = {p for p in files if p.endswith(".onnx")}
    entries = manifest["variants"] + manifest["stale"]
    described = {v["path"] for v in entries}
    described |= {f"{v['sherpa_onnx']}/model.onnx" for v in entries if v.get("sherpa_onnx")}
    assert onnx == described, (onnx, described)
    card = files["README.md"].decode()
    for v in manifest["variants"]:
        assert f"| `{v['path']}` |" in card, v["path"]
        for pic in filter(None, [v.get("spectrogram")]):
            assert pic in files and f"]({pic})" in card, pic
    size_speed = manifest["figures"]["size_speed"]
    assert size_speed is None or (size_speed in files and f"]({size_speed})" in card)
    rows = ", ".join(
        f"{v['recipe']} ({v['size_mib']:.1f} MiB, {v['latency']}, WER {v['wer']})"
        for v in manifest["variants"]
    )
    stale = ", ".join(v["recipe"] for v in manifest["stale"])
    print(f"   repo: {len(onnx)} model files = card's rows: {rows}; stale: {stale or 'none'}")


def _hand_edit(hub, env) -> None:
    """Replace the first variant's file on the Hub with other bytes, as a person would."""
    path = json.loads(hub.files(REPO)["manifest.json"])["variants"][0]["path"]
    code = (
        "import sys; from huggingface_hub import HfApi; HfApi().upload_file("
        "path_or_fileobj=b'edited by hand', path_in_repo=sys.argv[1], repo_id=sys.argv[2])"
    )
    subprocess.run([sys.executable, "-c", code, path, REPO], env=env, check=True)
    print(f"\n== hand edit: replaced {path} on the Hub")


if __name__ == "__main__":
    main()
