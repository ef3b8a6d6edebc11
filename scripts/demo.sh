#!/usr/bin/env bash
# The main job from a fresh machine: set up, build, and run a default model (MobileNetV1 224×224) on ONNX Runtime's
# CPU EP and on AsyMo EP side by side. Extra arguments go to tools/asymo_demo.py (e.g. --model resnet50).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cd "$root"
scripts/setup.sh
cargo build --release --quiet
exec .venv/bin/python tools/asymo_demo.py "$@"
