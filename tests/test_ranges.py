"""Calibration range helpers (passes/ranges.py) against numpy as the oracle."""

from __future__ import annotations

import numpy as np
import pytest

from publisher.passes.ranges import tail_percentile


@pytest.mark.parametrize("shape", [(1, 128, 20000), (1, 7, 3000), (5,), (1, 64, 333)])
@pytest.mark.parametrize("q", [0.001, 0.01, 0.5, 99.5, 99.99, 99.999])
def test_tail_percentile_equals_numpys(shape, q):
    values = np.random.default_rng(0).standard_t(3, size=shape).astype(np.float32)
    assert tail_percentile(values, q) == pytest.approx(np.percentile(values, q), rel=1e-6)


def test_tail_percentile_with_ties_equals_numpys():
    values = np.zeros((1, 16, 4096), np.float32)
    values[0, 3, :50] = 7.0  # a few equal peaks and a floor of zeros
    for q in (0.01, 99.99, 99.9):
        assert tail_percentile(values, q) == np.percentile(values, q)


def test_tail_percentile_when_the_sample_misses_the_tail_equals_numpys():
    # the peaks sit exactly on the sampled positions, so the sample puts its threshold
    # above almost all of the tail: the exact fallback must answer
    values = np.zeros(64 * 2000, np.float32)
    values[::64][:300] = np.linspace(10, 20, 300)
    values[1::64][:300] = 5.0
    assert tail_percentile(values, 99.5) == pytest.approx(np.percentile(values, 99.5), rel=1e-6)
