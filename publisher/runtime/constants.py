"""Facts about Kokoro-82M that many modules need, each defined once (torch-free)."""

from __future__ import annotations

SAMPLE_RATE = 24000  # Hz, every waveform in and out of the model
MAX_TOKENS = 510  # longest padded input [0, *ids, 0] we feed (the context has 512 positions)
MAX_PHONEMES = MAX_TOKENS - 2  # most phoneme ids in one input
SAMPLES_PER_FRAME = 600  # per predicted duration frame: istft hop 5 x upsample 10*6 x 2
VOICE_SHAPE = (510, 1, 256)  # one style row per phoneme count; 128 decoder + 128 prosody
# Tensor roles (our canonical names): what a recipe's io section renames.
INPUT_ROLES = ("input_ids", "style", "speed")
BUCKET_INPUT_ROLES = (*INPUT_ROLES, "input_lengths")  # static token-bucket graphs add this
OUTPUT_ROLES = ("waveform", "duration")
IO_ROLES = (*BUCKET_INPUT_ROLES, *OUTPUT_ROLES)

# A graph with a random source never gives the same samples twice, so "the same audio" is
# measured against the reference's own run-to-run agreement: spectral correlation to the
# reference over the reference's correlation with itself, at least this much.
SAME_AUDIO_MATCH = 0.9

# onnxruntime releases a file may declare as its floor (recipe target.min_onnxruntime); the
# conformance matrix runs each of them, in its own environment, plus the current release.
ONNXRUNTIME_FLOORS = ("1.16.3", "1.17.3", "1.20.1")
# a text runtime's own front end may be heard this much above our phonemes' WER
HEARD_WER_MARGIN = 0.08
