"""Single-node MatMul / Gemm / Conv cases compared with the CPU EP, and placed on our EP (see single_node_cases)."""

from __future__ import annotations

import pytest

import harness
from single_node_cases import CASES, FALLBACK_GROUPS, groups


def test_matrix_is_large_enough():
    ids = [c.full_id for c in CASES]
    assert len(ids) == len(set(ids)), "duplicate case ids"
    assert len(CASES) >= 300, f"only {len(CASES)} single-node cases"
    assert set(FALLBACK_GROUPS) <= set(groups())


@pytest.mark.parametrize("case", [pytest.param(c, id=c.full_id) for c in CASES])
def test_single_node(asymo, case):
    model, feeds = case.build()
    result = harness.compare(model, feeds)
    harness.check_placement(result.assignment, expect_on_ep=case.expect_on_ep,
                            min_on_ep=1 if case.expect_on_ep else 0)
