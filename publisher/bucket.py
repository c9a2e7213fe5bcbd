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
  F frames long (``export.alignment_frames``, default 2B+8);
* every ``AdaIN1d`` (instance norm over time) becomes ``MaskedAdaIN1d``: statistics over
  the valid frames only, output zeroed on padding, so each convolution sees the same zeros
  at the boundary that its own zero padding gives the unpadded model;
* the generator zeroes the padded region before each transposed convolution and before
  ``conv_post``, runs ExactSTFT with its reflect padding mirrored at the valid end, and
  masks the inverse STFT's input frames and window envelope, so the content matches the
  unpadded model.

Content = 600 samples per predicted frame (hop 5 x upsample 10*6 x 2), every sample the
unpadded model makes; after it the output is exactly zero. Output samples = 600 * F unless
``export.output_samples`` asks for more.

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
near-silent STFT bins (see parity_mode.py), not by the padding; the random source makes
each run differ far more.
"""

from __future__ import annotations

import copy
import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import publisher.passes.bucket_check  # noqa: F401 - bucket recipes run the bucket-check pass
from publisher.errors import ExportError, RecipeError
from publisher.synth import SAMPLE_RATE, SAMPLES_PER_FRAME

if TYPE_CHECKING:
    from publisher.checkpoint import Checkpoint
    from publisher.recipe import Recipe

BUCKET_FORMAT_VERSION = 4  # bump when the bucket export changes its output
ANCHOR_SAMPLES_PER_FRAME = 480  # what msgflux/Kokoro-82M-streaming-onnx keeps per frame
# fastkokoro 0.7.0 cuts the end of every segment it runs: a 220 ms trim plus a 96 ms fade
# for token widths >= 48, 150 ms + 72 ms below (its defaults). Our graph keeps the whole
# tail, so the tail margin we declare is exactly that cut: fastkokoro then plans at most
# (fixed_output_samples - margin) // 600 frames per call (re-splitting beyond) and its cut
# only ever removes the exact zeros after the content, never speech.
FASTKOKORO_TAIL_CUT_MS = {"wide": 220 + 96, "narrow": 150 + 72, "wide_from_width": 48}
FOLD_OFF = ["MatMulAddFusion"]  # see fold_static
INPUTS = ("input_ids", "style", "speed", "input_lengths")
OUTPUTS = ("waveform", "duration")


@dataclass(frozen=True)
class BucketShape:
    bucket: int  # B: token positions, the two pads included
    frames: int  # F: alignment frames
    output_samples: int  # S: waveform length

    @property
    def max_content_samples(self) -> int:
        return SAMPLES_PER_FRAME * self.frames


def bucket_shape(recipe: Recipe) -> BucketShape:
    """B, F and S for a bucket recipe; output_samples below 600 * F is a recipe error."""
    e = recipe.export
    if e.shape != "bucket" or e.bucket is None:
        raise RecipeError(f"{recipe.display_path}: export.shape: expected 'bucket'")
    frames = e.resolved_alignment_frames
    least = SAMPLES_PER_FRAME * frames
    samples = e.output_samples if e.output_samples is not None else least
    if samples < least:
        raise RecipeError(
            f"{recipe.display_path}: export.output_samples: must be at least "
            f"{SAMPLES_PER_FRAME} * alignment frames = {least} (so every content sample "
            f"fits), got {samples}"
        )
    return BucketShape(e.bucket, frames, samples)


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
            f"{SAMPLES_PER_FRAME} * alignment frames"
            if shape.output_samples == shape.max_content_samples
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


# ---------------------------------------------------------------- torch modules
def _size(x, dim: int) -> int:
    """A dimension as a Python int. Under tracing ``x.shape[d]`` is a traced tensor that
    becomes Shape/Gather nodes; every shape here is static, so it is a constant instead."""
    return int(x.shape[dim])


def _torch_modules() -> Any:
    """The nn.Module classes, built on first use (torch is imported lazily)."""
    global _MODULES
    if _MODULES is None:
        _MODULES = _define_modules()
    return _MODULES


_MODULES = None


def _define_modules():  # noqa: C901 - one closure that defines the wrapper's classes
    import kokoro.istftnet as istftnet
    import torch
    import torch.nn.functional as F
    from kokoro.istftnet import AdaIN1d, AdainResBlk1d, SineGen
    from kokoro.modules import AdaLayerNorm
    from torch import nn

    from publisher.exact_stft import exact_for

    class Lengths:
        """Valid lengths of the running forward, shared by the masked modules.

        ``frames_valid`` (int64 scalar) is set by ``BucketKokoro.forward`` before the
        frame-domain modules run. A tensor of length T_x = r * F + extra (kokoro's tensors
        are F, 2F, 20F, 120F + 1 and 600F long) has T_v * r + extra valid positions."""

        def __init__(self, frames: int, index: torch.Tensor) -> None:
            self.frames = frames
            self.index = index  # constant 0..N-1 (int64), sliced per length
            self.frames_valid: torch.Tensor | None = None
            self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

        def start(self, frames_valid: torch.Tensor) -> None:
            self.frames_valid = frames_valid
            self._cache = {}

        def valid(self, length: int) -> torch.Tensor:
            r = length // self.frames
            extra = length - r * self.frames
            return self.frames_valid * r + extra

        def mask(self, length: int, dtype: torch.dtype) -> torch.Tensor:
            """[1, 1, length] 1.0 on valid positions, 0.0 on padding."""
            if length not in self._cache:
                valid = self.valid(length)
                keep = (self.index[:length] < valid).to(torch.float32).reshape(1, 1, length)
                self._cache[length] = (keep, valid.to(torch.float32).clamp(min=1.0))
            return self._cache[length][0].to(dtype)

        def count(self, length: int, dtype: torch.dtype) -> torch.Tensor:
            self.mask(length, dtype)
            return self._cache[length][1].to(dtype)

    class MaskedInstanceNorm1d(nn.Module):
        """InstanceNorm1d (affine, no running stats) over the valid positions only."""

        def __init__(self, norm: nn.InstanceNorm1d, lengths: Lengths) -> None:
            super().__init__()
            if norm.track_running_stats or not norm.affine:
                raise ExportError("bucket export expects affine InstanceNorm1d without stats")
            self.weight, self.bias, self.eps = norm.weight, norm.bias, norm.eps
            self.lengths = lengths

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            length = _size(x, -1)
            keep = self.lengths.mask(length, x.dtype)
            count = self.lengths.count(length, x.dtype)
            mean = (x * keep).sum(dim=-1, keepdim=True) / count
            centered = (x - mean) * keep
            var = (centered * centered).sum(dim=-1, keepdim=True) / count
            y = centered * torch.rsqrt(var + self.eps)
            return y * self.weight.reshape(1, -1, 1) + self.bias.reshape(1, -1, 1)

    class MaskedAdaIN1d(nn.Module):
        """kokoro's AdaIN1d with a masked instance norm and a zeroed padding region.

        Zeroing the output is what makes the convolutions exact at the boundary: the
        activations that follow (LeakyReLU, Snake) map 0 to 0, so the next convolution
        reads zeros past the valid end, as its zero padding does in the unpadded model."""

        def __init__(self, adain: AdaIN1d, lengths: Lengths) -> None:
            super().__init__()
            self.fc = adain.fc  # kokoro's own style projection
            self.norm = MaskedInstanceNorm1d(adain.norm, lengths)
            self.lengths = lengths

        def forward(self, x: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
            h = self.fc(s)
            h = h.view(h.size(0), h.size(1), 1)
            gamma, beta = torch.chunk(h, chunks=2, dim=1)
            out = (1 + gamma) * self.norm(x) + beta
            return out * self.lengths.mask(_size(x, -1), x.dtype)

    class MaskedPool(nn.Module):
        """An upsampling AdainResBlk1d's ``pool`` (depthwise ConvTranspose1d, stride 2),
        output zeroed on padding: its bias makes position 2*T_v nonzero, which the
        following conv1 would read at the last valid position (the unpadded model has
        no such position there)."""

        def __init__(self, pool: nn.Module, lengths: Lengths) -> None:
            super().__init__()
            self.conv = pool
            self.lengths = lengths

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return y * self.lengths.mask(_size(y, -1), y.dtype)

    class MaskedBiLSTM(nn.Module):
        """A bidirectional single-layer LSTM that sees only the first ``length`` steps.

        Replaces pack_padded_sequence/pad_packed_sequence with static shapes: the forward
        direction runs over every step (steps past the end cannot reach earlier outputs);
        the backward direction runs on the input permuted by rev[t] = L-1-t (t < L, else t)
        with a Gather, and its output is permuted back; outputs at t >= L are zero, as
        pad_packed_sequence gives. Both directions share the original LSTM's parameters."""

        def __init__(self, lstm: nn.LSTM) -> None:
            super().__init__()
            if not (lstm.bidirectional and lstm.num_layers == 1 and lstm.batch_first):
                raise ExportError("bucket export expects 1-layer batch-first bidirectional LSTMs")
            self.fwd = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
            self.bwd = nn.LSTM(lstm.input_size, lstm.hidden_size, batch_first=True)
            for name in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"):
                setattr(self.fwd, name, getattr(lstm, name))
                setattr(self.bwd, name, getattr(lstm, f"{name}_reverse"))

        def forward(self, x: torch.Tensor, length: torch.Tensor, index: torch.Tensor):
            steps = _size(x, 1)
            t = index[:steps]
            valid = t < length
            rev = torch.where(valid, length - 1 - t, t)
            out_f, _ = self.fwd(x)
            out_b, _ = self.bwd(x.index_select(1, rev))
            out_b = out_b.index_select(1, rev)
            keep = valid.to(x.dtype).reshape(1, steps, 1)
            return torch.cat([out_f, out_b], dim=-1) * keep

    class StaticSineGen(SineGen):
        """kokoro's SineGen with ``_f02sine`` free of index assignment: the random initial
        phase is added to time step 0 by a concatenation (kokoro writes rand_ini[:, 0] = 0
        and rad_values[:, 0, :] += ..., which export as ScatterND). Set as the instance's
        class, so parity_mode's instance override still takes precedence."""

        def _f02sine(self, f0_values: torch.Tensor) -> torch.Tensor:
            if self.flag_for_pulse:
                raise ExportError("bucket export does not support SineGen(flag_for_pulse=True)")
            rad_values = (f0_values / self.sampling_rate) % 1
            rand_ini = istftnet.torch.rand(
                f0_values.shape[0], f0_values.shape[2], device=f0_values.device
            )
            rand_ini = torch.cat([torch.zeros_like(rand_ini[:, :1]), rand_ini[:, 1:]], dim=1)
            rad_values = torch.cat(
                [rad_values[:, :1, :] + rand_ini.unsqueeze(1), rad_values[:, 1:, :]], dim=1
            )
            rad_values = F.interpolate(
                rad_values.transpose(1, 2), scale_factor=1 / self.upsample_scale, mode="linear"
            ).transpose(1, 2)
            phase = torch.cumsum(rad_values, dim=1) * 2 * torch.pi
            phase = F.interpolate(
                phase.transpose(1, 2) * self.upsample_scale,
                scale_factor=self.upsample_scale,
                mode="linear",
            ).transpose(1, 2)
            return torch.sin(phase)

    class BucketGenerator(nn.Module):
        """kokoro's Generator (same sub-modules and names) with masks on the padding.

        Changed against Generator.forward: the STFT is ExactSTFT (torch.stft/istft in
        standard ops); its reflect padding at the end mirrors the source about the last
        *valid* sample; the source spectrum, the inputs of the transposed convolutions and
        conv_post, and the inverse STFT's magnitude frames are zeroed past the valid
        length, and the inverse normalises by the window envelope of the valid frames
        only. Everything else calls kokoro's modules unchanged."""

        def __init__(self, gen, lengths: Lengths) -> None:
            super().__init__()
            for name in (
                "m_source",
                "f0_upsamp",
                "noise_convs",
                "noise_res",
                "ups",
                "resblocks",
                "reflection_pad",
                "conv_post",
            ):
                setattr(self, name, getattr(gen, name))
            self.stft = gen.stft if hasattr(gen.stft, "analysis") else exact_for(gen.stft)
            self.num_kernels, self.num_upsamples = gen.num_kernels, gen.num_upsamples
            self.post_n_fft = gen.post_n_fft
            self.lengths = lengths
            self.m_source.l_sin_gen.__class__ = StaticSineGen

        def forward(self, x: torch.Tensor, s: torch.Tensor, f0: torch.Tensor) -> torch.Tensor:
            lengths = self.lengths
            with torch.no_grad():
                f0 = self.f0_upsamp(f0[:, None]).transpose(1, 2)
                har_source, _, _ = self.m_source(f0)
                har_source = har_source.transpose(1, 2).squeeze(1)
                n = _size(har_source, -1)
                last = lengths.valid(n) - 1
                t = lengths.index[:n]
                mirror = torch.where(t <= last, t, (2 * last - t).clamp(min=0))
                har_source = har_source.index_select(1, mirror)
                har_spec, har_phase = self.stft.transform(har_source)
                har = torch.cat([har_spec, har_phase], dim=1)
                har = har * lengths.mask(_size(har, -1), har.dtype)
            for i in range(self.num_upsamples):
                x = F.leaky_relu(x, negative_slope=0.1)
                x_source = self.noise_convs[i](har)
                x_source = self.noise_res[i](x_source, s)
                x = self.ups[i](x * lengths.mask(_size(x, -1), x.dtype))
                if i == self.num_upsamples - 1:
                    x = self.reflection_pad(x)
                x = x + x_source
                xs = None
                for j in range(self.num_kernels):
                    if xs is None:
                        xs = self.resblocks[i * self.num_kernels + j](x, s)
                    else:
                        xs += self.resblocks[i * self.num_kernels + j](x, s)
                x = xs / self.num_kernels
            x = F.leaky_relu(x)
            x = self.conv_post(x * lengths.mask(_size(x, -1), x.dtype))
            keep = lengths.mask(_size(x, -1), x.dtype)
            spec = torch.exp(x[:, : self.post_n_fft // 2 + 1, :]) * keep
            phase = torch.sin(x[:, self.post_n_fft // 2 + 1 :, :])
            return self.stft.inverse(spec, phase, keep)

    class BucketKokoro(nn.Module):
        """KModel.forward_with_tokens for a padded, fixed-length input (see module doc)."""

        def __init__(self, model, shape: BucketShape) -> None:
            super().__init__()
            m = _deepcopy_model(model)
            self.shape = shape
            self.bert, self.bert_encoder = m.bert, m.bert_encoder
            self.predictor, self.text_encoder, self.decoder = m.predictor, m.text_encoder, m.decoder
            size = max(shape.max_content_samples, shape.bucket, shape.frames)
            self.register_buffer("index", torch.arange(size, dtype=torch.long), persistent=False)
            self.lengths = Lengths(shape.frames, self.index)
            # pack_padded LSTMs -> masked, fixed-length equivalents
            self.text_encoder.lstm = MaskedBiLSTM(self.text_encoder.lstm)
            self.predictor.lstm = MaskedBiLSTM(self.predictor.lstm)
            self.predictor.shared = MaskedBiLSTM(self.predictor.shared)
            blocks = self.predictor.text_encoder.lstms
            for k, block in enumerate(blocks):
                if isinstance(block, nn.LSTM):
                    blocks[k] = MaskedBiLSTM(block)
            # instance norms over time -> masked; generator -> masked orchestration
            for owner in [*self.predictor.modules(), *self.decoder.modules()]:
                for name, child in list(owner.named_children()):
                    if isinstance(child, AdaIN1d):
                        setattr(owner, name, MaskedAdaIN1d(child, self.lengths))
                if isinstance(owner, AdainResBlk1d) and owner.upsample_type != "none":
                    owner.pool = MaskedPool(owner.pool, self.lengths)
            self.decoder.generator = BucketGenerator(self.decoder.generator, self.lengths)

        def _text_encoder(self, ids, length, keep):
            """TextEncoder.forward with masks instead of pack_padded_sequence."""
            te = self.text_encoder
            x = te.embedding(ids).transpose(1, 2) * keep
            for c in te.cnn:
                x = c(x) * keep
            x = te.lstm(x.transpose(1, 2), length, self.index)
            return x.transpose(1, 2) * keep

        def _duration_encoder(self, x, style, length, keep):
            """DurationEncoder.forward with masks instead of pack_padded_sequence."""
            steps = _size(x, -1)
            s = style.reshape(1, 1, -1).expand(1, steps, -1)  # [1, B, S]
            x = torch.cat([x.transpose(1, 2), s], dim=-1).transpose(1, 2) * keep  # [1, C+S, B]
            for block in self.predictor.text_encoder.lstms:
                if isinstance(block, AdaLayerNorm):
                    x = block(x.transpose(-1, -2), style).transpose(-1, -2)
                    x = torch.cat([x, s.transpose(1, 2)], dim=1) * keep
                else:
                    x = block(x.transpose(-1, -2), length, self.index).transpose(-1, -2)
            return x.transpose(-1, -2)  # [1, B, C+S]

        def _f0n(self, en, s, frames_valid):
            """ProsodyPredictor.F0Ntrain with the shared LSTM limited to the valid frames."""
            p = self.predictor
            x = p.shared(en.transpose(-1, -2), frames_valid, self.index)
            f0 = x.transpose(-1, -2)
            for block in p.F0:
                f0 = block(f0, s)
            f0 = p.F0_proj(f0)
            n = x.transpose(-1, -2)
            for block in p.N:
                n = block(n, s)
            n = p.N_proj(n)
            return f0.squeeze(1), n.squeeze(1)

        def forward(self, input_ids, style, speed, input_lengths):
            shape = self.shape
            tokens, frames = _size(input_ids, 1), shape.frames
            length = input_lengths.reshape(-1)[0].clamp(min=1, max=tokens)
            t = self.index[:tokens]
            valid = t < length  # [B]
            keep = valid.to(torch.float32).reshape(1, 1, tokens)
            # ALBERT: padded keys masked out (a ready 4-D mask: transformers uses it as is)
            attn = valid.reshape(1, 1, 1, tokens).expand(1, 1, tokens, tokens)
            bert_dur = self.bert(input_ids, attention_mask=attn)
            d_en = self.bert_encoder(bert_dur).transpose(-1, -2)
            s = style[:, 128:]
            d = self._duration_encoder(d_en, s, length, keep)
            x = self.predictor.lstm(d, length, self.index)
            duration = torch.sigmoid(self.predictor.duration_proj(x)).sum(dim=-1) / speed
            dur = torch.round(duration).clamp(min=1).long() * valid.long().reshape(1, -1)
            # alignment: frame f belongs to token i when cum[i-1] <= f < cum[i]
            cum = torch.cumsum(dur, dim=-1).reshape(tokens, 1)
            prev = cum - dur.reshape(tokens, 1)
            f = self.index[:frames].reshape(1, frames)
            aln = ((f >= prev) & (f < cum)).to(torch.float32).unsqueeze(0)  # [1, B, F]
            frames_valid = cum[-1, 0].clamp(max=frames)
            self.lengths.start(frames_valid)
            en = d.transpose(-1, -2) @ aln
            f0_pred, n_pred = self._f0n(en, s, frames_valid)
            # zero F0 on padding: the sine's phase then stops at the valid end, as unpadded
            f0_pred = f0_pred * self.lengths.mask(_size(f0_pred, -1), f0_pred.dtype)[0]
            asr = self._text_encoder(input_ids, length, keep) @ aln
            audio = self.decoder(asr, f0_pred, n_pred, style[:, :128]).reshape(-1)
            samples = _size(audio, -1)
            audio = audio * self.lengths.mask(samples, audio.dtype).reshape(samples)
            if shape.output_samples > samples:
                audio = F.pad(audio, (0, shape.output_samples - samples))
            return audio, dur.reshape(-1)

    return BucketKokoro


def _deepcopy_model(model):
    """copy.deepcopy of a KModel; weight_norm's cached ``weight`` (a non-leaf tensor,
    recomputed before every forward) is detached first, since deepcopy refuses it."""
    import torch

    for module in model.modules():
        weight = module.__dict__.get("weight")
        if isinstance(weight, torch.Tensor) and not weight.is_leaf:
            module.weight = weight.detach()
    return copy.deepcopy(model).eval()


def bucket_wrapper(model, shape: BucketShape):
    """A ``BucketKokoro`` over a deep copy of ``model`` (``model`` is left untouched)."""
    return _torch_modules()(model, shape).eval()


# ---------------------------------------------------------------- export
def bucket_trace_inputs(ckpt: Checkpoint, shape: BucketShape) -> tuple:
    """Example inputs: about half the bucket filled, padded with 0 to B."""
    import torch

    from publisher.export import trace_inputs

    n = max(3, shape.bucket // 2)
    ids, style, speed = trace_inputs(ckpt, n)
    padded = torch.zeros((1, shape.bucket), dtype=torch.long)
    padded[0, :n] = ids[0]
    return padded, style, speed, torch.tensor([n], dtype=torch.long)


def torch_export_bucket(
    model,
    ckpt: Checkpoint,
    shape: BucketShape,
    path: Path,
    opset: int,
    *,
    parity: bool,
    voiced: bool = False,
) -> None:
    import contextlib

    import onnx
    import torch

    from publisher.parity_mode import parity_mode

    wrapper = bucket_wrapper(model, shape)
    switch = parity_mode(wrapper, voiced=voiced) if parity else contextlib.nullcontext()
    with switch, warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        try:
            torch.onnx.export(
                wrapper,
                bucket_trace_inputs(ckpt, shape),
                str(path),
                input_names=list(INPUTS),
                output_names=list(OUTPUTS),
                opset_version=opset,
                do_constant_folding=True,
                dynamo=False,
            )
        except Exception as exc:  # exporter failures are many types; report one line
            raise ExportError(f"torch.onnx.export failed: {type(exc).__name__}: {exc}") from exc
    from publisher.passes.metadata import set_metadata

    fold_static(path)
    graph = onnx.load(str(path))
    _static_outputs(graph, {"waveform": [shape.output_samples], "duration": [shape.bucket]})
    config = json.dumps(ckpt.config, ensure_ascii=False, sort_keys=True)
    set_metadata(graph, {**bucket_metadata(shape), "kokoro_config": config})
    onnx.save(graph, str(path))


def fold_static(path: Path) -> None:
    """Fold the exported graph to static shapes, in place (onnxruntime's basic optimizer).

    The TorchScript exporter leaves Shape -> Gather -> Concat chains inside ALBERT (and a
    few Expand/Reshape targets) although every input shape is fixed; folding them makes
    every intermediate shape static. MatMulAddFusion stays off: on a static graph it
    rewrites MatMul+Add into Reshape/Gemm/Reshape with initializers named gemm_*, and
    onnxruntime 1.31 then fails to load the result ("Attempt to replace the existing
    tensor") because the same fusion runs again at session start. For the same reason
    the bucket recipes do not run the ``simplify`` pass (basic level, fusion on)."""
    import onnxruntime as ort

    from publisher.passes.simplify import strip_unused_opsets

    folded = path.with_name(f"{path.stem}.folded.onnx")
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    opts.optimized_model_filepath = str(folded)
    opts.log_severity_level = 3
    try:
        ort.InferenceSession(
            str(path), opts, providers=["CPUExecutionProvider"], disabled_optimizers=FOLD_OFF
        )
        import onnx

        onnx.save(strip_unused_opsets(onnx.load(str(folded))), str(path))
    finally:
        folded.unlink(missing_ok=True)


def _static_outputs(graph, dims: dict[str, list[int]]) -> None:
    """Write the outputs' static shapes (the exporter leaves the waveform's symbolic)."""
    for out in graph.graph.output:
        if out.name in dims:
            shape = out.type.tensor_type.shape
            del shape.dim[:]
            for d in dims[out.name]:
                shape.dim.add().dim_value = d


def run_bucket_torch(wrapper, ids: list[int], style, speed: float = 1.0):
    """Run a ``BucketKokoro`` in torch: (waveform [S], durations [B]) as numpy arrays."""
    import numpy as np
    import torch

    shape = wrapper.shape
    padded = np.zeros((1, shape.bucket), dtype=np.int64)
    padded[0, 1 : len(ids) + 1] = ids
    with torch.no_grad():
        wave, dur = wrapper(
            torch.from_numpy(padded),
            torch.from_numpy(np.asarray(style, dtype=np.float32).reshape(1, -1)),
            torch.tensor([speed], dtype=torch.float32),
            torch.tensor([len(ids) + 2], dtype=torch.long),
        )
    return wave.numpy(), dur.numpy()
