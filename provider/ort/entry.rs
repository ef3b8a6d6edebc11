//! The two symbols ORT looks up in the library.

use core::ffi::c_char;

use asymo_ep_ffi::sys::{OrtApiBase, OrtLogger, OrtStatus};
use asymo_ep_ffi::{Api, Error, OrtEpFactory};

use super::factory::Factory;
use super::status_of;

/// Create our factory (one per library registration).
///
/// # Safety
/// Called by ONNX Runtime: `ort_api_base` is its API base, `factories` an array of `max_factories` slots,
/// `num_factories` writable. Null pointers are reported as errors.
#[no_mangle]
pub unsafe extern "C" fn CreateEpFactories(
    _registered_name: *const c_char,
    ort_api_base: *const OrtApiBase,
    default_logger: *const OrtLogger,
    factories: *mut *mut OrtEpFactory,
    max_factories: usize,
    num_factories: *mut usize,
) -> *mut OrtStatus {
    // The API must exist before we can report anything through an OrtStatus.
    // SAFETY: ort_api_base is ORT's static API base (or null, which init reports).
    if let Err(e) = unsafe { Api::init(ort_api_base) } {
        if !num_factories.is_null() {
            // SAFETY: non-null out-pointer from ORT.
            unsafe { *num_factories = 0 };
        }
        // SAFETY: as above; the fallback only uses OrtApi version 1's CreateStatus.
        return unsafe { Api::status_without_api(ort_api_base, &e) };
    }
    status_of("CreateEpFactories", || {
        if factories.is_null() || num_factories.is_null() {
            return Err(Error::invalid_argument("CreateEpFactories: null output array"));
        }
        if max_factories < 1 {
            return Err(Error::invalid_argument("CreateEpFactories: room for 0 factories, need 1"));
        }
        let factory = Factory::new(default_logger);
        install_log_sink(default_logger);
        // SAFETY: both pointers checked non-null; the array has at least one slot.
        unsafe {
            *factories = Box::into_raw(factory) as *mut OrtEpFactory;
            *num_factories = 1;
        }
        Ok(())
    })
}

/// Release a factory created by `CreateEpFactories`.
///
/// # Safety
/// `factory` must be null or a factory this library returned and ORT has not released yet.
#[no_mangle]
pub unsafe extern "C" fn ReleaseEpFactory(factory: *mut OrtEpFactory) -> *mut OrtStatus {
    status_of("ReleaseEpFactory", || {
        if !factory.is_null() {
            // The host's logger may go away with the registration: process-wide logs fall back to stderr.
            crate::runtime::set_log_sink(None);
            // SAFETY: the pointer came from Box::into_raw in CreateEpFactories (Factory is repr(C) with the table
            // first) and ORT releases it exactly once.
            drop(unsafe { Box::from_raw(factory as *mut Factory) });
        }
        Ok(())
    })
}

/// Route process-wide log messages (pool, governor) to ORT's default logger while the library is registered.
fn install_log_sink(logger: *const OrtLogger) {
    let Ok(api) = Api::get() else { return };
    if logger.is_null() {
        return;
    }
    // The pointer is carried as an integer so the closure is Send + Sync; it is only passed back to ORT's
    // thread-safe logging API, and the sink is removed before the factory (and its registration) is released.
    let addr = logger as usize;
    crate::runtime::set_log_sink(Some(Box::new(move |level, msg| {
        let level = match level {
            crate::asym::freq::LogLevel::Info => asymo_ep_ffi::LogLevel::Info,
            crate::asym::freq::LogLevel::Warning => asymo_ep_ffi::LogLevel::Warning,
            crate::asym::freq::LogLevel::Error => asymo_ep_ffi::LogLevel::Error,
        };
        // SAFETY: the default logger lives while the library is registered (see above).
        unsafe { api.log(addr as *const OrtLogger, level, msg) };
    })));
}
