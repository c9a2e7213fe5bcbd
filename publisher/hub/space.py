"""The Gradio Space: ``space/`` plus the torch-free runtime (``publisher/runtime/``, bundled
whole, so the Space runs the same synthesis, text and metrics code as ``publisher verify``
without torch), the model repo it plays in ``space_config.json`` and the README front
matter (``models:``, so the Hub links the two repos), uploaded as one commit."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import publisher
from publisher.hub.publish import check_repo_id
from publisher.hub.session import use_hub_timeouts
from publisher.runtime.clients import ONNXRUNTIME_WEB, ORT_WEB_WASM, ORT_WEB_WEBGPU
from publisher.runtime.errors import PublisherError, PublishError, first_line
from publisher.runtime.hub_errors import hub_error

# Paths inside the package; each must import without torch (tests/test_space.py checks it).
# The torch-free runtime the app runs, bundled whole (tests/test_space.py checks that it
# imports without torch): the package marker and everything under publisher/runtime/.
BUNDLED_ROOT = "runtime"


SPACE_CONFIG = "space_config.json"
ORT_STATIC = "static/ort"  # where the Space serves onnxruntime-web from (kokoro_space/browser.py)


_SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache", ".ruff_cache", ".gradio", "flagged"}


_SKIP_NAMES = {SPACE_CONFIG, ".DS_Store"}


_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


def default_space_dir() -> Path:
    """The checkout's ``space/`` folder (beside the package)."""
    return Path(__file__).resolve().parent.parent.parent / "space"


def check_model_spec(spec: str) -> str:
    """``ORG/MODEL[@REVISION]``, validated."""

    repo_id, _, revision = spec.partition("@")
    try:
        check_repo_id(repo_id)
    except PublisherError:
        raise PublishError(
            f"--model-repo {spec!r}: expected ORG/NAME or ORG/NAME@REVISION"
        ) from None
    if revision and (not _REVISION.match(revision) or ".." in revision):
        raise PublishError(f"--model-repo {spec!r}: {revision!r} is not a valid revision")
    return spec


def _with_models(readme: str, model_repo_id: str) -> str:
    """README.md with ``models: [model_repo_id]`` in its front matter (huggingface_hub's
    SpaceCard keeps the rest of the front matter and the body)."""
    import yaml
    from huggingface_hub import SpaceCard

    lines = readme.splitlines()
    if not lines or lines[0].strip() != "---":
        raise PublishError("space/README.md: expected Space front matter between --- lines")
    if not any(line.strip() == "---" for line in lines[1:]):
        raise PublishError("space/README.md: the front matter has no closing ---")
    try:
        card = SpaceCard(readme)
    except (ValueError, yaml.YAMLError) as exc:  # not a mapping / not YAML
        problem = first_line(exc)
        raise PublishError(f"space/README.md: front matter is not valid YAML ({problem})") from None
    card.data.models = [model_repo_id]
    return str(card)


def bundle_onnxruntime_web(dest: Path, dist: Path) -> Path:
    """Copy onnxruntime-web's WASM and WebGPU builds from ``dist`` (the npm package's
    ``dist/``, ``conformance.envs.onnxruntime_web_dist``) into ``dest/static/ort``, so the
    Space's in-browser mode loads no script from a CDN. Returns that folder."""
    target = Path(dest) / ORT_STATIC
    target.mkdir(parents=True, exist_ok=True)
    for name in (*ORT_WEB_WASM, *ORT_WEB_WEBGPU):
        if not (Path(dist) / name).is_file():
            raise PublishError(
                f"{dist}: {name} is missing; remove its environment folder to reinstall "
                f"onnxruntime-web {ONNXRUNTIME_WEB}"
            )
        shutil.copyfile(Path(dist) / name, target / name)
    (target / "VERSION").write_text(ONNXRUNTIME_WEB + "\n")
    return target


def assemble(
    dest: Path, model_repo: str, space_dir: Path | None = None, *, ort_dist: Path | None = None
) -> list[tuple[str, int]]:
    """Write the Space's files into ``dest`` (with ``ort_dist``, onnxruntime-web from that
    ``dist/`` folder for its in-browser mode); returns (path, bytes) for each, sorted."""

    model_repo = check_model_spec(model_repo)
    src = Path(space_dir) if space_dir else default_space_dir()
    if not (src / "app.py").is_file() or not (src / "README.md").is_file():
        raise PublishError(
            f"{src}: not a Space folder (needs app.py and README.md); "
            "run from a checkout of the publisher or pass --space-dir"
        )
    dest = Path(dest)
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src)
        if any(part in _SKIP_DIRS for part in rel.parts) or path.name in _SKIP_NAMES:
            continue
        if path.suffix in (".pyc", ".pyo") or not path.is_file():
            continue
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, dest / rel)
    package = Path(publisher.__file__).resolve().parent
    for source in [package / "__init__.py", *sorted((package / BUNDLED_ROOT).rglob("*"))]:
        rel = source.relative_to(package)
        if not source.is_file() or "__pycache__" in rel.parts or source.suffix == ".pyc":
            continue
        target = dest / "publisher" / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
    readme = (dest / "README.md").read_text(encoding="utf-8")
    (dest / "README.md").write_text(
        _with_models(readme, model_repo.partition("@")[0]), encoding="utf-8"
    )
    (dest / SPACE_CONFIG).write_text(
        json.dumps({"KOKORO_REPO": model_repo}, indent=2) + "\n", encoding="utf-8"
    )
    if ort_dist is not None:
        bundle_onnxruntime_web(dest, ort_dist)
    return [
        (p.relative_to(dest).as_posix(), p.stat().st_size)
        for p in sorted(dest.rglob("*"))
        if p.is_file()
    ]


def upload(folder: Path, repo_id: str, model_repo: str, *, private: bool = False) -> str:
    """Create (or reuse) the Space repo and upload ``folder`` as one commit; the commit URL."""
    from huggingface_hub import HfApi

    seconds = use_hub_timeouts()
    api = HfApi()
    try:
        api.create_repo(
            repo_id, repo_type="space", space_sdk="gradio", private=private, exist_ok=True
        )
        info = api.upload_folder(
            folder_path=str(folder),
            repo_id=repo_id,
            repo_type="space",
            commit_message=f"publisher space: demo of {model_repo}",
        )
    except Exception as exc:  # HTTP answers, connection errors, timeouts, a missing token
        raise hub_error(repo_id, exc, seconds=seconds, undone="nothing was uploaded") from None
    return info.commit_url
