"""The torch modules of the bucket graph: ``BucketKokoro`` and the masked pieces it swaps
into a deep copy of kokoro's KModel (see the package docstring). Imported only by the
bucket export and its tests; importing it imports torch and kokoro."""

from __future__ import annotations

import copy

import kokoro.istftnet as istftnet
import torch
import torch.nn.functional as F
from kokoro.istftnet import AdaIN1d, AdainResBlk1d, SineGen
from kokoro.modules import AdaLayerNorm
from torch import nn

from publisher.export.bucket.shape import BucketShape
from publisher.export.stft import exact_for
from publisher.runtime.errors import ExportError


def _size(x, dim: int) -> int:
    """A dimension as a Python int. Under tracing ``x.shape[d]`` is a traced tensor that
    becomes Shape/Gather nodes; every shape here is static, so it is a constant instead."""
    return int(x.shape[dim])


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
    return BucketKokoro(model, shape).eval()


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
