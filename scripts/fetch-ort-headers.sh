#!/usr/bin/env bash
# Fetch ONNX Runtime's C/C++ headers from a package registry into .cache/ort-headers/include (never committed).
# Source: the npm package com.github.asus4.onnxruntime@0.4.9, which carries ORT's headers for C API version 29;
# the tables only grow, so they work against the 1.31 runtime (see ../shared/ORT_EP_NOTES.md §9).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dest="$root/.cache/ort-headers/include"
if [ -f "$dest/onnxruntime_c_api.h" ] && [ -f "$dest/onnxruntime_ep_c_api.h" ]; then
  echo "$dest"
  exit 0
fi
work="$root/.cache/npm-pack"
mkdir -p "$work" "$dest"
pkg="com.github.asus4.onnxruntime@0.4.9"
tgz="$work/com.github.asus4.onnxruntime-0.4.9.tgz"
if [ ! -f "$tgz" ]; then
  (cd "$work" && npm pack --silent "$pkg" >/dev/null)
fi
inner="package/Plugins/iOS~/onnxruntime.xcframework/ios-arm64_x86_64-simulator/onnxruntime.framework/Headers"
tar -xzf "$tgz" -C "$work" "$inner"
cp "$work/$inner"/*.h "$dest/"
rm -rf "$work/package"
echo "$dest"
