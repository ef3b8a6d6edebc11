"""A Conv (+ elementwise epilogue) whose only consumer is a 2-D MaxPool runs as one fused node, the pool reading the
convolution band by band from a buffer in L2: against the CPU EP over the pool's and the convolution's attributes,
maps large enough for several bands and tasks, several images, dynamic spatial dims, and NaN."""

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import harness

F = TensorProto.FLOAT


def conv_pool(c_in=3, c_out=16, conv=None, pool=None, relu=True, shape=("N", 3, "H", "W"), opset=17, group=1,
              residual=False):
    conv = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [1, 1], **(conv or {})}
    pool = {"kernel_shape": [3, 3], "strides": [2, 2], **(pool or {})}
    rng = np.random.default_rng(23)
    kh, kw = conv["kernel_shape"]
    w = numpy_helper.from_array(
        (rng.standard_normal((c_out, c_in // group, kh, kw)) / np.sqrt(c_in * kh * kw)).astype(np.float32), "w")
    b = numpy_helper.from_array((rng.standard_normal(c_out) * 0.1).astype(np.float32), "b")
    nodes = [helper.make_node("Conv", ["x", "w", "b"], ["c"], name="conv", group=group, **conv)]
    last = "c"
    if residual:
        nodes.append(helper.make_node("Add", ["c", "r"], ["ca"], name="add"))
        last = "ca"
    if relu:
        nodes.append(helper.make_node("Relu", [last], ["cr"], name="relu"))
        last = "cr"
    nodes.append(helper.make_node("MaxPool", [last], ["y"], name="pool", **pool))
    inputs = [helper.make_tensor_value_info("x", F, list(shape))]
    if residual:
        inputs.append(helper.make_tensor_value_info("r", F, None))
    graph = helper.make_graph(nodes, "conv_pool", inputs, [helper.make_tensor_value_info("y", F, None)], [w, b])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 10
    return model


def x_of(n, c, h, w, seed=0):
    return np.random.default_rng(seed).standard_normal((n, c, h, w)).astype(np.float32)


def claimed(result):
    return {name for name, _ in result.assignment.get(harness.EP_NAME, [])}


POOLS = {
    "3x3s2": {},
    "3x3s2_pad1": dict(pads=[1, 1, 1, 1]),
    "3x3s2_ceil": dict(ceil_mode=1),
    "3x3s2_ceil_pads": dict(ceil_mode=1, pads=[0, 1, 1, 0]),
    "2x2s2": dict(kernel_shape=[2, 2]),
    "3x3s1_pad1": dict(strides=[1, 1], pads=[1, 1, 1, 1]),
    "2x3_s1x2": dict(kernel_shape=[2, 3], strides=[1, 2]),
    "3x3s2_dil2": dict(dilations=[2, 2]),
    "3x3s3": dict(strides=[3, 3]),
    "same_upper": dict(auto_pad="SAME_UPPER"),
    "5x5s2_asym": dict(kernel_shape=[5, 5], pads=[2, 0, 1, 2]),
}


@pytest.mark.parametrize("pool", sorted(POOLS))
def test_pool_attributes(asymo, pool):
    # 16 channels × 150 columns: several bands over 97 rows, several tasks.
    model = conv_pool(pool=POOLS[pool])
    result = harness.compare(model, {"x": x_of(1, 3, 97, 150)})
    if not harness.cpu_only():
        assert {"conv", "relu", "pool"} <= claimed(result), result.assignment


CONVS = {
    "stride2_k3": dict(strides=[2, 2], pads=[0, 0, 0, 0]),
    "k7s2_pad3": dict(kernel_shape=[7, 7], strides=[2, 2], pads=[3, 3, 3, 3]),
    "k1": dict(kernel_shape=[1, 1], pads=[0, 0, 0, 0]),
    "dilated": dict(dilations=[2, 2], pads=[2, 1, 2, 1]),
    "asym_pads_s2": dict(strides=[2, 1], pads=[0, 2, 1, 0]),
    "k5_s3": dict(kernel_shape=[5, 5], strides=[3, 3], pads=[2, 2, 2, 2]),
}


@pytest.mark.parametrize("conv", sorted(CONVS))
def test_conv_attributes(asymo, conv):
    # 128 output channels: even 5×5 / 3 reads at most a quarter of its output per pixel, so every case is fused.
    model = conv_pool(c_out=128, conv=CONVS[conv])
    result = harness.compare(model, {"x": x_of(2, 3, 131, 120, seed=1)})
    if not harness.cpu_only():
        assert {"conv", "pool"} <= claimed(result), result.assignment


def test_grouped_and_depthwise(asymo):
    """Groups band like any convolution; a depthwise one takes its own kernel, then the pool whole."""
    for group, c_in, c_out in [(2, 8, 32), (8, 8, 8), (8, 8, 16)]:
        model = conv_pool(c_in=c_in, c_out=c_out, group=group, shape=("N", c_in, "H", "W"))
        harness.compare(model, {"x": x_of(1, c_in, 64, 90, seed=group)})


def test_dynamic_shapes_and_batches(asymo):
    if harness.cpu_only():
        pytest.skip("needs the EP")
    model = conv_pool(c_out=32, pool=dict(pads=[1, 1, 1, 1]))
    ref = harness.make_session(model, ep="cpu")
    sess = harness.make_session(model)
    for n, h, w in [(1, 224, 224), (3, 17, 9), (1, 1, 1), (2, 5, 300), (1, 2, 2), (1, 224, 224)]:
        feeds = {"x": x_of(n, 3, h, w, seed=h)}
        harness.assert_close(harness.run(ref, feeds), harness.run(sess, feeds))


def test_nan_and_infinities(asymo):
    """NaN reaching the pool gives NaN (ours propagates it wherever it sits in a window, as the README says; the CPU
    EP's pool drops some), so the reference is the CPU EP's convolution pooled in numpy."""
    if harness.cpu_only():
        pytest.skip("needs the EP")
    x = x_of(1, 3, 60, 70, seed=3)
    x[0, 0, 10, 10:20] = np.nan
    x[0, 1, 30, :] = np.inf
    x[0, 2, 40:45, 5] = -np.inf
    model = conv_pool(relu=False)
    conv_only = conv_pool(relu=False)
    del conv_only.graph.node[-1]
    conv_only.graph.output[0].name = "c"
    (c,) = harness.run(harness.make_session(conv_only, ep="cpu"), {"x": x})
    n, ch, h, w = c.shape
    ho, wo = (h - 3) // 2 + 1, (w - 3) // 2 + 1
    windows = np.stack([c[:, :, i:i + 2 * ho:2, j:j + 2 * wo:2] for i in range(3) for j in range(3)])
    want = np.where(np.isnan(windows).any(axis=0), np.nan, np.nanmax(np.where(np.isnan(windows), -np.inf, windows), axis=0))
    (got,) = harness.run(harness.make_session(model), {"x": x})
    assert np.isnan(got).any() and np.isinf(got).any()
    harness.assert_close([want.astype(np.float32)], [got])


def test_wide_inputs_stay_unfused(asymo):
    """A convolution reading as much as it writes (VGG's 64 → 64) runs whole, then its pool."""
    model = conv_pool(c_in=16, c_out=16, shape=("N", 16, "H", "W"), pool={"kernel_shape": [2, 2]})
    harness.compare(model, {"x": x_of(1, 16, 50, 40)})


def test_residual_before_the_pool_stays_unfused(asymo):
    model = conv_pool(residual=True)
    r = x_of(1, 16, 40, 50, seed=9)
    result = harness.compare(model, {"x": x_of(1, 3, 40, 50), "r": r})
    if not harness.cpu_only():
        assert "pool" in claimed(result), result.assignment


def test_resnet_and_squeezenet_stems(asymo):
    """The first layers these fusions are for: ResNet-50 (7×7/2, 3×3/2 pool, pad 1) and SqueezeNet (3×3/2, pool
    3×3/2 ceil)."""
    resnet = conv_pool(c_out=64, conv=dict(kernel_shape=[7, 7], strides=[2, 2], pads=[3, 3, 3, 3]),
                       pool=dict(pads=[1, 1, 1, 1]))
    squeeze = conv_pool(c_out=64, conv=dict(strides=[2, 2], pads=[0, 0, 0, 0]), pool=dict(ceil_mode=1))
    # Declared shapes too: a 224² map at stride 1 takes the channel-vectorized lowering inside the bands.
    static = conv_pool(c_out=64, shape=(1, 3, 224, 224), pool={"kernel_shape": [2, 2]})
    for model in (resnet, squeeze, static):
        harness.compare(model, {"x": x_of(1, 3, 224, 224)})


def test_rows_of_padding_alone(asymo):
    """Pads of a kernel's height or more make output rows that read no input (1×1 with pads 2; 3×3 with pads 3):
    such convolutions run whole, then their pool."""
    for conv in ({"kernel_shape": [1, 1], "pads": [2, 1, 2, 1]}, {"pads": [3, 3, 3, 3], "strides": [2, 2]}):
        model = conv_pool(c_out=64, conv=conv, pool={"kernel_shape": [2, 2]})
        harness.compare(model, {"x": x_of(1, 3, 23, 31, seed=5)})
