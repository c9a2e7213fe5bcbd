"""Publishing the family (issue 16): the card and manifest.json always describe every variant
in the repo, against a local server speaking the Hub's protocol (tests/support/hub_server.py)."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from huggingface_hub import ModelCard
from support.hub_server import local_hub_env

from publisher.cli import main
from publisher.hub.card import choices
from publisher.hub.family import MANIFEST_FORMAT, RemoteFile, RemoteState, merge

SECRET = "hf_family-test-token-0123456789"
REPO = "me/kokoro-family"
CKPT = "c" * 64


# ------------------------------------------------------------------ merge (pure data)
def _entry(recipe: str, path: str, sha: str, **extra) -> dict:
    return {"recipe": recipe, "path": path, "sha256": sha, "checkpoint_sha256": CKPT, **extra}


def _remote(*entries: dict, files: dict[str, str | None] | None = None) -> RemoteState:
    manifest = {
        "format": MANIFEST_FORMAT,
        "checkpoint": {"sha256": CKPT},
        "variants": list(entries),
    }
    if files is None:
        files = {e["path"]: e["sha256"] for e in entries}
    return RemoteState("h" * 40, manifest, {p: RemoteFile(1, s) for p, s in files.items()})


def test_a_variant_not_rebuilt_is_carried_when_its_file_still_matches():
    fam = merge(
        [_entry("quantized", "q.onnx", "2" * 64)], _remote(_entry("fp32", "m.onnx", "1" * 64)), CKPT
    )
    assert [v["recipe"] for v in fam.variants] == ["fp32", "quantized"]
    assert fam.stale == [] and fam.deletions == []


def test_a_file_changed_on_the_hub_is_listed_as_stale_with_the_reason():
    remote = _remote(_entry("fp32", "m.onnx", "1" * 64), files={"m.onnx": "9" * 64})
    fam = merge([_entry("quantized", "q.onnx", "2" * 64)], remote, CKPT)
    assert [v["recipe"] for v in fam.variants] == ["quantized"]
    assert [s["recipe"] for s in fam.stale] == ["fp32"]
    assert "is not the one publisher recorded" in fam.stale[0]["stale_reason"]


def test_a_variant_whose_file_is_gone_is_dropped_and_said_so():
    fam = merge(
        [_entry("q", "q.onnx", "2" * 64)],
        _remote(_entry("fp32", "m.onnx", "1" * 64), files={}),
        CKPT,
    )
    assert [v["recipe"] for v in fam.variants] == ["q"] and fam.stale == []
    assert any("no longer in the repo" in n for n in fam.notes)


def test_a_variant_from_another_checkpoint_is_stale():
    old = _entry("fp32", "m.onnx", "1" * 64, checkpoint_sha256="d" * 64)
    fam = merge([_entry("q", "q.onnx", "2" * 64)], _remote(old), CKPT)
    assert "another checkpoint" in fam.stale[0]["stale_reason"]


def test_prune_deletes_the_files_of_recipes_that_no_longer_exist():
    extra = ["figures/gone_spectrogram.png", "sherpa-onnx/gone/model.onnx"]
    old = _entry("gone", "g.onnx", "1" * 64, extra_files=extra)
    remote = _remote(old, files={"g.onnx": "1" * 64, **dict.fromkeys(extra)})
    fam = merge([_entry("q", "q.onnx", "2" * 64)], remote, CKPT, existing_recipes={"q"})
    assert fam.deletions == [
        "figures/gone_spectrogram.png",
        "g.onnx",
        "sherpa-onnx/gone/model.onnx",
    ]
    assert [v["recipe"] for v in fam.variants] == ["q"]
    kept = merge([_entry("q", "q.onnx", "2" * 64)], remote, CKPT)  # without prune: kept
    assert [v["recipe"] for v in kept.variants] == ["gone", "q"] and kept.deletions == []


def test_a_recipe_that_now_writes_another_file_deletes_its_old_one():
    fam = merge(
        [_entry("fp32", "new.onnx", "2" * 64)], _remote(_entry("fp32", "old.onnx", "1" * 64)), CKPT
    )
    assert fam.deletions == ["old.onnx"] and [v["path"] for v in fam.variants] == ["new.onnx"]


# ------------------------------------------------------------------ which file (pure data)
def _v(recipe, path, mib, rtf=None, wer=None, corr=None, shape="dynamic", io_names="input_ids"):
    return {
        "recipe": recipe,
        "path": path,
        "bytes": int(mib * 2**20),
        "shape": shape,
        "io": {"input_ids": io_names, "style": "style", "speed": "speed", "waveform": "waveform"},
        "bench": {"rtf": rtf} if rtf else None,
        "speech": {"ran": True, "wer": wer, "dnsmos": 3.2} if wer is not None else {"ran": False},
        "worst_spectral_correlation": corr,
        "host": {"platform": "Linux", "processor": "x86_64", "cpu_count": 2},
    }


def test_which_file_rows_follow_the_measured_figures():
    variants = [
        _v("fp32", "onnx/model.onnx", 310, rtf=0.40, wer=0.20, corr=0.99999),
        _v("quantized", "onnx/model_quantized.onnx", 88, rtf=0.36, wer=0.24, corr=0.999),
        _v("uint8", "onnx/model_uint8.onnx", 120, rtf=0.22, wer=0.26, corr=0.99),
        _v("legacy", "kokoro.onnx", 80, io_names="tokens"),
        _v("b64", "buckets/b64.onnx", 200, shape="bucket"),
    ]
    rows = {r["need"]: r for r in choices(variants)}
    assert rows["the smallest file"]["file"] == "`kokoro.onnx`"
    assert rows["the fastest on CPU"]["file"] == "`onnx/model_uint8.onnx`"
    assert "RTF 0.220" in rows["the fastest on CPU"]["why"]
    assert rows["the closest to upstream Kokoro"]["file"] == "`onnx/model.onnx`"
    assert rows["the fewest recognition errors"]["file"] == "`onnx/model.onnx`"
    assert rows["the fewest recognition errors"]["why"].endswith("(measured for 3 of 5 files)")
    browser = rows["the browser (kokoro-js / transformers.js)"]
    assert browser["file"] == "`onnx/model_quantized.onnx`" and "`q8`" in browser["why"]
    assert rows["streaming servers (fastkokoro)"]["file"] == "`buckets/b64.onnx`"


def test_which_file_says_when_nothing_was_measured():
    rows = {r["need"]: r for r in choices([_v("fp32", "onnx/model.onnx", 310)])}
    assert rows["the fastest on CPU"] == {
        "need": "the fastest on CPU",
        "file": "-",
        "why": "no benchmark recorded",
    }
    assert rows["streaming servers (fastkokoro)"]["file"] == "-"


# ------------------------------------------------------------------ against the local Hub
@pytest.fixture
def hub(monkeypatch, tmp_path, request):
    return local_hub_env(monkeypatch, tmp_path, request=request, login=SECRET)


def _publish(dist: Path, *args: str):
    result = CliRunner().invoke(
        main, ["publish", "--repo", REPO, "--out", str(dist), "--allow-synthetic", *args]
    )
    assert result.exit_code == 0, result.output
    return result


def _card_and_manifest(hub) -> tuple[ModelCard, dict]:
    files = hub.files(REPO)
    return ModelCard(files["README.md"].decode()), json.loads(files["manifest.json"])


def _described(manifest: dict) -> set[str]:
    """Every model file the manifest accounts for: each variant's, and its sherpa-onnx
    bundle's model.onnx."""
    entries = manifest["variants"] + manifest["stale"]
    bundles = {f"{v['sherpa_onnx']}/model.onnx" for v in entries if v.get("sherpa_onnx")}
    return {v["path"] for v in entries} | bundles


def _onnx_files(hub) -> set[str]:
    return {p for p in hub.files(REPO) if p.endswith(".onnx")}


def test_publishing_one_variant_after_another_keeps_both_in_the_card(dist_copy, hub):
    _publish(dist_copy, "--recipe", "fp32")
    _publish(dist_copy, "--recipe", "quantized")
    card, manifest = _card_and_manifest(hub)
    assert [v["recipe"] for v in manifest["variants"]] == ["fp32", "quantized"]
    assert (
        _described(manifest)
        == _onnx_files(hub)
        == {
            "onnx/model.onnx",
            "onnx/model_quantized.onnx",
            "sherpa-onnx/fp32/model.onnx",
            "sherpa-onnx/quantized/model.onnx",
        }
    )
    assert "| `onnx/model.onnx` | fp32 |" in card.text
    assert "| `onnx/model_quantized.onnx` | quantized |" in card.text
    configs = {r.metric_config for r in card.data.eval_results}
    assert configs == {"onnx/model.onnx", "onnx/model_quantized.onnx"}
    assert "## Which file should I use?" in card.text
    assert hub.commits(REPO)[-1].title == "publisher: quantized"


def test_each_publish_is_tagged_with_the_version_and_git_commit(dist_copy, hub, monkeypatch):
    monkeypatch.setenv("GITHUB_SHA", "abcdef0123456789abcdef0123456789abcdef01")
    result = _publish(dist_copy, "--recipe", "fp32")
    ((tag, (oid, message)),) = hub.tags(REPO).items()
    assert oid == hub.head(REPO) and tag.endswith(f"-gabcdef0-{oid[:7]}")
    assert "git commit abcdef0123456789abcdef0123456789abcdef01" in message
    assert f"tagged: {tag}" in result.stdout
    again = _publish(dist_copy, "--recipe", "fp32")  # nothing changed: no commit, no tag
    assert "unchanged:" in again.stdout and len(hub.tags(REPO)) == 1


def test_card_only_rerenders_the_card_from_the_hub_and_touches_no_model(
    dist_copy, hub, tmp_path, monkeypatch
):
    from publisher import locations

    _publish(dist_copy, "--all")
    before = hub.files(REPO)
    templates = tmp_path / "templates"
    shutil.copytree(locations.shipped_dir("templates"), templates)
    page = templates / "README.md.j2"
    page.write_text(page.read_text().replace("## Voices", "## Voices (new template)"))
    real = locations.shipped_dir
    monkeypatch.setattr(
        locations, "shipped_dir", lambda name: templates if name == "templates" else real(name)
    )
    hub.clear_requests()
    result = CliRunner().invoke(main, ["publish", "--repo", REPO, "--card-only"])
    assert result.exit_code == 0, result.output
    after = hub.files(REPO)
    changed = {p for p in after if after[p] != before.get(p)}
    assert changed == {"README.md"} and set(after) == set(before)
    assert "## Voices (new template)" in after["README.md"].decode()
    assert not [r for r in hub.requests if r[0] == "PUT"]  # no LFS upload


def test_prune_deletes_a_removed_recipes_file_in_one_commit(dist_copy, hub, tmp_path, monkeypatch):
    from publisher.recipe.loader import recipes_dir

    _publish(dist_copy, "--all")
    recipes = Path(shutil.copytree(recipes_dir(), tmp_path / "recipes"))
    (recipes / "quantized.yaml").unlink()
    monkeypatch.setenv("PUBLISHER_RECIPES_DIR", str(recipes))
    commits = len(hub.commits(REPO))
    result = _publish(dist_copy, "--prune")
    assert "pruned quantized" in result.stderr
    assert len(hub.commits(REPO)) == commits + 1
    _, manifest = _card_and_manifest(hub)
    assert "onnx/model_quantized.onnx" not in hub.files(REPO)
    assert _described(manifest) == _onnx_files(hub)
    assert _onnx_files(hub) == {
        "onnx/model.onnx",
        "kokoro-v1.0.onnx",
        "sherpa-onnx/fp32/model.onnx",
    }
    assert not [p for p in hub.files(REPO) if p.startswith("sherpa-onnx/quantized/")]


def test_a_file_changed_by_hand_on_the_hub_is_listed_as_stale(dist_copy, hub):
    from huggingface_hub import HfApi

    _publish(dist_copy, "--recipe", "fp32")
    HfApi().upload_file(
        path_or_fileobj=b"not the recorded model", path_in_repo="onnx/model.onnx", repo_id=REPO
    )
    result = _publish(dist_copy, "--recipe", "quantized")
    assert "stale: fp32 (onnx/model.onnx): the file on the Hub" in result.stdout
    card, manifest = _card_and_manifest(hub)
    assert [v["recipe"] for v in manifest["variants"]] == ["quantized"]
    assert [v["recipe"] for v in manifest["stale"]] == ["fp32"]
    assert "### Stale files" in card.text and _described(manifest) == _onnx_files(hub)


def test_two_publishes_at_once_both_end_in_the_card(dist_copy, hub, monkeypatch, caplog):
    """Both read the same head (a barrier holds each after its first read), both commit
    against it: the Hub refuses the second (412), which re-reads and keeps the first's row."""
    from publisher.hub import publish as module
    from publisher.hub.publish import publish

    _publish(dist_copy, "--recipe", "kokoro-v1.0")
    barrier = threading.Barrier(2, timeout=60)
    read = module._Hub.read
    first_reads: set[int] = set()

    def read_then_wait(self, quiet=False):
        state = read(self, quiet)
        if threading.get_ident() not in first_reads:
            first_reads.add(threading.get_ident())
            barrier.wait()
        return state

    monkeypatch.setattr(module._Hub, "read", read_then_wait)
    caplog.set_level(logging.INFO, logger="publisher")
    errors: list[BaseException] = []

    def run(name: str) -> None:
        try:
            publish([dist_copy / name], REPO, allow_synthetic=True)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in ("fp32", "quantized")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    notes = [r.getMessage() for r in caplog.records]
    assert any("moved while publishing" in n for n in notes)
    _, manifest = _card_and_manifest(hub)
    assert [v["recipe"] for v in manifest["variants"]] == ["fp32", "kokoro-v1.0", "quantized"]
    assert _described(manifest) == _onnx_files(hub)


def test_the_card_embeds_the_figures_it_uploads(dist_copy, hub):
    path = dist_copy / "fp32" / "manifest.json"
    build = json.loads(path.read_text())
    settings = {"threads": None, "repeats": 3, "warmup": 1}
    build["bench"] = {"settings": settings, "result": {"rtf": 0.4, "total_seconds": 2.0}}
    path.write_text(json.dumps(build))
    _publish(dist_copy, "--recipe", "fp32")
    card, manifest = _card_and_manifest(hub)
    files = hub.files(REPO)
    pictures = [v["spectrogram"] for v in manifest["variants"]] + [
        manifest["figures"]["size_speed"]
    ]
    assert pictures == ["figures/fp32_spectrogram.png", "figures/size_speed.png"]
    rtf = [r.metric_value for r in card.data.eval_results if r.metric_type == "rtf"]
    assert rtf == [0.4]
    for path in pictures:
        assert files[path][:8] == b"\x89PNG\r\n\x1a\n" and f"]({path})" in card.text
    sha = hashlib.sha256(files["onnx/model.onnx"]).hexdigest()
    assert manifest["variants"][0]["sha256"] == sha


def test_a_repo_that_keeps_moving_ends_in_one_line_and_no_commit(dist_copy, monkeypatch, caplog):
    from publisher.hub import publish as module
    from publisher.runtime.errors import PublisherError

    commits: list[int] = []
    monkeypatch.setattr(module._Hub, "read", lambda self, quiet=False: (RemoteState(), True))
    monkeypatch.setattr(module._Hub, "commit", lambda self, *a: commits.append(1))  # 412 each
    caplog.set_level(logging.INFO, logger="publisher")
    with pytest.raises(PublisherError, match=r"kept moving \(3 attempts.*no commit was made"):
        module.publish([dist_copy / "fp32"], REPO, allow_synthetic=True)
    assert len(commits) == 3
    notes = [r.getMessage() for r in caplog.records]
    assert [n for n in notes if "moved while publishing" in n] == [
        f"{REPO} moved while publishing; re-reading it (attempt 2 of 3)",
        f"{REPO} moved while publishing; re-reading it (attempt 3 of 3)",
    ]


def test_card_only_on_a_repo_without_a_manifest_is_one_line(hub):
    result = CliRunner().invoke(main, ["publish", "--repo", REPO, "--card-only"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {REPO}: no manifest.json at main; publish variants first (publisher publish --all)"
    )


def test_card_only_on_a_manifest_publisher_did_not_write_is_one_line(dist_copy, hub):
    from huggingface_hub import HfApi

    _publish(dist_copy, "--recipe", "fp32")
    _, manifest = _card_and_manifest(hub)
    del manifest["variants"][0]["sha256"]
    HfApi().upload_file(
        path_or_fileobj=json.dumps(manifest).encode(), path_in_repo="manifest.json", repo_id=REPO
    )
    before = hub.files(REPO)["README.md"]
    result = CliRunner().invoke(main, ["publish", "--repo", REPO, "--card-only"])
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"error: {REPO}: its manifest.json is not one this publisher reads (variants.0.sha256: "
        "Field required); publish the variants again (publisher publish --all)"
    )
    assert hub.files(REPO)["README.md"] == before


def test_a_failed_tag_warns_and_the_commit_stands(dist_copy, hub):
    hub.fail_next("tag", status=500)
    result = _publish(dist_copy, "--recipe", "fp32")
    assert "published: " in result.stdout and "tagged:" not in result.stdout
    warning = [ln for ln in result.stderr.splitlines() if ln.startswith("warning:")]
    assert len(warning) == 1 and "the commit stands, untagged" in warning[0]
    assert "onnx/model.onnx" in hub.files(REPO) and hub.tags(REPO) == {}
