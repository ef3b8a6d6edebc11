#!/usr/bin/env python3
"""asymo-suite: the benchmark set behind BENCHMARKS.md — the paper's models, quiet and under interference,
ablations, an interference-duty sweep and the MatMul/Gemm/Conv time share — with JSON results and PNG plots.

    asymo-suite opshare  [--models a,b] [--out DIR]          # share of time in MatMul/Gemm/Conv (ORT profiler)
    asymo-suite latency  [--models a,b] [-r N] [--out DIR]   # CPU EP (2, 1 threads) vs AsyMo, quiet and CPU 1 busy
    asymo-suite ablation [--models a,b] [-r N] [--out DIR]   # the paper's breakdown, CPU 1 busy
    asymo-suite duty     [--model m] [-r N] [--out DIR]      # latency against the busy process's duty cycle
    asymo-suite all      ...                                 # everything above

Every measurement goes through asymo-bench (interleaved runs, separate worker processes, same-run ratios). Results
land in DIR (default bench-results/<date>/) as JSON, PNG, and a Markdown summary printed to stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Optional

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tools"))
sys.path.insert(0, str(REPO / "python-tests"))

import asymo_bench  # noqa: E402

PAPER_MODELS = ["mobilenet_v1", "squeezenet_1_1", "resnet18", "resnet50", "resnet101", "vgg16", "alexnet",
                "ssd_mobilenet_v1", "char_rnn", "rnn_classifier"]
LATENCY_MODELS = ["resnet50", "mobilenet_v1", "vgg16", "squeezenet_1_1", "char_rnn"]
# The paper's Table 1 values quoted in the project's issue; the others are not reproduced here.
PAPER_SHARE = {"mobilenet_v1": 65.8, "rnn_classifier": 99.1}
HEAVY = {"Conv", "FusedConv", "MatMul", "FusedMatMul", "Gemm", "FusedGemm", "NhwcFusedConv"}


def bench(model: str, extra: List[str], runs: int) -> dict:
    """One asymo-bench run on a model of the set; returns its JSON document."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        path = f.name
    argv = [asymo_bench.generate_model(model, full=True), "-r", str(runs), "--json", path, "--no-progress", *extra]
    rc = asymo_bench.main(argv)
    if rc != 0:
        raise SystemExit(f"asymo-bench failed on {model} ({' '.join(extra)}): exit {rc}")
    doc = json.loads(Path(path).read_text())
    os.unlink(path)
    doc["model"] = model
    return doc


def p50(doc: dict, label: str) -> float:
    return next(r["p50_ms"] for r in doc["results"] if r["label"] == label)


# ---------------------------------------------------------------------------------------------------- opshare


def opshare(models: List[str], out: Path, runs: int = 10) -> Dict[str, dict]:
    """Share of node time in MatMul/Gemm/Conv under ORT's own profiler, CPU EP, 1 thread, full-size models."""
    import onnxruntime as ort

    import models as zoo

    rows = {}
    for name in models:
        path = asymo_bench.generate_model(name, full=True)
        import onnx

        feeds = zoo.make_inputs(onnx.load(path), batch=1, seed=0)
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.enable_profiling = True
        so.profile_file_prefix = str(out / f"profile_{name}")
        so.log_severity_level = 3
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        for _ in range(runs):
            sess.run(None, feeds)
        trace = json.loads(Path(sess.end_profiling()).read_text())
        per_op: Dict[str, float] = {}
        depthwise = 0.0
        for ev in trace:
            if ev.get("cat") == "Node" and ev.get("name", "").endswith("_kernel_time"):
                args = ev.get("args", {})
                op = args.get("op_name", "?")
                per_op[op] = per_op.get(op, 0.0) + ev.get("dur", 0)
                if op in ("Conv", "FusedConv") and is_depthwise(args.get("input_type_shape", [])):
                    depthwise += ev.get("dur", 0)
        total = sum(per_op.values())
        heavy = sum(v for k, v in per_op.items() if k in HEAVY)
        rows[name] = {
            "share_pct": 100.0 * heavy / total if total else 0.0,
            "share_without_depthwise_pct": 100.0 * (heavy - depthwise) / total if total else 0.0,
            "per_op_us": per_op,
        }
        print(f"  {name:<18} {rows[name]['share_pct']:5.1f}% in MatMul/Gemm/Conv", file=sys.stderr)
    (out / "opshare.json").write_text(json.dumps(rows, indent=2))
    return rows


def is_depthwise(input_shapes: list) -> bool:
    """From the profiler's input_type_shape ([{"float": [dims]}, ...]): W is [M, 1, ...] with C_in > 1."""
    try:
        x = next(iter(input_shapes[0].values()))
        w = next(iter(input_shapes[1].values()))
        return len(w) >= 3 and w[1] == 1 and x[1] > 1
    except (IndexError, StopIteration, AttributeError, TypeError):
        return False


def opshare_markdown(rows: Dict[str, dict]) -> str:
    lines = ["| model | MatMul/Gemm/Conv share (ORT CPU EP, 1 thread) | without depthwise Conv | paper Table 1 |",
             "|---|---|---|---|"]
    for name, r in rows.items():
        paper = f"{PAPER_SHARE[name]:.1f}%" if name in PAPER_SHARE else "–"
        lines.append(f"| {name} | {r['share_pct']:.1f}% | {r['share_without_depthwise_pct']:.1f}% | {paper} |")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------------- latency


def latency(models: List[str], out: Path, runs: int) -> List[dict]:
    docs = []
    for name in models:
        for cond, extra in [("quiet", []), ("busy", ["--interfere", "1"])]:
            print(f"  {name} {cond}", file=sys.stderr)
            doc = bench(name, ["--cpu-ep-threads", "2,1", *extra], runs)
            doc["condition"] = cond
            docs.append(doc)
    (out / "latency.json").write_text(json.dumps(docs, indent=2))
    plot_latency(docs, out / "latency.png")
    return docs


def latency_markdown(docs: List[dict]) -> str:
    lines = [
        "| model | condition | CPU EP 2 thr p50 | CPU EP 1 thr p50 | AsyMo p50 | AsyMo vs CPU 2 thr | AsyMo vs CPU 1 thr |",
        "|---|---|---|---|---|---|---|",
    ]
    for d in docs:
        c2, c1, a = p50(d, "CPU EP 2 thr"), p50(d, "CPU EP 1 thr"), p50(d, "AsyMo EP")
        lines.append(f"| {d['model']} | {d['condition']} | {c2:.2f} ms | {c1:.2f} ms | {a:.2f} ms | "
                     f"{c2 / a:.2f}× | {c1 / a:.2f}× |")
    return "\n".join(lines)


def plot_latency(docs: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({d["model"] for d in docs}, key=[d["model"] for d in docs].index)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    labels = ["CPU EP 2 thr", "CPU EP 1 thr", "AsyMo EP"]
    colors = ["#8a8a8a", "#c7c7c7", "#2f6db3"]
    for ax, cond in zip(axes, ["quiet", "busy"]):
        for i, label in enumerate(labels):
            vals = [p50(next(d for d in docs if d["model"] == m and d["condition"] == cond), label) for m in models]
            ax.bar([x + (i - 1) * 0.27 for x in range(len(models))], vals, width=0.27, label=label, color=colors[i])
        ax.set_xticks(range(len(models)), models, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("latency p50 (ms)")
        ax.set_title("quiet machine" if cond == "quiet" else "busy process pinned to CPU 1", fontsize=10)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- ablation


def ablation(models: List[str], out: Path, runs: int) -> List[dict]:
    docs = []
    for name in models:
        print(f"  {name} ablation", file=sys.stderr)
        doc = bench(name, ["--cpu-ep-threads", "2,1", "--interfere", "1", "--ablation"], runs)
        docs.append(doc)
    (out / "ablation.json").write_text(json.dumps(docs, indent=2))
    plot_ablation(docs, out / "ablation.png")
    return docs


def ablation_markdown(docs: List[dict]) -> str:
    labels = [r["label"] for r in docs[0]["results"]]
    lines = ["| model | " + " | ".join(labels) + " |", "|---|" + "---|" * len(labels)]
    for d in docs:
        lines.append(f"| {d['model']} | " + " | ".join(f"{p50(d, l):.2f} ms" for l in labels) + " |")
    return "\n".join(lines)


def plot_ablation(docs: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(docs), figsize=(4.5 * len(docs), 4), squeeze=False)
    for ax, d in zip(axes[0], docs):
        labels = [r["label"] for r in d["results"]]
        vals = [r["p50_ms"] for r in d["results"]]
        colors = ["#8a8a8a" if r["ep"] == "CPUExecutionProvider" else "#2f6db3" for r in d["results"]]
        ax.bar(range(len(vals)), vals, color=colors)
        ax.set_xticks(range(len(vals)), labels, rotation=35, ha="right", fontsize=7)
        ax.set_title(f"{d['model']} · CPU 1 busy", fontsize=10)
        ax.set_ylabel("latency p50 (ms)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- duty


DUTIES = [0.0, 0.25, 0.5, 0.75, 1.0]


def duty_sweep(model: str, out: Path, runs: int) -> List[dict]:
    docs = []
    for duty in DUTIES:
        print(f"  {model} duty {duty:.2f}", file=sys.stderr)
        # AsyMo on both cores, and AsyMo on the best single core (CPU 0): "no collapse" = both ≤ single.
        extra = ["--cpu-ep-threads", "2,1", "--plugin_eps", "AsyMoExecutionProvider;AsyMoExecutionProvider",
                 "--plugin_ep_options", ";cores|0"]
        if duty > 0:
            extra += ["--interfere", f"1:{duty}"]
        doc = bench(model, extra, runs)
        doc["duty"] = duty
        docs.append(doc)
    (out / "duty.json").write_text(json.dumps(docs, indent=2))
    plot_duty(docs, out / "duty.png")
    return docs


def duty_labels(doc: dict) -> List[str]:
    return [r["label"] for r in doc["results"]]


def duty_markdown(docs: List[dict]) -> str:
    names = duty_labels(docs[0])
    labels = names
    lines = ["| CPU 1 busy | " + " | ".join(names) + " |", "|---|" + "---|" * len(labels)]
    for d in docs:
        vals = [r["p50_ms"] for r in d["results"]]
        lines.append(f"| {d['duty'] * 100:.0f}% | " + " | ".join(f"{v:.2f} ms" for v in vals) + " |")
    return "\n".join(lines)


def plot_duty(docs: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = duty_labels(docs[0])
    fig, ax = plt.subplots(figsize=(6, 4))
    for i, label in enumerate(labels):
        ax.plot([d["duty"] * 100 for d in docs], [d["results"][i]["p50_ms"] for d in docs], marker="o",
                label=label)
    ax.set_xlabel("busy process on CPU 1: duty cycle (%)")
    ax.set_ylabel("latency p50 (ms)")
    ax.set_title(docs[0]["model"], fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------- main


def main(argv: List[str]) -> int:
    ap = argparse.ArgumentParser(prog="asymo-suite", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["opshare", "latency", "ablation", "duty", "all"])
    ap.add_argument("--models", default=None, help="comma-separated models of the set")
    ap.add_argument("--model", default="resnet50", help="model of the duty sweep (default resnet50)")
    ap.add_argument("-r", dest="runs", type=int, default=20, help="runs per configuration")
    ap.add_argument("--out", default=None, help="output directory (default bench-results/<date>)")
    a = ap.parse_args(argv)
    out = Path(a.out or REPO / "bench-results" / time.strftime("%Y-%m-%d"))
    out.mkdir(parents=True, exist_ok=True)
    md = []
    if a.what in ("opshare", "all"):
        models = a.models.split(",") if a.models else PAPER_MODELS
        md += ["### MatMul/Gemm/Conv share", opshare_markdown(opshare(models, out))]
    if a.what in ("latency", "all"):
        models = a.models.split(",") if a.models else LATENCY_MODELS
        md += ["### Latency", latency_markdown(latency(models, out, a.runs))]
    if a.what in ("ablation", "all"):
        models = a.models.split(",") if a.models else ["resnet50", "mobilenet_v1"]
        md += ["### Ablation (CPU 1 busy)", ablation_markdown(ablation(models, out, a.runs))]
    if a.what in ("duty", "all"):
        md += [f"### Interference duty sweep ({a.model})", duty_markdown(duty_sweep(a.model, out, a.runs))]
    text = "\n\n".join(md) + "\n"
    (out / f"summary-{a.what}.md").write_text(text)
    print(text)
    print(f"results in {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
