"""Self-tests of the harness: the comparison and placement checks must catch what they claim to catch."""

from __future__ import annotations

import numpy as np
import pytest

import harness

E = harness.EP_NAME
C = harness.CPU_EP


def test_assert_close_accepts_small_relative_error():
    e = np.array([[1000.0, -2.0], [0.5, 3.0]], np.float32)
    a = e.copy()
    a[0, 1] += 0.09  # 0.09 ≤ 1e-4 × 1000
    assert harness.assert_close([e], [a])[0] == pytest.approx(0.09, rel=1e-3)


@pytest.mark.parametrize("mutate,pattern", [
    (lambda a: a.__setitem__((1, 1), a[1, 1] + 0.2), "max abs error"),
    (lambda a: a.__setitem__((0, 0), np.nan), "NaN pattern"),
])
def test_assert_close_rejects(mutate, pattern):
    e = np.array([[1000.0, -2.0], [0.5, 3.0]], np.float32)
    a = e.copy()
    mutate(a)
    with pytest.raises(AssertionError, match=pattern):
        harness.assert_close([e], [a])


def test_assert_close_checks_shape_dtype_and_floor():
    e = np.zeros((2, 3), np.float32)
    with pytest.raises(AssertionError, match="shape"):
        harness.assert_close([e], [np.zeros((3, 2), np.float32)])
    with pytest.raises(AssertionError, match="dtype"):
        harness.assert_close([e], [np.zeros((2, 3), np.float64)])
    harness.assert_close([e], [e + 5e-7])                      # all-zero output: the absolute floor applies
    with pytest.raises(AssertionError):
        harness.assert_close([e], [e + 1e-5])
    harness.assert_close([np.float32(2.0) * np.ones((), np.float32)], [np.ones((), np.float32) * 2])  # 0-d
    with pytest.raises(AssertionError, match="integer"):
        harness.assert_close([np.arange(4)], [np.arange(4) + 1])


@pytest.fixture
def strict(monkeypatch):
    monkeypatch.setattr(harness._STATE, "cpu_only", False)


def test_check_placement_accepts_correct_split(strict):
    harness.check_placement({E: [("c", "Conv"), ("g", "Gemm")], C: [("r", "Relu")]}, min_on_ep=2)


@pytest.mark.parametrize("assign,pattern", [
    ({E: [("c", "Conv")], C: [("g", "Gemm")]}, "left on the CPU EP"),
    ({E: [("c", "Conv"), ("r", "Softmax")]}, "unsupported op types"),
    ({E: [("c", "Conv")], C: [("m", "MemcpyToHost")]}, "Memcpy"),
    ({"OtherEP": [("c", "Conv")]}, "unexpected EPs"),
    ({C: [("c", "Relu")]}, "expected ≥ 1"),
])
def test_check_placement_rejects(strict, assign, pattern):
    with pytest.raises(AssertionError, match=pattern):
        harness.check_placement(assign, min_on_ep=1)


def test_check_placement_fallback_modes(strict):
    harness.check_placement({C: [("c", "Conv")]}, expect_on_ep=None)
    harness.check_placement({E: [("c", "Conv")]}, expect_on_ep=None)
    with pytest.raises(AssertionError, match="unexpectedly claimed"):
        harness.check_placement({E: [("c", "Conv")]}, expect_on_ep=False)
