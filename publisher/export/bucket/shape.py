"""Bucket shapes and the metadata fastkokoro reads: torch-free (B, F, S rules; see the
package docstring for what the graph does)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from publisher.runtime.constants import SAMPLE_RATE, SAMPLES_PER_FRAME
from publisher.runtime.errors import RecipeError

if TYPE_CHECKING:
    from publisher.recipe.schema import Recipe

ANCHOR_SAMPLES_PER_FRAME = 480  # what msgflux/Kokoro-82M-streaming-onnx keeps per frame
# fastkokoro 0.7.0 cuts the end of every segment it runs: a 220 ms trim plus a 96 ms fade
# for token widths >= 48, 150 ms + 72 ms below (its defaults). Our graph keeps the whole
# tail, so the tail margin we declare is exactly that cut: fastkokoro then plans at most
# (fixed_output_samples - margin) // 600 frames per call (re-splitting beyond) and its cut
# only ever removes the exact zeros after the content, never speech.
FASTKOKORO_TAIL_CUT_MS = {"wide": 220 + 96, "narrow": 150 + 72, "wide_from_width": 48}


@dataclass(frozen=True)
class BucketShape:
    bucket: int  # B: token positions, the two pads included
    frames: int  # F: alignment frames
    output_samples: int  # S: waveform length

    @property
    def max_content_samples(self) -> int:
        return SAMPLES_PER_FRAME * self.frames


def bucket_shape(recipe: Recipe) -> BucketShape:
    """B, F and S for a bucket recipe (S defaults to 600 * F plus fastkokoro's tail
    margin); output_samples below 600 * F is a recipe error."""
    e = recipe.export
    if e.shape != "bucket" or e.bucket is None:
        raise RecipeError(f"{recipe.display_path}: export.shape: expected 'bucket'")
    frames = e.resolved_alignment_frames
    least = SAMPLES_PER_FRAME * frames
    default = default_output_samples(e.bucket, frames)
    samples = e.output_samples if e.output_samples is not None else default
    if samples < least:
        raise RecipeError(
            f"{recipe.display_path}: export.output_samples: must be at least "
            f"{SAMPLES_PER_FRAME} * alignment frames = {least} (so every content sample "
            f"fits), got {samples}"
        )
    return BucketShape(e.bucket, frames, samples)


def default_output_samples(bucket: int, frames: int) -> int:
    """S unless the recipe sets it: 600 * F, then the declared tail margin, so that
    fastkokoro, which plans (S - margin) // 600 frames per call, plans exactly F."""
    return SAMPLES_PER_FRAME * frames + tail_margin_samples(bucket)


def tail_margin_samples(bucket: int) -> int:
    """fastkokoro's end trim + fade for this token width, in samples (see above)."""
    cut = FASTKOKORO_TAIL_CUT_MS
    ms = cut["wide"] if bucket >= cut["wide_from_width"] else cut["narrow"]
    return ms * SAMPLE_RATE // 1000


def bucket_metadata(shape: BucketShape) -> dict[str, str]:
    """The keys fastkokoro reads (all four must exist) and ours."""
    rule = (
        f"waveform = {SAMPLES_PER_FRAME} samples per predicted frame (content), then exact "
        f"zeros up to {shape.output_samples} samples; fixed output = "
        + (
            f"{SAMPLES_PER_FRAME} * alignment frames + the tail margin"
            if shape.output_samples == default_output_samples(shape.bucket, shape.frames)
            else "export.output_samples"
        )
    )
    return {
        "fastkokoro.fixed_alignment_frames": str(shape.frames),
        "fastkokoro.content_samples_per_duration_frame": str(SAMPLES_PER_FRAME),
        "fastkokoro.fixed_output_samples": str(shape.output_samples),
        "fastkokoro.output_tail_margin_samples": str(tail_margin_samples(shape.bucket)),
        "publisher.bucket": str(shape.bucket),
        "publisher.bucket_output_rule": rule,
    }
