"""A Concat along the channels of convolutions we claim (SqueezeNet's Fire modules, Inception branches) runs as one
fused node whose convolutions write their channels of its output in place: against the CPU EP, with one and with
several images, and the patterns that must stay unfused."""

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import harness

F = TensorProto.FLOAT


def conv(rng, name, x, y, c_in, c_out, k, pad, inits, bias=True):
    w = numpy_helper.from_array((rng.standard_normal((c_out, c_in, k, k)) / np.sqrt(c_in * k * k)).astype(np.float32),
                                f"{name}_w")
    inits.append(w)
    ins = [x, w.name]
    if bias:
        b = numpy_helper.from_array((rng.standard_normal(c_out) * 0.1).astype(np.float32), f"{name}_b")
        inits.append(b)
        ins.append(b.name)
    return helper.make_node("Conv", ins, [y], name=name, pads=[pad] * 4)


def fire(batch="N", hw=11, axis=1, opset=17, extra_nodes=(), concat_inputs=("e1r", "e3r"), outputs=("y",),
         extra_inputs=(), e1_channels=6):
    """squeeze 1×1 + Relu → expand 1×1 + Relu, expand 3×3 + Relu → Concat(axis) → "y"."""
    rng = np.random.default_rng(11)
    inits = []
    nodes = [
        conv(rng, "squeeze", "x", "s", 8, 4, 1, 0, inits),
        helper.make_node("Relu", ["s"], ["sr"], name="squeeze_relu"),
        conv(rng, "e1", "sr", "e1o", 4, e1_channels, 1, 0, inits),
        helper.make_node("Relu", ["e1o"], ["e1r"], name="e1_relu"),
        conv(rng, "e3", "sr", "e3o", 4, 10, 3, 1, inits, bias=False),
        helper.make_node("Relu", ["e3o"], ["e3r"], name="e3_relu"),
        *extra_nodes,
        helper.make_node("Concat", list(concat_inputs), ["y"], name="cat", axis=axis),
    ]
    inputs = [helper.make_tensor_value_info("x", F, [batch, 8, hw, hw])]
    inputs += [helper.make_tensor_value_info(n, F, [batch, 10, hw, hw]) for n in extra_inputs]
    outs = [helper.make_tensor_value_info(n, F, None) for n in outputs]
    model = helper.make_model(helper.make_graph(nodes, "fire", inputs, outs, inits),
                              opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def feeds(batch, hw=11, **extra):
    rng = np.random.default_rng(batch)
    f = {"x": rng.standard_normal((batch, 8, hw, hw)).astype(np.float32)}
    f.update(extra)
    return f


def ours(result):
    return {n for n, _ in result.assignment.get(harness.EP_NAME, [])}


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("axis", [1, -3])
def test_fire_module_concat_is_fused(asymo, batch, axis):
    result = harness.compare(fire(axis=axis), feeds(batch))
    if not harness.cpu_only():
        assert {"e1", "e1_relu", "e3", "e3_relu", "cat"} <= ours(result), result.assignment


def test_same_session_one_and_several_images(asymo):
    """One session, batch 1 (parts write the output in place) and batch 2 (per-image runs moved), alternately."""
    model = fire()
    if harness.cpu_only():
        pytest.skip("needs the EP")
    ref = harness.make_session(model, ep="cpu")
    sess = harness.make_session(model)
    for batch in (1, 2, 1, 4):
        f = feeds(batch)
        harness.assert_close(harness.run(ref, f), harness.run(sess, f))


def test_three_parts_and_a_repeated_producer(asymo):
    """A third branch; and a Concat that lists one branch twice stays unfused (and correct)."""
    rng = np.random.default_rng(5)
    inits = []
    extra = [conv(rng, "e5", "sr", "e5o", 4, 3, 5, 2, inits)]
    model = fire(extra_nodes=extra, concat_inputs=("e1r", "e5o", "e3r"))
    model.graph.initializer.extend(inits)
    result = harness.compare(model, feeds(1))
    if not harness.cpu_only():
        assert {"e1", "e3", "e5", "cat"} <= ours(result), result.assignment
    twice = fire(concat_inputs=("e1r", "e3r", "e1r"))
    result = harness.compare(twice, feeds(2))
    if not harness.cpu_only():
        assert "cat" not in ours(result), result.assignment


def test_concats_left_to_the_cpu_ep(asymo):
    """Another axis; an input that is not a convolution; a branch that is also a graph output."""
    cases = {
        "spatial_axis": fire(axis=2, e1_channels=10),
        "graph_input_part": fire(concat_inputs=("e1r", "e3r", "z"), extra_inputs=("z",)),
        "branch_is_output": fire(outputs=("y", "e3r")),
    }
    for name, model in cases.items():
        extra = {"z": np.random.default_rng(2).standard_normal((2, 10, 11, 11)).astype(np.float32)} \
            if name == "graph_input_part" else {}
        result = harness.compare(model, feeds(2, **extra))
        if not harness.cpu_only():
            got = ours(result)
            assert "cat" not in got and {"e1", "e3"} <= got, (name, result.assignment)


def test_residual_part(asymo):
    """A branch with a residual Add in its fused chain (the other operand from outside the Concat)."""
    extra = [helper.make_node("Add", ["e3o", "r"], ["e3a"], name="e3_add")]
    model = fire(extra_nodes=extra, concat_inputs=("e1r", "e3a"), extra_inputs=("r",))
    r = np.random.default_rng(4).standard_normal((2, 10, 11, 11)).astype(np.float32)
    # e3o has two consumers (Relu and Add) here, so e3's chain ends at e3o: the Concat stays unfused, still correct.
    harness.compare(model, feeds(2, r=r))
    model = fire(extra_nodes=[], concat_inputs=("e1r", "e3a"), extra_inputs=("r",))
    model.graph.node.insert(len(model.graph.node) - 1, helper.make_node("Add", ["e3r", "r"], ["e3a"], name="e3_add"))
    result = harness.compare(model, feeds(2, r=r))
    if not harness.cpu_only():
        assert {"e3", "e3_relu", "e3_add", "cat"} <= ours(result), result.assignment
