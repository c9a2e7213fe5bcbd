"""kokoro's KModel built from a config without weights, and loaded strictly.

kokoro's own KModel silently falls back to ``strict=False``, so we never let it load
weights: ``load_state_strict`` requires every learned parameter. Buffers (the STFT kernels
and window) are computed from the config, not learned. The tiny synthetic config narrows
the decoder (``apply_tiny_decoder``) so tests build in seconds.
"""

from __future__ import annotations

import copy
import tempfile
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from publisher.runtime.errors import CheckpointError
from publisher.runtime.synth import Synthesis, padded_ids
from publisher.runtime.threads import own_threads

if TYPE_CHECKING:
    import numpy as np
    from kokoro.model import KModel


TOP_LEVEL_MODULES = ("bert", "bert_encoder", "predictor", "text_encoder", "decoder")


# kokoro's CustomSTFT (KModel(disable_complex=True)) keeps its DFT bases as decoder buffers
# under this prefix; they are computed, never learned, and the upstream model we build has
# none, so a file saved from such a model carries them and still loads.
CUSTOM_STFT_BUFFERS = "generator.stft."


def new_kmodel(config: dict[str, Any], *, disable_complex: bool = False) -> KModel:
    """Construct kokoro's KModel from a config dict without loading or downloading weights.

    KModel.__init__ always loads a weights file (downloading one when none is given), so we
    hand it an empty state dict; the real weights are loaded by ``load_state_strict``.
    The default, ``disable_complex=False``, is upstream Kokoro's own ``torch.stft``/
    ``torch.istft`` path; exports swap in publisher/export/stft.py, never CustomSTFT.
    """
    import torch
    from kokoro.model import KModel

    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        # kokoro's modules warn about weight_norm's deprecation and LSTM dropout at
        # construction; neither concerns inference.
        warnings.simplefilter("ignore", (FutureWarning, UserWarning))
        empty = Path(tmp) / "empty.pth"
        torch.save({}, empty)
        model = KModel(
            repo_id="hexgrad/Kokoro-82M",
            config=config,
            model=str(empty),
            disable_complex=disable_complex,
        )
        apply_tiny_decoder(model, config)
    return model


def computed_buffers(model: Any) -> set[str]:
    """State-dict keys that the model computes from its config (buffers, not weights)."""
    params = {name for name, _ in model.named_parameters()}
    return {name for name in model.state_dict() if name not in params}


def load_state_strict(model: KModel, state: dict[str, Any], source: str) -> None:
    """Load every top-level module's learned weights; any gap is an error.

    Computed buffers (``computed_buffers``) keep the values the model built from its
    config, whether or not the file carries them."""
    missing_modules = [k for k in TOP_LEVEL_MODULES if k not in state]
    unknown = sorted(set(state) - set(TOP_LEVEL_MODULES))
    if missing_modules or unknown:
        gaps = f"missing: {', '.join(missing_modules) or 'none'}"
        extra = f"unknown: {', '.join(unknown) or 'none'}"
        raise CheckpointError(f"{source}: weights do not match Kokoro's modules ({gaps}; {extra})")
    for key in TOP_LEVEL_MODULES:
        module = getattr(model, key)
        own = module.state_dict()
        computed = computed_buffers(module)
        sub = {k.removeprefix("module."): v for k, v in state[key].items()}
        sub = {k: v for k, v in sub.items() if k not in computed}
        if key == "decoder":
            sub = {k: v for k, v in sub.items() if not k.startswith(CUSTOM_STFT_BUFFERS)}
        learned = set(own) - computed
        missing = sorted(learned - set(sub))
        extra = sorted(set(sub) - learned)
        if missing or extra:
            raise CheckpointError(
                f"{source}: weights for '{key}' are incomplete: {len(missing)} missing "
                f"({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}), "
                f"{len(extra)} unexpected ({', '.join(extra[:3])}{'...' if len(extra) > 3 else ''})"
            )
        try:
            module.load_state_dict(sub | {k: own[k] for k in computed}, strict=True)
        except RuntimeError as exc:  # shape mismatch: first line names the tensor
            first = str(exc).strip().splitlines()
            raise CheckpointError(
                f"{source}: weights for '{key}' do not fit: {first[-1].strip()}"
            ) from None


TINY_DECODER_WIDTH = 64
TINY_GENERATOR_WIDTH = 16


def tiny_config(config: dict[str, Any]) -> dict[str, Any]:
    """The real config with every width shrunk; vocab, style size and hop sizes kept."""
    cfg = copy.deepcopy(config)
    cfg.update(hidden_dim=64, n_layer=1, dim_in=64, max_conv_dim=64)
    cfg["plbert"].update(
        hidden_size=32, num_attention_heads=2, intermediate_size=64, num_hidden_layers=1
    )
    # the generator runs at audio rate: 16 channels (8 after its first upsampling) make
    # a tiny graph's run about twice as fast as 64 did, which most tiny builds spend on
    cfg["istftnet"]["upsample_initial_channel"] = TINY_GENERATOR_WIDTH
    cfg["publisher_synthetic"] = {"size": "tiny", "decoder_width": TINY_DECODER_WIDTH}
    return cfg


def apply_tiny_decoder(model: KModel, config: dict[str, Any]) -> None:
    """Replace the Decoder's hard-coded 1024-wide blocks when the config asks for it."""
    width = (config.get("publisher_synthetic") or {}).get("decoder_width")
    if not width:
        return
    from kokoro.istftnet import AdainResBlk1d
    from torch import nn
    from torch.nn.utils import weight_norm

    dec, style, hidden = model.decoder, config["style_dim"], config["hidden_dim"]
    last = config["istftnet"]["upsample_initial_channel"]
    dec.encode = AdainResBlk1d(hidden + 2, width, style)
    dec.decode = nn.ModuleList(
        [AdainResBlk1d(width + 2 + 64, width, style) for _ in range(3)]
        + [AdainResBlk1d(width + 2 + 64, last, style, upsample=True)]
    )
    dec.asr_res = nn.Sequential(weight_norm(nn.Conv1d(hidden, 64, kernel_size=1)))


_TORCH_DEFAULT_THREADS: list[int] = []  # torch's own pool size, read before we change it


def _size_torch_pool(torch: Any) -> None:
    """torch's pool for the next run: ``own_threads()`` (fewer while a process works
    beside this one, verify/beside.py), else the size it had."""
    if not _TORCH_DEFAULT_THREADS:
        _TORCH_DEFAULT_THREADS.append(torch.get_num_threads())
    wanted = own_threads() or _TORCH_DEFAULT_THREADS[0]
    if torch.get_num_threads() != wanted:
        torch.set_num_threads(wanted)


def run_torch(model: Any, ids: list[int], style: np.ndarray, speed: float = 1.0) -> Synthesis:
    """Run upstream Kokoro's KModel on phoneme ids (pads added) with one style row."""
    import numpy as np
    import torch

    _size_torch_pool(torch)
    with torch.no_grad():
        wave, dur = model.forward_with_tokens(
            torch.from_numpy(padded_ids(ids)), torch.from_numpy(style.reshape(1, -1)), speed
        )
    return Synthesis(wave.numpy().reshape(-1).astype(np.float32), dur.numpy().reshape(-1))
