"""Kokoro ONNX publisher."""
