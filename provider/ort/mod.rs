//! The ORT glue: the only code that sees `ffi` types. Each `extern` callback is a thin shell that catches panics,
//! converts errors into an `OrtStatus`, and calls plain Rust.

pub(crate) mod compute;
pub(crate) mod entry;
pub(crate) mod ep;
pub(crate) mod factory;
mod graph;

use std::panic::{catch_unwind, AssertUnwindSafe};

use asymo_ep_ffi::{Api, Error, Result, StatusPtr};

/// The EP's name: OrtEpDevice ep_name, the option prefix (lowercased) and the `--plugin_eps` value.
pub(crate) const EP_NAME: &std::ffi::CStr = c"AsyMoExecutionProvider";
pub(crate) const EP_VENDOR: &std::ffi::CStr = c"AsyMo";
/// The crate version as a C string (factory GetVersion; ORT copies it into the device metadata).
pub(crate) const EP_VERSION: &std::ffi::CStr =
    match std::ffi::CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
        Ok(s) => s,
        Err(_) => panic!("crate version contains a NUL"),
    };

/// Run `f` for a status-returning callback: `Ok` → null status, `Err` → an `OrtStatus` with the error, panic → an
/// `OrtStatus` (ORT_FAIL) naming the callback. Nothing unwinds into ORT.
pub(crate) fn status_of(callback: &str, f: impl FnOnce() -> Result<()>) -> StatusPtr {
    let outcome = catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|panic| {
        let msg = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into());
        Err(Error::fail(format!("AsyMo EP internal error in {callback}: {msg}")))
    });
    match outcome {
        Ok(()) => std::ptr::null_mut(),
        Err(e) => match Api::get() {
            Ok(api) => api.status(&e),
            // Unreachable in practice: every callback is installed after CreateEpFactories set the API. Without the
            // API no status can be built, so the best we can do is report on stderr.
            Err(_) => {
                eprintln!("AsyMo EP: {callback} failed before initialization: {}", e.message);
                std::ptr::null_mut()
            }
        },
    }
}

/// Run `f` for a callback that returns a plain value; a panic yields `fallback`.
pub(crate) fn value_of<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Write `value` through an out-pointer from ORT, failing cleanly on null.
///
/// # Safety
/// `out` must be null or valid for a write of `T`.
pub(crate) unsafe fn write_out<T>(out: *mut T, value: T, what: &str) -> Result<()> {
    if out.is_null() {
        return Err(Error::invalid_argument(format!("{what}: output pointer is null")));
    }
    // SAFETY: non-null and valid for writes (caller contract).
    unsafe { out.write(value) };
    Ok(())
}
