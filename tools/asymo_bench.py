#!/usr/bin/env python3
"""asymo-bench: side-by-side latency of ONNX Runtime's CPU EP and plugin EPs, in onnxruntime_perf_test's language.

    asymo-bench [options] MODEL.onnx            # or --model NAME from the paper's model set (generated, seeded)

perf_test flags:  -m times|duration  -r N  -t SECONDS  -x THREADS  -y THREADS  -I  -c CONCURRENT
                  -o LEVEL(0,1,2,99)  -C "key|value key|value"  -f "dim_name:value"
                  --plugin_ep_libs "name|path name|path"  --plugin_eps "EpA;EpB"  --plugin_ep_options "k|v k|v;k|v"
AsyMo flags:      --cpu-ep-threads 2,1 (baseline thread counts)  --interfere CPU[:DUTY]  --ablation
                  --warmup N  --json PATH  --no-progress

Every configuration (CPU EP at each baseline thread count, each plugin EP, each ablation) runs in its own worker
process holding one live session; the runs are interleaved in blocks (A×5 B×5 C×5, then B×5 C×5 A×5, … `--block`:
the order rotates every cycle) after warm-up, with a pause at each switch (100 ms) so the previous session's
spinning intra-op threads go idle. Latency is measured inside the worker around
`InferenceSession.run`. The table gives p50/p90/p99 latency, throughput, the speed ratio against the first CPU EP
baseline (>1 = faster than it), and the share of MatMul/Gemm/Conv nodes each session placed on the plugin EP.

The interference process (`--interfere 1:0.5` = a busy loop pinned to CPU 1, busy 50% of every 10 ms) runs during
the measurement only and is always stopped — on success, on error, on Ctrl-C or SIGTERM, and (through
PR_SET_PDEATHSIG) even if this process is killed.
"""

from __future__ import annotations

import argparse
import atexit
import ctypes
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

REPO = Path(__file__).resolve().parent.parent
DEFAULT_LIB = Path(os.environ.get("ASYMO_EP_LIB") or REPO / "target" / "release" / "libasymo_ep.so")
ASYMO_EP = "AsyMoExecutionProvider"
HEAVY_OPS = ("MatMul", "Gemm", "Conv", "FusedConv", "FusedGemm", "FusedMatMul")
# Ablation option sets of the AsyMo EP: the paper's breakdown, switched off one mechanism at a time.
ABLATIONS: List[Tuple[str, Dict[str, str]]] = [
    ("equal split", {"schedule": "equal", "steal": "0", "adapt": "0"}),
    ("+ cost-model partition", {"steal": "0", "adapt": "0"}),
    ("+ stealing", {"adapt": "0"}),
    ("+ adaptation (full AsyMo)", {}),
    ("one core", {"cores": "0"}),
]


class UsageError(Exception):
    """A bad command-line value; printed without a traceback."""


# ================================================================================================ flag parsing


def positive_int(flag: str, text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise UsageError(f"{flag} expects a positive integer, got {text!r}") from None
    if v <= 0:
        raise UsageError(f"{flag} expects a positive integer, got {text!r}")
    return v


def positive_float(flag: str, text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise UsageError(f"{flag} expects a positive number, got {text!r}") from None
    if not v > 0:
        raise UsageError(f"{flag} expects a positive number, got {text!r}")
    return v


def parse_pairs(flag: str, text: str) -> List[Tuple[str, str]]:
    """perf_test's "key|value key|value" lists."""
    pairs = []
    for token in text.split():
        key, sep, value = token.partition("|")
        if not sep or not key:
            raise UsageError(f"{flag}: {token!r} is not a key|value pair")
        pairs.append((key, value))
    return pairs


def parse_plugin_options(text: str, n_eps: int) -> List[Dict[str, str]]:
    """--plugin_ep_options "k|v k|v;k|v": one group per EP in --plugin_eps order; empty groups allowed."""
    groups = text.split(";")
    if len(groups) > n_eps:
        raise UsageError(f"--plugin_ep_options has {len(groups)} option groups but --plugin_eps names {n_eps} EP(s)")
    out = [dict(parse_pairs("--plugin_ep_options", g)) for g in groups]
    return out + [{} for _ in range(n_eps - len(out))]


def parse_free_dims(text: str) -> Dict[str, int]:
    dims = {}
    for token in text.split():
        name, sep, value = token.partition(":")
        if not sep:
            raise UsageError(f"-f: {token!r} is not dim_name:value")
        dims[name] = positive_int("-f", value)
    return dims


def parse_interference(text: str) -> Tuple[int, float]:
    cpu_s, _, duty_s = text.partition(":")
    try:
        cpu = int(cpu_s)
    except ValueError:
        raise UsageError(f"--interfere expects CPU[:DUTY], got {text!r}") from None
    n = os.cpu_count() or 1
    if not 0 <= cpu < n:
        raise UsageError(f"--interfere: CPU {cpu} does not exist (this machine has CPUs 0-{n - 1})")
    duty = 1.0
    if duty_s:
        try:
            duty = float(duty_s)
        except ValueError:
            raise UsageError(f"--interfere: duty {duty_s!r} is not a number in (0, 1]") from None
        if not 0 < duty <= 1:
            raise UsageError(f"--interfere: duty {duty_s!r} is not in (0, 1]")
    return cpu, duty


def parse_thread_list(text: str) -> List[int]:
    return [positive_int("--cpu-ep-threads", t) for t in text.split(",") if t.strip()]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="asymo-bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter, add_help=True
    )
    ap.add_argument("model_path", nargs="?", help="ONNX model file")
    ap.add_argument("--model", help="generate and use a model of the paper's set (see python-tests/models.py)")
    ap.add_argument("--full", action="store_true", help="with --model: the paper's full input size (224 etc.)")
    ap.add_argument("-m", dest="mode", default="times", help="times | duration (default times)")
    ap.add_argument("-r", dest="repeat", default="20", help="runs per configuration in 'times' mode (default 20)")
    ap.add_argument("-t", dest="seconds", default="10", help="seconds of measurement in 'duration' mode")
    ap.add_argument("-x", dest="intra", default="0", help="intra-op threads of CPU EP sessions (0 = ORT default)")
    ap.add_argument("-y", dest="inter", default="0", help="inter-op threads (0 = ORT default)")
    ap.add_argument("-I", dest="generate", action="store_true", help="generate random inputs (always on: no test data)")
    ap.add_argument("-c", dest="concurrent", default="1", help="concurrent Run calls per session")
    ap.add_argument("-o", dest="opt", default="99", help="graph optimization level: 0, 1, 2 or 99 (default 99)")
    ap.add_argument("-C", dest="config", default="", help='session config entries "key|value key|value"')
    ap.add_argument("-f", dest="free_dims", default="", help='free dimension overrides "dim_name:value ..."')
    ap.add_argument("--plugin_ep_libs", default=None, help='"registration_name|path ..." (default: our library)')
    ap.add_argument("--plugin_eps", default=None, help=f'"EpName;EpName" (default: {ASYMO_EP})')
    ap.add_argument("--plugin_ep_options", default="", help='"k|v k|v;k|v" per plugin EP')
    ap.add_argument("--cpu-ep-threads", default=None, help="baseline CPU EP thread counts, e.g. 2,1 (default: -x)")
    ap.add_argument("--ep-intra-threads", default="1",
                    help="ORT intra-op threads of plugin-EP sessions (default 1: AsyMo EP runs MatMul/Gemm/Conv on "
                         "its own pinned workers, and a second ORT thread would only spin on the same cores)")
    ap.add_argument("--interfere", default=None, help="CPU[:DUTY] busy process pinned to CPU during measurement")
    ap.add_argument("--ablation", action="store_true", help="also run the AsyMo EP under the ablation option sets")
    ap.add_argument("--warmup", default="3", help="warm-up runs per configuration (default 3)")
    ap.add_argument("--energy", action="store_true",
                    help="also report energy per inference from RAPL (powercap) or the battery fuel gauge")
    ap.add_argument("--sysfs-root", default="/sys", help="where --energy looks for powercap / power_supply")
    ap.add_argument("--batch", default="1", help="value of the symbolic batch dim N (default 1)")
    ap.add_argument("--json", dest="json_path", default=None, help="write results as JSON")
    ap.add_argument("--no-progress", action="store_true", help="no progress bar")
    ap.add_argument("--block", default="5", help="back-to-back runs per configuration at each switch (default 5)")
    # 100 ms: ORT's CPU EP pool threads spin on for tens of ms after a run; measured on a 2-vCPU Xeon, SqueezeNet on
    # our EP right after the CPU EP's 2-thread block ran its first three runs 1.9x, 1.4x, 1.2x slower with 20 ms,
    # only the first (1.2x, as after our own block: caches) with 100 ms.
    ap.add_argument("--switch-pause-ms", default="100", help="pause between configurations (default 100 ms)")
    ap.add_argument("--plot", dest="plot_path", default=None, help="write a PNG bar chart of the latencies")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    return ap


@dataclass
class Config:
    """One measured configuration: a session recipe run in its own worker process."""

    label: str
    ep: Optional[str]  # None = CPU EP only
    ep_options: Dict[str, str] = field(default_factory=dict)
    intra_threads: int = 0


@dataclass
class Settings:
    model_path: str
    model_label: str
    mode: str
    repeat: int
    seconds: float
    inter_threads: int
    concurrent: int
    opt_level: int
    session_config: List[Tuple[str, str]]
    free_dims: Dict[str, int]
    batch: int
    warmup: int
    libs: List[Tuple[str, str]]
    configs: List[Config]
    interference: Optional[Tuple[int, float]]
    json_path: Optional[str]
    plot_path: Optional[str]
    energy: Optional["EnergyMeter"]
    block: int
    progress: bool
    switch_pause: float


def parse_args(argv: Sequence[str]) -> Settings:
    a = build_parser().parse_args(argv)
    if a.mode not in ("times", "duration"):
        raise UsageError(f"-m expects 'times' or 'duration', got {a.mode!r}")
    if a.opt not in ("0", "1", "2", "99"):
        raise UsageError(f"-o expects 0, 1, 2 or 99, got {a.opt!r}")
    intra = int(a.intra) if a.intra == "0" else positive_int("-x", a.intra)
    inter = int(a.inter) if a.inter == "0" else positive_int("-y", a.inter)
    if a.plugin_ep_libs is None:
        libs = [("asymo", str(DEFAULT_LIB))]
    else:
        libs = parse_pairs("--plugin_ep_libs", a.plugin_ep_libs)
    for name, path in libs:
        if not Path(path).is_file():
            raise UsageError(f"--plugin_ep_libs: library {path!r} (registration {name!r}) does not exist")
    eps = [e for e in (a.plugin_eps or ASYMO_EP).split(";") if e]
    ep_options = parse_plugin_options(a.plugin_ep_options, len(eps)) if a.plugin_ep_options else [{} for _ in eps]
    baseline_threads = parse_thread_list(a.cpu_ep_threads) if a.cpu_ep_threads else [intra]
    ep_intra = positive_int("--ep-intra-threads", a.ep_intra_threads)
    configs = [Config(f"CPU EP {t or 'default'} thr", None, {}, t) for t in baseline_threads]
    for ep, opts in zip(eps, ep_options):
        label = ep if ep != ASYMO_EP else "AsyMo EP"
        if opts:
            label += " (" + " ".join(f"{k}={v}" for k, v in opts.items()) + ")"
        configs.append(Config(label, ep, opts, ep_intra))
    if a.ablation:
        if ASYMO_EP not in eps:
            raise UsageError(f"--ablation needs {ASYMO_EP} among --plugin_eps")
        base = ep_options[eps.index(ASYMO_EP)]
        for label, extra in ABLATIONS:
            if extra:
                configs.append(Config(f"AsyMo: {label}", ASYMO_EP, {**base, **extra}, ep_intra))
    if a.model_path and a.model:
        raise UsageError("give either MODEL.onnx or --model NAME, not both")
    if not a.model_path and not a.model:
        raise UsageError("no model: give MODEL.onnx or --model NAME")
    model_path = a.model_path
    label = Path(a.model_path).stem if a.model_path else a.model
    if model_path and not Path(model_path).is_file():
        raise UsageError(f"model {model_path!r} does not exist")
    if a.model:
        model_path = generate_model(a.model, a.full)
    return Settings(
        model_path=model_path,
        model_label=label,
        mode=a.mode,
        repeat=positive_int("-r", a.repeat),
        seconds=positive_float("-t", a.seconds),
        inter_threads=inter,
        concurrent=positive_int("-c", a.concurrent),
        opt_level=int(a.opt),
        session_config=parse_pairs("-C", a.config),
        free_dims=parse_free_dims(a.free_dims),
        batch=positive_int("--batch", a.batch),
        warmup=int(a.warmup) if a.warmup == "0" else positive_int("--warmup", a.warmup),
        libs=libs,
        configs=configs,
        interference=parse_interference(a.interfere) if a.interfere else None,
        json_path=a.json_path,
        plot_path=a.plot_path,
        energy=EnergyMeter.probe(Path(a.sysfs_root)) if a.energy else None,
        block=positive_int("--block", a.block),
        progress=not a.no_progress,
        switch_pause=positive_float("--switch-pause-ms", a.switch_pause_ms) / 1000.0,
    )


def generate_model(name: str, full: bool) -> str:
    """Build a model of the paper's set (seeded) into .cache/models/ and return its path."""
    sys.path.insert(0, str(REPO / "python-tests"))
    import models  # noqa: E402  (python-tests/models.py: the shared, seeded model builders)

    if name not in models.MODELS:
        raise UsageError(f"--model: unknown model {name!r}; known: {', '.join(models.MODELS)}")
    out = REPO / ".cache" / "models" / f"{name}{'_full' if full else ''}.onnx"
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        import onnx

        onnx.save(models.build(name, full=full), str(out))
    return str(out)


# ================================================================================================ energy


class EnergyMeter:
    """Package energy from powercap RAPL (`energy_uj`, wrap-around handled) or battery current × voltage."""

    def __init__(self, kind: str, paths: List[Path], wrap: List[int]):
        self.kind, self.paths, self.wrap = kind, paths, wrap

    @staticmethod
    def probe(root: Path) -> "EnergyMeter":
        rapl = sorted((root / "class/powercap").glob("intel-rapl:[0-9]*")) if (root / "class/powercap").is_dir() else []
        rapl = [d for d in rapl if ":" in d.name and d.name.count(":") == 1 and (d / "energy_uj").is_file()]
        readable = []
        for d in rapl:
            try:
                int((d / "energy_uj").read_text())
                wrap = int((d / "max_energy_range_uj").read_text()) if (d / "max_energy_range_uj").is_file() else 0
                readable.append((d / "energy_uj", wrap))
            except (OSError, ValueError):
                pass
        if readable:
            return EnergyMeter("rapl", [p for p, _ in readable], [w for _, w in readable])
        bats = [d for d in sorted((root / "class/power_supply").glob("*")) if (d / "current_now").is_file()
                and (d / "voltage_now").is_file()] if (root / "class/power_supply").is_dir() else []
        if bats:
            return EnergyMeter("battery", [bats[0]], [0])
        why = "no readable RAPL counters under " + str(root / "class/powercap")
        why += " (missing, or root needed)" if not rapl else " (permission denied: run as root)"
        raise UsageError(f"--energy: {why}, and no battery with current_now/voltage_now under "
                         f"{root / 'class/power_supply'}")

    def read(self) -> List[float]:
        if self.kind == "rapl":
            return [int(p.read_text()) * 1e-6 for p in self.paths]
        d = self.paths[0]
        return [abs(int((d / "current_now").read_text())) * 1e-6 * int((d / "voltage_now").read_text()) * 1e-6]

    def joules(self, before: List[float], after: List[float], seconds: float) -> float:
        if self.kind == "battery":  # watts sampled at both ends, times the elapsed time
            return (before[0] + after[0]) / 2 * seconds
        total = 0.0
        for b, a, w in zip(before, after, self.wrap):
            d = a - b
            if d < 0 and w:
                d += w * 1e-6
            total += d
        return total


# ================================================================================================ processes


def _die_with_parent() -> None:
    """In a child: get SIGKILL when the parent dies (Linux PR_SET_PDEATHSIG), so nothing outlives the tool; and
    take SIGINT / SIGTERM again (the parent holds them while it starts the child, and the mask is inherited)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1
    except OSError:
        pass


class Interference:
    """A busy process pinned to one CPU, duty-cycled; a context manager that always stops it."""

    def __init__(self, cpu: int, duty: float):
        self.cpu, self.duty = cpu, duty
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        code = (
            "import os, time\n"
            f"os.sched_setaffinity(0, {{{self.cpu}}})\n"
            f"duty, period = {self.duty}, 0.010\n"
            "while True:\n"
            "    t0 = time.perf_counter()\n"
            "    while time.perf_counter() - t0 < duty * period: pass\n"
            "    rest = period - (time.perf_counter() - t0)\n"
            "    if rest > 0: time.sleep(rest)\n"
        )
        # SIGINT / SIGTERM are held while the child starts: delivered inside Popen (the child already runs its busy
        # loop, so it is visible, but Popen has not returned), they would leave it unknown to stop().
        held = {signal.SIGINT, signal.SIGTERM}
        signal.pthread_sigmask(signal.SIG_BLOCK, held)
        try:
            self.proc = subprocess.Popen([sys.executable, "-c", code], preexec_fn=_die_with_parent)
            _CHILDREN.append(self.proc)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, held)

    def stop(self) -> None:
        stop_process(self.proc)
        self.proc = None

    def __enter__(self) -> "Interference":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


_CHILDREN: List[subprocess.Popen] = []


def stop_process(proc: Optional[subprocess.Popen]) -> None:
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=2)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop_all_children() -> None:
    for p in _CHILDREN:
        stop_process(p)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


class Worker:
    """A process holding one live session; answers "run K" with K measured latencies."""

    def __init__(self, settings: Settings, config: Config):
        self.config = config
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            preexec_fn=_die_with_parent,
        )
        _CHILDREN.append(self.proc)
        job = {
            "model": settings.model_path,
            "libs": settings.libs,
            "ep": config.ep,
            "ep_options": config.ep_options,
            "intra": config.intra_threads,
            "inter": settings.inter_threads,
            "opt": settings.opt_level,
            "config": settings.session_config,
            "free_dims": settings.free_dims,
            "batch": settings.batch,
            "concurrent": settings.concurrent,
            "warmup": settings.warmup,
        }
        self.info = self._ask(job)

    def _ask(self, message) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(message) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"{self.config.label}: worker exited (code {self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            raise RuntimeError(f"{self.config.label}: {reply['error']}")
        return reply

    def run(self, k: int) -> dict:
        return self._ask({"runs": k})

    def close(self) -> None:
        try:
            self._ask({"quit": True})
        except Exception:
            pass
        stop_process(self.proc)


# ================================================================================================ worker side


def worker_main() -> int:
    """Worker process: build the session described on the first stdin line, then serve run requests."""
    import threading

    import numpy as np
    import onnxruntime as ort

    def reply(obj) -> None:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()

    try:
        job = json.loads(sys.stdin.readline())
        so = ort.SessionOptions()
        so.log_severity_level = 3  # errors only: the table is the output
        so.intra_op_num_threads = job["intra"]
        so.inter_op_num_threads = job["inter"]
        so.graph_optimization_level = {
            0: ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            1: ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            2: ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            99: ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[job["opt"]]
        so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
        for k, v in job["config"]:
            so.add_session_config_entry(k, v)
        if job["ep"]:
            for name, path in job["libs"]:
                ort.register_execution_provider_library(name, path)
            devices = [d for d in ort.get_ep_devices() if d.ep_name == job["ep"]]
            if not devices:
                names = sorted({d.ep_name for d in ort.get_ep_devices()})
                raise RuntimeError(f"no device of EP {job['ep']!r}; registered EPs: {', '.join(names)}")
            so.add_provider_for_devices(devices, job["ep_options"])
        sess = ort.InferenceSession(job["model"], so, providers=None if job["ep"] else ["CPUExecutionProvider"],
                                    enable_fallback=0)
        heavy_total = heavy_on_ep = 0
        for sg in sess.get_provider_graph_assignment_info():
            for node in sg.get_nodes():
                if node.op_type in HEAVY_OPS:
                    heavy_total += 1
                    heavy_on_ep += sg.ep_name == job["ep"]
        rng = np.random.default_rng(0)
        feeds = {}
        for inp in sess.get_inputs():
            shape = [d if isinstance(d, int) else job["free_dims"].get(d, job["batch"] if d in ("N", "batch") else 1)
                     for d in inp.shape]
            if "float" in inp.type:
                feeds[inp.name] = rng.standard_normal(shape).astype(np.float32 if inp.type == "tensor(float)" else np.float16)
            else:
                feeds[inp.name] = rng.integers(0, 8, size=shape).astype(np.int64 if "int64" in inp.type else np.int32)
        for _ in range(job["warmup"]):
            sess.run(None, feeds)
        reply({"heavy_total": heavy_total, "heavy_on_ep": heavy_on_ep,
               "inputs": {k: list(v.shape) for k, v in feeds.items()}})
        concurrent = job["concurrent"]
        for line in sys.stdin:
            req = json.loads(line)
            if req.get("quit"):
                reply({"bye": True})
                return 0
            k = req["runs"]
            lat: List[float] = []
            lock = threading.Lock()

            def runner(n: int) -> None:
                mine = []
                for _ in range(n):
                    t0 = time.perf_counter()
                    sess.run(None, feeds)
                    mine.append((time.perf_counter() - t0) * 1e3)
                with lock:
                    lat.extend(mine)

            t0 = time.perf_counter()
            if concurrent == 1:
                runner(k)
            else:
                threads = [threading.Thread(target=runner, args=(k,)) for _ in range(concurrent)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
            reply({"latencies_ms": lat, "wall_s": time.perf_counter() - t0})
        return 0
    except Exception as e:  # reported to the orchestrator, which names the configuration
        reply({"error": f"{type(e).__name__}: {e}"})
        return 1


# ================================================================================================ orchestration


@dataclass
class Result:
    label: str
    ep: Optional[str]
    ep_options: Dict[str, str]
    intra_threads: int
    heavy_on_ep: int
    heavy_total: int
    latencies_ms: List[float] = field(default_factory=list)
    wall_s: float = 0.0
    energy_j: float = 0.0

    def pct(self, q: float) -> float:
        xs = sorted(self.latencies_ms)
        if not xs:
            return float("nan")
        i = min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))
        return xs[i]

    def summary(self) -> dict:
        return {
            "label": self.label,
            "ep": self.ep or "CPUExecutionProvider",
            "ep_options": self.ep_options,
            "intra_threads": self.intra_threads,
            "runs": len(self.latencies_ms),
            "p50_ms": self.pct(50),
            "p90_ms": self.pct(90),
            "p99_ms": self.pct(99),
            "mean_ms": statistics.fmean(self.latencies_ms) if self.latencies_ms else float("nan"),
            "throughput_per_s": len(self.latencies_ms) / self.wall_s if self.wall_s else float("nan"),
            "heavy_nodes_on_ep": self.heavy_on_ep,
            "heavy_nodes_total": self.heavy_total,
            "energy_mj_per_run": 1e3 * self.energy_j / len(self.latencies_ms) if self.latencies_ms else None,
        }


class Progress:
    def __init__(self, total: Optional[int], seconds: Optional[float], enabled: bool):
        self.total, self.seconds, self.enabled = total, seconds, enabled and sys.stderr.isatty()
        self.t0 = time.monotonic()

    def update(self, done: int) -> None:
        if not self.enabled:
            return
        frac = done / self.total if self.total else min(1.0, (time.monotonic() - self.t0) / (self.seconds or 1))
        bar = "#" * int(frac * 30)
        sys.stderr.write(f"\r[{bar:<30}] {frac * 100:5.1f}%  {time.monotonic() - self.t0:6.1f}s")
        sys.stderr.flush()

    def done(self) -> None:
        if self.enabled:
            sys.stderr.write("\n")


def measure(settings: Settings) -> List[Result]:
    workers: List[Worker] = []
    interference = None
    try:
        for c in settings.configs:
            workers.append(Worker(settings, c))
        results = [
            Result(w.config.label, w.config.ep, w.config.ep_options, w.config.intra_threads,
                   w.info["heavy_on_ep"], w.info["heavy_total"])
            for w in workers
        ]
        if settings.interference:
            interference = Interference(*settings.interference)
            interference.start()
            time.sleep(0.2)  # let the busy loop settle on its CPU
        per_config = settings.repeat if settings.mode == "times" else None
        progress = Progress(per_config * len(workers) if per_config else None,
                            settings.seconds if settings.mode == "duration" else None, settings.progress)
        deadline = time.monotonic() + settings.seconds
        done = 0
        cycle = 0
        while True:
            if per_config is not None and done >= per_config:
                break
            if per_config is None and time.monotonic() >= deadline:
                break
            k = settings.block if per_config is None else min(settings.block, per_config - done)
            # The order rotates every cycle: a block run right after another process's block pays for what that
            # process leaves behind (ORT's pool threads spin on after a run; caches), so no configuration may
            # always follow the same one (measured: the first plugin configuration after the CPU EP's 2-thread
            # block was up to 1.4x slower in p50 than the same configuration placed later).
            n = len(workers)
            order = [(cycle + i) % n for i in range(n)]
            cycle += 1
            for w, r in ((workers[i], results[i]) for i in order):
                time.sleep(settings.switch_pause)
                meter = settings.energy
                before, t0 = (meter.read(), time.perf_counter()) if meter else (None, 0.0)
                out = w.run(k)
                if meter:
                    r.energy_j += meter.joules(before, meter.read(), time.perf_counter() - t0)
                r.latencies_ms.extend(out["latencies_ms"])
                r.wall_s += out["wall_s"]
            done += k
            progress.update(done * len(workers) if per_config else done)
        progress.done()
        return results
    finally:
        if interference:
            interference.stop()
        for w in workers:
            w.close()


def render_table(settings: Settings, results: List[Result]) -> str:
    base = results[0].pct(50)
    lines = []
    cond = "quiet" if not settings.interference else f"busy process on CPU {settings.interference[0]} " \
        f"({settings.interference[1] * 100:.0f}% duty)"
    lines.append(f"model {settings.model_label} · {cond} · {len(results[0].latencies_ms)} runs per configuration, "
                 f"interleaved, {settings.warmup} warm-up · concurrency {settings.concurrent}")
    header = f"{'configuration':<34} {'threads':>7} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} {'runs/s':>8} " \
             f"{'speedup':>8}  {'MM/Gemm/Conv on EP':>18}" + ("   mJ/run" if settings.energy else "")
    lines.append(header)
    lines.append("-" * len(header))
    for r in results:
        s = r.summary()
        share = f"{r.heavy_on_ep}/{r.heavy_total}" if r.ep else "-"
        thr = str(r.intra_threads or "auto")
        lines.append(f"{r.label:<34} {thr:>7} {s['p50_ms']:9.3f} {s['p90_ms']:9.3f} {s['p99_ms']:9.3f} "
                     f"{s['throughput_per_s']:8.1f} {base / s['p50_ms']:7.2f}x  {share:>18}"
                     + (f" {s['energy_mj_per_run'] or 0.0:8.1f}" if settings.energy else ""))
    lines.append(f"speedup = p50 of '{results[0].label}' / p50 of the row (> 1: faster than that baseline); "
                 "threads = ORT intra-op threads of the session")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    if "--worker" in argv:
        return worker_main()
    try:
        settings = parse_args(argv)
    except UsageError as e:
        print(f"asymo-bench: error: {e}", file=sys.stderr)
        return 2
    atexit.register(_stop_all_children)
    previous = signal.signal(signal.SIGTERM, _on_sigterm)
    # SIGINT as well, explicitly: a shell starting the tool in the background (`cmd &` without job control) leaves
    # SIGINT ignored, and Python then keeps it ignored — an interrupt would be lost and the busy process run on.
    previous_int = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        results = measure(settings)
    except KeyboardInterrupt:
        print("asymo-bench: interrupted", file=sys.stderr)
        return 130
    except RuntimeError as e:
        print(f"asymo-bench: error: {e}", file=sys.stderr)
        return 1
    finally:
        _stop_all_children()
        signal.signal(signal.SIGTERM, previous)
        signal.signal(signal.SIGINT, previous_int)
    print(render_table(settings, results))
    if settings.json_path:
        doc = {
            "tool": "asymo-bench",
            "date": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": ["asymo-bench", *argv],
            "model": settings.model_label,
            "model_path": settings.model_path,
            "interference": None if not settings.interference else
            {"cpu": settings.interference[0], "duty": settings.interference[1]},
            "concurrent": settings.concurrent,
            "results": [{**r.summary(), "latencies_ms": r.latencies_ms} for r in results],
        }
        Path(settings.json_path).write_text(json.dumps(doc, indent=2))
    if settings.plot_path:
        plot_latencies(settings, results, settings.plot_path)
    return 0


def plot_latencies(settings: Settings, results: List[Result], path: str) -> None:
    """Bar chart: p50 per configuration with a p10–p90 whisker."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r.label for r in results]
    p50 = [r.pct(50) for r in results]
    lo = [r.pct(50) - r.pct(10) for r in results]
    hi = [r.pct(90) - r.pct(50) for r in results]
    fig, ax = plt.subplots(figsize=(1.6 + 1.3 * len(results), 3.6))
    colors = ["#8a8a8a" if r.ep is None else "#2f6db3" for r in results]
    ax.bar(range(len(results)), p50, yerr=[lo, hi], color=colors, capsize=4)
    ax.set_xticks(range(len(results)), labels, rotation=20, ha="right", fontsize=8)
    ax.set_ylabel("latency p50 (ms), whiskers p10–p90")
    cond = "quiet" if not settings.interference else f"busy CPU {settings.interference[0]} @ {settings.interference[1]:.0%}"
    ax.set_title(f"{settings.model_label} · {cond}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
