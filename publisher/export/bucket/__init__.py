"""Static token-bucket export: one fixed-shape graph per token bucket (fastkokoro family).

A bucket graph takes ``input_ids`` int64 [1, B] (padded with 0), ``style`` float32 [1, 256],
``speed`` float32 [1] and ``input_lengths`` int64 [1] (real tokens + the 2 pads), and
returns ``waveform`` float32 [S] (1-D) and ``duration`` int64 [B] (0 on padding). Every
shape is static; the graph has no NonZero, ScatterND, Range or STFT node.

``BucketKokoro`` wraps a deep copy of kokoro's ``KModel``. It reuses kokoro's modules and
weights (ALBERT, embeddings, convolution blocks, AdaLayerNorm, the F0/N blocks, the
decoder and generator sub-modules) and re-implements only the orchestration that has to
change for a padded, fixed-length input:

* the bidirectional LSTMs, whose ``pack_padded_sequence`` path is data-dependent, become
  ``MaskedBiLSTM`` (two unidirectional LSTMs sharing the original weights; the backward one
  runs on the valid tokens reversed by a computed Gather index);
* the hard alignment is built from cumulative durations against a constant frame index,
  F frames long (``export.alignment_frames``, default 5B/2 + 48: real speech's frames);
* every ``AdaIN1d`` (instance norm over time) becomes ``MaskedAdaIN1d``: statistics over
  the valid frames only, output zeroed on padding, so each convolution sees the same zeros
  at the boundary that its own zero padding gives the unpadded model;
* the generator zeroes the padded region before each transposed convolution and before
  ``conv_post``, runs ExactSTFT with its reflect padding mirrored at the valid end, and
  masks the inverse STFT's input frames and window envelope, so the content matches the
  unpadded model.

Content = 600 samples per predicted frame (hop 5 x upsample 10*6 x 2), every sample the
unpadded model makes; after it the output is exactly zero. Output samples = 600 * F plus
fastkokoro's tail margin (``shape.tail_margin_samples``) unless ``export.output_samples``
says otherwise.

What remains different from the unpadded model. The boundary effects that padding would
cause - instance-norm statistics over padding, and the receptive fields of the
convolutions, transposed convolutions (whose bias makes position 2*T_v nonzero) and STFT
frames that straddle the last valid frame - are each closed by a mask above (leaving out
just the mask after the upsampling pool cost 6e-5 on the tiny model, peak 0.035). What is
left is summation order (masked reductions instead of
InstanceNormalization, attention over a padded key set, other matrix sizes). Measured in
parity mode (``publisher verify`` gates, ``tests/test_bucket.py``): fp32 bucket graph vs
unpadded upstream torch (torch.stft/istft), max abs error 7.8e-6 on recovered:kokoro-v1.0
(b64, 89 dB, the five inputs that fit), durations identical; before ExactSTFT (both sides
CustomSTFT) 5e-8 on synthetic:tiny and 2.2e-7 on synthetic:full. With the harmonic sine
on (fixed phases), bucket torch vs unpadded torch differ by up to 2.5e-3 (spectral
correlation 0.999995): that rounding is amplified by the decoder through the phase of
near-silent STFT bins (see publisher/export/parity.py), not by the padding; the random source makes
each run differ far more.
"""
