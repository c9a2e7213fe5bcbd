"""Kokoro ONNX publisher."""

from publisher.runtime.threads import export_to_pools

export_to_pools()  # before anything imports torch (see runtime/threads.py)
