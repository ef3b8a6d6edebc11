"""pytest configuration for the AsyMo EP suite (see README section "Tests" and harness.py).

Options:
  --cpu-only   run without the library: our-EP sessions are stand-in CPU EP sessions (graph optimizations off);
               also enabled by ASYMO_TEST_CPU_ONLY=1.
Markers:
  slow         long-running checks (e.g. 500 session cycles for RSS); skip with -m "not slow".
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402


def pytest_addoption(parser):
    parser.addoption("--cpu-only", action="store_true", default=False,
                     help="compare the CPU EP against itself (graph optimizations off); no EP library needed")


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: long-running (skip with -m 'not slow')")
    flag = config.getoption("--cpu-only") or os.environ.get("ASYMO_TEST_CPU_ONLY", "") not in ("", "0")
    harness.set_cpu_only(flag)


def pytest_report_header(config):
    import onnxruntime

    mode = "CPU-only (CPU EP vs CPU EP, optimizations off)" if harness.cpu_only() else "AsyMo EP vs CPU EP"
    missing = "" if harness.cpu_only() or harness.lib_path().is_file() else " (MISSING: EP tests will skip)"
    return [f"asymo-ep: mode {mode}; onnxruntime {onnxruntime.__version__}; library {harness.lib_path()}{missing}"]


@pytest.fixture(scope="session")
def asymo():
    """Our EP, ready for ``harness.make_session(..., ep="asymo")``: registers the library once per process.
    Returns our OrtEpDevices (None in CPU-only mode); skips when the library is missing."""
    if harness.cpu_only():
        return None
    reason = harness.lib_missing_reason()
    if reason:
        # CI (scripts/test.sh) sets ASYMO_REQUIRE_EP=1: a missing library must fail there, never skip silently.
        if os.environ.get("ASYMO_REQUIRE_EP", "") not in ("", "0"):
            pytest.fail(reason)
        pytest.skip(reason)
    return harness.register()


@pytest.fixture(scope="session")
def real_ep(asymo):
    """Like ``asymo`` but skips in CPU-only mode: for tests about the library itself (devices, options)."""
    if harness.cpu_only():
        pytest.skip("needs the real AsyMo EP library (not available in --cpu-only mode)")
    return asymo


@pytest.fixture(scope="session")
def ep_library() -> str:
    """Path of the library for tests that hand it to another program (the C/CMake consumer test); fails if it is
    missing, since those tests have nothing to fall back to."""
    if harness.cpu_only():
        pytest.skip("needs the real AsyMo EP library (not available in --cpu-only mode)")
    path = harness.lib_path()
    if not path.is_file():
        pytest.fail(f"{path} does not exist: build it with `cargo build --release`")
    return str(path)
