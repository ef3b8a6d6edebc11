#!/usr/bin/env bash
# The whole EP on aarch64 under qemu: cross-build libasymo_ep.so, fetch the aarch64 onnxruntime==1.31.1 wheel from
# PyPI, cross-compile the C consumer test (tests/c_api/main.c) against it, and run a small conv + gemm model with the
# NEON kernels and with the portable kernels; both must match ORT's CPU EP (computed on the host).
# ORT parses /proc/cpuinfo and crashes on the host's x86 one under qemu-user, so the run happens in a private mount
# namespace with an arm64-shaped cpuinfo (see ../shared/ARM_TESTING.md). Needs root (unshare -m).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
work="$root/.cache/aarch64"
mkdir -p "$work"

export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
cargo build --release --quiet --target aarch64-unknown-linux-gnu --lib
lib="$root/target/aarch64-unknown-linux-gnu/release/libasymo_ep.so"

wheel=$(ls "$work"/onnxruntime-1.31.1-*aarch64*.whl 2>/dev/null | head -n 1 || true)
if [ -z "$wheel" ]; then
  .venv/bin/pip download -q --no-deps --only-binary=:all: --platform manylinux_2_28_aarch64 --python-version 3.11 \
    onnxruntime==1.31.1 -d "$work"
  wheel=$(ls "$work"/onnxruntime-1.31.1-*aarch64*.whl | head -n 1)
fi
ortdir="$work/ort"
if [ ! -f "$ortdir/libonnxruntime.so.1" ]; then
  mkdir -p "$ortdir"
  .venv/bin/python - "$wheel" "$ortdir" <<'PY'
import sys, zipfile, pathlib
wheel, out = sys.argv[1], pathlib.Path(sys.argv[2])
with zipfile.ZipFile(wheel) as z:
    name = next(n for n in z.namelist() if n.startswith("onnxruntime/capi/libonnxruntime.so.1."))
    (out / "libonnxruntime.so.1").write_bytes(z.read(name))
PY
  ln -sf libonnxruntime.so.1 "$ortdir/libonnxruntime.so"
fi

headers="$(scripts/fetch-ort-headers.sh)"
exe="$work/asymo_c_api_test"
aarch64-linux-gnu-gcc -O2 -std=c11 -I"$headers" -Iinclude -DASYMO_EP_LIBRARY_PATH="\"$lib\"" \
  tests/c_api/main.c -L"$ortdir" -lonnxruntime -lm -Wl,-rpath,"$ortdir" -o "$exe"

fixture="$work/fixture"
.venv/bin/python python-tests/write_fixture.py "$fixture"

cpuinfo="$work/cpuinfo"
: > "$cpuinfo"
for i in 0 1; do
  cat >> "$cpuinfo" <<CPU
processor	: $i
BogoMIPS	: 50.00
Features	: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp cpuid asimdrdm lrcpc dcpop asimddp
CPU implementer	: 0x41
CPU architecture: 8
CPU variant	: 0x3
CPU part	: 0xd0c
CPU revision	: 1

CPU
done

for kernel in neon generic; do
  echo "--- aarch64 EP, kernels: $kernel"
  ASYMO_KERNEL=$kernel ASYMO_EXPECT_ISA=$kernel unshare -m sh -c "mount --bind '$cpuinfo' /proc/cpuinfo && \
    qemu-aarch64 -L /usr/aarch64-linux-gnu '$exe' '$fixture/model.onnx' '$fixture/input.f32' 1,3,8,8 \
    '$fixture/expected.f32'" | tee "$work/run-$kernel.log"
  grep -q '^OK$' "$work/run-$kernel.log"
  grep -q "asymo.kernels=$kernel" "$work/run-$kernel.log"
done
echo "aarch64 EP: OK"
