#!/usr/bin/env bash
# Prepare a fresh Debian machine for building and testing AsyMo EP. Idempotent; safe to re-run.
#  - apt: cmake (C/C++ consumer test), the aarch64 cross toolchain and qemu-user (NEON tests under emulation)
#  - rustup: the aarch64-unknown-linux-gnu target
#  - .venv: the Python packages in python-tests/requirements.txt (onnxruntime==1.31.1, onnx, numpy, pytest, ...)
#  - ORT's C headers from a package registry into .cache/ (never committed)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"

need_apt=()
command -v cmake >/dev/null || need_apt+=(cmake)
command -v aarch64-linux-gnu-gcc >/dev/null || need_apt+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross)
[ -e /usr/aarch64-linux-gnu/lib/libstdc++.so.6 ] || need_apt+=(libstdc++6-arm64-cross)
command -v qemu-aarch64 >/dev/null || need_apt+=(qemu-user)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "setup: installing ${need_apt[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

if ! rustup target list --installed 2>/dev/null | grep -q aarch64-unknown-linux-gnu; then
  echo "setup: adding rust target aarch64-unknown-linux-gnu"
  rustup target add aarch64-unknown-linux-gnu >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import sys; sys.exit(0 if open("python-tests/requirements.txt").read() == open(".venv/.asymo-reqs").read() else 1)' 2>/dev/null; then
  echo "setup: installing python packages"
  .venv/bin/pip install -q --disable-pip-version-check -r python-tests/requirements.txt
  cp python-tests/requirements.txt .venv/.asymo-reqs
fi

scripts/fetch-ort-headers.sh >/dev/null
scripts/ort-lib-dir.sh >/dev/null
echo "setup: ready"
