#!/usr/bin/env python3
"""Single-node ONNX models of the layers issue 4 measures, and a runner comparing our EP with the CPU EP per layer.

    tools/layer_models.py generate [DIR]                     # write the models (default .cache/layers)
    tools/layer_models.py bench [DIR] [-k FILTER] [-r RUNS] [--block N]  # asymo-bench each: 1 and 2 cores
    tools/layer_models.py ab [DIR] [-k FILTER] [-n ROUNDS]  # one process, both sessions, interleaved, one core
    tools/layer_models.py nodes MODEL [-n ROUNDS] [--top N] [--all] [--two-cores] [--flush]  # per node
    tools/layer_models.py list

Models (ir_version 10, opset 17, weights from a seeded numpy generator, batch 1):
- `mm_<n>`: MatMul [n, n] x constant [n, n], n = 64 … 2048;
- `gemv_<k>x<n>`: MatMul [1, k] x constant [k, n] (4096x4096 and 1024x4096);
- `r50_*` / `mb1_*`: one Conv (+ bias) + Relu of ResNet-50 / MobileNetV1 at 224x224 (every distinct shape),
  MobileNetV1's depthwise layers included (`mb1_dw*`); `r50_fc`: the 2048 -> 1000 Gemm;
- `r50_l4_chain2` / `r50_l4_chain12`: 2 / 12 of ResNet-50's last-stage 1x1 layers (512 <-> 2048 on 7x7) in a chain,
  each with its own weights: 8 MB (held in L3) / 48 MB (streamed from memory every run);
- `rnn_decoder`: Char-RNN's output layer, MatMul [16, 256] x constant [256, 65] + bias (a 1-column last panel).

`ab` measures kernel speed with the noise of this shared VM filtered out: one process pinned to CPU 0 holds a CPU EP
session (1 intra-op thread) and our session (`cores=0`); rounds alternate 3 runs of each; it prints the minimum and
the median per side and their ratios. The minimum is the kernel comparison (host noise only ever adds time); the
median includes how our worker, ORT's calling thread and our spin-waiting share that one CPU, which a real
deployment does not force (ORT's thread then runs on the other core) — use `bench` for end-to-end latency.

`nodes` compares inside a whole model instead (a layer's inputs, weights and output are where the layers before
left them — often not where a single-node model keeps them): ORT's profiler over both sessions in one process on
CPU 0, per-node medians summed by output shape, the groups we lose most first (`--all`: every node).
`--two-cores`: our session on both cores against the CPU EP with 2 intra-op threads, the process unpinned, each
session's runs in its own phase (so one session's spinning threads never compete with the other's runs).
`--flush`: 64 MB written before every run, so each run starts with cold caches (a layer as it finds its data after
a large model's other layers).

`bench` runs, for every model, one asymo-bench invocation with four interleaved configurations — CPU EP with 1 and
2 intra-op threads, our EP on one core (`cores=0`) and on both — and prints p50 per configuration and the ratios
CPU-EP-1-thread / ours-1-core and CPU-EP-2-threads / ours-2-cores (> 1: we are faster). `--json PATH` keeps all.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

REPO = Path(__file__).resolve().parent.parent
DEFAULT_DIR = REPO / ".cache" / "layers"

# (name, cin, cout, k, stride, in_size, group)
CONVS: List[Tuple[str, int, int, int, int, int, int]] = [
    # ResNet-50 (torchvision v1.5: the stride sits on the 3x3), 224x224.
    ("r50_conv1_7x7s2", 3, 64, 7, 2, 224, 1),
    ("r50_l1_1x1_64_64", 64, 64, 1, 1, 56, 1),
    ("r50_l1_3x3_64", 64, 64, 3, 1, 56, 1),
    ("r50_l1_1x1_64_256", 64, 256, 1, 1, 56, 1),
    ("r50_l1_1x1_256_64", 256, 64, 1, 1, 56, 1),
    ("r50_l2_1x1_256_128", 256, 128, 1, 1, 56, 1),
    ("r50_l2_3x3s2_128", 128, 128, 3, 2, 56, 1),
    ("r50_l2_ds_1x1s2_256_512", 256, 512, 1, 2, 56, 1),
    ("r50_l2_1x1_128_512", 128, 512, 1, 1, 28, 1),
    ("r50_l2_1x1_512_128", 512, 128, 1, 1, 28, 1),
    ("r50_l2_3x3_128", 128, 128, 3, 1, 28, 1),
    ("r50_l3_1x1_512_256", 512, 256, 1, 1, 28, 1),
    ("r50_l3_3x3s2_256", 256, 256, 3, 2, 28, 1),
    ("r50_l3_ds_1x1s2_512_1024", 512, 1024, 1, 2, 28, 1),
    ("r50_l3_1x1_256_1024", 256, 1024, 1, 1, 14, 1),
    ("r50_l3_1x1_1024_256", 1024, 256, 1, 1, 14, 1),
    ("r50_l3_3x3_256", 256, 256, 3, 1, 14, 1),
    ("r50_l4_1x1_1024_512", 1024, 512, 1, 1, 14, 1),
    ("r50_l4_3x3s2_512", 512, 512, 3, 2, 14, 1),
    ("r50_l4_ds_1x1s2_1024_2048", 1024, 2048, 1, 2, 14, 1),
    ("r50_l4_1x1_512_2048", 512, 2048, 1, 1, 7, 1),
    ("r50_l4_1x1_2048_512", 2048, 512, 1, 1, 7, 1),
    ("r50_l4_3x3_512", 512, 512, 3, 1, 7, 1),
    # MobileNetV1 1.0, 224x224.
    ("mb1_conv0_3x3s2", 3, 32, 3, 2, 224, 1),
    ("mb1_dw1_32_s1", 32, 32, 3, 1, 112, 32),
    ("mb1_pw1_32_64", 32, 64, 1, 1, 112, 1),
    ("mb1_dw2_64_s2", 64, 64, 3, 2, 112, 64),
    ("mb1_pw2_64_128", 64, 128, 1, 1, 56, 1),
    ("mb1_dw3_128_s1", 128, 128, 3, 1, 56, 128),
    ("mb1_pw3_128_128", 128, 128, 1, 1, 56, 1),
    ("mb1_dw4_128_s2", 128, 128, 3, 2, 56, 128),
    ("mb1_pw4_128_256", 128, 256, 1, 1, 28, 1),
    ("mb1_dw5_256_s1", 256, 256, 3, 1, 28, 256),
    ("mb1_pw5_256_256", 256, 256, 1, 1, 28, 1),
    ("mb1_dw6_256_s2", 256, 256, 3, 2, 28, 256),
    ("mb1_pw6_256_512", 256, 512, 1, 1, 14, 1),
    ("mb1_dw7_512_s1", 512, 512, 3, 1, 14, 512),
    ("mb1_pw7_512_512", 512, 512, 1, 1, 14, 1),
    ("mb1_dw12_512_s2", 512, 512, 3, 2, 14, 512),
    ("mb1_pw12_512_1024", 512, 1024, 1, 1, 7, 1),
    ("mb1_dw13_1024_s1", 1024, 1024, 3, 1, 7, 1024),
    ("mb1_pw13_1024_1024", 1024, 1024, 1, 1, 7, 1),
]
# Chains of ResNet-50's last-stage 1x1 pair (512 -> 2048 -> 512 on 7x7, each Conv + Relu, every layer its own
# weights): 2 layers (8 MB of weights, held in L3) and 12 (48 MB, streamed from memory on every run).
CHAINS = [("r50_l4_chain2", 1), ("r50_l4_chain12", 6)]
SQUARE = [64, 128, 256, 512, 1024, 2048]
GEMV = [(4096, 4096), (1024, 4096)]


def build_all() -> Dict[str, "onnx.ModelProto"]:  # noqa: F821
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)

    def model(name, nodes, inits, x_shape, y_shape):
        g = helper.make_graph(
            nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
            [helper.make_tensor_value_info("y", TensorProto.FLOAT, y_shape)], inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="layer_models")
        m.ir_version = 10
        onnx.checker.check_model(m)
        return m

    def weight(shape, fan_in):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32((2.0 / fan_in) ** 0.5)).astype(np.float32)

    out = {}
    for n in SQUARE:
        w = numpy_helper.from_array(weight((n, n), n), "w")
        out[f"mm_{n}"] = model(f"mm_{n}", [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], [w],
                               [n, n], [n, n])
    for k, n in GEMV:
        w = numpy_helper.from_array(weight((k, n), k), "w")
        out[f"gemv_{k}x{n}"] = model(f"gemv_{k}x{n}", [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                                     [w], [1, k], [1, n])
    w = numpy_helper.from_array(weight((1000, 2048), 2048), "w")
    b = numpy_helper.from_array(weight((1000,), 2048), "b")
    out["r50_fc"] = model("r50_fc", [helper.make_node("Gemm", ["x", "w", "b"], ["y"], name="fc", transB=1)], [w, b],
                          [1, 2048], [1, 1000])
    for name, cin, cout, k, s, size, group in CONVS:
        w = numpy_helper.from_array(weight((cout, cin // group, k, k), cin // group * k * k), "w")
        b = numpy_helper.from_array(weight((cout,), 64) * np.float32(0.1), "b")
        p = (k - 1) // 2
        nodes = [
            helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", kernel_shape=[k, k], strides=[s, s],
                             pads=[p] * 4, group=group),
            helper.make_node("Relu", ["c"], ["y"], name="relu"),
        ]
        o = (size + 2 * p - k) // s + 1
        out[name] = model(name, nodes, [w, b], [1, cin, size, size], [1, cout, o, o])
    for name, pairs in CHAINS:
        nodes, inits, x = [], [], "x"
        for i in range(2 * pairs):
            cin, cout = (512, 2048) if i % 2 == 0 else (2048, 512)
            inits += [numpy_helper.from_array(weight((cout, cin, 1, 1), cin), f"w{i}"),
                      numpy_helper.from_array(weight((cout,), 64) * np.float32(0.1), f"b{i}")]
            y = "y" if i == 2 * pairs - 1 else f"r{i}"
            nodes += [helper.make_node("Conv", [x, f"w{i}", f"b{i}"], [f"c{i}"], name=f"conv{i}"),
                      helper.make_node("Relu", [f"c{i}"], [y], name=f"relu{i}")]
            x = y
        out[name] = model(name, nodes, inits, [1, 512, 7, 7], [1, 512, 7, 7])
    # Char-RNN's decoder (16 steps x 256 -> 65 characters): a ragged last column panel of 1.
    w = numpy_helper.from_array(weight((256, 65), 256), "w")
    b = numpy_helper.from_array(weight((65,), 256), "b")
    out["rnn_decoder"] = model("rnn_decoder", [helper.make_node("MatMul", ["x", "w"], ["m"], name="mm"),
                                               helper.make_node("Add", ["m", "b"], ["y"], name="bias")],
                               [w, b], [16, 256], [16, 65])
    return out


def generate(d: Path) -> List[Path]:
    import onnx

    d.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, m in build_all().items():
        p = d / f"{name}.onnx"
        onnx.save(m, str(p))
        paths.append(p)
    return paths


def bench(d: Path, flt: str, runs: int, json_path: str | None, extra: List[str]) -> int:
    names = [p.stem for p in sorted(d.glob("*.onnx"))] if d.exists() else []
    if not names:
        generate(d)
        names = [p.stem for p in sorted(d.glob("*.onnx"))]
    order = {n: i for i, n in enumerate(all_names())}
    names = sorted((n for n in names if not flt or any(f in n for f in flt.split(","))),
                   key=lambda n: order.get(n, 1 << 30))
    rows = []
    print(f"{'layer':<28} {'cpu1 ms':>9} {'ep1 ms':>9} {'ratio1':>7} {'cpu2 ms':>9} {'ep2 ms':>9} {'ratio2':>7}")
    for name in names:
        with tempfile.NamedTemporaryFile(suffix=".json") as tf:
            cmd = [str(REPO / "scripts" / "asymo-bench"), str(d / f"{name}.onnx"), "-r", str(runs),
                   "--cpu-ep-threads", "1,2", "--plugin_eps", "AsyMoExecutionProvider;AsyMoExecutionProvider",
                   "--plugin_ep_options", "cores|0;", "--no-progress", "--json", tf.name, *extra]
            r = subprocess.run(cmd, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{name}: asymo-bench failed\n{r.stderr}", file=sys.stderr)
                return 1
            doc = json.loads(Path(tf.name).read_text())
        p50 = [res["p50_ms"] for res in doc["results"]]
        cpu1, cpu2, ep1, ep2 = p50
        rows.append({"layer": name, "cpu1_ms": cpu1, "cpu2_ms": cpu2, "ep1_ms": ep1, "ep2_ms": ep2,
                     "ratio1": cpu1 / ep1, "ratio2": cpu2 / ep2, "results": doc["results"]})
        print(f"{name:<28} {cpu1:9.3f} {ep1:9.3f} {cpu1 / ep1:6.2f}x {cpu2:9.3f} {ep2:9.3f} {cpu2 / ep2:6.2f}x",
              flush=True)
    if rows:
        import math

        g1 = math.exp(sum(math.log(r["ratio1"]) for r in rows) / len(rows))
        g2 = math.exp(sum(math.log(r["ratio2"]) for r in rows) / len(rows))
        print(f"{'geomean':<28} {'':>9} {'':>9} {g1:6.2f}x {'':>9} {'':>9} {g2:6.2f}x")
    if json_path:
        Path(json_path).write_text(json.dumps({"command": sys.argv, "rows": rows}, indent=2))
    return 0


def ab(d: Path, flt: str, rounds: int) -> int:
    import time

    import numpy as np
    import onnxruntime as ort

    os.sched_setaffinity(0, {0})
    ort.register_execution_provider_library("asymo", os.environ["ASYMO_EP_LIB"])
    devs = [dv for dv in ort.get_ep_devices() if dv.ep_name == "AsyMoExecutionProvider"]
    if not all((d / f"{n}.onnx").exists() for n in all_names()):
        generate(d)
    order = {n: i for i, n in enumerate(all_names())}
    names = sorted((p.stem for p in d.glob("*.onnx") if not flt or any(f in p.stem for f in flt.split(","))),
                   key=lambda n: order.get(n, 1 << 30))
    print(f"{'layer':<28} {'cpu min':>8} {'ep min':>8} {'ratio':>6} | {'cpu p50':>8} {'ep p50':>8} {'ratio':>6}")
    ratios = []
    for name in names:
        path = str(d / f"{name}.onnx")
        so = ort.SessionOptions()
        so.log_severity_level, so.intra_op_num_threads = 3, 1
        cpu = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        so = ort.SessionOptions()
        so.log_severity_level, so.intra_op_num_threads = 3, 1
        so.add_provider_for_devices(devs, {"cores": "0"})
        ep = ort.InferenceSession(path, so, enable_fallback=0)
        inp = cpu.get_inputs()[0]
        shape = [d if isinstance(d, int) else 1 for d in inp.shape]  # symbolic dims (whole models' batch): 1
        feed = {inp.name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
        times: Dict[str, List[float]] = {"cpu": [], "ep": []}
        for s in (cpu, ep):
            for _ in range(3):
                s.run(None, feed)
        for _ in range(rounds):
            for key, s in (("cpu", cpu), ("ep", ep)):
                for _ in range(3):
                    t0 = time.perf_counter()
                    s.run(None, feed)
                    times[key].append((time.perf_counter() - t0) * 1e3)
        c, e = np.array(times["cpu"]), np.array(times["ep"])
        r_min, r_med = c.min() / e.min(), np.median(c) / np.median(e)
        ratios.append((r_min, r_med))
        print(f"{name:<28} {c.min():8.3f} {e.min():8.3f} {r_min:5.2f}x | {np.median(c):8.3f} {np.median(e):8.3f} "
              f"{r_med:5.2f}x", flush=True)
        del cpu, ep
    if ratios:
        g = np.exp(np.mean(np.log(np.array(ratios)), axis=0))
        print(f"{'geomean':<28} {'':>8} {'':>8} {g[0]:5.2f}x | {'':>8} {'':>8} {g[1]:5.2f}x")
    return 0


def nodes(model: str, rounds: int, top: int, show_all: bool, two_cores: bool = False, flush: bool = False) -> int:
    """ORT's profiler over our session (`cores=0`) and the CPU EP's (1 intra-op thread) in one process pinned to
    CPU 0, alternating 3 runs of each per round: per-node medians summed by output shape (ORT's blocked-layout
    reorders as their own group), the groups where we lose most first. `two_cores`: our session on every core
    against the CPU EP with 2 intra-op threads, unpinned, one session's runs after the other's. `flush`: 64 MB
    written before every run."""
    import collections
    import time

    import numpy as np
    import onnxruntime as ort

    if not two_cores:
        os.sched_setaffinity(0, {0})
    ort.set_default_logger_severity(3)
    ort.register_execution_provider_library("asymo", os.environ["ASYMO_EP_LIB"])
    devs = [dv for dv in ort.get_ep_devices() if dv.ep_name == "AsyMoExecutionProvider"]
    tmp_dir = tempfile.TemporaryDirectory(prefix="layer_models_nodes_")
    tmp = tmp_dir.name
    warmup = 5

    def session(ours: bool):
        so = ort.SessionOptions()
        so.enable_profiling, so.profile_file_prefix = True, os.path.join(tmp, "ours" if ours else "cpu")
        so.intra_op_num_threads = 1 if ours or not two_cores else 2
        if ours:
            so.add_provider_for_devices(devs, {} if two_cores else {"cores": "0"})
            return ort.InferenceSession(model, so)
        return ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])

    sessions = {"ours": session(True), "cpu": session(False)}
    feed = {i.name: np.random.default_rng(0).random([d if isinstance(d, int) and d > 0 else 1 for d in i.shape],
                                                     dtype=np.float32) for i in sessions["cpu"].get_inputs()}
    junk = np.ones(16 << 20, np.float32) if flush else None

    def run(s):
        if junk is not None:
            np.add(junk, 1.0, out=junk)
        s.run(None, feed)

    for s in sessions.values():
        for _ in range(warmup):
            run(s)
    if two_cores:
        for s in sessions.values():
            time.sleep(0.1)  # the other session's spinning threads go idle
            for _ in range(3 * rounds):
                run(s)
    for _ in range(0 if two_cores else rounds):
        for s in sessions.values():
            for _ in range(3):
                run(s)
    per, runs = {}, {}
    for key, s in sessions.items():
        trace = json.loads(Path(s.end_profiling()).read_text())
        times, shape = collections.defaultdict(list), {}
        run = []
        for e in trace:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                times[e["name"]].append(e["dur"])
                op = e["args"].get("op_name", "")
                shape[e["name"]] = "reorder" if op.startswith("Reorder") else str(e["args"].get("output_type_shape"))
            elif e.get("cat") == "Session" and e["name"] == "model_run":
                run.append(e["dur"])
        # Profiling is on from the start: each run adds one event per node, the warm-up runs' come first.
        per[key] = [(n, float(np.median(v[warmup:] or v)), shape[n]) for n, v in times.items()]
        runs[key] = float(np.median(run[warmup:] or run or [float("nan")]))
    tmp_dir.cleanup()
    print(f"model_run median: ours {runs['ours']:.0f} us, CPU EP {runs['cpu']:.0f} us, "
          f"ratio (CPU EP / ours) {runs['cpu'] / runs['ours']:.3f}")
    groups = {k: collections.defaultdict(lambda: [0.0, 0]) for k in per}
    for key, rows in per.items():
        for _, t, sh in rows:
            groups[key][sh][0] += t
            groups[key][sh][1] += 1
    keys = set(groups["ours"]) | set(groups["cpu"])
    diff = sorted(keys, key=lambda k: groups["cpu"][k][0] - groups["ours"][k][0])
    print(f"{'ours - CPU EP':>13} {'ours us (n)':>14} {'CPU EP us (n)':>14}  output shape")
    for k in diff[:top]:
        (o, no), (c, nc) = groups["ours"][k], groups["cpu"][k]
        print(f"{o - c:13.0f} {o:9.0f} ({no:2d}) {c:9.0f} ({nc:2d})  {k}")
    if show_all:
        for key, rows in per.items():
            for n, t, sh in rows:
                print(f"{key:4} {t:8.0f}  {n[:40]:<40} {sh}")
    return 0


def all_names() -> List[str]:
    return ([f"mm_{n}" for n in SQUARE] + [f"gemv_{k}x{n}" for k, n in GEMV] + [c[0] for c in CONVS]
            + ["r50_fc"] + [c[0] for c in CHAINS] + ["rnn_decoder"])


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("generate")
    g.add_argument("dir", nargs="?", default=str(DEFAULT_DIR))
    b = sub.add_parser("bench")
    b.add_argument("dir", nargs="?", default=str(DEFAULT_DIR))
    b.add_argument("-k", dest="filter", default="", help="comma-separated substrings of layer names")
    b.add_argument("-r", dest="runs", type=int, default=30)
    b.add_argument("--json", dest="json_path", default=None)
    b.add_argument("--block", type=int, default=10,
                   help="asymo-bench --block: runs back to back per switch (default 10; the tool's 5 makes "
                        "wake-up-after-pause costs dominate sub-millisecond layers)")
    x = sub.add_parser("ab")
    x.add_argument("dir", nargs="?", default=str(DEFAULT_DIR))
    x.add_argument("-k", dest="filter", default="", help="comma-separated substrings of layer names")
    x.add_argument("-n", dest="rounds", type=int, default=10, help="rounds of 3 + 3 runs (default 10)")
    nd = sub.add_parser("nodes")
    nd.add_argument("model", help="an ONNX model file")
    nd.add_argument("-n", dest="rounds", type=int, default=30, help="rounds of 3 + 3 runs (default 30)")
    nd.add_argument("--top", type=int, default=12, help="output-shape groups shown (default 12)")
    nd.add_argument("--all", action="store_true", help="also every node's median, both sessions")
    nd.add_argument("--two-cores", action="store_true",
                    help="ours on both cores against the CPU EP with 2 threads (one session's runs after the other's)")
    nd.add_argument("--flush", action="store_true", help="write 64 MB before every run (cold caches)")
    sub.add_parser("list")
    a = ap.parse_args(argv)
    if a.cmd == "generate":
        for p in generate(Path(a.dir)):
            print(p)
        return 0
    if a.cmd == "list":
        print("\n".join(all_names()))
        return 0
    os.environ.setdefault("ASYMO_EP_LIB", str(REPO / "target" / "release" / "libasymo_ep.so"))
    if a.cmd == "ab":
        return ab(Path(a.dir), a.filter, a.rounds)
    if a.cmd == "nodes":
        return nodes(a.model, a.rounds, a.top, a.all, a.two_cores, a.flush)
    return bench(Path(a.dir), a.filter, a.runs, a.json_path, ["--block", str(a.block)])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
