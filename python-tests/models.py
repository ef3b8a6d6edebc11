"""Builders for the paper's model set, as ``onnx.ModelProto`` with seeded random weights.

Every builder returns a model that ONNX Runtime 1.31 accepts (``ir_version`` 10, default opset 17) and whose
activations stay O(1): convolution and FC weights use He initialisation (gain 2 before a ReLU, 1 otherwise), and
residual branches are damped so deep ResNets do not blow up. There is no BatchNormalization by default (inference
graphs usually have it folded into the conv); ResNets take ``batchnorm=True`` to add it back.

Common keyword arguments (every builder):
    size          input resolution (square); defaults are reduced for tests, see ``DEFAULT_SIZE``/``FULL_SIZE``
    batch         an int for a fixed batch, or None for a symbolic batch dimension "N" (default)
    num_classes   classifier width (FC-dominant models have their own)
    seed          numpy seed for the weights (``np.random.default_rng(seed)``)
    opset         ONNX opset of the default domain (11, 13, 17 and 22 are exercised)
Fully convolutional CNNs (MobileNetV1, SqueezeNet, ResNets) also take ``dynamic_spatial=True`` for symbolic H/W.

Use ``build(name, **kw)`` and ``make_inputs(model, batch=...)``; ``MODELS`` lists every name.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 10  # ORT 1.31 accepts up to 13; onnx 1.23 writes 14 by default (ORT_EP_NOTES.md §8.1)
DEFAULT_OPSET = 17

Dim = Union[int, str, None]


class GraphBuilder:
    """Accumulates nodes and initializers with unique names, seeded weights, and opset-aware helpers."""

    def __init__(self, name: str, seed: int = 0, opset: int = DEFAULT_OPSET):
        self.name = name
        self.rng = np.random.default_rng(seed)
        self.opset = opset
        self.nodes: List[onnx.NodeProto] = []
        self.initializers: List[onnx.TensorProto] = []
        self.inputs: List[onnx.ValueInfoProto] = []
        self.outputs: List[str] = []
        self._counts: Dict[str, int] = {}

    # ---------------------------------------------------------------- naming and constants
    def uniq(self, prefix: str) -> str:
        n = self._counts.get(prefix, 0)
        self._counts[prefix] = n + 1
        return f"{prefix}_{n}" if n else prefix

    def const(self, prefix: str, array: np.ndarray) -> str:
        name = self.uniq(prefix)
        self.initializers.append(numpy_helper.from_array(np.array(array, order="C", copy=True), name))
        return name

    def ints(self, prefix: str, values: Sequence[int]) -> str:
        return self.const(prefix, np.asarray(values, dtype=np.int64))

    def input(self, name: str, shape: Sequence[Dim], elem_type: int = TensorProto.FLOAT) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def node(self, op: str, inputs: Sequence[str], name: Optional[str] = None, n_out: int = 1, **attrs) -> str:
        """Add a node; returns its (first) output name. The node name and output names derive from ``name``."""
        nname = self.uniq(name or op.lower())
        outs = [nname] if n_out == 1 else [f"{nname}:{i}" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=nname, **attrs))
        return outs[0]

    # ---------------------------------------------------------------- weights
    def weight(self, shape: Sequence[int], fan_in: int, gain: float = 2.0, scale: float = 1.0) -> np.ndarray:
        std = math.sqrt(gain / max(fan_in, 1)) * scale
        return (self.rng.standard_normal(tuple(shape), dtype=np.float32) * np.float32(std)).astype(np.float32)

    def bias(self, n: int, std: float = 0.05) -> np.ndarray:
        return (self.rng.standard_normal(n, dtype=np.float32) * np.float32(std)).astype(np.float32)

    # ---------------------------------------------------------------- layers
    def conv(self, x: str, cin: int, cout: int, k: Union[int, Tuple[int, int]], stride: int = 1,
             pad: Optional[int] = None, group: int = 1, dilation: int = 1, bias: bool = True,
             relu: bool = True, gain: Optional[float] = None, scale: float = 1.0, name: str = "conv") -> str:
        kh, kw = (k, k) if isinstance(k, int) else k
        if pad is None:
            pads = [dilation * (kh - 1) // 2, dilation * (kw - 1) // 2] * 2
        else:
            pads = [pad] * 4
        fan_in = (cin // group) * kh * kw
        w = self.weight((cout, cin // group, kh, kw), fan_in, gain if gain is not None else (2.0 if relu else 1.0), scale)
        ins = [x, self.const(f"{name}.w", w)]
        if bias:
            ins.append(self.const(f"{name}.b", self.bias(cout)))
        y = self.node("Conv", ins, name=name, kernel_shape=[kh, kw], strides=[stride, stride], pads=pads,
                      dilations=[dilation, dilation], group=group)
        return self.relu(y) if relu else y

    def relu(self, x: str) -> str:
        return self.node("Relu", [x], name="relu")

    def add(self, a: str, b: str) -> str:
        return self.node("Add", [a, b], name="add")

    def mul(self, a: str, b: str) -> str:
        return self.node("Mul", [a, b], name="mul")

    def sigmoid(self, x: str) -> str:
        return self.node("Sigmoid", [x], name="sigmoid")

    def tanh(self, x: str) -> str:
        return self.node("Tanh", [x], name="tanh")

    def maxpool(self, x: str, k: int, s: int, p: int = 0, ceil: bool = False) -> str:
        return self.node("MaxPool", [x], name="maxpool", kernel_shape=[k, k], strides=[s, s], pads=[p] * 4,
                         ceil_mode=int(ceil))

    def global_avgpool(self, x: str) -> str:
        return self.node("GlobalAveragePool", [x], name="gap")

    def flatten(self, x: str) -> str:
        return self.node("Flatten", [x], name="flatten", axis=1)

    def concat(self, xs: Sequence[str], axis: int) -> str:
        return self.node("Concat", list(xs), name="concat", axis=axis)

    def reshape(self, x: str, shape: Sequence[int]) -> str:
        return self.node("Reshape", [x, self.ints("shape", shape)], name="reshape")

    def transpose(self, x: str, perm: Sequence[int]) -> str:
        return self.node("Transpose", [x], name="transpose", perm=list(perm))

    def gather(self, x: str, index: int, axis: int) -> str:
        """x[..., index, ...] along ``axis`` with the axis removed (scalar index)."""
        return self.node("Gather", [x, self.const("idx", np.array(index, dtype=np.int64))], name="gather", axis=axis)

    def slice_last(self, x: str, start: int, end: int) -> str:
        """x[:, start:end] for a 2-D tensor."""
        return self.node("Slice", [x, self.ints("starts", [start]), self.ints("ends", [end]), self.ints("axes", [1])],
                         name="slice")

    def gemm(self, x: str, fin: int, fout: int, relu: bool = False, trans_b: bool = True,
             w: Optional[np.ndarray] = None, b: Optional[np.ndarray] = None, name: str = "fc") -> str:
        """A Gemm layer; weights stored [fout, fin] with transB=1 (PyTorch layout) unless ``trans_b`` is False."""
        if w is None:
            w = self.weight((fin, fout), fin, 2.0 if relu else 1.0)
        if b is None:
            b = self.bias(fout)
        wt = w.T if trans_b else w
        y = self.node("Gemm", [x, self.const(f"{name}.w", wt), self.const(f"{name}.b", b)], name=name,
                      transB=int(trans_b))
        return self.relu(y) if relu else y

    def matmul_add(self, x: str, fin: int, fout: int, relu: bool = False, name: str = "linear") -> str:
        """MatMul + Add(constant bias); ORT fuses this pair into a Gemm when x is 2-D."""
        w = self.weight((fin, fout), fin, 2.0 if relu else 1.0)
        y = self.node("MatMul", [x, self.const(f"{name}.w", w)], name=name)
        y = self.node("Add", [y, self.const(f"{name}.b", self.bias(fout))], name=f"{name}_bias")
        return self.relu(y) if relu else y

    def batchnorm(self, x: str, c: int) -> str:
        scale = (1.0 + 0.1 * self.rng.standard_normal(c)).astype(np.float32)
        bias = (0.05 * self.rng.standard_normal(c)).astype(np.float32)
        mean = (0.05 * self.rng.standard_normal(c)).astype(np.float32)
        var = (1.0 + 0.1 * np.abs(self.rng.standard_normal(c))).astype(np.float32)
        ins = [x] + [self.const(f"bn.{n}", a) for n, a in (("scale", scale), ("bias", bias), ("mean", mean), ("var", var))]
        return self.node("BatchNormalization", ins, name="bn", epsilon=1e-5)

    def lrn(self, x: str) -> str:
        return self.node("LRN", [x], name="lrn", size=5, alpha=1e-4, beta=0.75, bias=1.0)

    # ---------------------------------------------------------------- finish
    def rename(self, old: str, new: str) -> str:
        """Rename a tensor everywhere it appears (used to give graph outputs stable names)."""
        for n in self.nodes:
            for seq in (n.input, n.output):
                for i, v in enumerate(seq):
                    if v == old:
                        seq[i] = new
        return new

    def build(self, outputs: Sequence[str], doc: str = "", names: Optional[Sequence[str]] = None) -> onnx.ModelProto:
        """Finish the model. Graph outputs are renamed to ``names`` (default: "output" for a single output)."""
        if names is None and len(outputs) == 1:
            names = ["output"]
        if names is not None:
            outputs = [self.rename(o, n) if o != n else o for o, n in zip(outputs, names)]
        outs = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
        graph = helper.make_graph(self.nodes, self.name, self.inputs, outs, self.initializers)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", self.opset)],
                                  producer_name="asymo-ep python-tests", doc_string=doc)
        model.ir_version = IR_VERSION
        # Give the graph outputs their inferred types and shapes (the checker wants a shape on every output).
        inferred = onnx.shape_inference.infer_shapes(model)
        known = {vi.name: vi for vi in list(inferred.graph.value_info) + list(inferred.graph.output)}
        for out in model.graph.output:
            vi = known.get(out.name)
            if vi is not None and vi.type.tensor_type.HasField("shape"):
                out.type.CopyFrom(vi.type)
            else:
                out.type.tensor_type.shape.SetInParent()
        return model


def _batch_dim(batch: Optional[int]) -> Dim:
    return "N" if batch is None else int(batch)


def _image_input(g: GraphBuilder, size: int, batch: Optional[int], dynamic_spatial: bool = False,
                 channels: int = 3) -> str:
    hw: List[Dim] = ["H", "W"] if dynamic_spatial else [size, size]
    return g.input("input", [_batch_dim(batch), channels] + hw)


# ===================================================================================================== CNNs

def mobilenet_v1_body(g: GraphBuilder, x: str, alpha: float = 1.0, upto: int = 13) -> Tuple[str, int, List[Tuple[str, int]]]:
    """MobileNetV1 stem + depthwise-separable blocks (1-based block index ≤ upto). Returns (y, channels, taps)
    where taps lists (output, channels) of every block, for detection heads."""
    def ch(c: int) -> int:
        return max(8, int(c * alpha))

    cfg = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
           (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
    c = ch(32)
    y = g.conv(x, 3, c, 3, stride=2, name="conv0")
    taps = []
    for i, (cout, s) in enumerate(cfg[:upto], start=1):
        y = g.conv(y, c, c, 3, stride=s, group=c, name=f"dw{i}")       # depthwise
        y = g.conv(y, c, ch(cout), 1, name=f"pw{i}")                  # pointwise
        c = ch(cout)
        taps.append((y, c))
    return y, c, taps


def mobilenet_v1(size: int = 64, batch: Optional[int] = None, num_classes: int = 1000, alpha: float = 1.0,
                 seed: int = 0, opset: int = DEFAULT_OPSET, dynamic_spatial: bool = False) -> onnx.ModelProto:
    """MobileNetV1 (Howard et al. 2017) with width multiplier ``alpha``."""
    g = GraphBuilder("mobilenet_v1", seed, opset)
    x = _image_input(g, size, batch, dynamic_spatial)
    y, c, _ = mobilenet_v1_body(g, x, alpha)
    y = g.flatten(g.global_avgpool(y))
    y = g.gemm(y, c, num_classes, name="classifier")
    return g.build([y], f"MobileNetV1 alpha={alpha} size={size}")


def squeezenet_1_1(size: int = 64, batch: Optional[int] = None, num_classes: int = 1000, seed: int = 0,
                   opset: int = DEFAULT_OPSET, dynamic_spatial: bool = False) -> onnx.ModelProto:
    """SqueezeNet 1.1 (torchvision layout: fire modules, ceil-mode max pools, 1x1 conv classifier)."""
    g = GraphBuilder("squeezenet_1_1", seed, opset)
    x = _image_input(g, size, batch, dynamic_spatial)

    def fire(y: str, cin: int, s: int, e1: int, e3: int, i: int) -> Tuple[str, int]:
        sq = g.conv(y, cin, s, 1, name=f"fire{i}.squeeze")
        a = g.conv(sq, s, e1, 1, name=f"fire{i}.expand1x1")
        b = g.conv(sq, s, e3, 3, name=f"fire{i}.expand3x3")
        return g.concat([a, b], axis=1), e1 + e3

    y = g.conv(x, 3, 64, 3, stride=2, pad=0, name="conv1")
    y = g.maxpool(y, 3, 2, ceil=True)
    c = 64
    y, c = fire(y, c, 16, 64, 64, 2)
    y, c = fire(y, c, 16, 64, 64, 3)
    y = g.maxpool(y, 3, 2, ceil=True)
    y, c = fire(y, c, 32, 128, 128, 4)
    y, c = fire(y, c, 32, 128, 128, 5)
    y = g.maxpool(y, 3, 2, ceil=True)
    y, c = fire(y, c, 48, 192, 192, 6)
    y, c = fire(y, c, 48, 192, 192, 7)
    y, c = fire(y, c, 64, 256, 256, 8)
    y, c = fire(y, c, 64, 256, 256, 9)
    y = g.conv(y, c, num_classes, 1, name="classifier")
    y = g.flatten(g.global_avgpool(y))
    return g.build([y], f"SqueezeNet 1.1 size={size}")


def _resnet(name: str, blocks: Sequence[int], bottleneck: bool, size: int, batch: Optional[int], num_classes: int,
            seed: int, opset: int, dynamic_spatial: bool, batchnorm: bool, res_scale: float) -> onnx.ModelProto:
    g = GraphBuilder(name, seed, opset)
    x = _image_input(g, size, batch, dynamic_spatial)

    def cbr(y: str, cin: int, cout: int, k: int, stride: int = 1, relu: bool = True, scale: float = 1.0,
            nm: str = "conv") -> str:
        if batchnorm:
            y = g.conv(y, cin, cout, k, stride=stride, bias=False, relu=False, gain=2.0 if relu else 1.0,
                       scale=scale, name=nm)
            y = g.batchnorm(y, cout)
            return g.relu(y) if relu else y
        return g.conv(y, cin, cout, k, stride=stride, relu=relu, gain=2.0 if relu else 1.0, scale=scale, name=nm)

    y = cbr(x, 3, 64, 7, stride=2, nm="conv1")
    y = g.maxpool(y, 3, 2, 1)
    cin = 64
    for stage, (n, width) in enumerate(zip(blocks, (64, 128, 256, 512)), start=1):
        for b in range(n):
            stride = 2 if (b == 0 and stage > 1) else 1
            cout = width * 4 if bottleneck else width
            pre = f"layer{stage}.{b}"
            if bottleneck:
                t = cbr(y, cin, width, 1, nm=f"{pre}.conv1")
                t = cbr(t, width, width, 3, stride=stride, nm=f"{pre}.conv2")
                t = cbr(t, width, cout, 1, relu=False, scale=res_scale, nm=f"{pre}.conv3")
            else:
                t = cbr(y, cin, width, 3, stride=stride, nm=f"{pre}.conv1")
                t = cbr(t, width, cout, 3, relu=False, scale=res_scale, nm=f"{pre}.conv2")
            if stride != 1 or cin != cout:
                short = cbr(y, cin, cout, 1, stride=stride, relu=False, nm=f"{pre}.downsample")
            else:
                short = y
            y = g.relu(g.add(t, short))
            cin = cout
    y = g.flatten(g.global_avgpool(y))
    y = g.gemm(y, cin, num_classes, name="fc")
    return g.build([y], f"{name} size={size} batchnorm={batchnorm}")


def resnet18(size: int = 64, batch: Optional[int] = None, num_classes: int = 1000, seed: int = 0,
             opset: int = DEFAULT_OPSET, dynamic_spatial: bool = False, batchnorm: bool = False) -> onnx.ModelProto:
    return _resnet("resnet18", (2, 2, 2, 2), False, size, batch, num_classes, seed, opset, dynamic_spatial,
                   batchnorm, res_scale=0.4)


def resnet50(size: int = 64, batch: Optional[int] = None, num_classes: int = 1000, seed: int = 0,
             opset: int = DEFAULT_OPSET, dynamic_spatial: bool = False, batchnorm: bool = False) -> onnx.ModelProto:
    return _resnet("resnet50", (3, 4, 6, 3), True, size, batch, num_classes, seed, opset, dynamic_spatial,
                   batchnorm, res_scale=0.3)


def resnet101(size: int = 64, batch: Optional[int] = None, num_classes: int = 1000, seed: int = 0,
              opset: int = DEFAULT_OPSET, dynamic_spatial: bool = False, batchnorm: bool = False) -> onnx.ModelProto:
    return _resnet("resnet101", (3, 4, 23, 3), True, size, batch, num_classes, seed, opset, dynamic_spatial,
                   batchnorm, res_scale=0.2)


def vgg16(size: int = 64, batch: Optional[int] = None, num_classes: int = 1000, fc_dim: int = 4096, seed: int = 0,
          opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """VGG-16 (configuration D). The FC input is 512·(size/32)², so the spatial size is static."""
    if size % 32:
        raise ValueError("vgg16: size must be a multiple of 32")
    g = GraphBuilder("vgg16", seed, opset)
    y = _image_input(g, size, batch)
    cin = 3
    for stage, (n, c) in enumerate(((2, 64), (2, 128), (3, 256), (3, 512), (3, 512)), start=1):
        for i in range(n):
            y = g.conv(y, cin, c, 3, name=f"conv{stage}_{i + 1}")
            cin = c
        y = g.maxpool(y, 2, 2)
    y = g.flatten(y)
    feat = cin * (size // 32) ** 2
    y = g.gemm(y, feat, fc_dim, relu=True, name="fc6")
    y = g.gemm(y, fc_dim, fc_dim, relu=True, name="fc7")
    y = g.gemm(y, fc_dim, num_classes, name="fc8")
    return g.build([y], f"VGG-16 size={size} fc_dim={fc_dim}")


def _pool_out(n: int, k: int, s: int, p: int = 0) -> int:
    return (n + 2 * p - k) // s + 1


def alexnet(size: int = 96, batch: Optional[int] = None, num_classes: int = 1000, fc_dim: int = 4096,
            grouped: bool = False, seed: int = 0, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """AlexNet. ``grouped=False``: torchvision's single-tower variant (64-192-384-256-256 channels, no LRN).
    ``grouped=True``: the original two-tower network (96-256-384-384-256, group=2 on conv2/4/5, LRN), whose
    full input size is 227."""
    g = GraphBuilder("alexnet_grouped" if grouped else "alexnet", seed, opset)
    y = _image_input(g, size, batch)
    if grouped:
        chans, groups = (96, 256, 384, 384, 256), (1, 2, 1, 2, 2)
        y = g.conv(y, 3, chans[0], 11, stride=4, pad=0, name="conv1")
        y = g.maxpool(g.lrn(y), 3, 2)
        s = _pool_out(_pool_out(size, 11, 4), 3, 2)
        y = g.conv(y, chans[0], chans[1], 5, pad=2, group=groups[1], name="conv2")
        y = g.maxpool(g.lrn(y), 3, 2)
    else:
        chans, groups = (64, 192, 384, 256, 256), (1, 1, 1, 1, 1)
        y = g.conv(y, 3, chans[0], 11, stride=4, pad=2, name="conv1")
        y = g.maxpool(y, 3, 2)
        s = _pool_out(_pool_out(size, 11, 4, 2), 3, 2)
        y = g.conv(y, chans[0], chans[1], 5, pad=2, name="conv2")
        y = g.maxpool(y, 3, 2)
    s = _pool_out(s, 3, 2)
    y = g.conv(y, chans[1], chans[2], 3, group=groups[2], name="conv3")
    y = g.conv(y, chans[2], chans[3], 3, group=groups[3], name="conv4")
    y = g.conv(y, chans[3], chans[4], 3, group=groups[4], name="conv5")
    y = g.maxpool(y, 3, 2)
    s = _pool_out(s, 3, 2)
    if s < 1:
        raise ValueError(f"alexnet: input size {size} is too small")
    y = g.flatten(y)
    y = g.gemm(y, chans[4] * s * s, fc_dim, relu=True, name="fc6")
    y = g.gemm(y, fc_dim, fc_dim, relu=True, name="fc7")
    y = g.gemm(y, fc_dim, num_classes, name="fc8")
    return g.build([y], f"AlexNet grouped={grouped} size={size} fc_dim={fc_dim}")


def ssd_mobilenet_v1(size: int = 96, batch: Optional[int] = None, num_classes: int = 91, alpha: float = 1.0,
                     head_kernel: int = 1, seed: int = 0, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """SSD-MobileNetV1 (TF object-detection layout): MobileNetV1 backbone, four extra stride-2 feature layers, and
    box/class conv heads on six feature maps (3 anchors on the first, 6 elsewhere). Outputs ``boxes`` [N, A, 4] and
    ``scores`` [N, A, num_classes] (raw, before decoding and NMS)."""
    g = GraphBuilder("ssd_mobilenet_v1", seed, opset)
    x = _image_input(g, size, batch)
    y, c, taps = mobilenet_v1_body(g, x, alpha)
    feats = [taps[10], taps[12]]  # stride 16 (conv11) and stride 32 (conv13)
    for i, (mid, out) in enumerate(((256, 512), (128, 256), (128, 256), (64, 128)), start=14):
        t = g.conv(y, c, mid, 1, name=f"extra{i}_1x1")
        y = g.conv(t, mid, out, 3, stride=2, name=f"extra{i}_3x3")
        c = out
        feats.append((y, c))
    boxes, scores = [], []
    for i, (f, fc) in enumerate(feats):
        anchors = 3 if i == 0 else 6
        b = g.conv(f, fc, anchors * 4, head_kernel, relu=False, gain=0.5, name=f"box_head{i}")
        s = g.conv(f, fc, anchors * num_classes, head_kernel, relu=False, name=f"class_head{i}")
        boxes.append(g.reshape(g.transpose(b, (0, 2, 3, 1)), (0, -1, 4)))
        scores.append(g.reshape(g.transpose(s, (0, 2, 3, 1)), (0, -1, num_classes)))
    bo = g.node("Concat", boxes, name="boxes", axis=1)
    so = g.node("Concat", scores, name="scores", axis=1)
    return g.build([bo, so], f"SSD-MobileNetV1 size={size} alpha={alpha}")


# ===================================================================================================== FC-dominant

def mlp(size: int = 784, batch: Optional[int] = None, num_classes: int = 10, hidden: Sequence[int] = (512, 512, 256),
        seed: int = 0, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """An MLP over a flat input of ``size`` features. Layers alternate between MatMul+Add (fused to Gemm by ORT) and
    Gemm(transB=1), so both paths are exercised."""
    g = GraphBuilder("mlp", seed, opset)
    y = g.input("input", [_batch_dim(batch), size])
    fin = size
    for i, h in enumerate(hidden):
        if i % 2 == 0:
            y = g.matmul_add(y, fin, h, relu=True, name=f"linear{i}")
        else:
            y = g.gemm(y, fin, h, relu=True, name=f"fc{i}")
        fin = h
    y = g.matmul_add(y, fin, num_classes, name="out")
    return g.build([y], f"MLP {size}-{'-'.join(map(str, hidden))}-{num_classes}")


def _lstm_layer(g: GraphBuilder, xs: List[str], fin: int, hidden: int, layer: int) -> List[str]:
    """One LSTM layer unrolled over the list of per-step inputs xs ([N, fin] each); gate order i, f, g, o.
    One Gemm per step over concat([x_t, h_{t-1}]); zero initial state (the first step uses only the x part)."""
    w = g.weight((fin + hidden, 4 * hidden), fin + hidden, gain=1.0)
    b = g.bias(4 * hidden)
    b[hidden:2 * hidden] += 1.0  # forget-gate bias
    wname = g.const(f"lstm{layer}.w", w)
    wxname = g.const(f"lstm{layer}.wx", np.ascontiguousarray(w[:fin]))
    bname = g.const(f"lstm{layer}.b", b)
    h = c = None
    hs = []
    for t, x in enumerate(xs):
        nm = f"lstm{layer}.t{t}"
        if h is None:
            gates = g.node("Gemm", [x, wxname, bname], name=f"{nm}.gates")
        else:
            gates = g.node("Gemm", [g.concat([x, h], axis=1), wname, bname], name=f"{nm}.gates")
        i_g = g.sigmoid(g.slice_last(gates, 0, hidden))
        f_g = g.sigmoid(g.slice_last(gates, hidden, 2 * hidden))
        c_g = g.tanh(g.slice_last(gates, 2 * hidden, 3 * hidden))
        o_g = g.sigmoid(g.slice_last(gates, 3 * hidden, 4 * hidden))
        c = g.mul(i_g, c_g) if c is None else g.add(g.mul(f_g, c), g.mul(i_g, c_g))
        h = g.mul(o_g, g.tanh(c))
        hs.append(h)
    return hs


def char_rnn(size: int = 65, batch: Optional[int] = None, hidden: int = 256, layers: int = 2, steps: int = 16,
             seed: int = 0, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """Char-RNN (Karpathy): one-hot characters [N, steps, size] → ``layers`` LSTM layers unrolled into Gemm +
    Sigmoid/Tanh/Mul/Add → per-step MatMul+Add (→ Gemm) projection to logits [N, steps, size]. ``size`` is the
    vocabulary."""
    g = GraphBuilder("char_rnn", seed, opset)
    x = g.input("input", [_batch_dim(batch), steps, size])
    xs = [g.gather(x, t, axis=1) for t in range(steps)]
    fin = size
    for layer in range(layers):
        xs = _lstm_layer(g, xs, fin, hidden, layer)
        fin = hidden
    hcat = g.concat(xs, axis=1)                       # [N, steps*hidden]
    flat = g.reshape(hcat, (-1, hidden))               # [N*steps, hidden]
    logits = g.matmul_add(flat, hidden, size, name="decoder")
    y = g.reshape(logits, (-1, steps, size))
    return g.build([y], f"char-RNN vocab={size} hidden={hidden} layers={layers} steps={steps}")


def rnn_classifier(size: int = 64, batch: Optional[int] = None, num_classes: int = 10, hidden: int = 512,
                   layers: int = 2, steps: int = 16, seed: int = 0, opset: int = DEFAULT_OPSET) -> onnx.ModelProto:
    """A sequence classifier: features [N, steps, size] → ``layers`` Elman RNN layers (h = tanh(Gemm([x, h])))
    unrolled → FC(hidden)+ReLU → FC(num_classes) on the last hidden state. FC-dominant by construction."""
    g = GraphBuilder("rnn_classifier", seed, opset)
    x = g.input("input", [_batch_dim(batch), steps, size])
    xs = [g.gather(x, t, axis=1) for t in range(steps)]
    fin = size
    for layer in range(layers):
        w = g.weight((fin + hidden, hidden), fin + hidden, gain=1.0)
        wname = g.const(f"rnn{layer}.w", w)
        wxname = g.const(f"rnn{layer}.wx", np.ascontiguousarray(w[:fin]))
        bname = g.const(f"rnn{layer}.b", g.bias(hidden))
        h = None
        hs = []
        for t, xt in enumerate(xs):
            inp, wn = (xt, wxname) if h is None else (g.concat([xt, h], axis=1), wname)
            h = g.tanh(g.node("Gemm", [inp, wn, bname], name=f"rnn{layer}.t{t}"))
            hs.append(h)
        xs = hs
        fin = hidden
    y = g.gemm(xs[-1], hidden, hidden, relu=True, name="fc1")
    y = g.gemm(y, hidden, num_classes, name="fc2")
    return g.build([y], f"RNN classifier features={size} hidden={hidden} layers={layers} steps={steps}")


# ===================================================================================================== registry

MODELS: Dict[str, Callable[..., onnx.ModelProto]] = {
    "mobilenet_v1": mobilenet_v1,
    "squeezenet_1_1": squeezenet_1_1,
    "resnet18": resnet18,
    "resnet50": resnet50,
    "resnet101": resnet101,
    "vgg16": vgg16,
    "alexnet": alexnet,
    "alexnet_grouped": lambda **kw: alexnet(grouped=True, **kw),
    "ssd_mobilenet_v1": ssd_mobilenet_v1,
    "mlp": mlp,
    "char_rnn": char_rnn,
    "rnn_classifier": rnn_classifier,
}

# ``size`` means the input resolution for CNNs and the feature/vocabulary width for the FC-dominant models.
DEFAULT_SIZE = {"alexnet": 96, "alexnet_grouped": 96, "ssd_mobilenet_v1": 96, "mlp": 784, "char_rnn": 65,
                "rnn_classifier": 64}
FULL_SIZE = {"alexnet_grouped": 227, "ssd_mobilenet_v1": 300, "mlp": 784, "char_rnn": 65, "rnn_classifier": 64}
CNN = {"mobilenet_v1", "squeezenet_1_1", "resnet18", "resnet50", "resnet101", "vgg16", "alexnet", "alexnet_grouped",
       "ssd_mobilenet_v1"}


def default_size(name: str, full: bool = False) -> int:
    return (FULL_SIZE.get(name, 224) if full else DEFAULT_SIZE.get(name, 64))


def build(name: str, full: bool = False, **kw) -> onnx.ModelProto:
    """Build model ``name`` at the reduced test size (or the paper's full size with ``full=True``); ``kw`` override
    the builder's keyword arguments."""
    if name not in MODELS:
        raise KeyError(f"unknown model {name!r}; known: {', '.join(MODELS)}")
    kw.setdefault("size", default_size(name, full))
    return MODELS[name](**kw)


# ===================================================================================================== inputs

_NP_TYPES = {TensorProto.FLOAT: np.float32, TensorProto.FLOAT16: np.float16, TensorProto.DOUBLE: np.float64,
             TensorProto.INT64: np.int64, TensorProto.INT32: np.int32, TensorProto.UINT8: np.uint8,
             TensorProto.INT8: np.int8}


def input_shapes(model: onnx.ModelProto, batch: int = 1, dims: Optional[Dict[str, int]] = None
                 ) -> Dict[str, Tuple[Tuple[int, ...], type]]:
    """Concrete (shape, numpy dtype) per graph input: symbolic "N" → ``batch``, other symbols from ``dims``."""
    dims = dict(dims or {})
    dims.setdefault("N", batch)
    inits = {t.name for t in model.graph.initializer}
    out = {}
    for vi in model.graph.input:
        if vi.name in inits:
            continue
        tt = vi.type.tensor_type
        shape = []
        for d in tt.shape.dim:
            if d.HasField("dim_value"):
                shape.append(d.dim_value)
            elif d.dim_param in dims:
                shape.append(int(dims[d.dim_param]))
            else:
                raise ValueError(f"input {vi.name}: no value for symbolic dim {d.dim_param!r} (pass dims=)")
        out[vi.name] = (tuple(shape), _NP_TYPES[tt.elem_type])
    return out


def make_inputs(model: onnx.ModelProto, batch: int = 1, seed: int = 0, dims: Optional[Dict[str, int]] = None
                ) -> Dict[str, np.ndarray]:
    """Seeded standard-normal inputs (float) or small integers for every graph input."""
    rng = np.random.default_rng(seed)
    feeds = {}
    for name, (shape, dt) in input_shapes(model, batch, dims).items():
        if np.issubdtype(dt, np.floating):
            feeds[name] = rng.standard_normal(shape).astype(dt)
        else:
            feeds[name] = rng.integers(0, 8, size=shape).astype(dt)
    return feeds


def count_ops(model: onnx.ModelProto, ops: Iterable[str] = ("MatMul", "Gemm", "Conv")) -> Dict[str, int]:
    ops = set(ops)
    counts: Dict[str, int] = {}
    for n in model.graph.node:
        if n.op_type in ops:
            counts[n.op_type] = counts.get(n.op_type, 0) + 1
    return counts
