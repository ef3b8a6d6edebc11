#!/usr/bin/env bash
# Print a directory holding libonnxruntime.so / libonnxruntime.so.1 symlinks to the venv wheel's runtime, so C/C++
# programs can link against the PyPI onnxruntime==1.31.1 build (its SONAME is libonnxruntime.so.1).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${ASYMO_PYTHON:-$root/.venv/bin/python}"
capi="$("$py" -c 'import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), "capi"))')"
lib="$(ls "$capi"/libonnxruntime.so.1.* | head -n 1)"
dir="$root/.cache/ort-lib"
mkdir -p "$dir"
ln -sf "$lib" "$dir/libonnxruntime.so"
ln -sf "$lib" "$dir/libonnxruntime.so.1"
echo "$dir"
