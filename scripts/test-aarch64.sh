#!/usr/bin/env bash
# Build the kernel tests for aarch64 and run them under qemu-aarch64, proving the NEON tier ran
# (ASYMO_EXPECT_ISA=neon makes `expected_isa_is_selected` fail if any other tier was selected).
#
# Installs what it needs on a clean Debian machine (as root): the cross linker and C runtime, qemu-user, and the
# aarch64 Rust standard library. Extra arguments go to the test binary (e.g. a test-name filter).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
[ -d /usr/aarch64-linux-gnu/lib ] || need_apt+=(libc6-dev-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${need_apt[@]}"
fi
rustup target list --installed | grep -qx aarch64-unknown-linux-gnu || rustup target add aarch64-unknown-linux-gnu

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L /usr/aarch64-linux-gnu"
export ASYMO_EXPECT_ISA=neon
cargo test --target aarch64-unknown-linux-gnu --lib kernels -- "$@"
