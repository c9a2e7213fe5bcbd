from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from huggingface_hub import ModelCard
from tokenizers import Tokenizer

from publisher.cli import main
from publisher.hub.card import md as _md
from publisher.hub.repo_files import tokenizer_json, write_voices
from publisher.hub.stage import stage
from publisher.runtime.errors import PublisherError


@pytest.fixture
def dist(dist_copy):
    return dist_copy


@pytest.fixture(scope="module")
def staged(tiny_dist, tmp_path_factory):
    dest = tmp_path_factory.mktemp("repo") / "repo"
    return stage([tiny_dist / "fp32", tiny_dist / "kokoro-v1.0"], dest, repo_id="me/kokoro")


def test_voices_are_written_in_all_three_layouts(tiny, tmp_path):
    write_voices(tiny.voices, tmp_path)
    npz = np.load(tmp_path / "voices.npz")
    names = (tmp_path / "voices.txt").read_text().split()
    assert names == list(npz.keys()) == sorted(tiny.voices)
    for name in names:
        assert npz[name].shape == (510, 1, 256) and npz[name].dtype == np.float32
        raw = np.fromfile(tmp_path / "voices" / f"{name}.bin", dtype="<f4").reshape(510, 256)
        np.testing.assert_array_equal(raw, tiny.voices[name][:, 0, :])


def test_bad_voice_shapes_are_refused(tmp_path):
    with pytest.raises(PublisherError, match=r"voice 'x': expected float32 \(510, 1, 256\)"):
        write_voices({"x": np.zeros((510, 256), np.float32)}, tmp_path)


def test_tokenizer_turns_phonemes_into_padded_ids_and_drops_unknowns(tiny):
    vocab = tiny.config["vocab"]
    tok = Tokenizer.from_str(json.dumps(tokenizer_json(vocab)))
    phonemes = "həlˈO wˈɜːld"
    assert tok.encode(phonemes + " 7#").ids == [0, *(vocab[c] for c in phonemes + " "), 0]
    assert tok.encode("").ids == [0, 0]


def test_staged_repo_has_the_layout_every_runtime_reads(staged):
    folder = staged.folder
    for rel in (
        "README.md",
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "voices.npz",
        "voices.txt",
        "manifest.json",
        "onnx/model.onnx",
        "kokoro-v1.0.onnx",
        "voices/af_heart.bin",
    ):
        assert (folder / rel).is_file(), rel
    config = json.loads((folder / "config.json").read_text())
    assert config["model_type"] == "style_text_to_speech_2"
    assert config["architectures"] == ["StyleTextToSpeech2Model"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert [v["recipe"] for v in manifest["variants"]] == ["fp32", "kokoro-v1.0"]
    assert all(len(v["recipe_sha256"]) == 64 and v["gates"] for v in manifest["variants"])


def test_model_card_parses_and_says_synthetic_at_the_top(staged):
    text = (staged.folder / "README.md").read_text()
    card = ModelCard(text)
    assert card.data.license == "apache-2.0"
    assert card.data.base_model == "hexgrad/Kokoro-82M"
    assert card.data.pipeline_tag == "text-to-speech"
    body = text.split("---", 2)[2].lstrip()
    assert body.startswith("> **Synthetic build")
    assert "| `onnx/model.onnx` | fp32 |" in text
    assert "publisher build --recipe fp32 --checkpoint synthetic:tiny" in text
    assert "### kokoro-js" in text and "### kokoro-onnx" in text
    assert "### fastkokoro" not in text  # no bucket files staged


def test_the_cards_word_times_snippet_runs_in_the_staged_repo_and_times_each_word(staged):
    import ast
    import re
    import subprocess
    import sys

    text = (staged.folder / "README.md").read_text()
    block = re.search(r"### Word times\n.*?```python\n(.*?)```", text, re.S)
    assert block, "no word-times snippet in the card"
    done = subprocess.run(
        [sys.executable, "-c", block.group(1)],
        cwd=staged.folder,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    words = ast.literal_eval(done.stdout.strip())
    assert [w for w, _, _ in words] == ["hˈɛlO", "wˈɜɹld", "ðɪs", "ɪz", "kˈOkəɹO"]
    assert all(start < end for _, start, end in words)
    assert all(a[2] <= b[1] for a, b in zip(words, words[1:], strict=False))


def test_the_cards_kokoro_js_word_times_snippet_runs_in_node_on_the_staged_repo(staged, tmp_path):
    import re
    import subprocess

    from publisher.conformance.envs import environment

    text = (staged.folder / "README.md").read_text()
    blocks = re.findall(r"```js\n(.*?)```", text.split("### kokoro-js", 1)[1], re.S)
    snippet = next(b for b in blocks if "duration" in b)
    root, _ = environment("kokoro-js 1.2.1", ("kokoro-js@1.2.1",), npm=True)
    (tmp_path / "node_modules").symlink_to(root / "node_modules")
    (tmp_path / "models" / "me").mkdir(parents=True)
    (tmp_path / "models" / "me" / "kokoro").symlink_to(staged.folder)
    models = json.dumps(str(tmp_path / "models"))
    offline = (  # the card's snippet as is, with transformers.js kept off the network
        'import { env as hub } from "@huggingface/transformers";\n'
        f"hub.allowRemoteModels = false; hub.localModelPath = {models};\n"
    )
    script = tmp_path / "word_times.mjs"
    script.write_text(offline + snippet)
    done = subprocess.run(
        ["node", str(script)], cwd=staged.folder, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, done.stderr[-2000:]
    words = json.loads(done.stdout.strip().splitlines()[-1])
    assert [w for w, _, _ in words] == ["hˈɛlO", "wˈɜɹld", "ðɪs", "ɪz", "kˈOkəɹO"]
    assert all(start < end for _, start, end in words)
    assert all(a[2] <= b[1] for a, b in zip(words, words[1:], strict=False))


def test_recipe_text_is_escaped_in_the_card():
    assert _md("a | b <script>") == r"a \| b &lt;script&gt;"


def test_failed_variants_are_never_staged(dist, tmp_path):
    manifest_path = dist / "fp32" / "manifest.json"
    data = json.loads(manifest_path.read_text())
    data["verification"]["passed"] = False
    manifest_path.write_text(json.dumps(data))
    with pytest.raises(PublisherError, match="no variant passed its gates"):
        stage([dist / "fp32"], tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_publish_dry_run_prints_the_plan_without_network(dist, monkeypatch):
    monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", "http://127.0.0.1:9")
    result = CliRunner().invoke(
        main, ["publish", "--repo", "me/kokoro", "--all", "--out", str(dist), "--dry-run"]
    )
    assert result.exit_code == 0, result.output
    assert (
        "dry run: would commit to me/kokoro: publisher: fp32, kokoro-v1.0, quantized"
        in result.stdout
    )
    assert "onnx/model.onnx" in result.stdout and "voices.npz" in result.stdout
    assert "a real publish needs --allow-synthetic" in result.stdout


def test_publish_refuses_synthetic_builds_without_the_flag(dist):
    result = CliRunner().invoke(
        main, ["publish", "--repo", "me/kokoro", "--all", "--out", str(dist)]
    )
    assert result.exit_code == 1
    assert "refusing to publish a synthetic build" in result.stderr


@pytest.mark.parametrize("repo", ["noslash", "a/b/c", "../x", "me/"])
def test_publish_rejects_malformed_repo_ids(dist, repo):
    result = CliRunner().invoke(
        main, ["publish", "--repo", repo, "--all", "--out", str(dist), "--dry-run"]
    )
    assert result.exit_code == 1
    assert "expected ORG/NAME" in result.stderr


def test_staging_imports_no_torch_the_build_folders_carry_config_and_voices(
    tiny_dist, tiny, tmp_path
):
    import subprocess
    import sys

    dest = tmp_path / "repo"
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from publisher.hub.stage import stage\n"
        f"stage([Path({str(tiny_dist / 'fp32')!r})], Path({str(dest)!r}), repo_id='me/kokoro')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'kokoro')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)

    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"  # no checkpoint opened: no torch, no kokoro
    with np.load(dest / "voices.npz") as npz:
        assert sorted(npz.files) == sorted(tiny.voices)
        assert all(np.array_equal(npz[n], tiny.voices[n]) for n in npz.files)
    config = json.loads((dest / "config.json").read_text())
    assert config["vocab"] == tiny.config["vocab"]


def test_a_build_folder_from_before_the_checkpoint_files_is_one_line_to_rebuild(dist, tmp_path):
    import shutil

    from publisher.manifest import CHECKPOINT_CONFIG, file_index

    folder = dist / "fp32"
    shutil.rmtree((folder / CHECKPOINT_CONFIG).parent)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["files"] = file_index(folder, skip="manifest.json")
    (folder / "manifest.json").write_text(json.dumps(manifest))

    with pytest.raises(PublisherError, match=r"built before build folders carried .* rebuild it"):
        stage([folder], tmp_path / "repo", repo_id="me/kokoro")


def test_a_bundle_copies_a_file_with_sherpas_keys_and_adds_them_to_a_file_without(
    tiny, tiny_dist, tmp_path
):
    import hashlib

    import onnx

    from publisher.hub.sherpa import sherpa_metadata, write_bundle

    def sha(path) -> str:
        return hashlib.sha256(path.read_bytes()).hexdigest()

    built = tiny_dist / "fp32" / "onnx" / "model.onnx"  # the build wrote sherpa's keys
    write_bundle(built, tiny.voices, tiny.config["vocab"], tmp_path / "same")
    assert sha(tmp_path / "same" / "model.onnx") == sha(built)

    wanted = sherpa_metadata(sorted(tiny.voices))
    model = onnx.load(str(built))
    kept = [p for p in model.metadata_props if p.key not in wanted]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    plain = tmp_path / "plain.onnx"  # a file from elsewhere: no sherpa keys
    onnx.save(model, str(plain))
    before = sha(plain)
    write_bundle(plain, tiny.voices, tiny.config["vocab"], tmp_path / "added")
    meta = {
        p.key: p.value for p in onnx.load(str(tmp_path / "added" / "model.onnx")).metadata_props
    }
    assert meta.items() >= wanted.items() and meta["publisher.recipe"] == "fp32"
    assert sha(plain) == before  # the given file is left as it was


def test_the_cards_wer_column_shows_a_split_buckets_like_for_like_reference():
    from publisher.hub.card import display_columns

    whole = {
        "ran": True,
        "wer": 0.231,
        "reference_wer": 0.251,
        "dnsmos": 3.2,
        "reference_dnsmos": 3.21,
    }
    assert display_columns({"speech": whole})["wer"] == "0.231 (0.251)"
    split = whole | {"wer": 0.569, "same_pieces_wer": 0.549}
    assert display_columns({"speech": split})["wer"] == "0.569 (0.251; in its pieces 0.549)"
    assert display_columns({"speech": {"ran": False}})["wer"] == "-"
