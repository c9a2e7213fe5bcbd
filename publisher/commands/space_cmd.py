"""``publisher space``: upload ``space/`` as a Gradio Space that plays a published model repo.

The uploaded Space is self-contained: ``space/`` (app, UI, README, requirements) plus the
torch-free modules of this package that the app runs (``BUNDLED``: synthesis, text ->
tokens, metrics), copied from the installed package at upload time, so the Space runs the
same code as ``publisher verify`` without installing torch. The model repo the Space plays
is written into ``space_config.json`` (read by the app when no ``KOKORO_REPO`` variable is
set) and into the README front matter (``models:``), so the Hub links the two repos.

Registered by publisher.cli with ``main.add_command(space_command)``. The token comes from
HF_TOKEN or the huggingface_hub login; it is never printed.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import click

from publisher.errors import PublisherError

# Paths inside the package; each must import without torch (tests/test_space.py checks it).
BUNDLED = (
    "__init__.py",
    "errors.py",
    "synth.py",
    "text.py",
    "metrics.py",
    "checkpoint.py",  # packaged_config(): the vocab; torch is only imported inside functions
    "data/__init__.py",
    "data/kokoro_config.json",
)
SPACE_CONFIG = "space_config.json"
_SKIP_DIRS = {"__pycache__", ".git", ".pytest_cache", ".ruff_cache", ".gradio", "flagged"}
_SKIP_NAMES = {SPACE_CONFIG, ".DS_Store"}
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,199}$")


def default_space_dir() -> Path:
    """The checkout's ``space/`` folder (beside the package)."""
    return Path(__file__).resolve().parent.parent.parent / "space"


def check_model_spec(spec: str) -> str:
    """``ORG/MODEL[@REVISION]``, validated."""
    from publisher.publish import check_repo_id

    repo_id, _, revision = spec.partition("@")
    try:
        check_repo_id(repo_id)
    except PublisherError:
        raise PublisherError(
            f"--model-repo {spec!r}: expected ORG/NAME or ORG/NAME@REVISION"
        ) from None
    if revision and (not _REVISION.match(revision) or ".." in revision):
        raise PublisherError(f"--model-repo {spec!r}: {revision!r} is not a valid revision")
    return spec


def _with_models(readme: str, model_repo_id: str) -> str:
    """README.md with ``models: [model_repo_id]`` in its front matter."""
    lines = readme.splitlines(keepends=True)
    if not lines or lines[0].strip() != "---":
        raise PublisherError("space/README.md: expected Space front matter between --- lines")
    end = next((i for i in range(1, len(lines)) if lines[i].strip() == "---"), None)
    if end is None:
        raise PublisherError("space/README.md: the front matter has no closing ---")
    kept = []
    skipping = False
    for line in lines[1:end]:  # drop an existing models: list
        if re.match(r"^models\s*:", line):
            skipping = True
            continue
        if skipping and re.match(r"^\s+-|^-", line):
            continue
        skipping = False
        kept.append(line)
    models = ["models:\n", f"  - {model_repo_id}\n"]
    return "".join([lines[0], *kept, *models, *lines[end:]])


def assemble(dest: Path, model_repo: str, space_dir: Path | None = None) -> list[tuple[str, int]]:
    """Write the Space's files into ``dest``; returns (path, bytes) for each, sorted."""
    import publisher

    model_repo = check_model_spec(model_repo)
    src = Path(space_dir) if space_dir else default_space_dir()
    if not (src / "app.py").is_file() or not (src / "README.md").is_file():
        raise PublisherError(
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
    for rel in BUNDLED:
        source = package / rel
        if not source.is_file():
            raise PublisherError(f"{source}: missing from the installed package")
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
    return [
        (p.relative_to(dest).as_posix(), p.stat().st_size)
        for p in sorted(dest.rglob("*"))
        if p.is_file()
    ]


def upload(folder: Path, repo_id: str, model_repo: str, *, private: bool = False) -> str:
    """Create (or reuse) the Space repo and upload ``folder`` as one commit; the commit URL."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

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
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        if status in (401, 403):
            raise PublisherError(
                f"{repo_id}: the Hub refused the token (HTTP {status}); set HF_TOKEN to a "
                "token with write access or run `hf auth login`"
            ) from None
        raise PublisherError(
            f"{repo_id}: the Hub answered HTTP {status} ({_first(exc)}); nothing was uploaded"
        ) from None
    except Exception as exc:  # connection errors, a missing token, ...
        raise PublisherError(
            f"{repo_id}: upload failed ({type(exc).__name__}: {_first(exc)}); nothing was uploaded"
        ) from None
    return info.commit_url


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


@click.command("space")
@click.option("--repo", "repo_id", required=True, metavar="ORG/NAME", help="The Space repo.")
@click.option(
    "--model-repo",
    required=True,
    metavar="ORG/MODEL[@REV]",
    help="The model repo the Space plays (its KOKORO_REPO).",
)
@click.option("--dry-run", is_flag=True, help="Print the plan; no network.")
@click.option("--private", is_flag=True, help="Create the Space private if it does not exist.")
@click.option(
    "--space-dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="The Space sources (default: space/ of this checkout).",
)
def space_command(
    repo_id: str, model_repo: str, dry_run: bool, private: bool, space_dir: Path | None
) -> None:
    """Upload space/ as a Gradio Space that plays MODEL-REPO (token: HF_TOKEN or login)."""
    from publisher.publish import check_repo_id

    check_repo_id(repo_id)
    check_model_spec(model_repo)
    with tempfile.TemporaryDirectory(prefix="publisher-space-") as tmp:
        files = assemble(Path(tmp), model_repo, space_dir)
        if dry_run:
            click.echo(
                f"dry run: would upload a Gradio Space to {repo_id} playing {model_repo} "
                f"(KOKORO_REPO in {SPACE_CONFIG}):"
            )
            for path, size in files:
                click.echo(f"  {size / 1024:10.1f} KiB  {path}")
            total = sum(size for _, size in files)
            click.echo(f"  {total / 1024:10.1f} KiB  total, {len(files)} files")
            return
        url = upload(Path(tmp), repo_id, model_repo, private=private)
    click.echo(f"uploaded Space {repo_id}: {url}")
