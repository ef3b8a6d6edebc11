#!/usr/bin/env python3
"""One-process A/B of the channel-vectorized convolution: a CPU EP session (CPU_THREADS intra-op threads, default 1)
and two sessions of our EP (cores=0, or both cores with CORES=all), "old" compiled with ASYMO_CONV_T=0 (pixel-vectorized
everywhere), "new" with ASYMO_CONV_T=$NEW_MODE (default 1: the `prefer_conv_t` rule; `all`: channel-vectorized wherever
it applies); rounds of 3 runs each (ROUNDS, default 10); prints the minima and their ratios per model, then geomeans.

    ASYMO_EP_LIB=target/release/libasymo_ep.so taskset -c 0 .venv/bin/python tools/ab_conv_t.py MODEL.onnx ...
"""
import onnxruntime as ort, numpy as np, sys, os, time, onnx
lib=os.environ["ASYMO_EP_LIB"]
ort.register_execution_provider_library("AsyMoExecutionProvider", lib)
devs=[d for d in ort.get_ep_devices() if d.ep_name=="AsyMoExecutionProvider"]
rounds=int(os.environ.get("ROUNDS","10"))
def mk(conv_t):
    os.environ["ASYMO_CONV_T"]=os.environ.get("NEW_MODE","1") if conv_t else "0"
    so=ort.SessionOptions(); so.intra_op_num_threads=1
    so.add_provider_for_devices(devs, {} if os.environ.get("CORES")=="all" else {"cores":"0"})
    return ort.InferenceSession(m, so)
res=[]
for m in sys.argv[1:]:
    so=ort.SessionOptions(); so.intra_op_num_threads=int(os.environ.get("CPU_THREADS","1"))
    cpu=ort.InferenceSession(m, so, providers=["CPUExecutionProvider"])
    old=mk(False); new=mk(True)
    shp=[d.dim_value or 1 for d in onnx.load(m).graph.input[0].type.tensor_type.shape.dim]
    x={cpu.get_inputs()[0].name:np.random.rand(*shp).astype(np.float32)}
    t={"cpu":[], "old":[], "new":[]}
    for s in (cpu,old,new): s.run(None,x)
    for r in range(rounds):
        for name,s in (("cpu",cpu),("old",old),("new",new)):
            for _ in range(3):
                a=time.perf_counter(); s.run(None,x); t[name].append(time.perf_counter()-a)
    mn={k:min(v)*1e3 for k,v in t.items()}
    name=os.path.basename(m)[:-5]
    res.append((name, mn))
    print(f"{name:28s} cpu {mn['cpu']:.3f} old {mn['old']:.3f} new {mn['new']:.3f}  cpu/old {mn['cpu']/mn['old']:.2f}  cpu/new {mn['cpu']/mn['new']:.2f}  old/new {mn['old']/mn['new']:.2f}", flush=True)
import math
g=lambda k: math.exp(sum(math.log(r[1]['cpu']/r[1][k]) for r in res)/len(res))
print(f"geomean cpu/old {g('old'):.2f} cpu/new {g('new'):.2f}")
