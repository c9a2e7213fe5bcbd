"""Verification: parity, fidelity and speech gates of a built variant against upstream torch,
and the isolated model workers they run in.
"""
