"""Full-size checks on synthetic:full (about 82M parameters). Minutes each: run with
``python3 -m pytest --run-fullsize tests/test_fullsize.py``."""

from __future__ import annotations

import pytest

from publisher.build import build
from publisher.recipe.loader import load_recipe

pytestmark = pytest.mark.fullsize


def test_full_fp32_build_matches_torch_on_40_and_400_tokens(tmp_path):
    result = build(load_recipe("fp32"), checkpoint="synthetic:full", out_dir=tmp_path)
    size_mib = result.model_path.stat().st_size / 2**20
    assert 300 < size_mib < 320, size_mib
    parity = {p["tokens"]: p for p in result.manifest.verification.parity}
    for n in (40, 400):
        assert parity[n]["durations_equal"]
        assert parity[n]["max_abs_error"] <= 1e-4
