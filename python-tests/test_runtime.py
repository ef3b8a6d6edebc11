"""Run-time behaviour: changing input shapes, concurrent runs, several sessions, bad inputs, other dtypes staying on
the CPU EP, session create/destroy cycles keeping RSS flat, and the calling thread's CPU mask after Runs."""

from __future__ import annotations

import gc
import os
import re
import threading

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import harness
import models
from models import GraphBuilder

# ------------------------------------------------------------------------------------------------ dynamic shapes


def test_one_session_many_input_shapes(asymo):
    model = models.mobilenet_v1(alpha=0.25, num_classes=10, dynamic_spatial=True)
    sess = harness.make_session(model)
    base = harness.make_session(model, "cpu")
    shapes = [(1, 32, 32), (3, 64, 48), (2, 33, 17), (1, 96, 96), (5, 16, 16), (1, 32, 32)]
    first = None
    for i, (n, h, w) in enumerate(shapes):
        feeds = models.make_inputs(model, batch=n, seed=0, dims={"H": h, "W": w})
        got = harness.run(sess, feeds)
        harness.assert_close(harness.run(base, feeds), got)
        if i == 0:
            first = got
    np.testing.assert_array_equal(first[0], got[0], "same shape and input after other shapes gave a different result")
    harness.check_placement(harness.assignment(sess), min_on_ep=1)


def test_fc_model_many_batch_sizes(asymo):
    model = models.mlp(size=100, hidden=(64, 48))
    sess = harness.make_session(model)
    base = harness.make_session(model, "cpu")
    for n in (1, 7, 64, 2, 130, 1):
        feeds = models.make_inputs(model, batch=n, seed=n)
        harness.assert_close(harness.run(base, feeds), harness.run(sess, feeds))


def test_zero_batch(asymo):
    """An empty batch gives the same (empty) result as the CPU EP, or both fail."""
    for model in (models.mlp(size=16, hidden=(8,)), models.mobilenet_v1(size=32, alpha=0.25, num_classes=4)):
        feeds = models.make_inputs(model, batch=0)
        _same_behaviour(model, feeds)


def _same_behaviour(model, feeds):
    """Our EP either matches the CPU EP's outputs, or fails where the CPU EP fails (a clear error, not a crash)."""
    try:
        expected = harness.run(harness.make_session(model, "cpu"), feeds)
    except Exception:
        expected = None
    sess = harness.make_session(model)
    if expected is None:
        with pytest.raises((ort.capi.onnxruntime_pybind11_state.InvalidArgument,
                            ort.capi.onnxruntime_pybind11_state.Fail,
                            ort.capi.onnxruntime_pybind11_state.RuntimeException)):
            harness.run(sess, feeds)
    else:
        harness.assert_close(expected, harness.run(sess, feeds))


def test_spatial_smaller_than_kernel_behaves_like_cpu_ep(asymo):
    g = GraphBuilder("small", seed=2)
    x = g.input("x", ["N", 2, "H", "W"])
    y = g.node("Conv", [x, g.const("w", g.weight((3, 2, 3, 3), 18))], name="conv_small", kernel_shape=[3, 3])
    model = g.build([y])
    for h, w in ((2, 2), (3, 2), (1, 5)):
        _same_behaviour(model, {"x": np.ones((1, 2, h, w), np.float32)})


# ------------------------------------------------------------------------------------------------ concurrency

def _concurrency_models():
    yield "mobilenet", models.mobilenet_v1(size=32, alpha=0.25, num_classes=16)
    yield "mlp", models.mlp(size=128, hidden=(256, 128, 64))


@pytest.mark.parametrize("name,model", [pytest.param(n, m, id=n) for n, m in _concurrency_models()])
def test_concurrent_runs_on_one_session(asymo, name, model):
    threads, runs = 4, 50
    sess = harness.make_session(model)
    inputs = [models.make_inputs(model, batch=1 + t % 3, seed=100 + t) for t in range(threads)]
    sequential = [harness.run(sess, f) for f in inputs]
    base = harness.make_session(model, "cpu")
    for f, got in zip(inputs, sequential):
        harness.assert_close(harness.run(base, f), got)

    errors, mismatches = [], []

    def worker(t):
        try:
            for r in range(runs):
                out = harness.run(sess, inputs[t])
                for a, b in zip(out, sequential[t]):
                    if not np.array_equal(a, b):
                        mismatches.append((t, r, float(np.max(np.abs(a - b)))))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    ts = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors, errors[:3]
    assert not mismatches, f"{len(mismatches)} concurrent runs differ from sequential ones, e.g. {mismatches[:3]}"


def test_several_sessions_in_one_process(asymo):
    specs = [models.mlp(size=32, hidden=(16,)), models.mobilenet_v1(size=32, alpha=0.25, num_classes=8),
             models.char_rnn(hidden=32, layers=1, steps=4), models.mlp(size=32, hidden=(16,))]
    sessions = [harness.make_session(m) for m in specs]
    feeds = [models.make_inputs(m, batch=2, seed=i) for i, m in enumerate(specs)]
    expected = [harness.run(harness.make_session(m, "cpu"), f) for m, f in zip(specs, feeds)]
    for _ in range(3):  # interleaved
        for s, f, e in zip(sessions, feeds, expected):
            harness.assert_close(e, harness.run(s, f))
    del sessions[1]
    gc.collect()
    for s, f, e in zip(sessions, feeds[:1] + feeds[2:], expected[:1] + expected[2:]):
        harness.assert_close(e, harness.run(s, f))


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity") or len(os.sched_getaffinity(0)) < 2,
                    reason="needs a CPU mask of two or more CPUs")
def test_runs_leave_the_calling_threads_cpu_mask_as_it_was(asymo):
    """`caller_affinity` narrows ORT's calling thread to the preferred cores during a Run (with `cores=0`: CPU 0;
    short Runs already there are left alone) and must give the thread its own mask back every time."""
    model = models.mlp(size=32, hidden=(16,))
    feeds = models.make_inputs(model, batch=2)
    before = os.sched_getaffinity(0)
    session = harness.make_session(model, options={"cores": sorted(before)[0]})
    expected = harness.run(harness.make_session(model, "cpu"), feeds)
    for _ in range(20):
        harness.assert_close(expected, harness.run(session, feeds))
        assert os.sched_getaffinity(0) == before


# ------------------------------------------------------------------------------------------------ bad inputs

_ERRORS = (ort.capi.onnxruntime_pybind11_state.InvalidArgument, ort.capi.onnxruntime_pybind11_state.Fail)


def test_wrong_static_input_shape(asymo):
    model = models.mobilenet_v1(size=32, alpha=0.25, num_classes=4)
    sess = harness.make_session(model)
    with pytest.raises(_ERRORS) as info:
        harness.run(sess, {"input": np.zeros((1, 3, 31, 32), np.float32)})
    assert "input" in str(info.value)
    with pytest.raises(_ERRORS):
        harness.run(sess, {"input": np.zeros((1, 3, 32), np.float32)})
    with pytest.raises(_ERRORS):
        harness.run(sess, {"input": np.zeros((1, 3, 32, 32), np.float64)})
    out = harness.run(sess, models.make_inputs(model, batch=1))[0]  # still usable
    assert out.shape == (1, 4)


def _mismatch_models():
    """Models whose declared shapes let ORT accept inputs the operator cannot use; the node must report it.
    (name, node name, model, bad feeds, good feeds, numbers that the error message should mention)."""
    g = GraphBuilder("mm_bad", seed=1)
    a = g.input("a", ["M", "K1"])
    b = g.input("b", ["K2", "N"])
    y = g.node("MatMul", [a, b], name="mm_bad")
    m = g.build([y])
    yield ("matmul_dynamic_k", "mm_bad", m,
           {"a": np.ones((3, 37), np.float32), "b": np.ones((41, 5), np.float32)},
           {"a": np.ones((3, 37), np.float32), "b": np.ones((37, 5), np.float32)}, ("37", "41"))

    g = GraphBuilder("mm_bad_const", seed=1)
    a = g.input("a", ["M", "K"])
    y = g.node("MatMul", [a, g.const("w", g.weight((37, 5), 37))], name="mm_const_bad")
    m = g.build([y])
    yield ("matmul_const_k", "mm_const_bad", m, {"a": np.ones((3, 41), np.float32)},
           {"a": np.ones((3, 37), np.float32)}, ("37", "41"))

    g = GraphBuilder("gemm_bad", seed=1)
    a = g.input("a", ["M", "K"])
    y = g.node("Gemm", [a, g.const("w", g.weight((29, 6), 29)), g.const("c", g.bias(6))], name="gemm_bad")
    m = g.build([y])
    yield ("gemm_const_k", "gemm_bad", m, {"a": np.ones((2, 31), np.float32)},
           {"a": np.ones((2, 29), np.float32)}, ("29", "31"))

    g = GraphBuilder("conv_bad", seed=1)
    x = g.input("x", ["N", "C", "H", "W"])
    y = g.node("Conv", [x, g.const("w", g.weight((4, 3, 3, 3), 27))], name="conv_bad", kernel_shape=[3, 3])
    m = g.build([y])
    yield ("conv_channels", "conv_bad", m, {"x": np.ones((1, 7, 8, 8), np.float32)},
           {"x": np.ones((1, 3, 8, 8), np.float32)}, ("3", "7"))


@pytest.mark.parametrize("case", [pytest.param(c, id=c[0]) for c in _mismatch_models()])
def test_mismatched_shapes_at_run_are_clear_errors(asymo, case):
    _, node, model, bad, good, numbers = case
    sess = harness.make_session(model)
    with pytest.raises(_ERRORS) as info:
        harness.run(sess, bad)
    if not harness.cpu_only():
        assert info.type is ort.capi.onnxruntime_pybind11_state.InvalidArgument, f"{info.type.__name__}: {info.value}"
    msg = str(info.value)
    assert node in msg, f"error does not name the node {node!r}: {msg}"
    if not harness.cpu_only():
        for num in numbers:
            assert re.search(rf"\b{num}\b", msg), f"error does not mention dimension {num}: {msg}"
    # the session survives and still computes correctly
    expected = harness.run(harness.make_session(model, "cpu"), good)
    harness.assert_close(expected, harness.run(sess, good))
    harness.check_placement(harness.assignment(sess), min_on_ep=1)


# ------------------------------------------------------------------------------------------------ shared weights

def test_nodes_sharing_weights(asymo):
    """One initializer read by several MatMul/Gemm nodes (an unrolled RNN's weights) is packed once per Compile;
    a bit-identical copy under another name shares it, a near-identical one and the other Gemm layout do not."""
    r = np.random.default_rng(21)
    w = r.standard_normal((16, 16)).astype(np.float32)
    near = w.copy()
    near[5, 7] += 1e-3
    inits = [numpy_helper.from_array(a, n) for n, a in
             [("w", w), ("w_copy", w.copy()), ("w_near", near), ("bias", r.standard_normal(16).astype(np.float32))]]
    nodes, prev, outs = [], "x", []
    steps = [("MatMul", "w", {}), ("MatMul", "w", {}), ("MatMul", "w_copy", {}), ("MatMul", "w_near", {}),
             ("Gemm", "w", {"transB": 1}), ("Gemm", "w", {}), ("Gemm", "w_copy", {"transB": 1}),
             ("Gemm", "w_near", {"transB": 1})]
    for i, (op, wname, attrs) in enumerate(steps):
        ins = [prev, wname] + (["bias"] if op == "Gemm" else [])
        nodes.append(helper.make_node(op, ins, [f"h{i}"], name=f"{op}{i}", **attrs))
        nodes.append(helper.make_node("Tanh", [f"h{i}"], [f"t{i}"], name=f"tanh{i}"))
        prev = f"t{i}"
        outs.append(helper.make_tensor_value_info(f"h{i}", TensorProto.FLOAT, None))
    graph = helper.make_graph(nodes, "shared_weights", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 16])],
                              outs, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = models.IR_VERSION
    result = harness.compare(m, {"x": r.standard_normal((3, 16)).astype(np.float32)})
    harness.check_placement(result.assignment, min_on_ep=len(steps))


# ------------------------------------------------------------------------------------------------ other dtypes

def _single(op, inputs, inits, out_type, attrs=None, opset=17):
    """inputs: [(name, elem_type, shape)], inits: [(name, array)]"""
    node = helper.make_node(op, [n for n, _, _ in inputs] + [n for n, _ in inits], ["y"], name=f"{op}_node",
                            **(attrs or {}))
    graph = helper.make_graph([node], op, [helper.make_tensor_value_info(n, t, s) for n, t, s in inputs],
                              [helper.make_tensor_value_info("y", out_type, None)],
                              [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = models.IR_VERSION
    return m


def _other_dtype_models():
    r = np.random.default_rng(9)
    f16, f64 = TensorProto.FLOAT16, TensorProto.DOUBLE
    yield "matmul_fp16", _single("MatMul", [("a", f16, [3, 8])], [("b", r.standard_normal((8, 5)).astype(np.float16))], f16)
    yield "gemm_fp16", _single("Gemm", [("a", f16, [3, 8])], [("b", r.standard_normal((8, 5)).astype(np.float16)),
                                                               ("c", r.standard_normal(5).astype(np.float16))], f16)
    yield "conv_fp16", _single("Conv", [("a", f16, [1, 2, 6, 6])],
                               [("w", r.standard_normal((3, 2, 3, 3)).astype(np.float16))], f16)
    yield "matmul_fp64", _single("MatMul", [("a", f64, [3, 8])], [("b", r.standard_normal((8, 5)))], f64)
    yield "gemm_fp64", _single("Gemm", [("a", f64, [3, 8])], [("b", r.standard_normal((8, 5)))], f64,
                               {"transA": 0, "alpha": 0.5})
    yield "matmul_int32", _single("MatMul", [("a", TensorProto.INT32, [3, 8])],
                                  [("b", r.integers(-5, 5, (8, 5)).astype(np.int32))], TensorProto.INT32)
    yield "matmul_integer_u8", _single("MatMulInteger", [("a", TensorProto.UINT8, [3, 8])],
                                       [("b", r.integers(0, 255, (8, 5)).astype(np.uint8))], TensorProto.INT32)
    yield "conv_integer_u8", _single("ConvInteger", [("a", TensorProto.UINT8, [1, 2, 6, 6])],
                                     [("w", r.integers(0, 255, (3, 2, 3, 3)).astype(np.uint8))], TensorProto.INT32)
    q = [("as", np.array(0.05, np.float32)), ("az", np.array(128, np.uint8))]
    yield "qlinear_matmul", _single("QLinearMatMul", [("a", TensorProto.UINT8, [3, 8])],
                                    q + [("b", r.integers(-100, 100, (8, 5)).astype(np.int8)),
                                         ("bs", np.array(0.02, np.float32)), ("bz", np.array(0, np.int8)),
                                         ("ys", np.array(0.1, np.float32)), ("yz", np.array(100, np.uint8))],
                                    TensorProto.UINT8)
    yield "qlinear_conv", _single("QLinearConv", [("a", TensorProto.UINT8, [1, 2, 6, 6])],
                                  q + [("w", r.integers(-100, 100, (3, 2, 3, 3)).astype(np.int8)),
                                       ("ws", np.array(0.02, np.float32)), ("wz", np.array(0, np.int8)),
                                       ("ys", np.array(0.1, np.float32)), ("yz", np.array(100, np.uint8))],
                                  TensorProto.UINT8)


@pytest.mark.parametrize("name,model", [pytest.param(n, m, id=n) for n, m in _other_dtype_models()])
def test_other_dtypes_stay_on_cpu_ep(asymo, name, model):
    feeds = models.make_inputs(model, batch=1, seed=3)
    if "u8" in name or "qlinear" in name:
        feeds = {k: np.random.default_rng(3).integers(0, 255, v.shape).astype(v.dtype) for k, v in feeds.items()}
    result = harness.compare(model, feeds)  # integer outputs must be equal, float ones within the usual tolerance
    harness.check_placement(result.assignment, expect_on_ep=False)


def test_mixed_precision_model(asymo):
    """fp32 Conv/Gemm on our EP, an fp16 MatMul segment (via Cast) on the CPU EP, all correct."""
    g = GraphBuilder("mixed_precision", seed=8)
    x = g.input("x", ["N", 4, 8, 8])
    y = g.conv(x, 4, 8, 3, name="conv")
    y = g.flatten(g.global_avgpool(y))
    y = g.gemm(y, 8, 16, relu=True, name="fc")
    h = g.node("Cast", [y], name="to_fp16", to=TensorProto.FLOAT16)
    h = g.node("MatMul", [h, g.const("w16", g.weight((16, 6), 16).astype(np.float16))], name="mm_fp16")
    y = g.node("Cast", [h], name="to_fp32", to=TensorProto.FLOAT)
    model = g.build([y])
    feeds = models.make_inputs(model, batch=3)
    result = harness.compare(model, feeds, rtol=1e-3)  # fp16 segment
    if not harness.cpu_only():
        ours = [n for n, _ in result.assignment.get(harness.EP_NAME, [])]
        assert "mm_fp16" not in ours, result.assignment
        heavy_ours = [op for op in harness.ops_on(result.assignment, harness.EP_NAME) if op in harness.HEAVY_OPS]
        assert sorted(heavy_ours) == ["Conv", "Gemm"], result.assignment


# ------------------------------------------------------------------------------------------------ lifetime

@pytest.mark.slow
def test_session_cycles_keep_rss_flat(asymo):
    """500 create/run/destroy cycles: RSS after them stays within a few MB of RSS after a warm-up (a leaked copy of
    the ~0.5 MB of weights per cycle would add ~250 MB)."""
    g = GraphBuilder("cycle", seed=5)
    x = g.input("x", ["N", 3, 16, 16])
    y = g.conv(x, 3, 16, 3, name="conv")
    y = g.flatten(g.global_avgpool(y))
    y = g.matmul_add(y, 16, 256, relu=True, name="l1")
    y = g.gemm(y, 256, 256, name="l2")
    y = g.node("MatMul", [y, g.const("w3", g.weight((256, 128), 256))], name="mm3")
    data = g.build([y]).SerializeToString()
    feeds = {"x": np.random.default_rng(0).standard_normal((2, 3, 16, 16)).astype(np.float32)}

    def cycle():
        sess = harness.make_session(data, record_assignment=False)
        sess.run(None, feeds)
        del sess

    for _ in range(60):
        cycle()
    gc.collect()
    before = harness.rss_bytes()
    for i in range(500):
        cycle()
        if i % 100 == 99:
            gc.collect()
    gc.collect()
    grown = (harness.rss_bytes() - before) / 2**20
    print(f"RSS growth over 500 cycles: {grown:.2f} MB")
    assert grown < 24, f"RSS grew by {grown:.1f} MB over 500 session cycles"


# ------------------------------------------------------------------------------------------------ frequency modes

@pytest.mark.parametrize("options", [
    {"freq": "off"}, {"freq": "auto"}, {"freq": "max"}, {"freq": "1800000"}, {"mode": "latency", "freq_hold_ms": "0"},
    {"freq_backend": "uclamp"}, {"freq_backend": "none"},
])
def test_frequency_modes_degrade_cleanly_here(real_ep, options):
    """This machine has no cpufreq: every frequency setting still runs, with correct results."""
    model = models.mlp(size=64, hidden=(96, 48))
    feeds = models.make_inputs(model, batch=3)
    harness.compare(model, feeds, options=options)


def test_energy_mode_without_curves_is_a_clear_error(real_ep):
    model = models.mlp(size=64, hidden=(96, 48))
    with pytest.raises(Exception) as info:
        harness.make_session(model, "asymo", options={"mode": "energy"})
    msg = str(info.value)
    assert "mode=energy" in msg and "asymo-profile --energy" in msg, msg
