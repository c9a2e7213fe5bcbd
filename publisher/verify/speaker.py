"""Speaker similarity: does the variant sound like the same person as the reference?

Resemblyzer's GE2E speaker encoder (PyPI ``resemblyzer``, its weights ship in the wheel;
the ``[quality]`` extra) turns an utterance into a 256-d unit vector; the similarity of
two renderings of the same sentence in the same voice is the cosine of their vectors.
Measured on real recovered weights (speech set, each file against its fp32 twin or
upstream): static 8-bit of the whole graph 0.943 (DNSMOS had heard it too), the shipped
cpu-int8 0.988-0.989. DNSMOS hears noise, PocketSphinx hears words; this hears the timbre
that 8-bit outputs smear.

Torch side: resemblyzer runs its encoder in torch.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from publisher.runtime.speech import RECOGNIZER_RATE, to_16k

if TYPE_CHECKING:
    import numpy as np


@functools.cache
def _encoder():
    import warnings

    with warnings.catch_warnings():  # webrtcvad imports pkg_resources, resemblyzer an
        warnings.simplefilter("ignore")  # old scipy path: both warn on every import
        from resemblyzer import VoiceEncoder

    return VoiceEncoder("cpu", verbose=False)


def embedding(wave: np.ndarray, sample_rate: int) -> np.ndarray:
    """The unit speaker vector of one utterance (silences trimmed by resemblyzer's VAD)."""
    encoder = _encoder()  # imports resemblyzer (under the warning filter) first
    from resemblyzer import preprocess_wav

    audio = to_16k(wave, sample_rate).astype("float32") / 32768.0
    return encoder.embed_utterance(preprocess_wav(audio, source_sr=RECOGNIZER_RATE))


def similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine of two speaker vectors (1.0: the same speaker, as far as the encoder hears)."""
    import numpy as np

    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))
