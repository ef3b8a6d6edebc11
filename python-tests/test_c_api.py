"""The C API path: a C program built with CMake through find_package(AsyMoEP) registers the library with
RegisterExecutionProviderLibrary, appends it with SessionOptionsAppendExecutionProvider_V2, runs a model and checks
the output against ORT's CPU EP. ORT's C headers come from a package registry (scripts/fetch-ort-headers.sh)."""

import shutil
import subprocess
from pathlib import Path

import pytest

import write_fixture

ROOT = Path(__file__).resolve().parent.parent


def run(cmd, **kw):
    """Run a command; on failure show its output in the assertion."""
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}"
    return r


def test_c_program_registers_and_runs(tmp_path, ep_library):
    if shutil.which("cmake") is None:
        pytest.fail("cmake is required (scripts/setup.sh installs it)")
    headers = run([ROOT / "scripts/fetch-ort-headers.sh"])
    ort_lib = run([ROOT / "scripts/ort-lib-dir.sh"])
    build = tmp_path / "build"
    lib = Path(ep_library)
    run(
        [
            "cmake", "-S", str(ROOT / "tests/c_api"), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release",
            f"-DAsyMoEP_DIR={ROOT / 'cmake'}", f"-DAsyMoEP_LIBRARY={lib}",
            f"-DORT_INCLUDE_DIR={headers.stdout.strip()}", f"-DORT_LIB_DIR={ort_lib.stdout.strip()}",
        ]
    )
    run(["cmake", "--build", build])

    write_fixture.write(tmp_path)
    model_path = tmp_path / "model.onnx"

    result = run(
        [build / "asymo_c_api_test", model_path, tmp_path / "input.f32", "1,3,8,8", tmp_path / "expected.f32"],
        timeout=120,
    )
    assert "OK" in result.stdout
    assert "bogus_key" in result.stdout
