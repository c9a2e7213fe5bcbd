"""``export_fp32``: the cached fp32 graph of a (checkpoint, recipe, mode): dynamic
(``publisher.export.dynamic``) or a static token bucket (``publisher.export.bucket``), with
the generator's STFT swapped for ExactSTFT (``publisher.export.stft``)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from publisher.export import dynamic as dynamic_export
from publisher.export.bucket.shape import bucket_shape
from publisher.export.cache import export_key
from publisher.export.stft import exact_stft
from publisher.export.torchscript import check_graph
from publisher.locations import cache_root
from publisher.workspace import cached_entry_ok, store

if TYPE_CHECKING:
    from publisher.model.checkpoint import Checkpoint
    from publisher.recipe.schema import Recipe


def export_fp32(
    ckpt: Checkpoint,
    recipe: Recipe,
    *,
    parity: bool = False,
    voiced: bool = False,
    use_cache: bool = True,
) -> Path:
    """Return the path of the cached fp32 graph for (checkpoint, export settings, mode):
    ``parity`` the noise-only deterministic switch, with ``voiced`` its sine kept (see
    publisher/export/parity.py); neither: the shipped graph."""
    opset = recipe.export.opset
    if recipe.is_bucket:
        # lazy: the bucket exporter imports torch and kokoro's modules at its top; a
        # cached export needs neither
        from publisher.export.bucket.export import torch_export_bucket

        shape = bucket_shape(recipe)

        def write(model, path: Path) -> None:
            torch_export_bucket(model, ckpt, shape, path, opset, parity=parity, voiced=voiced)

    else:

        def write(model, path: Path) -> None:
            dynamic_export.export_dynamic(model, ckpt, path, opset, parity=parity, voiced=voiced)

    target = cache_root() / "exports" / export_key(ckpt, recipe, parity=parity, voiced=voiced)
    target = target / "model.onnx"
    if use_cache and cached_entry_ok(target):
        return target
    model = ckpt.model  # only now: a cached export needs no torch model

    def fill(tmp: Path) -> None:
        with exact_stft(model):
            write(model, tmp)
        check_graph(tmp)

    store(target, fill)
    return target
