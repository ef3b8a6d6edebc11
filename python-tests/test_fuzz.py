"""Seeded differential fuzzing of MatMul / Gemm / Conv (and fused epilogue chains) against ORT's CPU EP.

Every case is generated from ``numpy.random.default_rng([BASE_SEED, kind, i])`` so CI runs the same models every
time. For each case: the CPU EP and our EP build a session and run the same feeds; either both fail (ours with an
ordinary ORT error, never a crash), or both succeed and the outputs agree (max abs error ≤ rtol·max|expected|, rtol
growing with √K), and the nodes sit where the README says they must (claimed / left to the CPU EP; epilogues fused
or not).

Environment (for bug hunting; the defaults are what CI runs, ~10 s on 2 cores):
  ASYMO_FUZZ_ITERS=N   cases per kind (default 300)
  ASYMO_FUZZ_SEED=S    base seed (default 20261128)
  ASYMO_FUZZ_KINDS=a,b only these kinds (matmul, gemm, conv, chain, odd, dynchain)
A failing case is reproduced by its test id, e.g. ``-k "conv-17"`` with the same seed.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Set

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import harness

F = TensorProto.FLOAT
ITERS = int(os.environ.get("ASYMO_FUZZ_ITERS", "300"))
BASE_SEED = int(os.environ.get("ASYMO_FUZZ_SEED", "20261128"))
KINDS = ("matmul", "gemm", "conv", "chain", "odd", "dynchain")
SELECTED = tuple(k for k in os.environ.get("ASYMO_FUZZ_KINDS", ",".join(KINDS)).split(",") if k)

# Sizes that hit micro-kernel edges (1, primes, around multiples of 4/8/16) more often than large ones.
SMALL = (1, 1, 2, 3, 4, 5, 7, 8, 9, 12, 13, 16, 17)
MEDIUM = (15, 16, 17, 24, 31, 32, 33, 48, 63, 64, 65)


# ------------------------------------------------------------------------------------------------ model building


@dataclass
class Built:
    """A generated model, its feeds, and what must hold about placement."""
    nodes: List[onnx.NodeProto] = field(default_factory=list)
    inputs: List[onnx.ValueInfoProto] = field(default_factory=list)
    outputs: List[onnx.ValueInfoProto] = field(default_factory=list)
    inits: List[onnx.TensorProto] = field(default_factory=list)
    feeds: Dict[str, np.ndarray] = field(default_factory=dict)
    opset: int = 17
    k: int = 1                                  # the largest reduction length (tolerance)
    ours: Set[str] = field(default_factory=set)      # node names that must run on our EP
    cpu: Set[str] = field(default_factory=set)       # node names that must stay on the CPU EP
    desc: List[str] = field(default_factory=list)
    # Instead of the CPU EP: a numpy reference where ORT itself is wrong (MatMul with K = 0 returns uninitialized
    # memory for some layouts; a zero-sized batch of B fails to broadcast).
    reference: Optional[Callable[[Dict[str, np.ndarray]], List[np.ndarray]]] = None
    # Graph optimization level of the CPU EP baseline (None: ORT's default, all).
    baseline_opt: Optional[ort.GraphOptimizationLevel] = None
    # A CPU EP error containing this text need not be an error on our EP.
    cpu_may_fail: Optional[str] = None
    # More runs of the same sessions with other values of the symbolic dims (overrides of ``feeds``).
    more_feeds: List[Dict[str, np.ndarray]] = field(default_factory=list)
    _n: int = 0

    def name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def model(self) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "fuzz", self.inputs, self.outputs, self.inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                              producer_name="asymo-fuzz")
        m.ir_version = min(10, m.ir_version)
        m.doc_string = "; ".join(self.desc)
        return m


class Gen:
    """Random tensors and operands for one case."""

    def __init__(self, rng: np.random.Generator, b: Built):
        self.rng = rng
        self.b = b
        # Value regime of the whole case: ordinary, tiny, huge, small integers (exact), or with NaN/±inf.
        self.regime = rng.choice(["normal"] * 10 + ["tiny", "huge", "ints", "special"])
        self.b.desc.append(f"regime={self.regime}")

    def pick(self, seq):
        return seq[int(self.rng.integers(len(seq)))]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def dim(self, big: bool = True) -> int:
        r = self.rng.random()
        if r < 0.7 or not big:
            return self.pick(SMALL)
        if r < 0.95:
            return self.pick(MEDIUM)
        return int(self.rng.integers(100, 300))

    def data(self, shape: Sequence[int], special: Optional[bool] = None) -> np.ndarray:
        shape = tuple(int(d) for d in shape)
        if self.regime == "ints":
            a = self.rng.integers(-3, 4, size=shape).astype(np.float32)
        else:
            a = self.rng.standard_normal(shape).astype(np.float32)
            if self.regime == "tiny":
                a *= np.float32(1e-18)
            elif self.regime == "huge":
                a *= np.float32(1e15)
        if (self.regime == "special" if special is None else special) and a.size >= 1:
            for v in (np.nan, np.inf, -np.inf):
                if self.chance(0.6):
                    a.flat[int(self.rng.integers(a.size))] = v
        return a

    def tensor(self, prefix: str, shape: Sequence[int], const: bool, decl: Optional[Sequence] = None,
               special: Optional[bool] = None) -> str:
        """A graph input (declared ``decl``, default the concrete shape) or an initializer, with data."""
        name = self.b.name(prefix)
        data = self.data(shape, special)
        if const:
            self.b.inits.append(numpy_helper.from_array(data, name))
        else:
            self.b.inputs.append(helper.make_tensor_value_info(name, F, None if decl == "unknown" else
                                                               list(decl if decl is not None else shape)))
            self.b.feeds[name] = data
        return name

    def decl(self, shape: Sequence[int], tag: str, allow_unknown: bool = True):
        """A declared shape: concrete, partly symbolic, or (rarely) of unknown rank."""
        r = self.rng.random()
        if r < 0.55:
            return list(shape)
        if r < 0.95 or not allow_unknown:
            return [f"{tag}{i}" if self.chance(0.5) else d for i, d in enumerate(shape)]
        return "unknown"


def resized(g: Gen, feeds: Dict[str, np.ndarray], name: str, axis: int, allow_zero: bool = False) -> None:
    """Give input ``name`` a new size on ``axis`` (a symbolic dim nothing else depends on) in ``feeds`` (overrides
    of ``g.b.feeds``)."""
    old = feeds.get(name, g.b.feeds[name])
    size = max(0 if allow_zero else 1, old.shape[axis] + int(g.rng.integers(-3, 6)))
    shape = list(old.shape)
    shape[axis] = size
    feeds[name] = g.data(shape)


def tol(k: int) -> float:
    return harness.RTOL * max(1.0, math.sqrt(max(k, 1)) / 16.0)


# ------------------------------------------------------------------------------------------------ generators


def gen_matmul(g: Gen, zero: bool = False) -> str:
    b = g.b
    b.opset = g.pick([7, 9, 13, 17, 21])
    ra, rb = g.pick([1, 2, 2, 2, 3, 3, 4]), g.pick([1, 2, 2, 2, 3, 4])
    m, k, n = g.dim(), g.dim(), g.dim()
    if g.chance(0.05):
        m, k = g.pick([1, 2, 3]), int(g.rng.integers(1000, 5000))   # GEMV with a K split
    nb = max(ra, rb, 2) - 2
    batch = [g.pick([1, 2, 3, 4]) for _ in range(nb)]
    if zero:
        which = g.pick(["m", "k", "n", "batch"])
        if which == "m":
            m = 0
        elif which == "k":
            k = 0
        elif which == "n":
            n = 0
        elif batch:
            batch[int(g.rng.integers(len(batch)))] = 0
        else:
            k = 0

    def bdims(r: int) -> List[int]:
        own = batch[len(batch) - max(r - 2, 0):] if r > 2 else []
        return [d if g.chance(0.7) else 1 for d in own]

    a_shape = [k] if ra == 1 else bdims(ra) + [m, k]
    b_shape = [k] if rb == 1 else bdims(rb) + [k, n]
    b_const = g.chance(0.5)
    a_const = not b_const and g.chance(0.1)
    a = g.tensor("A", a_shape, a_const, None if a_const else g.decl(a_shape, "a"))
    bb = g.tensor("B", b_shape, b_const, None if b_const else g.decl(b_shape, "b"))
    y = b.name("Y")
    node = b.name("matmul")
    b.nodes.append(helper.make_node("MatMul", [a, bb], [y], name=node))
    b.ours.add(node)
    b.k = max(b.k, k)
    b.desc.append(f"MatMul A{a_shape}{'c' if a_const else ''} B{b_shape}{'c' if b_const else ''} op{b.opset}")
    a_decl = next((vi for vi in b.inputs if vi.name == a), None)
    a_dims = a_decl.type.tensor_type.shape.dim if a_decl is not None else []
    if ra >= 2 and len(a_dims) == ra and a_dims[ra - 2].dim_param:
        feeds = {}
        resized(g, feeds, a, ra - 2)     # (not 0: ORT's MatMul fails to broadcast some zero-sized batches)
        b.more_feeds.append(feeds)
    if 0 in a_shape or 0 in b_shape:
        arrays = {t.name: numpy_helper.to_array(t) for t in b.inits}
        def reference(feeds):
            with np.errstate(all="ignore"):
                return [np.matmul({**arrays, **feeds}[a], {**arrays, **feeds}[bb])]
        b.reference = reference
    return y


def gen_gemm(g: Gen, zero: bool = False, head: bool = False) -> str:
    b = g.b
    if not head:
        b.opset = g.pick([6, 7, 9, 11, 13, 17])
    m, k, n = g.dim(), g.dim(), g.dim()
    if g.chance(0.05):
        m, k = g.pick([1, 2, 3]), int(g.rng.integers(1000, 5000))   # GEMV with a K split
    if zero:
        which = g.pick(["m", "k", "n"])
        m, k, n = (0 if which == "m" else m), (0 if which == "k" else k), (0 if which == "n" else n)
    ta, tb = int(g.chance(0.5)), int(g.chance(0.5))
    attrs = {}
    if ta or g.chance(0.2):
        attrs["transA"] = ta
    if tb or g.chance(0.2):
        attrs["transB"] = tb
    alpha = g.pick([1.0, 1.0, 0.5, -2.0, 0.0, float(np.float32(g.rng.uniform(-3, 3)))])
    beta = g.pick([1.0, 1.0, 0.25, -1.0, 0.0, float(np.float32(g.rng.uniform(-3, 3)))])
    if alpha != 1.0 or g.chance(0.1):
        attrs["alpha"] = alpha
    if beta != 1.0 or g.chance(0.1):
        attrs["beta"] = beta
    c_opts = ["scalar", "1", "n", "1n", "m1", "mn", "11"] + ([] if b.opset < 11 else ["absent", "absent"])
    c_kind = g.pick(c_opts)
    c_shape = {"absent": None, "scalar": [], "1": [1], "n": [n], "1n": [1, n], "m1": [m, 1], "mn": [m, n],
               "11": [1, 1]}[c_kind]
    a_shape = [k, m] if ta else [m, k]
    b_shape = [n, k] if tb else [k, n]
    b_const = g.chance(0.6)
    a_const = not b_const and g.chance(0.15)
    a = g.tensor("A", a_shape, a_const, None if a_const else g.decl(a_shape, "a", allow_unknown=False))
    bb = g.tensor("B", b_shape, b_const, None if b_const else g.decl(b_shape, "b", allow_unknown=False))
    ins = [a, bb]
    a_vi = next((vi for vi in b.inputs if vi.name == a), None)
    m_axis = 1 if ta else 0
    if a_vi is not None and a_vi.type.tensor_type.shape.dim[m_axis].dim_param and c_shape in (None, [], [1], [n],
                                                                                                [1, n], [1, 1]):
        feeds = {}
        resized(g, feeds, a, m_axis, allow_zero=True)
        b.more_feeds.append(feeds)
    c_const = g.chance(0.5)
    if c_shape is not None:
        ins.append(g.tensor("C", c_shape, c_const, None if c_const else g.decl(c_shape, "c", allow_unknown=False)))
    if b.opset < 7 and (c_shape != [m, n] or g.chance(0.5)):
        attrs["broadcast"] = 1       # Gemm-6: C broadcasts only with this legacy attribute
    y = b.name("Y")
    node = b.name("gemm")
    b.nodes.append(helper.make_node("Gemm", ins, [y], name=node, **attrs))
    # README: Gemm-6 and older (legacy 'broadcast' semantics) are left to the CPU EP.
    (b.ours if b.opset >= 7 else b.cpu).add(node)
    b.k = max(b.k, k)
    b.desc.append(f"Gemm A{a_shape} B{b_shape}{'c' if b_const else ''} C={c_kind}{'c' if c_const else ''} "
                  f"{attrs} op{b.opset}")
    return y


def gen_conv(g: Gen, zero: bool = False, head: bool = False) -> str:
    b = g.b
    if not head:
        b.opset = g.pick([7, 11, 13, 17, 22])
    nd = g.pick([1, 2, 2, 2, 3])
    group = g.pick([1, 1, 1, 2, 3, 4])
    depthwise = g.chance(0.25)
    cpg = 1 if depthwise else g.pick([1, 2, 3, 4, 5, 8])
    if depthwise:
        group = g.pick([2, 3, 4, 8, 16])
    mult = g.pick([1, 1, 2, 3])
    cin, cout = group * cpg, group * mult * (1 if depthwise else g.pick([1, 2, 3]))
    batch = g.pick([1, 1, 2, 3])
    kmax = 5 if nd < 3 else 3
    kernel = [int(g.rng.integers(1, kmax + 1)) for _ in range(nd)]
    strides = [g.pick([1, 1, 2, 3]) for _ in range(nd)]
    dil = [g.pick([1, 1, 1, 2, 3]) for _ in range(nd)]
    auto_pad = g.pick(["NOTSET"] * 6 + ["VALID", "SAME_UPPER", "SAME_LOWER"])
    if auto_pad.startswith("SAME") and g.chance(0.7):
        dil = [1] * nd
    pads = [int(g.rng.integers(0, 4)) for _ in range(2 * nd)] if auto_pad == "NOTSET" and g.chance(0.7) else None
    spatial = []
    for d in range(nd):
        dk = dil[d] * (kernel[d] - 1) + 1
        lo = dk - (pads[d] + pads[d + nd] if pads else 0)
        spatial.append(max(1, lo + int(g.rng.integers(0 if g.chance(0.9) else -2, 9 if nd < 3 else 5))))
    if zero:
        which = g.pick(["batch", "cout", "spatial"])
        if which == "batch":
            batch = 0
        elif which == "cout":
            cout = 0
        else:
            spatial[int(g.rng.integers(nd))] = 0
    x_shape = [batch, cin] + spatial
    w_shape = [cout, cin // group] + kernel
    attrs: Dict[str, object] = {}
    if g.chance(0.7):
        attrs["kernel_shape"] = kernel
    if strides != [1] * nd or g.chance(0.2):
        attrs["strides"] = strides
    if dil != [1] * nd or g.chance(0.2):
        attrs["dilations"] = dil
    if pads is not None:
        attrs["pads"] = pads
    if auto_pad != "NOTSET" or g.chance(0.1):
        attrs["auto_pad"] = auto_pad
    if auto_pad != "NOTSET" and g.chance(0.05):
        attrs["pads"] = [int(g.rng.integers(0, 2)) for _ in range(2 * nd)]   # ORT rejects the session
    if group != 1 or g.chance(0.2):
        attrs["group"] = group
    w_const = g.chance(0.8)
    x_decl = g.decl(x_shape, "x", allow_unknown=not head)
    x = g.tensor("X", x_shape, False, x_decl)
    if isinstance(x_decl, list) and (isinstance(x_decl[0], str) or any(isinstance(d, str) for d in x_decl[2:])):
        feeds = {}
        for axis, d in enumerate(x_decl):
            if isinstance(d, str) and axis != 1:
                resized(g, feeds, x, axis, allow_zero=axis == 0)
        b.more_feeds.append(feeds)
    w_decl = None if w_const else g.decl(w_shape, "w", allow_unknown=False)
    w = g.tensor("W", w_shape, w_const, w_decl)
    kernel_known = "kernel_shape" in attrs or w_decl is None or all(isinstance(d, int) for d in w_decl[2:])
    ins = [x, w]
    if g.chance(0.6):
        bc = g.chance(0.8)
        ins.append(g.tensor("Bias", [cout], bc, None if bc else [cout]))
    y = b.name("Y")
    node = b.name("conv")
    b.nodes.append(helper.make_node("Conv", ins, [y], name=node, **attrs))
    # README: SAME_* with dilations ≠ 1, or kernel < stride − 1, is left to the CPU EP.
    # With the kernel unknown at GetCapability (no kernel_shape, W's spatial dims symbolic), any stride ≥ 3 may
    # be that case, so it is left to the CPU EP too.
    same = auto_pad.startswith("SAME")
    risky = any(kk + 2 <= s for kk, s in zip(kernel, strides)) if kernel_known else any(s >= 3 for s in strides)
    if not (same and (any(d != 1 for d in dil) or risky)):
        b.ours.add(node)
        if g.regime == "special":
            # ±inf/NaN weights meeting zero padding: ORT's Conv kernel gives 0·inf = NaN (as do we), but at
            # ORT_ENABLE_ALL its NCHWc rewrite of 2-D convs skips padded taps. Compare with the Conv kernel itself.
            b.baseline_opt = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    b.k = max(b.k, (cin // group) * int(np.prod(kernel)))
    b.desc.append(f"Conv X{x_shape} W{w_shape}{'c' if w_const else ''} {attrs} bias={len(ins) == 3} op{b.opset}")
    return y


def static_shape_of(b: Built, value: str) -> Optional[List[int]]:
    """The inferred shape of ``value`` if fully static (onnx shape inference on the model so far)."""
    tmp = b.model()
    tmp.graph.output.extend([helper.make_tensor_value_info(value, F, None)])
    try:
        inferred = onnx.shape_inference.infer_shapes(tmp, strict_mode=False)
    except Exception:
        return None
    for vi in list(inferred.graph.value_info) + list(inferred.graph.output):
        if vi.name == value and vi.type.tensor_type.HasField("shape"):
            dims = vi.type.tensor_type.shape.dim
            if all(d.HasField("dim_value") and d.dim_value >= 0 for d in dims):
                return [d.dim_value for d in dims]
    return None


def gen_chain(g: Gen) -> None:
    """A head (MatMul / Gemm / Conv with static shapes) followed by 1–4 elementwise nodes, some fusable, some not."""
    b = g.b
    b.opset = g.pick([9, 13, 14, 17, 21])
    head_kind = g.pick(["matmul", "gemm", "conv"])
    g.regime = "normal" if g.regime == "tiny" else g.regime
    saved = g.decl
    g.decl = lambda shape, tag, allow_unknown=True: list(shape)   # static shapes: fusion is decidable
    if head_kind == "matmul":
        opset = b.opset
        h = gen_matmul(g)
        b.opset = opset
    elif head_kind == "gemm":
        h = gen_gemm(g, head=True)
    else:
        h = gen_conv(g, head=True)
    g.decl = saved
    head_node = b.nodes[-1].name
    shape = static_shape_of(b, h)
    if shape is None or head_node not in b.ours:
        # Invalid or unclaimed head: still a differential test, no fusion expectations.
        b.outputs.append(helper.make_tensor_value_info(h, F, None))
        b.ours.discard(head_node)
        return
    fusing = True       # still inside the fusable prefix of the chain
    value = h
    for step in range(int(g.rng.integers(1, 5))):
        kind = g.pick(["relu", "clip", "clip", "leaky", "sigmoid", "hsig", "hswish", "hsmul", "add", "add",
                       "add_bcast", "add_const", "mul", "two_consumers", "graph_output"])
        if kind == "hswish" and b.opset < 14:
            kind = "relu"
        out = b.name("v")
        nm = b.name(f"e{step}_")
        fuse_this = True
        new_nodes = []
        if kind == "relu":
            new_nodes.append(helper.make_node("Relu", [value], [out], name=nm))
        elif kind == "sigmoid":
            new_nodes.append(helper.make_node("Sigmoid", [value], [out], name=nm))
        elif kind == "hswish":
            new_nodes.append(helper.make_node("HardSwish", [value], [out], name=nm))
        elif kind == "leaky":
            at = {} if g.chance(0.3) else {"alpha": float(np.float32(g.pick([0.01, 0.1, 0.2, -0.5, 1.5, 0.0])))}
            new_nodes.append(helper.make_node("LeakyRelu", [value], [out], name=nm, **at))
        elif kind == "hsig":
            at = {}
            if g.chance(0.7):
                at["alpha"] = float(np.float32(g.rng.uniform(-1, 1)))
            if g.chance(0.7):
                at["beta"] = float(np.float32(g.rng.uniform(-1, 1.5)))
            new_nodes.append(helper.make_node("HardSigmoid", [value], [out], name=nm, **at))
        elif kind == "hsmul":
            s = b.name("s")
            hs_default = g.chance(0.7)
            at = {"alpha": 1.0 / 6, "beta": 0.5} if hs_default else {"alpha": 0.3, "beta": 0.5}
            new_nodes.append(helper.make_node("HardSigmoid", [value], [s], name=nm, **at))
            mul_ins = [value, s] if g.chance(0.5) else [s, value]
            nm2 = b.name(f"e{step}m_")
            new_nodes.append(helper.make_node("Mul", mul_ins, [out], name=nm2))
            fuse_this = hs_default
        elif kind == "clip":
            fuse_this = clip_node(g, b, value, out, nm, new_nodes)
        elif kind == "add":
            r = g.tensor("R", shape, False)
            ins = [value, r] if g.chance(0.5) else [r, value]
            new_nodes.append(helper.make_node("Add", ins, [out], name=nm))
        elif kind == "add_bcast":
            rshape = [1 if g.chance(0.5) else d for d in shape]
            if rshape == list(shape):
                rshape = rshape[1:]      # fewer dims: broadcasting all the same
            if not rshape:
                rshape = [1]
            r_const = g.chance(0.5)
            r = g.tensor("R", rshape, r_const)
            ins = [value, r] if g.chance(0.5) else [r, value]
            new_nodes.append(helper.make_node("Add", ins, [out], name=nm))
            fuse_this = rshape == list(shape) and not r_const    # [1] + [1]: a plain residual after all
        elif kind == "add_const":
            r = g.tensor("R", shape, True)
            new_nodes.append(helper.make_node("Add", [value, r], [out], name=nm))
            fuse_this = False
        elif kind == "mul":
            r = g.tensor("R", shape, False)
            new_nodes.append(helper.make_node("Mul", [value, r], [out], name=nm))
            fuse_this = False
        elif kind == "two_consumers":
            p, q = b.name("p"), b.name("q")
            nm2, nm3 = b.name(f"e{step}b_"), b.name(f"e{step}c_")
            new_nodes += [helper.make_node("Relu", [value], [p], name=nm),
                          helper.make_node("Sigmoid", [value], [q], name=nm2),
                          helper.make_node("Add", [p, q], [out], name=nm3)]
            fuse_this = False
        elif kind == "graph_output":
            # The current value is also a graph output: nothing may be fused onto it.
            b.outputs.append(helper.make_tensor_value_info(value, F, None))
            new_nodes.append(helper.make_node("Relu", [value], [out], name=nm))
            fuse_this = False
        b.nodes.extend(new_nodes)
        b.desc.append(f"{kind}{'' if fuse_this else '(unfusable)'}")
        fusing = fusing and fuse_this
        if fusing:
            b.ours.update(n.name for n in new_nodes)
        elif kind in ("add_bcast", "add_const", "mul", "two_consumers", "graph_output") or not fuse_this:
            b.cpu.update(n.name for n in new_nodes)
        value = out
    b.outputs.append(helper.make_tensor_value_info(value, F, None))


def clip_node(g: Gen, b: Built, value: str, out: str, nm: str, nodes: List[onnx.NodeProto]) -> bool:
    """A Clip in one of its forms; returns whether it is fusable."""
    lo = float(np.float32(g.rng.uniform(-2, 1)))
    hi = float(np.float32(g.rng.uniform(-1, 3)))
    if g.chance(0.1) and b.opset >= 11:
        # min > max: Clip-11+ gives max. (Clip-6 fails ORT's session unless ORT fuses it into a FusedConv, which
        # then gives max too; we fuse it and give max.)
        lo, hi = hi + 0.5, lo
    use_lo, use_hi = g.chance(0.7), g.chance(0.7)
    if b.opset < 11:
        at = {}
        if use_lo:
            at["min"] = lo
        if use_hi:
            at["max"] = hi
        nodes.append(helper.make_node("Clip", [value], [out], name=nm, **at))
        if use_hi:
            # ORT's Clip-6 kernel fails the session on min > max (also when its own Relu + Clip fusion raises min
            # to 0 above a negative max), while its Conv + Clip fusion computes max; we fuse it and give max too.
            # Where ORT fails, ours may succeed.
            b.cpu_may_fail = "min_ <= max_"
        return True
    fusable = True
    ins = [value]
    for use, v, tag in ((use_lo, lo, "lo"), (use_hi, hi, "hi")):
        if not use:
            ins.append("")
            continue
        shape = [] if g.chance(0.8) else [1]
        name = b.name(tag)
        arr = np.full(shape, v, np.float32)
        if g.chance(0.8):
            b.inits.append(numpy_helper.from_array(arr, name))
        else:
            b.inputs.append(helper.make_tensor_value_info(name, F, shape))
            b.feeds[name] = arr
            fusable = False
        ins.append(name)
    while ins[-1] == "":
        ins.pop()
    nodes.append(helper.make_node("Clip", ins, [out], name=nm))
    return fusable


def gen_odd(g: Gen) -> None:
    """Odd but legal: zero-sized dims, one weight feeding two nodes, a MatMul whose output is a graph output and
    also feeds a fusable Relu."""
    b = g.b
    what = g.pick(["zero_matmul", "zero_gemm", "zero_conv", "shared_weight", "output_and_epilogue"])
    b.desc.append(what)
    if what.startswith("zero_"):
        y = {"zero_matmul": gen_matmul, "zero_gemm": gen_gemm, "zero_conv": gen_conv}[what](g, zero=True)
        if what == "zero_conv" and b.nodes[-1].name in b.ours:
            # ORT's NCHWc rewrite (ORT_ENABLE_ALL) fails on 0 output channels; its Conv kernel returns the empty
            # tensor, as do we.
            b.baseline_opt = ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
        b.outputs.append(helper.make_tensor_value_info(y, F, None))
        return
    b.opset = 17
    m, k, n = g.dim(False), g.dim(), g.dim()
    if what == "shared_weight":
        w = b.name("W")
        b.inits.append(numpy_helper.from_array(g.data([k, n]), w))
        x1 = g.tensor("X", [m, k], False)
        x2 = g.tensor("X", [m + 1, k], False)
        y1, y2 = b.name("Y"), b.name("Y")
        b.nodes += [helper.make_node("MatMul", [x1, w], [y1], name="mm1"),
                    helper.make_node("Gemm", [x2, w], [y2], name="gemm2", alpha=0.5)]
        b.ours |= {"mm1", "gemm2"}
        b.outputs += [helper.make_tensor_value_info(y1, F, None), helper.make_tensor_value_info(y2, F, None)]
    else:
        x = g.tensor("X", [m, k], False)
        w = g.tensor("W", [k, n], True)
        h, y = b.name("H"), b.name("Y")
        b.nodes += [helper.make_node("MatMul", [x, w], [h], name="mm"),
                    helper.make_node("Relu", [h], [y], name="relu")]
        b.ours.add("mm")
        b.cpu.add("relu")
        b.outputs += [helper.make_tensor_value_info(h, F, None), helper.make_tensor_value_info(y, F, None)]
    b.k = k


def gen_dynchain(g: Gen) -> None:
    """MatMul with a symbolic batch, then Relu / residual Add / Clip: the residual declared with the same symbol
    (fusable) or another one (not provably the same shape: must not fuse); run again with another batch."""
    b = g.b
    b.opset = g.pick([13, 17])
    m, k, n = g.dim(), g.dim(), g.dim()
    batch = g.pick([1, 2, 3])
    lead = [batch] if g.chance(0.7) else []
    a = g.tensor("A", lead + [m, k], False, (["N"] if lead else []) + ["M" if not lead else m, k])
    w = g.tensor("W", [k, n], True)
    same_symbol = g.chance(0.7)
    r_decl = (["N" if same_symbol else "Q"] if lead else []) + [("M" if same_symbol else "P") if not lead else m, n]
    r = g.tensor("R", lead + [m, n], False, r_decl)
    h, a1, y = b.name("H"), b.name("V"), b.name("Y")
    nodes = [helper.make_node("MatMul", [a, w], [h], name="mm"),
             helper.make_node("Relu", [h], [a1], name="relu"),
             helper.make_node("Add", [a1, r] if g.chance(0.5) else [r, a1], [y], name="add")]
    b.nodes += nodes
    b.ours |= {"mm", "relu"}
    if not same_symbol:
        b.cpu.add("add")
    b.outputs.append(helper.make_tensor_value_info(y, F, None))
    b.k = k
    b.desc.append(f"dynchain A{lead + [m, k]} R{r_decl} same_symbol={same_symbol}")
    over: Dict[str, np.ndarray] = {}
    resized(g, over, a, 0)
    shape = list(b.feeds[r].shape)
    shape[0] = over[a].shape[0]
    over[r] = g.data(shape)
    b.more_feeds.append(over)


def build_case(kind: str, i: int, base_seed: int = BASE_SEED) -> Built:
    rng = np.random.default_rng([base_seed, KINDS.index(kind), i])
    b = Built()
    g = Gen(rng, b)
    if kind == "chain":
        gen_chain(g)
    elif kind == "odd":
        gen_odd(g)
    elif kind == "dynchain":
        gen_dynchain(g)
    else:
        y = {"matmul": gen_matmul, "gemm": gen_gemm, "conv": gen_conv}[kind](g)
        b.outputs.append(helper.make_tensor_value_info(y, F, None))
    return b


# ------------------------------------------------------------------------------------------------ checking


def check_built(b: Built) -> None:
    model = b.model()
    data = harness.model_bytes(model)
    names = [o.name for o in model.graph.output]
    runs = [b.feeds] + [{**b.feeds, **over} for over in b.more_feeds]
    base, sess = None, None
    for n, feeds in enumerate(runs):
        expected, cpu_err = None, None
        try:
            if b.reference is not None:
                expected = b.reference(feeds)
            else:
                if base is None:
                    base = harness.make_session(data, "cpu", record_assignment=False, opt_level=b.baseline_opt)
                expected = harness.run(base, feeds)
        except Exception as e:  # noqa: BLE001 - any ORT error: ours must fail too
            cpu_err = e
        if cpu_err is not None:
            if b.cpu_may_fail and b.cpu_may_fail in str(cpu_err):
                try:
                    harness.run(harness.make_session(data, "asymo"), feeds)
                except Exception:  # noqa: BLE001 - an ORT error is fine too
                    pass
                return
            with pytest.raises(Exception) as ours_err:
                if sess is None:
                    sess = harness.make_session(data, "asymo")
                harness.run(sess, feeds)
            assert "AsyMo" not in type(ours_err.value).__name__
            if sess is None:
                return      # both failed at session creation
            continue
        if sess is None:
            sess = harness.make_session(data, "asymo")
        actual = harness.run(sess, feeds)
        label = names if n == 0 else [f"{nm} (run {n}, shapes {[v.shape for v in feeds.values()]})" for nm in names]
        harness.assert_close(expected, actual, rtol=tol(b.k), names=label)
    if harness.cpu_only() or sess is None:
        return
    assign = harness.assignment(sess)
    del sess, base
    on_ours = {n for n, _ in assign.get(harness.EP_NAME, [])}
    on_cpu = {n for n, _ in assign.get(harness.CPU_EP, [])}
    original = {n.name for n in model.graph.node}
    if (on_ours | on_cpu) - original:
        # ORT rewrote the graph before partitioning (e.g. MatMul + Add → Gemm with Reshapes, HardSwish expanded):
        # node names no longer tell what was fused; still, no claimed op type may be left on the CPU EP.
        heavy = {n.op_type for n in model.graph.node if n.name in b.ours and n.op_type in harness.HEAVY_OPS}
        wrong_cpu = sorted(n for n, op in assign.get(harness.CPU_EP, []) if op in heavy)
    else:
        wrong_cpu = sorted(b.ours & on_cpu)
    wrong_ours = sorted(b.cpu & on_ours)
    assert not wrong_cpu, f"nodes that must run on {harness.EP_NAME} are on the CPU EP: {wrong_cpu}; {assign}"
    assert not wrong_ours, f"nodes that must not be claimed/fused are on {harness.EP_NAME}: {wrong_ours}; {assign}"
    memcpy = [n for ns in assign.values() for n in ns if n[1].startswith("Memcpy")]
    assert not memcpy, f"Memcpy nodes inserted: {memcpy}"


CASE_PARAMS = [pytest.param(kind, i, id=f"{kind}-{i}") for kind in SELECTED for i in range(ITERS)]


@pytest.mark.parametrize("kind,i", CASE_PARAMS)
def test_fuzz(asymo, kind, i):
    b = build_case(kind, i)
    if harness.cpu_only() and (b.reference is not None or b.cpu_may_fail or b.baseline_opt is not None):
        pytest.skip("the case works around a CPU EP quirk, which the CPU-only stand-in shares")
    try:
        check_built(b)
    except AssertionError as e:
        raise AssertionError(f"{kind}-{i} (seed {BASE_SEED}): {b.model().doc_string}\n{e}") from None


# ------------------------------------------------------------------------------------------------ regressions
# Deterministic cases for bugs the fuzzer found (each failed before its fix).


def _chain_model(head: str, epilogue, extra_inputs=(), inits=(), opset=17):
    """`head` (MatMul / Gemm without C / Conv without bias) producing "h" from "x", then `epilogue` ending in "y"."""
    rng = np.random.default_rng(11)
    if head == "Gemm":
        xs, hs = [5, 12], [5, 7]
        w = numpy_helper.from_array(rng.standard_normal((7, 12)).astype(np.float32), "w")
        node = helper.make_node("Gemm", ["x", "w"], ["h"], name="head", transB=1, alpha=0.7, beta=3.0)
    elif head == "Conv":
        xs, hs = [2, 3, 9, 9], [2, 8, 9, 9]
        w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(np.float32), "w")
        node = helper.make_node("Conv", ["x", "w"], ["h"], name="head", pads=[1, 1, 1, 1])
    else:
        xs, hs = [2, 5, 12], [2, 5, 7]
        w = numpy_helper.from_array(rng.standard_normal((12, 7)).astype(np.float32), "w")
        node = helper.make_node("MatMul", ["x", "w"], ["h"], name="head")
    inputs = [helper.make_tensor_value_info("x", F, xs)]
    inputs += [helper.make_tensor_value_info(n, F, hs) for n in extra_inputs]
    graph = helper.make_graph([node, *epilogue], "regression", inputs, [helper.make_tensor_value_info("y", F, hs)],
                              [w, *inits])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    feeds = {"x": (rng.standard_normal(xs) * 2).astype(np.float32)}
    feeds.update({n: rng.standard_normal(hs).astype(np.float32) for n in extra_inputs})
    return model, feeds


@pytest.mark.parametrize("head", ["Gemm", "Conv"])
def test_residual_add_after_head_without_optional_input(asymo, head):
    """A residual Add fused onto a Gemm without C / a Conv without bias: the residual was bound to the empty C /
    bias slot (Gemm: added twice, once scaled by beta; Conv: a run-time shape error)."""
    model, feeds = _chain_model(head, [helper.make_node("Add", ["h", "r"], ["y"], name="e0")], extra_inputs=["r"])
    result = harness.compare(model, feeds)
    if not harness.cpu_only():
        assert "e0" in {n for n, _ in result.assignment.get(harness.EP_NAME, [])}, result.assignment


def _scalar(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.float32), name)


@pytest.mark.parametrize("bounds", ["max_only", "min_only", "min_above_max"])
def test_clip11_bounds_like_cpu_ep(asymo, bounds):
    """Clip-11+: an absent bound is ±FLT_MAX (so ±inf is clipped to ±FLT_MAX), and min > max gives max."""
    ins, inits = {"max_only": (["h", "", "hi"], [_scalar("hi", 0.25)]),
                  "min_only": (["h", "lo"], [_scalar("lo", -0.5)]),
                  "min_above_max": (["h", "lo", "hi"], [_scalar("lo", 1.0), _scalar("hi", -1.0)])}[bounds]
    model, feeds = _chain_model("MatMul", [helper.make_node("Clip", ins, ["y"], name="e0")], inits=inits)
    feeds["x"][0, 1, 0] = np.inf      # one infinite term: that output row is ±inf, not NaN
    feeds["x"][1, 2, 3] = -np.inf
    result = harness.compare(model, feeds)
    if not harness.cpu_only():
        assert "e0" in {n for n, _ in result.assignment.get(harness.EP_NAME, [])}, result.assignment


def test_fuzz_is_deterministic():
    a, b = build_case("conv", 3).model(), build_case("conv", 3).model()
    assert a.SerializeToString() == b.SerializeToString()


@pytest.mark.parametrize("n", [1, 3, 7])
def test_clip11_min_above_max_narrow_outputs(asymo, n):
    """min > max gives max on every store path (narrow outputs take the scalar epilogue, which gave min)."""
    rng = np.random.default_rng(5)
    w = numpy_helper.from_array(rng.standard_normal((4, n)).astype(np.float32), "w")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"], name="head"),
             helper.make_node("Clip", ["h", "lo", "hi"], ["y"], name="e0")]
    graph = helper.make_graph(nodes, "clip", [helper.make_tensor_value_info("x", F, [9, 4])],
                              [helper.make_tensor_value_info("y", F, [9, n])],
                              [w, _scalar("lo", 1.0), _scalar("hi", -1.0)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    harness.compare(model, {"x": rng.standard_normal((9, 4)).astype(np.float32)})


@pytest.mark.parametrize("auto_pad", ["VALID", "SAME_UPPER", "SAME_LOWER"])
def test_conv_auto_pad_with_pads_is_cpu_ep_error(asymo, auto_pad):
    """auto_pad ≠ NOTSET together with pads fails ORT's session; we must not claim (and compute) it."""
    rng = np.random.default_rng(2)
    w = numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="c", auto_pad=auto_pad, pads=[1, 0, 0, 1])
    graph = helper.make_graph([node], "p", [helper.make_tensor_value_info("x", F, [1, 3, 7, 7])],
                              [helper.make_tensor_value_info("y", F, None)], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    feeds = {"x": rng.standard_normal((1, 3, 7, 7)).astype(np.float32)}
    with pytest.raises(Exception, match="auto_pad"):
        harness.run(harness.make_session(model, "cpu"), feeds)
    with pytest.raises(Exception, match="auto_pad"):
        harness.run(harness.make_session(model, "asymo"), feeds)


def test_fused_sigmoid_of_very_negative_values_is_zero(asymo):
    """Fused Sigmoid of y ≤ −18 (−inf included) is exactly 0 as on the CPU EP (it was ~6e-39, so a later `· inf`
    gave ±inf where the CPU EP gives NaN)."""
    vals = np.array([-np.inf, -1000, -100, -88, -50, -20, -18, -17, 0, 17, 18, 50, np.inf, np.nan], np.float32)
    n = len(vals)
    nodes = [helper.make_node("Gemm", ["a", "b", "c"], ["h"], name="g"),
             helper.make_node("Sigmoid", ["h"], ["s"], name="e0"),
             helper.make_node("Mul", ["s", "big"], ["y"], name="e1")]
    graph = helper.make_graph(nodes, "sig", [helper.make_tensor_value_info("a", F, [3, 1]),
                                             helper.make_tensor_value_info("c", F, [1, n]),
                                             helper.make_tensor_value_info("big", F, [3, n])],
                              [helper.make_tensor_value_info("y", F, None)],
                              [numpy_helper.from_array(np.zeros((1, n), np.float32), "b")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 10
    feeds = {"a": np.zeros((3, 1), np.float32), "c": vals[None], "big": np.full((3, n), np.inf, np.float32)}
    result = harness.compare(model, feeds)
    if not harness.cpu_only():
        assert "e0" in {nm for nm, _ in result.assignment.get(harness.EP_NAME, [])}, result.assignment
