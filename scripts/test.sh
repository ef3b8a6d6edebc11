#!/usr/bin/env bash
# Every test of AsyMo EP, from a clean checkout: machine setup, lints, Rust unit and integration tests, the Python
# suite against the real onnxruntime==1.31.1 (including the C/CMake consumer test), and the aarch64 suite under qemu.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
step() { printf '\n=== %s ===\n' "$*"; }

step setup
scripts/setup.sh

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "rust tests"
cargo test --workspace --quiet

step "release build"
cargo build --release --quiet

step "python tests (onnxruntime $(.venv/bin/python -c 'import onnxruntime; print(onnxruntime.__version__)'))"
ASYMO_REQUIRE_EP=1 .venv/bin/python -m pytest python-tests -q

step "aarch64 kernels under qemu (NEON)"
scripts/test-aarch64.sh

step "aarch64 EP under qemu with the aarch64 onnxruntime 1.31.1"
scripts/test-aarch64-ep.sh
step "all tests passed"
