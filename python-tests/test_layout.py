"""The channels-last layout (`layout=nhwc`): ORT's layout transformer moves the Conv and pooling nodes we claim into
domain com.ms.internal.nhwc and inserts Transposes where channels-last values meet channels-first ones. Every Conv
case of the single-node matrix, the pooling ops and small multi-node models must still agree with the CPU EP. The
pooling ops are also claimed with the default channels-first layout and must agree there too."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper

import harness
from single_node_cases import CASES

NHWC = {"layout": "nhwc"}
CONV_CASES = [c for c in CASES if c.op == "Conv"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c.full_id) for c in CONV_CASES])
def test_conv_case_channels_last(asymo, case):
    model, feeds = case.build()
    result = harness.compare(model, feeds, options=NHWC)
    if case.expect_on_ep and case.opset >= 7:
        # (ORT's layout transformer skips opsets below 7: such Convs then stay on the CPU EP.)
        harness.check_placement(result.assignment, expect_on_ep=None, min_on_ep=1)


def pool_model(op, attrs, x_shape, opset=17, relu=False):
    """conv (3×3, same) → pool → (relu): the pool takes our Conv's output (channels-last with layout=nhwc)."""
    c = x_shape[1]
    rng = np.random.default_rng(7)
    w = helper.make_tensor("w", TensorProto.FLOAT, [c, c, 3, 3], rng.standard_normal(c * c * 9).astype(np.float32))
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node(op, ["h"], ["p" if relu else "y"], name="pool", **attrs)]
    if relu:
        nodes.append(helper.make_node("Relu", ["p"], ["y"], name="relu"))
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


POOLS = [
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2]}, (1, 16, 13, 13), 17),
    ("MaxPool", {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}, (2, 8, 12, 11), 17),
    ("MaxPool", {"kernel_shape": [2, 3], "pads": [1, 0, 0, 1], "dilations": [2, 1]}, (1, 5, 9, 7), 12),
    ("MaxPool", {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER"}, (1, 64, 14, 14), 11),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}, (1, 24, 10, 10), 17),
    ("AveragePool", {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1}, (1, 24, 10, 10), 17),
    ("AveragePool", {"kernel_shape": [3, 2], "strides": [2, 2], "ceil_mode": 1, "count_include_pad": 1},
     (1, 3, 7, 8), 19),
    ("MaxPool", {"kernel_shape": [5, 5], "pads": [2, 2, 2, 2]}, (1, 32, 20, 20), 17),  # YOLOv5's SPPF pool
    ("GlobalAveragePool", {}, (2, 33, 7, 5), 17),
    ("GlobalMaxPool", {}, (1, 64, 6, 6), 17),
]


@pytest.mark.parametrize("op,attrs,shape,opset", POOLS, ids=[f"{p[0]}{i}" for i, p in enumerate(POOLS)])
@pytest.mark.parametrize("relu", [False, True])
def test_pool_channels_last(asymo, op, attrs, shape, opset, relu):
    model = pool_model(op, attrs, shape, opset, relu)
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    result = harness.compare(model, {"x": x}, options=NHWC)
    if not harness.cpu_only():
        ours = [t for _, t in result.assignment.get(harness.EP_NAME, [])]
        assert op in ours and "Conv" in ours, result.assignment


def test_boundary_transposes_are_ours_with_channels_last(asymo):
    """With layout=nhwc the Transposes ORT inserts at the channels-last boundary run on our EP; the default
    (nchw) claims the pool as it is and inserts none."""
    rng = np.random.default_rng(5)
    c = 16
    w = helper.make_tensor("w", TensorProto.FLOAT, [c, 1, 3, 3], rng.standard_normal(c * 9).astype(np.float32))
    nodes = [helper.make_node("Conv", ["x", "w"], ["h"], group=c, pads=[1, 1, 1, 1]),
             helper.make_node("MaxPool", ["h"], ["y"], kernel_shape=[2, 2], strides=[2, 2])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, c, 10, 10])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], [w])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    x = rng.standard_normal((1, c, 10, 10)).astype(np.float32)
    result = harness.compare(m, {"x": x}, options=NHWC)
    if not harness.cpu_only():
        ours = [t for _, t in result.assignment.get(harness.EP_NAME, [])]
        assert "MaxPool" in ours and "Transpose" in ours, result.assignment
    result = harness.compare(m, {"x": x})
    if not harness.cpu_only():
        ours = [t for _, t in result.assignment.get(harness.EP_NAME, [])]
        assert "MaxPool" in ours and "Transpose" not in ours, result.assignment


@pytest.mark.parametrize("op,attrs,shape,opset", POOLS, ids=[f"{p[0]}{i}" for i, p in enumerate(POOLS)])
def test_pool_channels_first(asymo, op, attrs, shape, opset):
    """The default layout claims pooling in its ONNX form (no ORT reorders around it between our Convs)."""
    model = pool_model(op, attrs, shape, opset)
    x = np.random.default_rng(4).standard_normal(shape).astype(np.float32)
    result = harness.compare(model, {"x": x})
    if not harness.cpu_only():
        ours = [t for _, t in result.assignment.get(harness.EP_NAME, [])]
        assert op in ours and "Conv" in ours, result.assignment
        assert not [n for nodes in result.assignment.values() for n in nodes if n[1].startswith("Reorder")]


def test_residual_block_channels_last(asymo):
    """conv → relu → conv (+ residual) → relu → maxpool → conv → global pool, batch 2, dynamic spatial dims."""
    rng = np.random.default_rng(11)
    c = 24

    def w(name, shape):
        return helper.make_tensor(name, TensorProto.FLOAT, shape, rng.standard_normal(int(np.prod(shape))).astype(np.float32) * 0.2)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], pads=[1, 1, 1, 1], group=c),
        helper.make_node("Add", ["c2", "r1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["p", "w3"], ["c3"], strides=[2, 2]),
        helper.make_node("GlobalAveragePool", ["c3"], ["y"]),
    ]
    inits = [w("w1", [c, 3, 3, 3]), w("b1", [c]), w("w2", [c, 1, 3, 3]), w("w3", [40, c, 1, 1])]
    g = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, "h", "w"])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for hw in [(17, 19), (8, 8)]:
        x = rng.standard_normal((2, 3) + hw).astype(np.float32)
        harness.compare(m, {"x": x}, options=NHWC)


def _random_pool(rng):
    """A seeded random pooling node ORT accepts: rank 1–3, kernel/stride/dilation/pads, ceil_mode, auto_pad,
    count_include_pad, opsets whose kernels read them."""
    op = rng.choice(["MaxPool", "AveragePool"])
    nd = int(rng.integers(1, 4))
    k = [int(v) for v in rng.integers(1, 5, nd)]
    s = [int(v) for v in rng.integers(1, 4, nd)]
    attrs = {"kernel_shape": k, "strides": s}
    opset = int(rng.choice([11, 12, 17, 19, 22] if op == "AveragePool" else [8, 10, 12, 22]))
    if (op == "MaxPool" and opset >= 10) or (op == "AveragePool" and opset >= 19):
        if rng.random() < 0.4:
            attrs["dilations"] = [int(v) for v in rng.integers(1, 3, nd)]
    if opset >= 10 and rng.random() < 0.3:
        attrs["ceil_mode"] = 1
    if op == "AveragePool" and rng.random() < 0.5:
        attrs["count_include_pad"] = 1
    if rng.random() < 0.2 and all(ki >= si for ki, si in zip(k, s)):
        attrs["auto_pad"] = str(rng.choice(["SAME_UPPER", "SAME_LOWER", "VALID"]))
    else:
        attrs["pads"] = [int(rng.integers(0, ki)) for ki in k] + [int(rng.integers(0, ki)) for ki in k]
    c = int(rng.integers(1, 20))
    spatial = [int(v) for v in rng.integers(1, 30 if nd < 3 else 10, nd)]
    return op, attrs, (int(rng.integers(1, 3)), c) + tuple(spatial), opset


def test_random_pools_channels_first(asymo):
    """60 seeded random pooling nodes on the default layout (X straight from the graph input) against the CPU EP;
    a node ORT itself rejects is skipped."""
    rng = np.random.default_rng(2026)
    checked = 0
    for i in range(60):
        op, attrs, shape, opset = _random_pool(rng)
        node = helper.make_node(op, ["x"], ["y"], name="pool", **attrs)
        g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)])
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
        m.ir_version = 8
        x = rng.standard_normal(shape).astype(np.float32)
        try:
            harness.run(harness.make_session(m, "cpu"), {"x": x})
        except Exception:  # ORT rejects the combination (e.g. an output size below 1)
            continue
        result = harness.compare(m, {"x": x})
        checked += 1
        if not harness.cpu_only() and i < 10:
            assert op in [t for _, t in result.assignment.get(harness.EP_NAME, [])], (op, attrs, result.assignment)
    assert checked >= 30, checked
