#!/usr/bin/env bash
# The runtime matrix (`publisher conformance`) on tiny synthetic builds: a dynamic int8 file
# with a sherpa-onnx bundle (onnxruntime floors and current, kokoro-onnx, sherpa-onnx,
# kokoro-js in node, onnxruntime-web in headless Chromium) and a fixed-bucket file
# (onnxruntime, fastkokoro). Each runtime runs in its own environment, created once from
# PyPI or npm and cached in $PUBLISHER_ENVS (default ~/.cache/kokoro-publisher-envs).
# .ci/run runs it after pytest.
set -euo pipefail
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PUBLISHER_CACHE="$work/cache"
start=$SECONDS
# one through build's own --conformance, the other through the conformance command
publisher build --recipe quantized --checkpoint synthetic:tiny --out "$work/dist" \
  --no-speech-gates --conformance
publisher build --recipe b48 --checkpoint synthetic:tiny --out "$work/dist" --no-speech-gates
publisher conformance --recipe b48 --out "$work/dist"
echo "conformance_tiny: $((SECONDS - start)) s (builds, environments not cached yet, matrix)"
