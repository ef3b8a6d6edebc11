"""Test harness: register the AsyMo EP library once per process, build sessions on our EP or the CPU EP, compare
outputs, and read node assignment.

Modes
-----
* normal: the library (``$ASYMO_EP_LIB`` or ``<repo>/target/release/libasymo_ep.so``) is registered as "asymo" and
  ``ep="asymo"`` sessions add its devices with ``add_provider_for_devices``.
* CPU-only (``pytest --cpu-only`` or ``ASYMO_TEST_CPU_ONLY=1``): nothing is registered; an ``ep="asymo"`` session is a
  stand-in CPU EP session with graph optimizations disabled (different kernels and fusions from the baseline, so the
  comparison still means something). Placement assertions become no-ops and tests that need the real library
  (options, device listing) skip. This validates the model builders and the harness before the EP exists.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
import re
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np
import onnx
import onnxruntime as ort

REPO = Path(__file__).resolve().parent.parent
EP_NAME = "AsyMoExecutionProvider"
CPU_EP = "CPUExecutionProvider"
REGISTRATION_NAME = "asymo"
OPTION_PREFIX = "ep.asymoexecutionprovider."
HEAVY_OPS = ("MatMul", "Gemm", "Conv")
# Op types besides HEAVY_OPS that our EP may legitimately claim: fused epilogues, pooling, the layout-moving
# Transposes of channels-last models (layout=nhwc), and a Concat of convolutions' channels. Everything else must stay
# on the CPU EP.
EP_EXTRA_OPS: frozenset = frozenset({"Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Add", "Mul",
                                     "MaxPool", "AveragePool", "GlobalMaxPool", "GlobalAveragePool", "Transpose",
                                     "Concat"})

RTOL = 1e-4          # max abs error ≤ RTOL × max|expected| ...
ATOL_FLOOR = 1e-6    # ... + this floor (for all-zero or tiny outputs)

ModelLike = Union[onnx.ModelProto, bytes, str, Path]


def lib_path() -> Path:
    return Path(os.environ.get("ASYMO_EP_LIB") or REPO / "target" / "release" / "libasymo_ep.so")


@dataclass
class _State:
    cpu_only: bool = False
    registered: bool = False
    devices: list = field(default_factory=list)


_STATE = _State()


def set_cpu_only(flag: bool) -> None:
    _STATE.cpu_only = bool(flag)


def cpu_only() -> bool:
    return _STATE.cpu_only


def lib_missing_reason() -> Optional[str]:
    """None if the library exists, else a skip reason."""
    p = lib_path()
    if p.is_file():
        return None
    return (f"AsyMo EP library not found at {p} (build it with `cargo build --release` or set ASYMO_EP_LIB); "
            f"run `pytest --cpu-only` to exercise the builders and harness against the CPU EP alone")


def register() -> list:
    """Register the library once per process (a second registration under the same name is an ORT error) and
    return our OrtEpDevices."""
    if _STATE.cpu_only:
        raise RuntimeError("register() called in CPU-only mode")
    if not _STATE.registered:
        ort.register_execution_provider_library(REGISTRATION_NAME, str(lib_path()))
        _STATE.registered = True
    _STATE.devices = ep_devices()
    if not _STATE.devices:
        raise RuntimeError(f"{lib_path()} registered but ORT lists no {EP_NAME} device")
    return _STATE.devices


def registered() -> bool:
    return _STATE.registered


def ep_devices() -> list:
    return [d for d in ort.get_ep_devices() if d.ep_name == EP_NAME]


def model_bytes(model: ModelLike) -> bytes:
    if isinstance(model, onnx.ModelProto):
        return model.SerializeToString()
    if isinstance(model, bytes):
        return model
    return Path(model).read_bytes()


def session_options(threads: Optional[int] = 1, opt_level: Optional[ort.GraphOptimizationLevel] = None,
                    config: Optional[Mapping[str, str]] = None, record_assignment: bool = True) -> ort.SessionOptions:
    so = ort.SessionOptions()
    so.log_severity_level = 3
    if threads is not None:
        so.intra_op_num_threads = int(threads)
    if opt_level is not None:
        so.graph_optimization_level = opt_level
    if record_assignment:
        so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    for k, v in (config or {}).items():
        so.add_session_config_entry(k, str(v))
    return so


def make_session(model: ModelLike, ep: str = "asymo", options: Optional[Mapping[str, object]] = None,
                 threads: Optional[int] = 1, opt_level: Optional[ort.GraphOptimizationLevel] = None,
                 config: Optional[Mapping[str, str]] = None, record_assignment: bool = True) -> ort.InferenceSession:
    """An InferenceSession on our EP (``ep="asymo"``, with the CPU EP as fallback for unclaimed nodes) or on the CPU
    EP alone (``ep="cpu"``). ``options`` are our EP's options (keys without the prefix; values stringified);
    ``threads`` is ORT's intra_op_num_threads (1 by default to keep the suite light on 2 cores); ``config`` extra
    session config entries."""
    data = model_bytes(model)
    # enable_fallback=0: by default Python's InferenceSession prints an EP error (bad option, failed Compute) and
    # silently retries on the CPU EP alone, which would hide exactly what these tests look for.
    if ep == "cpu":
        so = session_options(threads, opt_level, config, record_assignment)
        return ort.InferenceSession(data, so, providers=[CPU_EP], enable_fallback=0)
    if ep != "asymo":
        raise ValueError(f"ep must be 'asymo' or 'cpu', not {ep!r}")
    if _STATE.cpu_only:
        so = session_options(threads, opt_level if opt_level is not None else ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
                             config, record_assignment)
        return ort.InferenceSession(data, so, providers=[CPU_EP], enable_fallback=0)
    devices = register()
    so = session_options(threads, opt_level, config, record_assignment)
    so.add_provider_for_devices(devices, {str(k): str(v) for k, v in (options or {}).items()})
    sess = ort.InferenceSession(data, so, enable_fallback=0)
    providers = sess.get_providers()
    assert providers and providers[0] == EP_NAME, f"session providers {providers}: {EP_NAME} was not used"
    return sess


def run(sess: ort.InferenceSession, feeds: Mapping[str, np.ndarray]) -> List[np.ndarray]:
    return sess.run(None, dict(feeds))


def assignment(sess: ort.InferenceSession) -> Dict[str, List[Tuple[str, str]]]:
    """{ep_name: [(node name, op_type), ...]} from the session's graph-assignment info (plain Python objects, so
    nothing keeps ORT's assignment objects alive — they would delay ReleaseEp).

    With the EP's default channels-last layout, ORT's layout transformer renames each node it converts
    (``conv`` → ``conv_token_1``) and inserts Transposes (``Transpose``, ``Transpose_token_3``) where channels-last
    values meet channels-first ones; names are reported without the ``_token_<n>`` suffix."""
    out: Dict[str, List[Tuple[str, str]]] = {}
    for sub in sess.get_provider_graph_assignment_info():
        out.setdefault(sub.ep_name, []).extend((_TOKEN.sub("", n.name), n.op_type) for n in sub.get_nodes())
    return out


_TOKEN = re.compile(r"_token_\d+$")


def ops_on(assign: Mapping[str, Sequence[Tuple[str, str]]], ep: str) -> List[str]:
    return [op for _, op in assign.get(ep, [])]


def check_placement(assign: Mapping[str, Sequence[Tuple[str, str]]], on_ep: Iterable[str] = HEAVY_OPS,
                    expect_on_ep: Optional[bool] = True, min_on_ep: int = 0) -> None:
    """Assert node placement (a no-op in CPU-only mode).

    expect_on_ep=True: every node whose op_type is in ``on_ep`` runs on our EP and every other node on the CPU EP;
    False: nothing runs on our EP; None: placement is not asserted. Always: no Memcpy nodes, no unknown EPs, and at
    least ``min_on_ep`` nodes on our EP."""
    if _STATE.cpu_only:
        return
    on_ep = set(on_ep)
    memcpy = [(ep, n) for ep, nodes in assign.items() for n in nodes if n[1].startswith("Memcpy")]
    assert not memcpy, f"Memcpy nodes inserted: {memcpy}"
    unknown = set(assign) - {EP_NAME, CPU_EP}
    assert not unknown, f"nodes assigned to unexpected EPs {unknown}: {assign}"
    ours = list(assign.get(EP_NAME, []))
    cpu = list(assign.get(CPU_EP, []))
    assert len(ours) >= min_on_ep, f"expected ≥ {min_on_ep} nodes on {EP_NAME}, got {ours}; CPU EP has {cpu}"
    if expect_on_ep is True:
        wrong_cpu = [n for n in cpu if n[1] in on_ep]
        wrong_ours = [n for n in ours if n[1] not in on_ep and n[1] not in EP_EXTRA_OPS]
        assert not wrong_cpu, f"supported nodes left on the CPU EP: {wrong_cpu}"
        assert not wrong_ours, f"unsupported op types claimed by {EP_NAME}: {wrong_ours}"
    elif expect_on_ep is False:
        assert not ours, f"nodes unexpectedly claimed by {EP_NAME}: {ours}"


@dataclass
class Comparison:
    expected: List[np.ndarray]
    actual: List[np.ndarray]
    errors: List[float]
    assignment: Dict[str, List[Tuple[str, str]]]


def assert_close(expected: Sequence[np.ndarray], actual: Sequence[np.ndarray], rtol: float = RTOL,
                 atol_floor: float = ATOL_FLOOR, names: Optional[Sequence[str]] = None) -> List[float]:
    """Per output: same shape and dtype, NaNs in the same places, max|a - e| ≤ rtol·max|e| + atol_floor.
    Returns the max abs errors."""
    assert len(expected) == len(actual), f"{len(actual)} outputs, expected {len(expected)}"
    errs = []
    for i, (e, a) in enumerate(zip(expected, actual)):
        label = names[i] if names else f"output {i}"
        e = np.asarray(e)
        a = np.asarray(a)
        assert a.shape == e.shape, f"{label}: shape {a.shape}, expected {e.shape}"
        assert a.dtype == e.dtype, f"{label}: dtype {a.dtype}, expected {e.dtype}"
        if not np.issubdtype(e.dtype, np.floating):
            assert np.array_equal(a, e), f"{label}: integer outputs differ"
            errs.append(0.0)
            continue
        e64 = np.atleast_1d(e.astype(np.float64))
        a64 = np.atleast_1d(a.astype(np.float64))
        nan_e, nan_a = np.isnan(e64), np.isnan(a64)
        assert np.array_equal(nan_e, nan_a), f"{label}: NaN pattern differs ({nan_a.sum()} NaNs, expected {nan_e.sum()})"
        inf_e, inf_a = np.isinf(e64), np.isinf(a64)
        assert np.array_equal(inf_e, inf_a) and np.array_equal(e64[inf_e], a64[inf_a]), \
            f"{label}: ±inf pattern differs ({inf_a.sum()} infs, expected {inf_e.sum()})"
        fin = np.isfinite(e64)
        if not fin.any():
            errs.append(0.0)
            continue
        scale = float(np.max(np.abs(e64[fin])))
        with np.errstate(invalid="ignore"):
            diff = np.abs(a64 - e64)
        diff[~fin] = 0.0
        err = float(diff.max())
        tol = rtol * scale + atol_floor
        if not err <= tol:
            idx = np.unravel_index(int(np.argmax(diff)), diff.shape)
            raise AssertionError(f"{label}: max abs error {err:.3g} > tol {tol:.3g} (max|expected| {scale:.3g}); "
                                 f"worst at {idx}: got {a64[idx]!r}, expected {e64[idx]!r}")
        errs.append(err)
    return errs


def compare(model: ModelLike, feeds: Mapping[str, np.ndarray], rtol: float = RTOL, atol_floor: float = ATOL_FLOOR,
            options: Optional[Mapping[str, object]] = None, threads: Optional[int] = 1,
            baseline_threads: Optional[int] = 1) -> Comparison:
    """Run ``model`` on the CPU EP (baseline) and on our EP with the same inputs and assert the outputs agree."""
    data = model_bytes(model)
    base = make_session(data, "cpu", threads=baseline_threads, record_assignment=False)
    expected = run(base, feeds)
    names = [o.name for o in base.get_outputs()]
    del base
    sess = make_session(data, "asymo", options=options, threads=threads)
    actual = run(sess, feeds)
    assign = assignment(sess)
    del sess
    errs = assert_close(expected, actual, rtol, atol_floor, names)
    return Comparison(expected, actual, errs, assign)


def rss_bytes() -> int:
    """Resident set size of this process, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
