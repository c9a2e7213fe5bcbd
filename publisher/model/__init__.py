"""The torch side's inputs: checkpoints (hub, path, onnx, recovered, synthetic) and kokoro's
KModel built and loaded strictly.
"""
