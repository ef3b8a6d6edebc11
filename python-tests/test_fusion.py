"""Fused epilogues: a MatMul/Gemm/Conv followed by single-consumer Relu, Clip, LeakyRelu, Sigmoid, HardSigmoid,
HardSwish (also the x·HardSigmoid(x) pattern) or a residual Add runs as one fused node on our EP — each epilogue
alone and chained, against the CPU EP; the patterns we must not fuse stay correct (and unfused)."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import harness

F = TensorProto.FLOAT


def model_with(head: str, epilogue, opset=17, extra_inputs=(), extra_outputs=(), inits=()):
    """`head` node producing "h" from "x", then the `epilogue` nodes, ending in output "y"."""
    rng = np.random.default_rng(3)
    if head == "Conv":
        x_shape, h_shape = [2, 3, 9, 9], [2, 8, 9, 9]
        w = numpy_helper.from_array((rng.standard_normal((8, 3, 3, 3)) * 0.4).astype(np.float32), "w")
        b = numpy_helper.from_array(rng.standard_normal(8).astype(np.float32), "b")
        head_node = helper.make_node("Conv", ["x", "w", "b"], ["h"], name="head", pads=[1, 1, 1, 1])
    elif head == "Gemm":
        x_shape, h_shape = [5, 12], [5, 7]
        w = numpy_helper.from_array(rng.standard_normal((7, 12)).astype(np.float32), "w")
        b = numpy_helper.from_array(rng.standard_normal(7).astype(np.float32), "b")
        head_node = helper.make_node("Gemm", ["x", "w", "b"], ["h"], name="head", transB=1, alpha=0.7)
    else:
        x_shape, h_shape = [2, 5, 12], [2, 5, 7]
        w = numpy_helper.from_array(rng.standard_normal((12, 7)).astype(np.float32), "w")
        b = None
        head_node = helper.make_node("MatMul", ["x", "w"], ["h"], name="head")
    initializers = [w] + ([b] if b is not None else []) + list(inits)
    inputs = [helper.make_tensor_value_info("x", F, x_shape)]
    inputs += [helper.make_tensor_value_info(n, F, h_shape) for n in extra_inputs]
    outputs = [helper.make_tensor_value_info("y", F, h_shape)]
    outputs += [helper.make_tensor_value_info(n, F, h_shape) for n in extra_outputs]
    graph = helper.make_graph([head_node, *epilogue], "fusion", inputs, outputs, initializers)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model, x_shape, h_shape


def feeds_for(model, x_shape, h_shape, extra_inputs=(), scale=2.0):
    rng = np.random.default_rng(7)
    f = {"x": (rng.standard_normal(x_shape) * scale).astype(np.float32)}
    for n in extra_inputs:
        f[n] = rng.standard_normal(h_shape).astype(np.float32)
    return f


def scalar(name, v):
    return numpy_helper.from_array(np.array(v, dtype=np.float32), name)


# name → (epilogue nodes from "h" to "y", opset, initializers)
SINGLE = {
    "relu": ([helper.make_node("Relu", ["h"], ["y"], name="e0")], 17, []),
    "clip11": ([helper.make_node("Clip", ["h", "lo", "hi"], ["y"], name="e0")], 17, [scalar("lo", 0.0), scalar("hi", 6.0)]),
    "clip11_min_only": ([helper.make_node("Clip", ["h", "lo"], ["y"], name="e0")], 17, [scalar("lo", -0.5)]),
    "clip11_max_only": ([helper.make_node("Clip", ["h", "", "hi"], ["y"], name="e0")], 17, [scalar("hi", 0.25)]),
    "clip6": ([helper.make_node("Clip", ["h"], ["y"], name="e0", min=-1.0, max=1.5)], 6, []),
    "leaky_relu": ([helper.make_node("LeakyRelu", ["h"], ["y"], name="e0", alpha=0.1)], 17, []),
    "leaky_relu_default": ([helper.make_node("LeakyRelu", ["h"], ["y"], name="e0")], 17, []),
    "sigmoid": ([helper.make_node("Sigmoid", ["h"], ["y"], name="e0")], 17, []),
    "hard_sigmoid": ([helper.make_node("HardSigmoid", ["h"], ["y"], name="e0", alpha=0.3, beta=0.4)], 17, []),
    "hard_swish": ([helper.make_node("HardSwish", ["h"], ["y"], name="e0")], 17, []),
    "hard_sigmoid_mul": ([helper.make_node("HardSigmoid", ["h"], ["s"], name="e0", alpha=1.0 / 6, beta=0.5),
                          helper.make_node("Mul", ["h", "s"], ["y"], name="e1")], 17, []),
}


@pytest.mark.parametrize("head", ["Conv", "Gemm", "MatMul"])
@pytest.mark.parametrize("name", sorted(SINGLE))
def test_single_epilogue_is_fused(asymo, head, name):
    nodes, opset, inits = SINGLE[name]
    if opset < 7 and head == "Gemm":
        opset = 7  # Gemm-6 is left to the CPU EP; Clip-6 is still the attribute form at opset 7–10
    if opset < 9 and head == "MatMul":
        opset = 9
    model, xs, hs = model_with(head, nodes, opset=opset, inits=inits)
    result = harness.compare(model, feeds_for(model, xs, hs))
    if not harness.cpu_only():
        ours = [n for n, _ in result.assignment.get(harness.EP_NAME, [])]
        assert "head" in ours and all(n.name in ours for n in nodes), result.assignment


def test_residual_add_then_relu_is_fused(asymo):
    nodes = [helper.make_node("Add", ["h", "r"], ["a"], name="e0"), helper.make_node("Relu", ["a"], ["y"], name="e1")]
    model, xs, hs = model_with("Conv", nodes, extra_inputs=["r"])
    result = harness.compare(model, feeds_for(model, xs, hs, extra_inputs=["r"]))
    if not harness.cpu_only():
        ours = [n for n, _ in result.assignment.get(harness.EP_NAME, [])]
        assert {"head", "e0", "e1"} <= set(ours), result.assignment


def test_residual_add_with_head_as_second_operand(asymo):
    nodes = [helper.make_node("Add", ["r", "h"], ["y"], name="e0")]
    model, xs, hs = model_with("Gemm", nodes, extra_inputs=["r"])
    result = harness.compare(model, feeds_for(model, xs, hs, extra_inputs=["r"]))
    if not harness.cpu_only():
        assert "e0" in [n for n, _ in result.assignment.get(harness.EP_NAME, [])], result.assignment


def test_long_chain(asymo):
    nodes = [
        helper.make_node("Add", ["h", "r"], ["a"], name="e0"),
        helper.make_node("LeakyRelu", ["a"], ["b"], name="e1", alpha=0.2),
        helper.make_node("Clip", ["b", "lo", "hi"], ["c"], name="e2"),
        helper.make_node("Sigmoid", ["c"], ["y"], name="e3"),
    ]
    model, xs, hs = model_with("MatMul", nodes, extra_inputs=["r"], inits=[scalar("lo", -1.0), scalar("hi", 1.0)])
    result = harness.compare(model, feeds_for(model, xs, hs, extra_inputs=["r"]))
    if not harness.cpu_only():
        ours = {n for n, _ in result.assignment.get(harness.EP_NAME, [])}
        assert {"head", "e0", "e1", "e2", "e3"} <= ours, result.assignment


# Patterns that must not be fused; results must still match.
def not_fused_cases():
    rng = np.random.default_rng(1)
    bcast = numpy_helper.from_array(rng.standard_normal((1, 8, 1, 1)).astype(np.float32), "bc")
    const_full = numpy_helper.from_array(rng.standard_normal((2, 8, 9, 9)).astype(np.float32), "cf")
    return {
        # h is also a graph output: the Relu may not be folded into it
        "head_is_graph_output": ([helper.make_node("Relu", ["h"], ["y"], name="e0")], [], ["h"], []),
        # h has two consumers
        "two_consumers": ([helper.make_node("Relu", ["h"], ["p"], name="e0"),
                           helper.make_node("Sigmoid", ["h"], ["q"], name="e1"),
                           helper.make_node("Add", ["p", "q"], ["y"], name="e2")], [], [], []),
        # Add broadcasting a [1,8,1,1] constant
        "broadcast_add": ([helper.make_node("Add", ["h", "bc"], ["y"], name="e0")], [], [], [bcast]),
        # Add of a constant of the full shape
        "constant_add": ([helper.make_node("Add", ["h", "cf"], ["y"], name="e0")], [], [], [const_full]),
        # Clip with a dynamic bound
        "dynamic_clip": ([helper.make_node("Clip", ["h", "lo"], ["y"], name="e0")], [], [], []),
        # HardSigmoid · x with other parameters is not HardSwish
        "hard_sigmoid_mul_other_params": ([helper.make_node("HardSigmoid", ["h"], ["s"], name="e0", alpha=0.3, beta=0.5),
                                           helper.make_node("Mul", ["h", "s"], ["y"], name="e1")], [], [], []),
    }


@pytest.mark.parametrize("name", sorted(not_fused_cases()))
def test_not_fused_but_correct(asymo, name):
    nodes, extra_in, extra_out, inits = not_fused_cases()[name]
    extra_in = list(extra_in)
    graph_inputs = []
    if name == "dynamic_clip":
        graph_inputs = ["lo"]
    model, xs, hs = model_with("Conv", nodes, extra_outputs=extra_out, inits=inits)
    for n in graph_inputs:
        model.graph.input.append(helper.make_tensor_value_info(n, F, []))
    feeds = feeds_for(model, xs, hs)
    if name == "dynamic_clip":
        feeds["lo"] = np.array(0.1, dtype=np.float32)
    result = harness.compare(model, feeds)
    if not harness.cpu_only():
        ours = {n for n, _ in result.assignment.get(harness.EP_NAME, [])}
        assert "head" in ours, result.assignment
        if name in ("head_is_graph_output", "two_consumers", "broadcast_add", "constant_add", "dynamic_clip"):
            assert "e0" not in ours, result.assignment
        if name == "hard_sigmoid_mul_other_params":
            assert "e1" not in ours, result.assignment


@pytest.mark.parametrize("name", ["relu", "clip11", "leaky_relu", "sigmoid", "hard_swish"])
def test_special_values_through_fused_epilogues(asymo, name):
    """NaN and ±inf reaching a fused epilogue behave as on the CPU EP."""
    nodes, opset, inits = SINGLE[name]
    model, xs, hs = model_with("MatMul", nodes, opset=opset, inits=inits)
    feeds = feeds_for(model, xs, hs)
    feeds["x"][0, 0, 0] = np.nan
    feeds["x"][0, 1, :] = np.inf
    feeds["x"][1, 2, :] = -np.inf
    harness.compare(model, feeds)
