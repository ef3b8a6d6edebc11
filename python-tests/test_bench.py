"""asymo-bench: perf_test-style flags with clear errors, a short run producing a table, JSON and a PNG, and the
interference process always stopped (success, failure, interrupt)."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import write_fixture

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
import asymo_bench  # noqa: E402

BUSY_MARK = "duty, period"  # text of the interference process's command line


def busy_processes():
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if BUSY_MARK in cmd:
            found.append(int(pid))
    return found


@pytest.fixture(scope="module")
def fixture_model(tmp_path_factory):
    d = tmp_path_factory.mktemp("bench")
    write_fixture.write(d)
    return d / "model.onnx"


def bench(*args, timeout=300):
    return subprocess.run([str(ROOT / "scripts/asymo-bench"), *map(str, args)], capture_output=True, text=True,
                          timeout=timeout)


def test_flags_parse_like_perf_test(fixture_model, ep_library):
    s = asymo_bench.parse_args([str(fixture_model), "-m", "duration", "-t", "3", "-x", "2", "-c", "2", "-I",
                                "-C", "session.intra_op.allow_spinning|0", "-f", "N:4",
                                "--plugin_ep_libs", f"asymo|{ep_library}", "--plugin_eps", "AsyMoExecutionProvider",
                                "--plugin_ep_options", "log_plan|0", "--cpu-ep-threads", "2,1", "--interfere", "1:0.5"])
    assert (s.mode, s.seconds, s.concurrent) == ("duration", 3.0, 2)
    assert s.session_config == [("session.intra_op.allow_spinning", "0")]
    assert s.free_dims == {"N": 4}
    assert s.interference == (1, 0.5)
    assert [c.label for c in s.configs] == ["CPU EP 2 thr", "CPU EP 1 thr", "AsyMo EP (log_plan=0)"]
    assert s.configs[-1].ep_options == {"log_plan": "0"}
    # empty option groups are allowed, as in perf_test
    assert asymo_bench.parse_plugin_options(";k|v", 2) == [{}, {"k": "v"}]


@pytest.mark.parametrize(
    "args, message",
    [
        (["-r", "abc"], "-r expects a positive integer, got 'abc'"),
        (["-r", "0"], "-r expects a positive integer"),
        (["-m", "forever"], "-m expects 'times' or 'duration'"),
        (["-t", "-1"], "-t expects a positive number"),
        (["-o", "3"], "-o expects 0, 1, 2 or 99"),
        (["-C", "novalue"], "-C: 'novalue' is not a key|value pair"),
        (["-f", "N=3"], "-f: 'N=3' is not dim_name:value"),
        (["--plugin_ep_options", "a|1;b|2"], "2 option groups but --plugin_eps names 1"),
        (["--plugin_ep_libs", "x|/nonexistent.so"], "does not exist"),
        (["--interfere", "64"], "CPU 64 does not exist"),
        (["--interfere", "0:1.5"], "not in (0, 1]"),
        (["--cpu-ep-threads", "2,x"], "--cpu-ep-threads expects a positive integer, got 'x'"),
    ],
)
def test_bad_flags_are_clear_errors(fixture_model, args, message):
    r = bench(fixture_model, *args)
    assert r.returncode == 2, r.stdout + r.stderr
    assert message in r.stderr, r.stderr


def test_short_run_writes_table_json_png(fixture_model, tmp_path, ep_library):
    out_json, out_png = tmp_path / "r.json", tmp_path / "r.png"
    r = bench(fixture_model, "-r", "4", "--warmup", "1", "--cpu-ep-threads", "2,1", "--json", out_json,
              "--plot", out_png, "--plugin_ep_libs", f"asymo|{ep_library}")
    assert r.returncode == 0, r.stdout + r.stderr
    for label in ("CPU EP 2 thr", "CPU EP 1 thr", "AsyMo EP", "p50 ms", "MM/Gemm/Conv on EP", "3/3"):
        assert label in r.stdout
    doc = json.loads(out_json.read_text())
    assert [x["runs"] for x in doc["results"]] == [4, 4, 4]
    assert doc["results"][2]["heavy_nodes_on_ep"] == doc["results"][2]["heavy_nodes_total"] == 3
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_interference_runs_and_stops(fixture_model, ep_library):
    r = bench(fixture_model, "-r", "3", "--warmup", "1", "--interfere", "1:0.3",
              "--plugin_ep_libs", f"asymo|{ep_library}")
    assert r.returncode == 0, r.stderr
    assert "busy process on CPU 1 (30% duty)" in r.stdout
    assert busy_processes() == []


def test_interference_stopped_when_the_run_fails(fixture_model, ep_library):
    r = bench(fixture_model, "-r", "3", "--interfere", "0", "--plugin_ep_libs", f"asymo|{ep_library}",
              "--plugin_eps", "NoSuchEp")
    assert r.returncode == 1
    assert "no device of EP 'NoSuchEp'" in r.stderr
    assert busy_processes() == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_interference_stopped_when_interrupted(fixture_model, ep_library, sig):
    p = subprocess.Popen([str(ROOT / "scripts/asymo-bench"), str(fixture_model), "-m", "duration", "-t", "60",
                          "--interfere", "1", "--plugin_ep_libs", f"asymo|{ep_library}"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_busy_process()
        # (The busy process is visible as soon as it runs, which may be before asymo-bench's Popen has returned;
        # the tool holds the signals until then, and this pause makes the signal land in the measurement most of
        # the time.)
        time.sleep(0.3)
        p.send_signal(sig)
        p.communicate(timeout=30)
        assert p.returncode == 130
        time.sleep(0.2)
        assert busy_processes() == []
    finally:
        _kill_leftovers(p)


def _wait_for_busy_process() -> None:
    deadline = time.time() + 60
    while not busy_processes() and time.time() < deadline:
        time.sleep(0.1)
    assert busy_processes(), "interference never started"


def _kill_leftovers(p: subprocess.Popen) -> None:
    """A failed test must not leave the tool or its busy process running into the next test."""
    if p.poll() is None:
        p.kill()
        p.wait()
    for pid in busy_processes():
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


def test_sigint_interrupts_even_when_inherited_ignored(fixture_model, ep_library):
    # A shell's background job (`cmd &` without job control) starts with SIGINT ignored; the tool still stops, and
    # so does its busy process.
    cmd = [str(ROOT / "scripts/asymo-bench"), str(fixture_model), "-m", "duration", "-t", "60", "--interfere", "1",
           "--plugin_ep_libs", f"asymo|{ep_library}"]
    p = subprocess.Popen(["sh", "-c", 'trap "" INT; exec "$@"', "sh", *cmd],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_busy_process()
        time.sleep(0.3)
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
        assert p.returncode == 130, err
        assert "interrupted" in err
        time.sleep(0.2)
        assert busy_processes() == []
    finally:
        _kill_leftovers(p)


def test_energy_needs_a_meter_and_reads_rapl(fixture_model, ep_library, tmp_path):
    r = bench(fixture_model, "-r", "2", "--energy", "--sysfs-root", tmp_path, "--plugin_ep_libs", f"asymo|{ep_library}")
    assert r.returncode == 2 and "--energy: no readable RAPL counters" in r.stderr, r.stderr
    rapl = tmp_path / "class/powercap/intel-rapl:0"
    rapl.mkdir(parents=True)
    (rapl / "energy_uj").write_text("5000000\n")
    (rapl / "max_energy_range_uj").write_text("262143328850\n")
    r = bench(fixture_model, "-r", "2", "--warmup", "1", "--energy", "--sysfs-root", tmp_path,
              "--plugin_ep_libs", f"asymo|{ep_library}")
    assert r.returncode == 0, r.stderr
    assert "mJ/run" in r.stdout
