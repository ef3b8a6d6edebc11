"""The single-node case matrix: MatMul, Gemm and Conv models of one node each, grouped by what they exercise.

Each ``Case`` says how to build a one-node model (inputs declared with symbolic or fixed dims, as graph inputs or
constant initializers), the concrete input shapes to run it with, and whether the node must land on our EP
(``expect_on_ep``: True = must; None = either is fine, correctness is still asserted — the documented fallbacks).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple, Union

import numpy as np
import onnx

from models import GraphBuilder

Dim = Union[int, str]

# Groups whose node may stay on the CPU EP (placement not asserted, correctness asserted).
FALLBACK_GROUPS = {
    "conv3d": "3-D convolution may stay on the CPU EP (issue #2)",
    "conv_dynamic_weight": "Conv with a weight that is a graph input (not constant) may stay on the CPU EP",
    "conv_same_small_kernel": "SAME_* padding with kernel < stride - 1 (ORT computes a negative leading pad) is "
                              "left to the CPU EP (README)",
}


@dataclass
class In:
    shape: Tuple[int, ...]                 # concrete shape used at run time
    const: bool = False                    # constant initializer (True) or graph input (False)
    decl: Optional[Sequence[Dim]] = None   # declared shape for graph inputs (symbols allowed); default = shape
    special: bool = False                  # put NaN and ±inf into the data (first, last, middle element)


@dataclass
class Case:
    group: str
    id: str
    op: str
    inputs: List[In]
    attrs: Dict[str, object] = field(default_factory=dict)
    opset: int = 17
    expect_on_ep: Optional[bool] = True

    @property
    def full_id(self) -> str:
        return f"{self.group}-{self.id}"

    def seed(self) -> int:
        return zlib.crc32(self.full_id.encode())

    def build(self) -> Tuple[onnx.ModelProto, Dict[str, np.ndarray]]:
        rng = np.random.default_rng(self.seed())
        g = GraphBuilder(f"single_{self.op}", seed=self.seed(), opset=self.opset)
        names, feeds = [], {}
        for i, spec in enumerate(self.inputs):
            if spec is None:
                names.append("")
                continue
            data = rng.standard_normal(spec.shape).astype(np.float32)
            if spec.special and data.size >= 3:
                data.flat[0], data.flat[-1], data.flat[data.size // 2] = np.nan, np.inf, -np.inf
            if spec.const:
                names.append(g.const(f"in{i}", data))
            else:
                nm = g.input(f"in{i}", list(spec.decl) if spec.decl is not None else list(spec.shape))
                names.append(nm)
                feeds[nm] = data
        while names and names[-1] == "":
            names.pop()
        y = g.node(self.op, names, name=f"{self.op.lower()}_node", **self.attrs)
        model = g.build([y], doc=self.full_id, names=["y"])
        return model, feeds


CASES: List[Case] = []


def add(group: str, id: str, op: str, inputs: List[Optional[In]], attrs: Optional[Dict[str, object]] = None,
        opset: int = 17, expect_on_ep: Optional[bool] = True) -> None:
    if group in FALLBACK_GROUPS:
        expect_on_ep = None
    CASES.append(Case(group, id, op, inputs, dict(attrs or {}), opset, expect_on_ep))


def _s(shape: Sequence[int]) -> str:
    return "x".join(map(str, shape)) if len(shape) else "scalar"


# ============================================================================================ MatMul

def _matmul(group: str, a: Sequence[int], b: Sequence[int], tag: str = "", a_decl=None, b_decl=None,
            both: Sequence[bool] = (True, False), opset: int = 17) -> None:
    for b_const in both:
        kind = "constB" if b_const else "dynB"
        add(group, f"{_s(a)}_{_s(b)}_{kind}{tag}", "MatMul",
            [In(tuple(a), decl=a_decl), In(tuple(b), const=b_const, decl=None if b_const else b_decl)], opset=opset)


# 1-D operands (promotion to matrices and back)
for k in (1, 7, 64, 2048):
    _matmul("matmul_1d", [k], [k])
for k, n in ((1, 1), (5, 3), (16, 17), (2048, 8)):
    _matmul("matmul_1d", [k], [k, n])
for m, k in ((1, 1), (3, 5), (17, 16), (8, 2048)):
    _matmul("matmul_1d", [m, k], [k])
_matmul("matmul_1d", [5], [2, 5, 3])
_matmul("matmul_1d", [2, 3, 5], [5])

# plain 2-D over sizes 1, primes, and around multiples of 4/8/16
for m, k, n in ((1, 1, 1), (1, 5, 1), (1, 7, 9), (2, 3, 4), (3, 4, 5), (4, 4, 4), (7, 13, 11), (8, 8, 8),
                (15, 16, 17), (16, 15, 16), (17, 17, 17), (31, 33, 32), (32, 32, 32), (33, 31, 63), (64, 64, 64),
                (63, 65, 66), (1, 100, 200), (200, 100, 1), (127, 1, 129), (5, 300, 7)):
    _matmul("matmul_2d", [m, k], [k, n])

# large K
for m, k, n in ((1, 2048, 1), (4, 2048, 16), (3, 2048, 33), (16, 2048, 64), (1, 4096, 7), (2, 3000, 5)):
    _matmul("matmul_large_k", [m, k], [k, n])

# N-D batched with broadcasting
for a, b in (([2, 3, 4], [4, 5]), ([2, 3, 4], [2, 4, 5]), ([2, 1, 3, 4], [5, 4, 6]), ([1, 3, 4], [2, 4, 5]),
             ([3, 4], [2, 4, 5]), ([2, 2, 3, 4], [2, 2, 4, 5]), ([4, 1, 5, 6], [1, 3, 6, 2]), ([2, 3, 4], [1, 4, 5]),
             ([1, 1, 7, 9], [9, 3]), ([3, 17, 33], [33, 16]), ([2, 8, 16, 16], [2, 8, 16, 16]), ([6, 1, 1, 8], [8, 1])):
    _matmul("matmul_batched", a, b)

# symbolic dims (dynamic batch / sequence; both operands activations with every dim symbolic)
_matmul("matmul_symbolic", [3, 8], [8, 5], a_decl=["M", 8], both=(True,))
_matmul("matmul_symbolic", [2, 7, 16], [16, 9], a_decl=["B", "S", 16], both=(True,))
_matmul("matmul_symbolic", [2, 7, 16], [16, 9], tag="_allsym", a_decl=["B", "S", "K"], b_decl=["K", "N"],
        both=(False,))
_matmul("matmul_symbolic", [2, 4, 6, 8], [2, 4, 8, 6], tag="_attn", a_decl=["B", "H", "S", "D"],
        b_decl=["B", "H", "D", "S"], both=(False,))
_matmul("matmul_symbolic", [1, 33], [33, 17], a_decl=["M", "K"], b_decl=["K", "N"], both=(False,))
_matmul("matmul_symbolic", [5, 12], [12], a_decl=["M", 12], both=(True, False))

# ============================================================================================ Gemm


def _gemm(group: str, m: int, k: int, n: int, trans_a: int = 0, trans_b: int = 0, alpha: float = 1.0,
          beta: float = 1.0, c: Optional[Sequence[int]] = "full", c_const: bool = True, b_const: bool = True,
          a_decl=None, tag: str = "", opset: int = 17) -> None:
    a_shape = (k, m) if trans_a else (m, k)
    b_shape = (n, k) if trans_b else (k, n)
    ins: List[Optional[In]] = [In(a_shape, decl=a_decl), In(b_shape, const=b_const)]
    if c == "full":
        c = (m, n)
    if c is not None:
        ins.append(In(tuple(c), const=c_const))
    attrs = {}
    if trans_a:
        attrs["transA"] = 1
    if trans_b:
        attrs["transB"] = 1
    if alpha != 1.0:
        attrs["alpha"] = float(alpha)
    if beta != 1.0:
        attrs["beta"] = float(beta)
    cid = "noC" if c is None else f"C{_s(c)}{'' if c_const else 'dyn'}"
    id = (f"{m}x{k}x{n}_tA{trans_a}tB{trans_b}_a{alpha:g}_b{beta:g}_{cid}"
          f"{'' if b_const else '_dynB'}{tag}")
    add(group, id, "Gemm", ins, attrs, opset=opset)


for ta in (0, 1):
    for tb in (0, 1):
        for m, k, n in ((1, 1, 1), (3, 5, 7), (16, 16, 16), (17, 33, 9), (64, 32, 1)):
            _gemm("gemm_trans", m, k, n, ta, tb)
        _gemm("gemm_trans", 5, 6, 7, ta, tb, b_const=False)

for alpha in (1.0, 0.5, -2.0, 0.0):
    for beta in (1.0, 0.0, 0.25, -1.0):
        _gemm("gemm_alpha_beta", 7, 9, 5, alpha=alpha, beta=beta)

for m, k, n in ((4, 8, 16), (13, 7, 5)):
    _gemm("gemm_bias", m, k, n, c=None)
    for c in ((), (1,), (n,), (1, n), (m, 1), (m, n), (1, 1)):
        for c_const in (True, False):
            _gemm("gemm_bias", m, k, n, c=c, c_const=c_const)
for c in ((), (1,), (6,), (1, 6), (9, 1), (9, 6), (1, 1)):
    _gemm("gemm_bias", 9, 11, 6, trans_a=1, trans_b=1, alpha=0.5, beta=2.0, c=c)

for m, k, n in ((1, 2048, 1), (2, 2048, 64), (8, 2048, 33), (1, 1024, 1000), (33, 65, 17), (4, 4, 4), (8, 8, 8),
                (16, 16, 16), (15, 17, 31), (32, 64, 128), (100, 1, 100)):
    _gemm("gemm_sizes", m, k, n, trans_b=1, c=(n,))
    _gemm("gemm_sizes", m, k, n, c=None, b_const=False)

_gemm("gemm_symbolic", 3, 16, 8, a_decl=["M", 16], c=(8,))
_gemm("gemm_symbolic", 3, 16, 8, trans_a=1, a_decl=[16, "M"], c=(8,))
_gemm("gemm_symbolic", 6, 10, 4, a_decl=["M", "K"], c=(1, 4), b_const=False, tag="_allsym")
_gemm("gemm_symbolic", 1, 32, 32, trans_b=1, a_decl=["M", 32], c=None)

# ============================================================================================ Conv


def _conv(group: str, x: Sequence[int], cout: int, k: Sequence[int], strides=None, pads=None, dilations=None,
          group_: int = 1, bias: bool = True, auto_pad: Optional[str] = None, kernel_shape: bool = True,
          x_decl=None, w_const: bool = True, b_const: bool = True, tag: str = "", opset: int = 17) -> None:
    nd = len(k)
    cin = x[1]
    w_shape = (cout, cin // group_) + tuple(k)
    ins: List[Optional[In]] = [In(tuple(x), decl=x_decl), In(w_shape, const=w_const)]
    if bias:
        ins.append(In((cout,), const=b_const))
    attrs: Dict[str, object] = {}
    if kernel_shape:
        attrs["kernel_shape"] = list(k)
    if strides is not None:
        attrs["strides"] = list(strides) if not isinstance(strides, int) else [strides] * nd
    if pads is not None:
        attrs["pads"] = list(pads) if not isinstance(pads, int) else [pads] * (2 * nd)
    if dilations is not None:
        attrs["dilations"] = list(dilations) if not isinstance(dilations, int) else [dilations] * nd
    if group_ != 1:
        attrs["group"] = group_
    if auto_pad is not None:
        attrs["auto_pad"] = auto_pad
    parts = [f"x{_s(x)}", f"o{cout}", f"k{_s(k)}"]
    if strides is not None:
        parts.append(f"s{_s(attrs['strides'])}")
    if pads is not None:
        parts.append(f"p{_s(attrs['pads'])}")
    if dilations is not None:
        parts.append(f"d{_s(attrs['dilations'])}")
    if group_ != 1:
        parts.append(f"g{group_}")
    if auto_pad is not None:
        parts.append(auto_pad)
    parts.append("bias" if bias else "nobias")
    if not kernel_shape:
        parts.append("noks")
    if not w_const:
        parts.append("dynW")
    if bias and not b_const:
        parts.append("dynB")
    add(group, "_".join(parts) + tag, "Conv", ins, attrs, opset=opset)


# kernel sizes × channel configurations
for i, k in enumerate(((1, 1), (2, 2), (3, 3), (5, 5), (7, 7), (1, 3), (3, 1), (1, 7))):
    _conv("conv2d_kernel", (1, 1, 9, 9), 1, k, bias=i % 2 == 0)
    _conv("conv2d_kernel", (2, 3, 11, 13), 8, k, pads=[kk // 2 for kk in k] * 2, bias=i % 2 == 1)
    _conv("conv2d_kernel", (1, 17, 16, 16), 5, k, bias=True)

# strides × pads (symmetric and asymmetric)
for s in (1, 2, 3, (2, 1), (1, 2)):
    for p in (0, 1, (0, 1, 1, 0), (2, 0, 1, 3)):
        _conv("conv2d_stride_pad", (2, 4, 10, 11), 6, (3, 3), strides=s, pads=p, bias=p != 0)

# dilations
for d in (2, 3, (2, 1), (1, 3)):
    for k in ((3, 3), (2, 3)):
        for s in (1, 2):
            _conv("conv2d_dilation", (1, 3, 15, 14), 4, k, strides=s, dilations=d, pads=1)

# groups: grouped, depthwise, depthwise with channel multiplier
for cin, cout, grp in ((4, 4, 2), (6, 9, 3), (8, 8, 8), (16, 16, 16), (8, 16, 8), (3, 9, 3), (32, 32, 32),
                       (12, 6, 3), (17, 17, 17), (64, 64, 64), (16, 32, 4), (24, 48, 24)):
    _conv("conv2d_group", (2, cin, 9, 10), cout, (3, 3), group_=grp, pads=1)
    _conv("conv2d_group", (1, cin, 12, 12), cout, (3, 3), group_=grp, strides=2, pads=(1, 1, 0, 0), bias=False)
for cin, cout in ((8, 8), (8, 24)):
    _conv("conv2d_group", (1, cin, 13, 11), cout, (3, 3), group_=cin, dilations=2, pads=(2, 1, 2, 1))
    _conv("conv2d_group", (2, cin, 13, 11), cout, (5, 5), group_=cin, strides=2, auto_pad="SAME_UPPER")

# auto_pad modes (even kernels and even strides make SAME_UPPER and SAME_LOWER differ)
for mode in ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID"):
    for s in (1, 2):
        for hw in ((8, 8), (7, 9)):
            for k in ((3, 3), (2, 2)):
                pads = (1, 0, 0, 1) if mode == "NOTSET" else None
                _conv("conv2d_autopad", (1, 3) + hw, 4, k, strides=s, pads=pads, auto_pad=mode)

# kernel_shape omitted (inferred from W)
for k, kw in (((3, 3), {}), ((1, 1), {}), ((5, 3), {"pads": 1}), ((3, 3), {"strides": 2, "pads": 1}),
              ((3, 3), {"group_": 4, "pads": 1}), ((2, 2), {"auto_pad": "SAME_LOWER"})):
    _conv("conv2d_no_kernel_shape", (1, 4, 9, 9), 8, k, kernel_shape=False, **kw)

# symbolic batch / spatial dims
for x, decl, kw in (((3, 4, 9, 9), ["N", 4, 9, 9], {}),
                    ((2, 4, 9, 9), ["N", 4, "H", "W"], {"pads": 1}),
                    ((1, 4, 17, 6), ["N", 4, "H", "W"], {"strides": 2, "pads": 1}),
                    ((2, 4, 8, 11), ["N", 4, "H", "W"], {"auto_pad": "SAME_UPPER", "strides": 2}),
                    ((2, 4, 8, 11), ["N", 4, "H", "W"], {"auto_pad": "SAME_LOWER", "strides": 2}),
                    ((2, 4, 7, 7), ["N", 4, "H", "W"], {"auto_pad": "VALID"}),
                    ((2, 4, 10, 10), ["N", 4, "H", "W"], {"group_": 4, "pads": 1}),
                    ((1, 4, 5, 12), [1, 4, "H", "W"], {"dilations": 2, "pads": 2})):
    _conv("conv2d_dynamic", x, 8, (3, 3), x_decl=decl, **kw)

# edge sizes: 1x1 images, thin images, big K (C·kh·kw), single output channel, odd batch
_conv("conv2d_sizes", (1, 1, 1, 1), 1, (1, 1))
_conv("conv2d_sizes", (2, 3, 1, 1), 5, (3, 3), pads=1)
_conv("conv2d_sizes", (1, 4, 1, 17), 3, (1, 3))
_conv("conv2d_sizes", (1, 4, 17, 1), 3, (3, 1), strides=2)
_conv("conv2d_sizes", (1, 512, 4, 4), 16, (1, 1))
_conv("conv2d_sizes", (1, 256, 6, 6), 8, (3, 3), pads=1)
_conv("conv2d_sizes", (1, 2048, 2, 2), 7, (1, 1), bias=False)
_conv("conv2d_sizes", (1, 16, 8, 8), 1, (3, 3))
_conv("conv2d_sizes", (3, 16, 8, 8), 33, (3, 3), pads=1)
_conv("conv2d_sizes", (1, 3, 32, 32), 64, (7, 7), strides=2, pads=3)
_conv("conv2d_sizes", (1, 5, 4, 4), 2, (4, 4))

# 1-D convolution
for k in (1, 3, 5):
    for s in (1, 2):
        _conv("conv1d", (2, 3, 17), 4, (k,), strides=s, pads=k // 2, bias=s == 1)
for kw in ({"pads": (0, 2)}, {"pads": (3, 1)}, {"dilations": 2, "pads": 2}, {"dilations": 3},
           {"group_": 6}, {"group_": 2}, {"group_": 6, "tag": "_mult", "cout_": 12},
           {"auto_pad": "SAME_UPPER", "strides": 2}, {"auto_pad": "SAME_LOWER", "strides": 2},
           {"auto_pad": "VALID", "strides": 3}, {"kernel_shape": False}, {"bias": False},
           {"x_decl": ["N", 6, "L"], "pads": 1}, {"x_decl": ["N", 6, "L"], "auto_pad": "SAME_UPPER"}):
    kw = dict(kw)
    cout = kw.pop("cout_", 6)
    _conv("conv1d", (2, 6, 20), cout, (4,) if "auto_pad" in kw else (3,), **kw)
_conv("conv1d", (1, 64, 1000), 32, (1,))
_conv("conv1d", (1, 1, 1), 1, (1,))

# 3-D convolution (may stay on the CPU EP)
_conv("conv3d", (1, 2, 5, 6, 7), 3, (3, 3, 3))
_conv("conv3d", (2, 4, 6, 6, 6), 4, (3, 3, 3), pads=1, strides=2)
_conv("conv3d", (1, 4, 5, 5, 5), 4, (1, 3, 3), group_=4, pads=(0, 1, 1, 0, 1, 1))
_conv("conv3d", (1, 3, 6, 7, 8), 2, (2, 2, 2), auto_pad="SAME_UPPER", bias=False)
_conv("conv3d", (1, 3, 9, 9, 9), 2, (3, 3, 3), dilations=2)
_conv("conv3d", (2, 3, 4, 4, 4), 5, (1, 1, 1), x_decl=["N", 3, "D", "H", "W"])

# weights (and bias) as graph inputs (may stay on the CPU EP)
_conv("conv_dynamic_weight", (1, 3, 8, 8), 4, (3, 3), w_const=False, pads=1)
_conv("conv_dynamic_weight", (2, 4, 7, 7), 8, (3, 3), w_const=False, group_=4)
_conv("conv_dynamic_weight", (1, 3, 8, 8), 4, (3, 3), b_const=False)
_conv("conv_dynamic_weight", (1, 3, 8, 8), 4, (1, 1), w_const=False, b_const=False)
_conv("conv_dynamic_weight", (1, 3, 16), 4, (3,), w_const=False)

# SAME_* with a kernel smaller than stride - 1 (documented fallback)
for mode in ("SAME_UPPER", "SAME_LOWER"):
    _conv("conv_same_small_kernel", (1, 3, 10, 11), 4, (1, 1), strides=3, auto_pad=mode)
    _conv("conv_same_small_kernel", (1, 3, 10), 4, (1,), strides=4, auto_pad=mode)

# ============================================================================================ bigger problems
# (several tasks per operator, so the EP's partitioning and threading really split the work)

_matmul("large", [1024, 256], [256, 256])
_matmul("large", [4, 128, 96], [96, 320], both=(True,))
_matmul("large", [1, 4096], [4096, 1000], both=(True,))
_gemm("large", 512, 512, 384, trans_b=1, c=(384,))
_gemm("large", 300, 1000, 7, trans_a=1, c=(300, 1))
_conv("large", (1, 32, 56, 56), 64, (3, 3), pads=1)
_conv("large", (2, 64, 28, 28), 64, (3, 3), pads=1, group_=64)
_conv("large", (1, 256, 14, 14), 512, (1, 1), strides=2)
_conv("large", (1, 3, 224, 224), 32, (3, 3), strides=2, pads=(0, 0, 1, 1))

# more pads and strides: pad ≥ kernel (border outputs are bias only), pointwise stride 2 (ResNet downsample)
_conv("conv2d_stride_pad", (1, 3, 6, 7), 4, (3, 3), pads=3)
_conv("conv2d_stride_pad", (1, 3, 6, 7), 4, (3, 3), pads=(0, 4, 5, 0), strides=2)
_conv("conv2d_stride_pad", (2, 16, 14, 15), 32, (1, 1), strides=2, bias=False)
_conv("conv2d_stride_pad", (1, 8, 9, 9), 8, (1, 1), strides=(3, 2), pads=1)

# ============================================================================================ NaN / ±inf

add("special_values", "matmul_constB", "MatMul", [In((5, 7), special=True), In((7, 6), const=True)])
add("special_values", "matmul_dynB", "MatMul", [In((5, 7)), In((7, 6), special=True)])
add("special_values", "matmul_batched", "MatMul", [In((2, 5, 7), special=True), In((2, 7, 6))])
add("special_values", "gemm_A_nan", "Gemm", [In((5, 7), special=True), In((6, 7), const=True), In((6,), const=True)],
    {"transB": 1})
add("special_values", "gemm_C_nan_beta1", "Gemm", [In((5, 7)), In((7, 6), const=True), In((5, 6), special=True)])
add("special_values", "gemm_C_nan_beta0", "Gemm", [In((5, 7)), In((7, 6), const=True), In((5, 6), special=True)],
    {"beta": 0.0})
add("special_values", "conv_x_nan", "Conv", [In((1, 3, 9, 9), special=True), In((4, 3, 3, 3), const=True)],
    {"pads": [1, 1, 1, 1]})
add("special_values", "conv_w_inf", "Conv", [In((1, 3, 9, 9)), In((4, 3, 3, 3), const=True, special=True),
                                              In((4,), const=True)], {"strides": [2, 2]})

# ============================================================================================ other opsets

for opset in (11, 13):
    _matmul("opset", [3, 8], [8, 5], tag=f"_op{opset}", opset=opset)
    _matmul("opset", [2, 3, 8], [8, 5], tag=f"_op{opset}", both=(True,), opset=opset)
    _gemm("opset", 4, 6, 5, trans_b=1, c=(5,), tag=f"_op{opset}", opset=opset)
    _gemm("opset", 4, 6, 5, trans_a=1, alpha=0.5, beta=0.5, c=(4, 1), tag=f"_op{opset}", opset=opset)
for opset in (11, 13, 22):
    _conv("opset", (1, 3, 10, 10), 8, (3, 3), pads=1, tag=f"_op{opset}", opset=opset)
    _conv("opset", (2, 8, 9, 9), 8, (3, 3), group_=8, strides=2, auto_pad="SAME_UPPER", tag=f"_op{opset}",
          opset=opset)
    _conv("opset", (1, 4, 11), 4, (3,), tag=f"_op{opset}", opset=opset)


def groups() -> Dict[str, int]:
    out: Dict[str, int] = {}
    for c in CASES:
        out[c.group] = out.get(c.group, 0) + 1
    return out

# ============================================================================================ fuzzer regressions
# (python-tests/test_fuzz.py found these; each failed before its fix)

# MatMul with a constant A (and a dynamic B): A was dropped at Compile and the run failed with "input A is missing".
add("regression", "matmul_constA", "MatMul", [In((2, 3, 5), const=True), In((5, 4))])
add("regression", "matmul_constA_1d", "MatMul", [In((5,), const=True), In((3, 5, 4))])
# Conv with a constant X (and dynamic W): X was dropped at Compile and the run failed with "input X is missing".
add("regression", "conv_constX", "Conv", [In((1, 3, 8, 8), const=True), In((4, 3, 3, 3))])
add("regression", "conv_constX_bias", "Conv", [In((2, 4, 7, 7), const=True), In((4, 2, 3, 3)), In((4,))],
    {"group": 2, "pads": [1, 1, 1, 1]})
# Zero-sized Gemm outputs with a C that broadcasts to them: were rejected ("C [1, 0] does not broadcast").
add("regression", "gemm_N0_C1x0", "Gemm", [In((3, 4)), In((4, 0), const=True), In((1, 0))])
add("regression", "gemm_M0_CMxN", "Gemm", [In((0, 4)), In((4, 5), const=True), In((0, 5))], {"beta": 0.5})
add("regression", "gemm_N0_C0", "Gemm", [In((3, 4)), In((0, 4)), In((0,), const=True)], {"transB": 1})
# Gemm with K = 0: ORT's CPU EP returns C as given (neither alpha nor beta applied) when C is present and
# beta ≠ 0, else zeros; we applied beta.
add("regression", "gemm_K0_C_beta", "Gemm", [In((3, 0)), In((0, 4), const=True), In((3, 4))],
    {"alpha": -2.0, "beta": -1.0})
add("regression", "gemm_K0_Cn_beta", "Gemm", [In((0, 3)), In((0, 4)), In((4,), const=True)],
    {"transA": 1, "beta": 0.25})
add("regression", "gemm_K0_C_beta0", "Gemm", [In((3, 0)), In((0, 4), const=True), In((3, 4))], {"beta": 0.0})
add("regression", "gemm_K0_noC", "Gemm", [In((3, 0)), In((0, 4))], opset=13)
# ±inf/NaN depthwise weights whose windows reach the padding: ORT's Conv multiplies the zero padding by the
# weight (0·inf = NaN); the depthwise kernel's general path (rank ≥ 3) skipped those taps.
add("regression", "conv3d_depthwise_inf_w_padded", "Conv",
    [In((3, 4, 1, 2, 1)), In((4, 1, 2, 3, 1), const=True, special=True), In((4,), const=True)],
    {"kernel_shape": [2, 3, 1], "strides": [1, 2, 1], "pads": [0, 3, 1, 2, 2, 1], "group": 4}, opset=22)
add("regression", "conv3d_depthwise_inf_w_padded_dynW", "Conv",
    [In((2, 3, 4, 3, 3)), In((6, 1, 3, 3, 1), special=True)],
    {"pads": [1, 1, 0, 1, 1, 0], "group": 3})
