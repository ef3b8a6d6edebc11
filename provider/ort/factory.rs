//! `OrtEpFactory`: device discovery and EP creation.

use core::ffi::{c_char, c_int};

use asymo_ep_ffi::sys::{
    OrtAllocator, OrtCustomOpDomain, OrtEpDevice, OrtHardwareDevice, OrtHardwareDeviceType, OrtKeyValuePairs,
    OrtLogger, OrtMemoryInfo, OrtSessionOptions,
};
use asymo_ep_ffi::{
    ep_call, Api, Error, OrtDataTransferImpl, OrtEp, OrtEpFactory, OrtMemoryDevice, OrtSyncStreamImpl, StatusPtr,
    ORT_VERSION_SUPPORTED,
};

use super::ep::Ep;
use super::{status_of, value_of, write_out, EP_NAME, EP_VENDOR, EP_VERSION};

/// Our factory. `table` must stay the first field: ORT hands us `*mut OrtEpFactory`, which we cast back.
#[repr(C)]
pub(crate) struct Factory {
    table: OrtEpFactory,
    default_logger: *const OrtLogger,
}

impl Factory {
    pub(crate) fn new(default_logger: *const OrtLogger) -> Box<Self> {
        Box::new(Factory {
            table: OrtEpFactory {
                ort_version_supported: ORT_VERSION_SUPPORTED,
                GetName: Some(get_name),
                GetVendor: Some(get_vendor),
                GetSupportedDevices: Some(get_supported_devices),
                CreateEp: Some(create_ep),
                ReleaseEp: Some(release_ep),
                GetVendorId: Some(get_vendor_id),
                GetVersion: Some(get_version),
                ValidateCompiledModelCompatibilityInfo: Some(validate_compiled_model_compatibility),
                CreateAllocator: Some(create_allocator),
                ReleaseAllocator: Some(release_allocator),
                CreateDataTransfer: Some(create_data_transfer),
                IsStreamAware: Some(is_stream_aware),
                CreateSyncStreamForDevice: Some(create_sync_stream),
                GetHardwareDeviceIncompatibilityDetails: None,
                CreateExternalResourceImporterForDevice: None,
                GetNumCustomOpDomains: Some(get_num_custom_op_domains),
                GetCustomOpDomains: Some(get_custom_op_domains),
                InitGraphicsInterop: None,
                DeinitGraphicsInterop: None,
                SelectBestModelCandidate: None,
            },
            default_logger,
        })
    }

    /// # Safety
    /// `this` must be a pointer to a live `Factory` created by `new` (ORT passes back what we gave it).
    unsafe fn from_ptr<'a>(this: *const OrtEpFactory) -> &'a Factory {
        // SAFETY: Factory is repr(C) with the table as its first field (caller contract).
        unsafe { &*(this as *const Factory) }
    }
}

unsafe extern "system" fn get_name(_this: *const OrtEpFactory) -> *const c_char {
    EP_NAME.as_ptr()
}

unsafe extern "system" fn get_vendor(_this: *const OrtEpFactory) -> *const c_char {
    EP_VENDOR.as_ptr()
}

unsafe extern "system" fn get_vendor_id(_this: *const OrtEpFactory) -> u32 {
    0
}

unsafe extern "system" fn get_version(_this: *const OrtEpFactory) -> *const c_char {
    EP_VERSION.as_ptr()
}

/// One OrtEpDevice per CPU hardware device ORT found; other device types are not ours.
unsafe extern "system" fn get_supported_devices(
    this: *mut OrtEpFactory,
    devices: *const *const OrtHardwareDevice,
    num_devices: usize,
    ep_devices: *mut *mut OrtEpDevice,
    max_ep_devices: usize,
    num_ep_devices: *mut usize,
) -> StatusPtr {
    status_of("GetSupportedDevices", || {
        let api = Api::get()?;
        // SAFETY: num_ep_devices is ORT's out-pointer (checked for null).
        unsafe { write_out(num_ep_devices, 0, "GetSupportedDevices")? };
        if devices.is_null() || ep_devices.is_null() {
            return Ok(());
        }
        let mut count = 0usize;
        for i in 0..num_devices {
            // SAFETY: `devices` holds num_devices pointers (ORT contract).
            let dev = unsafe { *devices.add(i) };
            // SAFETY: dev is a live hardware device owned by ORT.
            if dev.is_null()
                || unsafe { (api.ort.HardwareDevice_Type)(dev) } != OrtHardwareDeviceType::OrtHardwareDeviceType_CPU
            {
                continue;
            }
            if count == max_ep_devices {
                break;
            }
            let metadata = DeviceMetadata::new(api);
            metadata.add("asymo.kernels", crate::kernels::isa_name());
            let mut ep_device: *mut OrtEpDevice = std::ptr::null_mut();
            ep_call!(api, CreateEpDevice(this, dev, metadata.ptr, std::ptr::null(), &mut ep_device))?;
            // SAFETY: i < max_ep_devices slots in ORT's array; ORT takes ownership of the device.
            unsafe { *ep_devices.add(count) = ep_device };
            count += 1;
        }
        // SAFETY: as above.
        unsafe { write_out(num_ep_devices, count, "GetSupportedDevices") }
    })
}

/// A key-value set we create and release (CreateEpDevice copies it).
struct DeviceMetadata {
    api: &'static Api,
    ptr: *mut OrtKeyValuePairs,
}

impl DeviceMetadata {
    fn new(api: &'static Api) -> Self {
        let mut ptr = std::ptr::null_mut();
        // SAFETY: CreateKeyValuePairs writes a new, owned set (released in Drop).
        unsafe { (api.ort.CreateKeyValuePairs)(&mut ptr) };
        DeviceMetadata { api, ptr }
    }

    fn add(&self, key: &str, value: &str) {
        if self.ptr.is_null() {
            return;
        }
        let (k, v) = (asymo_ep_ffi::to_cstring(key), asymo_ep_ffi::to_cstring(value));
        // SAFETY: live set; ORT copies both strings.
        unsafe { (self.api.ort.AddKeyValuePair)(self.ptr, k.as_ptr(), v.as_ptr()) };
    }
}

impl Drop for DeviceMetadata {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            // SAFETY: we own the set and release it once.
            unsafe { (self.api.ort.ReleaseKeyValuePairs)(self.ptr) };
        }
    }
}

unsafe extern "system" fn create_ep(
    this: *mut OrtEpFactory,
    _devices: *const *const OrtHardwareDevice,
    _ep_metadata: *const *const OrtKeyValuePairs,
    _num_devices: usize,
    session_options: *const OrtSessionOptions,
    logger: *const OrtLogger,
    ep: *mut *mut OrtEp,
) -> StatusPtr {
    status_of("CreateEp", || {
        let api = Api::get()?;
        if ep.is_null() || session_options.is_null() {
            return Err(Error::invalid_argument("CreateEp: null session options or output pointer"));
        }
        // SAFETY: `this` is our factory.
        let factory = unsafe { Factory::from_ptr(this) };
        let logger = if logger.is_null() { factory.default_logger } else { logger };
        // SAFETY: session_options is live for the duration of CreateEp (ORT contract).
        let entries = unsafe { api.session_config_entries(session_options) }?;
        let new_ep = Ep::new(api, &entries, logger).map_err(|e| e.context("AsyMo EP session options"))?;
        // SAFETY: non-null out-pointer; ORT releases the EP through ReleaseEp.
        unsafe { *ep = Box::into_raw(new_ep) as *mut OrtEp };
        Ok(())
    })
}

unsafe extern "system" fn release_ep(_this: *mut OrtEpFactory, ep: *mut OrtEp) {
    value_of((), || {
        if !ep.is_null() {
            // SAFETY: created by Box::into_raw in create_ep; ORT releases each EP exactly once.
            drop(unsafe { Box::from_raw(ep as *mut Ep) });
        }
    })
}

unsafe extern "system" fn validate_compiled_model_compatibility(
    _this: *mut OrtEpFactory,
    _devices: *const *const OrtHardwareDevice,
    _num_devices: usize,
    _info: *const c_char,
    out: *mut c_int,
) -> StatusPtr {
    // We never produce EPContext models, so compatibility info is not ours to judge.
    status_of("ValidateCompiledModelCompatibilityInfo", || {
        // SAFETY: ORT's out-pointer; 0 = OrtCompiledModelCompatibility_EP_NOT_APPLICABLE.
        unsafe { write_out(out, 0, "ValidateCompiledModelCompatibilityInfo") }
    })
}

/// We register no allocator info, so ORT never asks; answer "use the default CPU allocator" if it does.
unsafe extern "system" fn create_allocator(
    _this: *mut OrtEpFactory,
    _memory_info: *const OrtMemoryInfo,
    _options: *const OrtKeyValuePairs,
    allocator: *mut *mut OrtAllocator,
) -> StatusPtr {
    status_of("CreateAllocator", || {
        // SAFETY: ORT's out-pointer.
        unsafe { write_out(allocator, std::ptr::null_mut(), "CreateAllocator") }
    })
}

unsafe extern "system" fn release_allocator(_this: *mut OrtEpFactory, _allocator: *mut OrtAllocator) {}

/// Our tensors are ordinary CPU memory: no data transfer.
unsafe extern "system" fn create_data_transfer(
    _this: *mut OrtEpFactory,
    out: *mut *mut OrtDataTransferImpl,
) -> StatusPtr {
    status_of("CreateDataTransfer", || {
        // SAFETY: ORT's out-pointer.
        unsafe { write_out(out, std::ptr::null_mut(), "CreateDataTransfer") }
    })
}

unsafe extern "system" fn is_stream_aware(_this: *const OrtEpFactory) -> bool {
    false
}

unsafe extern "system" fn create_sync_stream(
    _this: *mut OrtEpFactory,
    _device: *const OrtMemoryDevice,
    _options: *const OrtKeyValuePairs,
    stream: *mut *mut OrtSyncStreamImpl,
) -> StatusPtr {
    status_of("CreateSyncStreamForDevice", || {
        // SAFETY: ORT's out-pointer; null = no stream (we are not stream aware).
        unsafe { write_out(stream, std::ptr::null_mut(), "CreateSyncStreamForDevice") }
    })
}

unsafe extern "system" fn get_num_custom_op_domains(_this: *mut OrtEpFactory, num: *mut usize) -> StatusPtr {
    status_of("GetNumCustomOpDomains", || {
        // SAFETY: ORT's out-pointer.
        unsafe { write_out(num, 0, "GetNumCustomOpDomains") }
    })
}

unsafe extern "system" fn get_custom_op_domains(
    _this: *mut OrtEpFactory,
    _domains: *mut *mut OrtCustomOpDomain,
    _num: usize,
) -> StatusPtr {
    std::ptr::null_mut()
}
