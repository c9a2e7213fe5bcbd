"""PyTorch -> fp32 ONNX: the export cache, the one torch.onnx.export wrapper, dynamic and
token-bucket graphs, the exact STFT and the parity switch.
"""
