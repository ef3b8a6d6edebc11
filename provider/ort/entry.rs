//! The two exported entry points.

use asymo_ep_ffi::sys::{OrtApiBase, OrtLogger, OrtStatus};
use asymo_ep_ffi::OrtEpFactory;
use core::ffi::c_char;

/// # Safety
/// Called by ONNX Runtime with valid pointers.
#[no_mangle]
pub unsafe extern "C" fn CreateEpFactories(
    _registered_name: *const c_char,
    _ort_api_base: *const OrtApiBase,
    _default_logger: *const OrtLogger,
    _factories: *mut *mut OrtEpFactory,
    _max_factories: usize,
    _num_factories: *mut usize,
) -> *mut OrtStatus {
    std::ptr::null_mut()
}

/// # Safety
/// Called by ONNX Runtime with a factory we created.
#[no_mangle]
pub unsafe extern "C" fn ReleaseEpFactory(_factory: *mut OrtEpFactory) -> *mut OrtStatus {
    std::ptr::null_mut()
}
