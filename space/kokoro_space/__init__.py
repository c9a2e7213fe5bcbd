"""The Kokoro ONNX variants Space: compare variants side by side and vote blind.

Synthesis, text -> phonemes -> token ids and the audio metrics are the publisher's own
(``publisher.runtime``: ``synth``, ``text``, ``metrics``); this package only adds
where the files come from (``source``), sessions and comparisons (``engine``), the vote
store (``votes``) and the Gradio UI (``ui``).
"""
