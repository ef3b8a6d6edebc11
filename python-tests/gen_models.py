#!/usr/bin/env python3
"""Write the paper's model set (seeded weights, ir_version 10) as .onnx files, plus a manifest.json.

    python gen_models.py OUTDIR                      # every model at the reduced test size
    python gen_models.py OUTDIR --full               # the paper's input sizes (224; AlexNet-grouped 227; SSD 300)
    python gen_models.py OUTDIR -m mobilenet_v1,resnet18 --size 128 --batch 1
    python gen_models.py --list

manifest.json lists, per model: file, builder arguments, inputs (name, shape with symbolic dims as strings, dtype),
outputs, and the count of MatMul/Gemm/Conv nodes, so benchmark tools can generate inputs without onnx.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import onnx  # noqa: E402

import models  # noqa: E402


def _shape(vi: onnx.ValueInfoProto):
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in vi.type.tensor_type.shape.dim]


def _dtype(vi: onnx.ValueInfoProto) -> str:
    return onnx.helper.tensor_dtype_to_np_dtype(vi.type.tensor_type.elem_type).name


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("outdir", nargs="?", help="directory to write <model>.onnx and manifest.json into")
    ap.add_argument("-m", "--models", default="all", help="comma-separated model names (default: all)")
    ap.add_argument("--full", action="store_true", help="use the paper's full input sizes")
    ap.add_argument("--size", type=int, help="input size for every selected model (overrides --full)")
    ap.add_argument("--batch", type=int, default=None, help="fixed batch size (default: symbolic 'N')")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=models.DEFAULT_OPSET)
    ap.add_argument("--num-classes", type=int, help="classifier width for the models that have one")
    ap.add_argument("--list", action="store_true", help="list model names with reduced/full sizes and exit")
    args = ap.parse_args(argv)

    if args.list:
        for name in models.MODELS:
            print(f"{name:18s} size {models.default_size(name):4d} (full {models.default_size(name, True)})")
        return 0
    if not args.outdir:
        ap.error("OUTDIR is required (or --list)")
    names = list(models.MODELS) if args.models == "all" else [n.strip() for n in args.models.split(",") if n.strip()]
    unknown = [n for n in names if n not in models.MODELS]
    if unknown:
        ap.error(f"unknown model(s): {', '.join(unknown)}; known: {', '.join(models.MODELS)}")

    out = Path(args.outdir)
    out.mkdir(parents=True, exist_ok=True)
    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    for name in names:
        kw = {"batch": args.batch, "seed": args.seed, "opset": args.opset,
              "size": args.size or models.default_size(name, args.full)}
        if args.num_classes is not None and name not in ("char_rnn",):
            kw["num_classes"] = args.num_classes
        t0 = time.time()
        model = models.build(name, **kw)
        path = out / f"{name}.onnx"
        tmp = path.with_suffix(".onnx.tmp")
        onnx.save(model, str(tmp))
        os.replace(tmp, path)
        inits = {t.name for t in model.graph.initializer}
        manifest[name] = {
            "file": path.name,
            "args": kw,
            "inputs": [{"name": vi.name, "shape": _shape(vi), "dtype": _dtype(vi)}
                       for vi in model.graph.input if vi.name not in inits],
            "outputs": [{"name": vi.name, "shape": _shape(vi), "dtype": _dtype(vi)} for vi in model.graph.output],
            "heavy_ops": models.count_ops(model),
            "nodes": len(model.graph.node),
        }
        print(f"{name:18s} -> {path} ({path.stat().st_size / 1e6:.1f} MB, {time.time() - t0:.1f} s)", flush=True)
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    print(f"manifest: {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
