"""``publisher space``: upload ``space/`` as a Gradio Space that plays a published model repo.

What is uploaded and how: ``publisher.hub.space``.

Registered by publisher.cli with ``main.add_command(space_command)``. The token comes from
HF_TOKEN or the huggingface_hub login; it is never printed.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from publisher.conformance import envs
from publisher.hub.publish import check_repo_id
from publisher.hub.space import SPACE_CONFIG, assemble, check_model_spec, upload
from publisher.runtime.errors import PublisherError, PublishError


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
@click.option(
    "--browser-runtime/--no-browser-runtime",
    default=True,
    show_default=True,
    help="Bundle onnxruntime-web (npm, pinned) for the in-browser mode.",
)
def space_command(
    repo_id: str,
    model_repo: str,
    dry_run: bool,
    private: bool,
    space_dir: Path | None,
    browser_runtime: bool,
) -> None:
    """Upload space/ as a Gradio Space that plays MODEL-REPO (token: HF_TOKEN or login)."""

    check_repo_id(repo_id)
    check_model_spec(model_repo)
    with tempfile.TemporaryDirectory(prefix="publisher-space-") as tmp:
        ort_dist = None
        if browser_runtime:
            try:
                ort_dist = envs.onnxruntime_web_dist()
            except PublisherError as err:
                raise PublishError(
                    f"the Space's in-browser mode needs onnxruntime-web from npm: {err} "
                    "(or pass --no-browser-runtime)"
                ) from None
        files = assemble(Path(tmp), model_repo, space_dir, ort_dist=ort_dist)
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
