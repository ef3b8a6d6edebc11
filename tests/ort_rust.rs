//! The Rust application path: the `ort` crate (dynamic loading of the PyPI wheel's `libonnxruntime.so`) registers
//! our library, appends our device to a session and runs a model; the output matches ORT's CPU EP.
//!
//! Needs the project venv (scripts/setup.sh): its Python writes the model and the CPU EP's expected output, and its
//! onnxruntime wheel provides the runtime. `ASYMO_PYTHON` overrides the interpreter.

use std::path::{Path, PathBuf};
use std::process::Command;

use ort::session::Session;
use ort::value::Tensor;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn python() -> PathBuf {
    std::env::var_os("ASYMO_PYTHON").map(PathBuf::from).unwrap_or_else(|| root().join(".venv/bin/python"))
}

/// The cdylib cargo built with this test binary: `target/<profile>/deps/libasymo_ep.so` (cargo copies it up to
/// `target/<profile>/` only on `cargo build`). `ASYMO_EP_LIB` overrides.
fn our_library() -> PathBuf {
    if let Some(p) = std::env::var_os("ASYMO_EP_LIB") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test binary path");
    let deps = exe.parent().expect("target/<profile>/deps");
    let candidates = [deps.join("libasymo_ep.so"), deps.parent().expect("target/<profile>").join("libasymo_ep.so")];
    candidates
        .iter()
        .find(|p| p.exists())
        .cloned()
        .unwrap_or_else(|| panic!("libasymo_ep.so not found at {candidates:?} (cargo builds it with the tests)"))
}

fn ort_runtime() -> PathBuf {
    let out = Command::new(python())
        .args(["-c", "import onnxruntime, os; print(os.path.join(os.path.dirname(onnxruntime.__file__), 'capi'))"])
        .output()
        .expect("run the project venv's python (scripts/setup.sh creates it)");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    let capi = PathBuf::from(String::from_utf8(out.stdout).unwrap().trim());
    std::fs::read_dir(&capi)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().is_some_and(|n| n.to_string_lossy().starts_with("libonnxruntime.so.1.")))
        .expect("libonnxruntime.so.1.* in the onnxruntime wheel")
}

fn read_f32(path: &Path) -> Vec<f32> {
    std::fs::read(path).unwrap().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
}

#[test]
fn ort_crate_registers_appends_and_runs() {
    let dir = std::env::temp_dir().join(format!("asymo-ort-rust-{}", std::process::id()));
    let status = Command::new(python())
        .arg(root().join("python-tests/write_fixture.py"))
        .arg(&dir)
        .status()
        .expect("run python-tests/write_fixture.py");
    assert!(status.success());

    let env = ort::init_from(ort_runtime())
        .expect("load libonnxruntime")
        .with_name("asymo-rust")
        .build()
        .expect("environment");
    env.register_ep_library("asymo", our_library()).expect("register AsyMo EP");
    let ours: Vec<_> = env.devices().filter(|d| d.ep().ok() == Some("AsyMoExecutionProvider")).collect();
    assert_eq!(ours.len(), 1, "one AsyMo device");
    assert_eq!(ours[0].ep_vendor().unwrap(), "AsyMo");

    let options = [("log_plan".to_string(), "0".to_string())];
    let mut session = Session::builder(&env)
        .unwrap()
        .with_devices(ours, Some(&options))
        .unwrap()
        .commit_from_file(dir.join("model.onnx"))
        .expect("session on AsyMo EP");
    let input = Tensor::from_array(([1usize, 3, 8, 8], read_f32(&dir.join("input.f32")))).unwrap();
    let outputs = session.run(ort::inputs!["x" => input]).expect("run");
    let (_, y) = outputs["y"].try_extract_tensor::<f32>().unwrap();
    let expected = read_f32(&dir.join("expected.f32"));
    let scale = expected.iter().fold(0f32, |m, v| m.max(v.abs()));
    let diff = y.iter().zip(&expected).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert_eq!(y.len(), expected.len());
    assert!(diff <= 1e-4 * scale, "max |diff| {diff} vs max |expected| {scale}");
    let _ = std::fs::remove_dir_all(&dir);
}
