#!/usr/bin/env python3
"""The main job: run a default model (MobileNetV1, 224×224, seeded weights) on ONNX Runtime's CPU EP and on AsyMo
EP side by side — which nodes ran where, the largest output difference, and interleaved median latencies.

    python tools/asymo_demo.py [--model NAME] [--reduced] [-r RUNS]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "python-tests"))
sys.path.insert(0, str(REPO / "tools"))

import asymo_bench  # noqa: E402
import models  # noqa: E402


def main(argv) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="mobilenet_v1", help=f"one of: {', '.join(models.MODELS)}")
    ap.add_argument("--reduced", action="store_true", help="the reduced test input size instead of the full one")
    ap.add_argument("-r", dest="runs", default="30", help="measured runs per configuration (default 30)")
    ap.add_argument("--lib", default=str(asymo_bench.DEFAULT_LIB), help="path of libasymo_ep.so")
    a = ap.parse_args(argv)

    path = asymo_bench.generate_model(a.model, full=not a.reduced)
    model = onnx.load(path)
    feeds = models.make_inputs(model, batch=1, seed=0)

    ort.register_execution_provider_library("asymo", a.lib)
    devices = [d for d in ort.get_ep_devices() if d.ep_name == asymo_bench.ASYMO_EP]
    so = ort.SessionOptions()
    so.log_severity_level = 3
    so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    so.add_provider_for_devices(devices, {})
    ours = ort.InferenceSession(path, so, enable_fallback=0)
    cpu = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    got = ours.run(None, feeds)
    want = cpu.run(None, feeds)
    diff = max(float(np.max(np.abs(g - w))) for g, w in zip(got, want))
    scale = max(float(np.max(np.abs(w))) for w in want)

    print(f"\n{a.model} ({Path(path).name}), inputs {', '.join(f'{k}{list(v.shape)}' for k, v in feeds.items())}")
    print("\nwhere the nodes ran (fused chains on our EP count each node):")
    per_ep: dict = {}
    for sg in ours.get_provider_graph_assignment_info():
        per_ep.setdefault(sg.ep_name, Counter()).update(n.op_type for n in sg.get_nodes())
    for ep, ops in per_ep.items():
        print(f"  {ep:<26} " + ", ".join(f"{op}×{n}" for op, n in sorted(ops.items())))
    verdict = "OK" if diff <= 1e-4 * max(scale, 1e-6) else "MISMATCH"
    print(f"\nmax |AsyMo − CPU EP| = {diff:.3g} (max |output| {scale:.3g}): {verdict}\n")
    del ours, cpu
    rc = asymo_bench.main([path, "-r", a.runs, "--cpu-ep-threads", "2,1", "--plugin_ep_libs", f"asymo|{a.lib}",
                           "--no-progress"])
    return rc if verdict == "OK" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
