"""Torch-free runtime: constants, errors, text -> tokens, synthesis, metrics, corpus, speech
scores. The Space bundles this package whole.
"""
