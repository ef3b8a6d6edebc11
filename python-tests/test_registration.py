"""Registration, device listing, option errors and node assignment of the AsyMo EP in onnxruntime 1.31.1."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import harness
import models
from models import GraphBuilder


def _cargo_version() -> str:
    text = (harness.REPO / "Cargo.toml").read_text()
    m = re.search(r'^\[package\][^\[]*?^version\s*=\s*"([^"]+)"', text, re.S | re.M)
    return m.group(1) if m else ""


def _tiny_model():
    g = GraphBuilder("tiny", seed=3)
    x = g.input("x", ["N", 8])
    y = g.gemm(x, 8, 4, name="fc")
    return g.build([y])


def _mixed_model():
    """Conv → Relu → depthwise Conv → Relu → GAP → Flatten → MatMul+Add (fused to Gemm) → Relu → Gemm → Sigmoid,
    and an attention-style MatMul of two activations → Softmax → MatMul with a constant."""
    g = GraphBuilder("mixed", seed=4)
    x = g.input("image", ["N", 3, 16, 16])
    y = g.conv(x, 3, 8, 3, name="conv")
    y = g.conv(y, 8, 8, 3, group=8, stride=2, name="dwconv")
    y = g.flatten(g.global_avgpool(y))
    y = g.matmul_add(y, 8, 16, relu=True, name="linear")
    y = g.gemm(y, 16, 4, name="fc")
    y = g.sigmoid(y)
    q = g.input("q", ["N", 6, 16])
    k = g.input("k", ["N", 16, 6])
    a = g.node("MatMul", [q, k], name="attn_scores")
    a = g.node("Softmax", [a], name="softmax", axis=-1)
    a = g.node("MatMul", [a, g.const("v", g.weight((6, 5), 6, 1.0))], name="attn_values")
    return g.build([y, a], names=["probs", "attn"])


# ------------------------------------------------------------------------------------------------ registration

def test_library_registers_and_lists_a_cpu_device(real_ep):
    devices = harness.ep_devices()
    assert devices, "no AsyMoExecutionProvider device after registration"
    for d in devices:
        assert d.ep_name == harness.EP_NAME
        assert isinstance(d.ep_vendor, str) and d.ep_vendor.strip(), "empty ep_vendor"
        assert d.device.type == ort.OrtHardwareDeviceType.CPU
        meta = dict(d.ep_metadata)
        assert "version" in meta, f"no version in ep_metadata {meta}"
        assert re.fullmatch(r"\d+\.\d+\.\d+([-+].*)?", meta["version"]), f"version {meta['version']!r} is not semver"
        if "ASYMO_EP_LIB" not in __import__("os").environ:
            assert meta["version"] == _cargo_version(), "ep_metadata version differs from Cargo.toml"
        if "library_path" in meta:
            assert Path(meta["library_path"]).resolve() == harness.lib_path().resolve()
    # the built-in CPU EP is still listed
    assert any(d.ep_name == harness.CPU_EP for d in ort.get_ep_devices())


def test_registering_the_same_name_twice_fails_cleanly(real_ep):
    with pytest.raises(Exception):
        ort.register_execution_provider_library(harness.REGISTRATION_NAME, str(harness.lib_path()))
    # the first registration is intact
    assert harness.ep_devices()
    sess = harness.make_session(_tiny_model())
    assert harness.EP_NAME in sess.get_providers()


def test_session_providers(real_ep):
    sess = harness.make_session(_tiny_model())
    assert sess.get_providers() == [harness.EP_NAME, harness.CPU_EP]


# ------------------------------------------------------------------------------------------------ options

def _session_error(options=None, config=None) -> str:
    with pytest.raises(Exception) as info:
        harness.make_session(_tiny_model(), options=options, config=config)
    return str(info.value)


def test_unknown_option_is_rejected(real_ep):
    msg = _session_error({"bogus": "1"})
    assert "bogus" in msg, msg


def test_unknown_option_via_session_config_is_rejected(real_ep):
    msg = _session_error(config={harness.OPTION_PREFIX + "bogus": "yes"})
    assert "bogus" in msg, msg


def option_keys() -> list:
    """Option keys declared in include/asymo_ep.h (``#define ASYMO_EP_OPTION_<NAME> "key"``)."""
    header = harness.REPO / "include" / "asymo_ep.h"
    if not header.is_file():
        return []
    return re.findall(r'^#define\s+ASYMO_EP_OPTION_(?!PREFIX)\w+\s+"([^"]+)"', header.read_text(), re.M)


# Values that are wrong for each option key the design names (DESIGN.md §4, issue #2); a key is tested once the
# header declares it.
BAD_VALUES = {
    "log_plan": ["abc", "2"],
    "profile": ["/nonexistent/asymo-profile.json"],
    "threads": ["abc", "1x", "-3"],
    "cores": ["abc", "0-"],
    "mode": ["fastest"],
    "schedule": ["random"],
    "steal": ["maybe"],
    "adapt": ["maybe"],
    "freq": ["abc"],
    "topology": ["0-3", "fast"],
    "sysfs_root": ["/nonexistent/sysfs"],
    "calibration_cache": ["/proc/version"],
    "smt": ["2"],
    "min_task_us": ["0", "x"],
    "tasks_per_core": ["0"],
    "spin_us": ["-1"],
    "freq_hold_ms": ["soon"],
    "freq_backend": ["magic"],
    "freq_state_dir": ["/proc/version"],
    "caller_affinity": ["yes", "2"],
    "layout": ["NHWC4", "auto"],
}
GOOD_VALUES = {"log_plan": ["0", "1"], "threads": ["1", "2"], "steal": ["0", "1"], "adapt": ["0", "1"],
               "schedule": ["asymo", "equal"], "cores": ["0", "all"], "freq": ["off", "max"], "mode": ["latency"],
               "topology": ["auto", "0:1024,1:512"], "smt": ["0", "1"], "freq_backend": ["none", "auto"],
               "layout": ["nchw", "nhwc"]}


def test_declared_options_have_test_values():
    """Every option the header declares gets a bad-value test here (add it to BAD_VALUES with the option)."""
    if not (harness.REPO / "include" / "asymo_ep.h").is_file():
        pytest.skip("include/asymo_ep.h not present in this checkout")
    keys = option_keys()
    assert keys, "include/asymo_ep.h declares no ASYMO_EP_OPTION_* keys"
    missing = [k for k in keys if k not in BAD_VALUES]
    assert not missing, f"options without bad-value cases in test_registration.BAD_VALUES: {missing}"


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in BAD_VALUES.items() if k in option_keys() for v in vs])
def test_bad_option_value_is_rejected(real_ep, key, value):
    msg = _session_error({key: value})
    assert key in msg and value in msg, msg


@pytest.mark.parametrize("key,value", [(k, v) for k, vs in GOOD_VALUES.items() if k in option_keys() for v in vs])
def test_good_option_value_is_accepted(real_ep, key, value):
    model = models.mlp(size=64, hidden=(96, 48))
    feeds = models.make_inputs(model, batch=5)
    result = harness.compare(model, feeds, options={key: value})
    harness.check_placement(result.assignment, min_on_ep=1)


# ------------------------------------------------------------------------------------------------ node assignment

def test_node_assignment(asymo):
    model = _mixed_model()
    feeds = models.make_inputs(model, batch=3, seed=5)
    result = harness.compare(model, feeds)
    harness.check_placement(result.assignment, expect_on_ep=True)
    if harness.cpu_only():
        return
    # the MatMul+Add pair reaches the EP as one fused Gemm
    ours = sorted(op for op in harness.ops_on(result.assignment, harness.EP_NAME) if op in harness.HEAVY_OPS)
    assert ours == ["Conv", "Conv", "Gemm", "Gemm", "MatMul", "MatMul"], result.assignment
    cpu = harness.ops_on(result.assignment, harness.CPU_EP)
    for op in ("Relu", "GlobalAveragePool", "Flatten", "Sigmoid", "Softmax"):
        assert op in cpu or op in harness.EP_EXTRA_OPS, f"{op} not on the CPU EP: {result.assignment}"


def test_everything_on_our_ep_with_cpu_fallback_disabled(real_ep):
    g = GraphBuilder("chain", seed=6)
    x = g.input("x", ["N", 32])
    y = g.node("MatMul", [x, g.const("w0", g.weight((32, 24), 32))], name="mm0")
    y = g.gemm(y, 24, 16, name="fc1")
    y = g.node("MatMul", [y, g.const("w2", g.weight((16, 8), 16))], name="mm2")
    model = g.build([y])
    sess = harness.make_session(model, config={"session.disable_cpu_ep_fallback": "1"})
    assign = harness.assignment(sess)
    assert set(assign) == {harness.EP_NAME}, assign
    feeds = models.make_inputs(model, batch=4)
    expected = harness.run(harness.make_session(model, "cpu"), feeds)
    harness.assert_close(expected, harness.run(sess, feeds))


def test_no_memcpy_between_our_ep_and_cpu_ep(asymo):
    model = models.mobilenet_v1(size=32, alpha=0.25, num_classes=10)
    sess = harness.make_session(model)
    assign = harness.assignment(sess)
    assert not [n for nodes in assign.values() for n in nodes if n[1].startswith("Memcpy")], assign
    out = harness.run(sess, models.make_inputs(model, batch=2))[0]
    assert out.shape == (2, 10) and np.all(np.isfinite(out))
