"""The dynamic export: kokoro's ``KModelForONNX`` traced with a variable token axis.

The graph always has the canonical tensor names (input_ids, style, speed -> waveform,
duration); the ``io-names`` pass renames them to what a recipe asks for.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

from publisher.export.parity import parity_mode
from publisher.export.torchscript import torch_export
from publisher.runtime.constants import INPUT_ROLES, OUTPUT_ROLES

if TYPE_CHECKING:
    from publisher.model.checkpoint import Checkpoint

TRACE_TOKENS = 48
DYNAMIC_AXES = {"input_ids": {1: "tokens"}, "waveform": {0: "samples"}, "duration": {0: "tokens"}}


def trace_inputs(ckpt: Checkpoint, n_tokens: int = TRACE_TOKENS) -> tuple:
    """Example inputs for tracing: n_tokens ids (pads included), a style row, speed 1."""
    import torch

    vocab_ids = sorted(set(ckpt.config["vocab"].values()))
    ids = [0] + [vocab_ids[(7 * i) % len(vocab_ids)] for i in range(n_tokens - 2)] + [0]
    style = ckpt.voices[ckpt.sample_voice][n_tokens - 3]
    return (
        torch.tensor([ids], dtype=torch.long),
        torch.from_numpy(style.reshape(1, -1).copy()),
        torch.tensor([1.0], dtype=torch.float32),
    )


def export_dynamic(
    model, ckpt: Checkpoint, path: Path, opset: int, *, parity: bool, voiced: bool = False
) -> None:
    """Trace ``model`` (kokoro's KModel) into ``path``; ``parity`` switches the noise off
    (``voiced`` keeps the harmonic sine)."""
    from kokoro.model import KModelForONNX

    wrapper = KModelForONNX(model).eval()
    switch = parity_mode(model, voiced=voiced) if parity else contextlib.nullcontext()
    with switch:
        torch_export(
            wrapper,
            trace_inputs(ckpt),
            path,
            opset=opset,
            input_names=INPUT_ROLES,
            output_names=OUTPUT_ROLES,
            dynamic_axes=DYNAMIC_AXES,
        )
