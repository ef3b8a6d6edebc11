//! The EP-side tables of ONNX Runtime's plugin execution-provider ABI, declared here from ORT's
//! `onnxruntime_ep_c_api.h` (1.24 … 1.31 layouts; see `docs/ffi.md`).
//!
//! `OrtEpFactory`, `OrtEp` and `OrtNodeComputeInfo` are implemented by us and read by ORT; `OrtEpApi` is implemented by
//! ORT and read by us. Every field is an `Option<fn>` so that a slot we do not implement is an explicit null, and a
//! null slot that ORT handed us is never called by accident. Enums that ORT passes *into* our callbacks are declared
//! as plain integers so an unexpected value can never be undefined behaviour on the Rust side.

#![allow(non_snake_case, non_camel_case_types)]

use core::ffi::{c_char, c_int, c_void};

use ort_sys::{
    ONNXTensorElementDataType, OrtAllocator, OrtCustomOpDomain, OrtDeviceEpIncompatibilityDetails, OrtEpDevice,
    OrtGraph, OrtHardwareDevice, OrtHardwareDeviceType, OrtKernelContext, OrtKernelInfo, OrtKeyValuePairs, OrtLogger,
    OrtMemType, OrtMemoryInfo, OrtNode, OrtRunOptions, OrtSessionOptions, OrtStatus, OrtSyncStream, OrtValue,
};

/// The plugin-EP ABI version our tables follow: ORT reads `ort_version_supported` and never calls a slot newer than
/// it. 24 is the first release with `IsConcurrentRunSupported` and the graph-assignment API our tests use, so the
/// library loads in ONNX Runtime 1.24 and every later release (verified against 1.31.1).
pub const ORT_VERSION_SUPPORTED: u32 = 24;

macro_rules! opaque {
    ($($name:ident),* $(,)?) => {$(
        /// Opaque ORT object; only ever handled by pointer.
        #[repr(C)]
        pub struct $name {
            _private: [u8; 0],
        }
    )*};
}

opaque!(
    OrtEpGraphSupportInfo,
    OrtNodeComputeContext,
    OrtMemoryDevice,
    OrtDataTransferImpl,
    OrtSyncStreamImpl,
    OrtExternalResourceImporterImpl,
    OrtEpProfilerImpl,
    OrtKernelRegistry,
    OrtKernelDefBuilder,
    OrtKernelDef,
    OrtDataType,
    OrtSharedPrePackedWeightCache,
    OrtOpSchema,
    OrtOpSchemaTypeConstraint,
    OrtProfilingEventsContainer,
    OrtProfilingEvent,
    OrtGraphicsInteropConfig,
    OrtKernelImpl,
    OrtLoopKernelHelper,
    OrtScanKernelHelper,
    OrtEpContextConfig,
    OrtResourceCount,
);

/// Status pointer as returned across the ABI: null means success, ORT takes ownership of a non-null one.
pub type StatusPtr = *mut OrtStatus;

/// `OrtEpDataLayout`: 0 = NCHW, 1 = NHWC.
pub type OrtEpDataLayout = c_int;
pub const ORT_EP_DATA_LAYOUT_NCHW: OrtEpDataLayout = 0;
pub const ORT_EP_DATA_LAYOUT_NHWC: OrtEpDataLayout = 1;

/// `OrtKernelCreateFunc`.
pub type OrtKernelCreateFunc = Option<
    unsafe extern "system" fn(
        state: *mut c_void,
        info: *const OrtKernelInfo,
        out: *mut *mut OrtKernelImpl,
    ) -> StatusPtr,
>;

/// The factory table (`struct OrtEpFactory`), implemented by the EP library.
#[repr(C)]
pub struct OrtEpFactory {
    pub ort_version_supported: u32,
    /* 1 */ pub GetName: Option<unsafe extern "system" fn(this: *const OrtEpFactory) -> *const c_char>,
    /* 2 */ pub GetVendor: Option<unsafe extern "system" fn(this: *const OrtEpFactory) -> *const c_char>,
    /* 3 */
    pub GetSupportedDevices: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            devices: *const *const OrtHardwareDevice,
            num_devices: usize,
            ep_devices: *mut *mut OrtEpDevice,
            max_ep_devices: usize,
            num_ep_devices: *mut usize,
        ) -> StatusPtr,
    >,
    /* 4 */
    pub CreateEp: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            devices: *const *const OrtHardwareDevice,
            ep_metadata: *const *const OrtKeyValuePairs,
            num_devices: usize,
            session_options: *const OrtSessionOptions,
            logger: *const OrtLogger,
            ep: *mut *mut OrtEp,
        ) -> StatusPtr,
    >,
    /* 5 */ pub ReleaseEp: Option<unsafe extern "system" fn(this: *mut OrtEpFactory, ep: *mut OrtEp)>,
    /* 6 */ pub GetVendorId: Option<unsafe extern "system" fn(this: *const OrtEpFactory) -> u32>,
    /* 7 */ pub GetVersion: Option<unsafe extern "system" fn(this: *const OrtEpFactory) -> *const c_char>,
    /* 8 */
    pub ValidateCompiledModelCompatibilityInfo: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            devices: *const *const OrtHardwareDevice,
            num_devices: usize,
            compatibility_info: *const c_char,
            model_compatibility: *mut c_int,
        ) -> StatusPtr,
    >,
    /* 9 */
    pub CreateAllocator: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            memory_info: *const OrtMemoryInfo,
            allocator_options: *const OrtKeyValuePairs,
            allocator: *mut *mut OrtAllocator,
        ) -> StatusPtr,
    >,
    /* 10 */
    pub ReleaseAllocator: Option<unsafe extern "system" fn(this: *mut OrtEpFactory, allocator: *mut OrtAllocator)>,
    /* 11 */
    pub CreateDataTransfer:
        Option<unsafe extern "system" fn(this: *mut OrtEpFactory, out: *mut *mut OrtDataTransferImpl) -> StatusPtr>,
    /* 12 */ pub IsStreamAware: Option<unsafe extern "system" fn(this: *const OrtEpFactory) -> bool>,
    /* 13 */
    pub CreateSyncStreamForDevice: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            memory_device: *const OrtMemoryDevice,
            stream_options: *const OrtKeyValuePairs,
            stream: *mut *mut OrtSyncStreamImpl,
        ) -> StatusPtr,
    >,
    /* 14 */
    pub GetHardwareDeviceIncompatibilityDetails: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            hw: *const OrtHardwareDevice,
            details: *mut OrtDeviceEpIncompatibilityDetails,
        ) -> StatusPtr,
    >,
    /* 15 */
    pub CreateExternalResourceImporterForDevice: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            ep_device: *const OrtEpDevice,
            out: *mut *mut OrtExternalResourceImporterImpl,
        ) -> StatusPtr,
    >,
    /* 16 */
    pub GetNumCustomOpDomains: Option<unsafe extern "system" fn(this: *mut OrtEpFactory, num: *mut usize) -> StatusPtr>,
    /* 17 */
    pub GetCustomOpDomains: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            domains: *mut *mut OrtCustomOpDomain,
            num: usize,
        ) -> StatusPtr,
    >,
    /* 18 */
    pub InitGraphicsInterop: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            ep_device: *const OrtEpDevice,
            config: *const OrtGraphicsInteropConfig,
        ) -> StatusPtr,
    >,
    /* 19 */
    pub DeinitGraphicsInterop:
        Option<unsafe extern "system" fn(this: *mut OrtEpFactory, ep_device: *const OrtEpDevice) -> StatusPtr>,
    /* 20 */
    pub SelectBestModelCandidate: Option<
        unsafe extern "system" fn(
            this: *mut OrtEpFactory,
            device: *const OrtHardwareDevice,
            candidates: *const *const OrtKeyValuePairs,
            num_candidates: usize,
            session_options: *const OrtSessionOptions,
            selected_index: *mut usize,
        ) -> StatusPtr,
    >,
}

/// The execution-provider table (`struct OrtEp`), implemented by the EP library; one per session.
#[repr(C)]
pub struct OrtEp {
    pub ort_version_supported: u32,
    /* 1 */ pub GetName: Option<unsafe extern "system" fn(this: *const OrtEp) -> *const c_char>,
    /* 2 */
    pub GetCapability: Option<
        unsafe extern "system" fn(
            this: *mut OrtEp,
            graph: *const OrtGraph,
            support_info: *mut OrtEpGraphSupportInfo,
        ) -> StatusPtr,
    >,
    /* 3 */
    pub Compile: Option<
        unsafe extern "system" fn(
            this: *mut OrtEp,
            graphs: *const *const OrtGraph,
            fused_nodes: *const *const OrtNode,
            count: usize,
            node_compute_infos: *mut *mut OrtNodeComputeInfo,
            ep_context_nodes: *mut *mut OrtNode,
        ) -> StatusPtr,
    >,
    /* 4 */
    pub ReleaseNodeComputeInfos:
        Option<unsafe extern "system" fn(this: *mut OrtEp, infos: *mut *mut OrtNodeComputeInfo, count: usize)>,
    /* 5 */
    pub GetPreferredDataLayout:
        Option<unsafe extern "system" fn(this: *mut OrtEp, layout: *mut OrtEpDataLayout) -> StatusPtr>,
    /* 6 */
    pub ShouldConvertDataLayoutForOp: Option<
        unsafe extern "system" fn(
            this: *mut OrtEp,
            domain: *const c_char,
            op_type: *const c_char,
            target: OrtEpDataLayout,
            should_convert: *mut c_int,
        ) -> StatusPtr,
    >,
    /* 7 */
    pub SetDynamicOptions: Option<
        unsafe extern "system" fn(
            this: *mut OrtEp,
            keys: *const *const c_char,
            values: *const *const c_char,
            count: usize,
        ) -> StatusPtr,
    >,
    /* 8 */
    pub OnRunStart: Option<unsafe extern "system" fn(this: *mut OrtEp, run_options: *const OrtRunOptions) -> StatusPtr>,
    /* 9 */
    pub OnRunEnd: Option<
        unsafe extern "system" fn(this: *mut OrtEp, run_options: *const OrtRunOptions, sync_stream: bool) -> StatusPtr,
    >,
    /* 10 */
    pub CreateAllocator: Option<
        unsafe extern "system" fn(
            this: *mut OrtEp,
            memory_info: *const OrtMemoryInfo,
            allocator: *mut *mut OrtAllocator,
        ) -> StatusPtr,
    >,
    /* 11 */
    pub CreateSyncStreamForDevice: Option<
        unsafe extern "system" fn(
            this: *mut OrtEp,
            memory_device: *const OrtMemoryDevice,
            stream: *mut *mut OrtSyncStreamImpl,
        ) -> StatusPtr,
    >,
    /* 12 */
    pub GetCompiledModelCompatibilityInfo:
        Option<unsafe extern "system" fn(this: *mut OrtEp, graph: *const OrtGraph) -> *const c_char>,
    /* 13 */
    pub GetKernelRegistry:
        Option<unsafe extern "system" fn(this: *mut OrtEp, registry: *mut *const OrtKernelRegistry) -> StatusPtr>,
    /* 14 */
    pub IsConcurrentRunSupported:
        Option<unsafe extern "system" fn(this: *mut OrtEp, supported: *mut bool) -> StatusPtr>,
    /* 15 */ pub Sync: Option<unsafe extern "system" fn(this: *mut OrtEp) -> StatusPtr>,
    /* 16 */
    pub CreateProfiler:
        Option<unsafe extern "system" fn(this: *mut OrtEp, profiler: *mut *mut OrtEpProfilerImpl) -> StatusPtr>,
    /* 17 */ pub IsGraphCaptureEnabled: Option<unsafe extern "system" fn(this: *const OrtEp) -> bool>,
    /* 18 */
    pub IsGraphCaptured: Option<unsafe extern "system" fn(this: *const OrtEp, annotation_id: c_int) -> bool>,
    /* 19 */
    pub ReplayGraph: Option<unsafe extern "system" fn(this: *mut OrtEp, annotation_id: c_int) -> StatusPtr>,
    /* 20 */
    pub GetGraphCaptureNodeAssignmentPolicy: Option<unsafe extern "system" fn(this: *const OrtEp) -> c_int>,
    /* 21 */
    pub GetAvailableResource:
        Option<unsafe extern "system" fn(this: *const OrtEp, available: *mut OrtResourceCount) -> StatusPtr>,
    /* 22 */ pub OnSessionInitializationEnd: Option<unsafe extern "system" fn(this: *mut OrtEp) -> StatusPtr>,
    /* 23 */
    pub GetDefaultMemoryDevice:
        Option<unsafe extern "system" fn(this: *const OrtEp, device: *mut *const OrtMemoryDevice) -> StatusPtr>,
    /* 24 */
    pub ReleaseCapturedGraph: Option<unsafe extern "system" fn(this: *mut OrtEp, annotation_id: c_int) -> StatusPtr>,
    /* 25 */
    pub GetWeightlessSupport: Option<unsafe extern "system" fn(this: *const OrtEp, support: *mut c_int) -> StatusPtr>,
}

/// `struct OrtNodeComputeInfo`, returned from `OrtEp::Compile`, one per fused node. None of the slots may be null.
#[repr(C)]
pub struct OrtNodeComputeInfo {
    pub ort_version_supported: u32,
    pub CreateState: Option<
        unsafe extern "system" fn(
            this: *mut OrtNodeComputeInfo,
            ctx: *mut OrtNodeComputeContext,
            state: *mut *mut c_void,
        ) -> StatusPtr,
    >,
    pub Compute: Option<
        unsafe extern "system" fn(
            this: *mut OrtNodeComputeInfo,
            state: *mut c_void,
            kernel_context: *mut OrtKernelContext,
        ) -> StatusPtr,
    >,
    pub ReleaseState: Option<unsafe extern "system" fn(this: *mut OrtNodeComputeInfo, state: *mut c_void)>,
}

/// `struct OrtNodeFusionOptions`, passed to `EpGraphSupportInfo_AddNodesToFuse`.
#[repr(C)]
pub struct OrtNodeFusionOptions {
    pub ort_version_supported: u32,
    /// Fused node's inputs exclude constant initializers; the EP must copy what it needs during Compile.
    pub drop_constant_initializers: bool,
}

type S = StatusPtr;

/// `struct OrtEpApi`, provided by ORT through `OrtApi::GetEpApi` (78 entries in 1.31).
#[repr(C)]
pub struct OrtEpApi {
    /* 0 */
    pub CreateEpDevice: Option<
        unsafe extern "system" fn(
            factory: *mut OrtEpFactory,
            hardware_device: *const OrtHardwareDevice,
            ep_metadata: *const OrtKeyValuePairs,
            ep_options: *const OrtKeyValuePairs,
            ep_device: *mut *mut OrtEpDevice,
        ) -> S,
    >,
    /* 1 */ pub ReleaseEpDevice: Option<unsafe extern "system" fn(device: *mut OrtEpDevice)>,
    /* 2 */
    pub EpGraphSupportInfo_AddNodesToFuse: Option<
        unsafe extern "system" fn(
            info: *mut OrtEpGraphSupportInfo,
            nodes: *const *const OrtNode,
            num_nodes: usize,
            options: *const OrtNodeFusionOptions,
        ) -> S,
    >,
    /* 3 */
    pub EpGraphSupportInfo_AddSingleNode:
        Option<unsafe extern "system" fn(info: *mut OrtEpGraphSupportInfo, node: *const OrtNode) -> S>,
    /* 4 */
    pub NodeComputeContext_NodeName:
        Option<unsafe extern "system" fn(ctx: *const OrtNodeComputeContext) -> *const c_char>,
    /* 5 */
    pub EpDevice_AddAllocatorInfo:
        Option<unsafe extern "system" fn(device: *mut OrtEpDevice, info: *const OrtMemoryInfo) -> S>,
    /* 6 */
    pub MemoryInfo_GetMemoryDevice:
        Option<unsafe extern "system" fn(info: *const OrtMemoryInfo) -> *const OrtMemoryDevice>,
    /* 7 */
    pub Value_GetMemoryDevice: Option<unsafe extern "system" fn(value: *const OrtValue) -> *const OrtMemoryDevice>,
    /* 8 */
    pub MemoryDevice_AreEqual:
        Option<unsafe extern "system" fn(a: *const OrtMemoryDevice, b: *const OrtMemoryDevice) -> bool>,
    /* 9 */
    pub MemoryDevice_GetDeviceType: Option<unsafe extern "system" fn(d: *const OrtMemoryDevice) -> c_int>,
    /* 10 */
    pub MemoryDevice_GetMemoryType: Option<unsafe extern "system" fn(d: *const OrtMemoryDevice) -> c_int>,
    /* 11 */ pub MemoryDevice_GetVendorId: Option<unsafe extern "system" fn(d: *const OrtMemoryDevice) -> u32>,
    /* 12 */ pub MemoryDevice_GetDeviceId: Option<unsafe extern "system" fn(d: *const OrtMemoryDevice) -> u32>,
    /* 13 */
    pub SyncStream_GetImpl: Option<unsafe extern "system" fn(stream: *const OrtSyncStream) -> *const OrtSyncStreamImpl>,
    /* 14 */ pub SyncStream_GetSyncId: Option<unsafe extern "system" fn(stream: *const OrtSyncStream) -> u64>,
    /* 15 */
    pub GetSyncIdForLastWaitOnSyncStream:
        Option<unsafe extern "system" fn(producer: *const OrtSyncStream, consumer: *const OrtSyncStream) -> u64>,
    /* 16 */
    pub CreateHardwareDevice: Option<
        unsafe extern "system" fn(
            device_type: OrtHardwareDeviceType,
            vendor_id: u32,
            device_id: u32,
            vendor_name: *const c_char,
            metadata: *const OrtKeyValuePairs,
            out: *mut *mut OrtHardwareDevice,
        ) -> S,
    >,
    /* 17 */ pub ReleaseHardwareDevice: Option<unsafe extern "system" fn(device: *mut OrtHardwareDevice)>,
    /* 18 */ pub CreateKernelRegistry: Option<unsafe extern "system" fn(out: *mut *mut OrtKernelRegistry) -> S>,
    /* 19 */ pub ReleaseKernelRegistry: Option<unsafe extern "system" fn(registry: *mut OrtKernelRegistry)>,
    /* 20 */
    pub KernelRegistry_AddKernel: Option<
        unsafe extern "system" fn(
            registry: *mut OrtKernelRegistry,
            def: *const OrtKernelDef,
            create: OrtKernelCreateFunc,
            state: *mut c_void,
        ) -> S,
    >,
    /* 21 */
    pub CreateKernelDefBuilder: Option<unsafe extern "system" fn(out: *mut *mut OrtKernelDefBuilder) -> S>,
    /* 22 */ pub ReleaseKernelDefBuilder: Option<unsafe extern "system" fn(builder: *mut OrtKernelDefBuilder)>,
    /* 23 */
    pub KernelDefBuilder_SetOperatorType:
        Option<unsafe extern "system" fn(b: *mut OrtKernelDefBuilder, op_type: *const c_char) -> S>,
    /* 24 */
    pub KernelDefBuilder_SetDomain:
        Option<unsafe extern "system" fn(b: *mut OrtKernelDefBuilder, domain: *const c_char) -> S>,
    /* 25 */
    pub KernelDefBuilder_SetSinceVersion:
        Option<unsafe extern "system" fn(b: *mut OrtKernelDefBuilder, start: c_int, end: c_int) -> S>,
    /* 26 */
    pub KernelDefBuilder_SetExecutionProvider:
        Option<unsafe extern "system" fn(b: *mut OrtKernelDefBuilder, ep_name: *const c_char) -> S>,
    /* 27 */
    pub KernelDefBuilder_SetInputMemType:
        Option<unsafe extern "system" fn(b: *mut OrtKernelDefBuilder, index: usize, mem_type: OrtMemType) -> S>,
    /* 28 */
    pub KernelDefBuilder_SetOutputMemType:
        Option<unsafe extern "system" fn(b: *mut OrtKernelDefBuilder, index: usize, mem_type: OrtMemType) -> S>,
    /* 29 */
    pub KernelDefBuilder_AddTypeConstraint: Option<
        unsafe extern "system" fn(
            b: *mut OrtKernelDefBuilder,
            arg_name: *const c_char,
            types: *const *const OrtDataType,
            num_types: usize,
        ) -> S,
    >,
    /* 30 */
    pub KernelDefBuilder_AddInputOutputAliases: Option<
        unsafe extern "system" fn(
            b: *mut OrtKernelDefBuilder,
            inputs: *const c_int,
            outputs: *const c_int,
            n: usize,
        ) -> S,
    >,
    /* 31 */
    pub KernelDefBuilder_AddInputOutputMutableAliases: Option<
        unsafe extern "system" fn(
            b: *mut OrtKernelDefBuilder,
            inputs: *const c_int,
            outputs: *const c_int,
            n: usize,
        ) -> S,
    >,
    /* 32 */
    pub KernelDefBuilder_Build:
        Option<unsafe extern "system" fn(b: *mut OrtKernelDefBuilder, out: *mut *mut OrtKernelDef) -> S>,
    /* 33 */ pub ReleaseKernelDef: Option<unsafe extern "system" fn(def: *mut OrtKernelDef)>,
    /* 34 */
    pub KernelDef_GetOperatorType: Option<unsafe extern "system" fn(def: *const OrtKernelDef) -> *const c_char>,
    /* 35 */
    pub KernelDef_GetDomain: Option<unsafe extern "system" fn(def: *const OrtKernelDef) -> *const c_char>,
    /* 36 */
    pub KernelDef_GetSinceVersion:
        Option<unsafe extern "system" fn(def: *const OrtKernelDef, start: *mut c_int, end: *mut c_int) -> S>,
    /* 37 */
    pub KernelDef_GetExecutionProvider: Option<unsafe extern "system" fn(def: *const OrtKernelDef) -> *const c_char>,
    /* 38 */
    pub KernelDef_GetInputMemType:
        Option<unsafe extern "system" fn(def: *const OrtKernelDef, index: usize, out: *mut c_int) -> S>,
    /* 39 */
    pub KernelDef_GetOutputMemType:
        Option<unsafe extern "system" fn(def: *const OrtKernelDef, index: usize, out: *mut c_int) -> S>,
    /* 40 */
    pub GetTensorDataType:
        Option<unsafe extern "system" fn(elem_type: ONNXTensorElementDataType, out: *mut *const OrtDataType) -> S>,
    /* 41 */
    pub EpGraphSupportInfo_LookUpKernel: Option<
        unsafe extern "system" fn(
            info: *mut OrtEpGraphSupportInfo,
            node: *const OrtNode,
            out: *mut *const OrtKernelDef,
        ) -> S,
    >,
    /* 42 */
    pub SharedPrePackedWeightCache_StoreWeightData: Option<
        unsafe extern "system" fn(
            cache: *mut OrtSharedPrePackedWeightCache,
            buffers: *mut *mut c_void,
            sizes: *mut usize,
            num_buffers: usize,
        ) -> S,
    >,
    /* 43 */
    pub KernelInfo_GetEp: Option<unsafe extern "system" fn(info: *const OrtKernelInfo, ep: *mut *const OrtEp) -> S>,
    /* 44 */
    pub DeviceEpIncompatibilityDetails_SetDetails: Option<
        unsafe extern "system" fn(
            details: *mut OrtDeviceEpIncompatibilityDetails,
            reasons: u32,
            error_code: i32,
            notes: *const c_char,
        ) -> S,
    >,
    /* 45 */
    pub CreateIfKernel:
        Option<unsafe extern "system" fn(info: *const OrtKernelInfo, out: *mut *mut OrtKernelImpl) -> S>,
    /* 46 */
    pub CreateLoopKernel: Option<
        unsafe extern "system" fn(
            info: *const OrtKernelInfo,
            helper: *mut OrtLoopKernelHelper,
            out: *mut *mut OrtKernelImpl,
        ) -> S,
    >,
    /* 47 */
    pub CreateScanKernel: Option<
        unsafe extern "system" fn(
            info: *const OrtKernelInfo,
            helper: *mut OrtScanKernelHelper,
            out: *mut *mut OrtKernelImpl,
        ) -> S,
    >,
    /* 48 */ pub ReleaseKernelImpl: Option<unsafe extern "system" fn(kernel: *mut OrtKernelImpl)>,
    /* 49 */ pub GetEnvConfigEntries: Option<unsafe extern "system" fn(out: *mut *mut OrtKeyValuePairs) -> S>,
    /* 50 */
    pub GetOpSchema: Option<
        unsafe extern "system" fn(
            name: *const c_char,
            max_inclusive_version: c_int,
            domain: *const c_char,
            out: *mut *mut OrtOpSchema,
        ) -> S,
    >,
    /* 51 */ pub ReleaseOpSchema: Option<unsafe extern "system" fn(schema: *mut OrtOpSchema)>,
    /* 52 */
    pub OpSchema_GetSinceVersion: Option<unsafe extern "system" fn(s: *const OrtOpSchema, out: *mut c_int) -> S>,
    /* 53 */
    pub OpSchema_GetNumInputs: Option<unsafe extern "system" fn(s: *const OrtOpSchema, out: *mut usize) -> S>,
    /* 54 */
    pub OpSchema_GetInputName:
        Option<unsafe extern "system" fn(s: *const OrtOpSchema, index: usize, out: *mut *const c_char) -> S>,
    /* 55 */
    pub OpSchema_GetInputTypeConstraint: Option<
        unsafe extern "system" fn(s: *const OrtOpSchema, index: usize, out: *mut *const OrtOpSchemaTypeConstraint) -> S,
    >,
    /* 56 */
    pub OpSchema_GetNumOutputs: Option<unsafe extern "system" fn(s: *const OrtOpSchema, out: *mut usize) -> S>,
    /* 57 */
    pub OpSchema_GetOutputName:
        Option<unsafe extern "system" fn(s: *const OrtOpSchema, index: usize, out: *mut *const c_char) -> S>,
    /* 58 */
    pub OpSchema_GetOutputTypeConstraint: Option<
        unsafe extern "system" fn(s: *const OrtOpSchema, index: usize, out: *mut *const OrtOpSchemaTypeConstraint) -> S,
    >,
    /* 59 */
    pub OpSchema_GetTypeConstraintCount: Option<unsafe extern "system" fn(s: *const OrtOpSchema, out: *mut usize) -> S>,
    /* 60 */
    pub OpSchema_GetTypeConstraint: Option<
        unsafe extern "system" fn(s: *const OrtOpSchema, index: usize, out: *mut *const OrtOpSchemaTypeConstraint) -> S,
    >,
    /* 61 */
    pub OpSchemaTypeConstraint_GetTypeParamName:
        Option<unsafe extern "system" fn(tc: *const OrtOpSchemaTypeConstraint, out: *mut *const c_char) -> S>,
    /* 62 */
    pub OpSchemaTypeConstraint_GetAllowedTypes: Option<
        unsafe extern "system" fn(
            tc: *const OrtOpSchemaTypeConstraint,
            types: *mut *const *const c_char,
            count: *mut usize,
        ) -> S,
    >,
    /* 63 */
    pub OpSchemaTypeConstraint_GetInputIndices: Option<
        unsafe extern "system" fn(
            tc: *const OrtOpSchemaTypeConstraint,
            indices: *mut *const usize,
            count: *mut usize,
        ) -> S,
    >,
    /* 64 */
    pub OpSchemaTypeConstraint_GetOutputIndices: Option<
        unsafe extern "system" fn(
            tc: *const OrtOpSchemaTypeConstraint,
            indices: *mut *const usize,
            count: *mut usize,
        ) -> S,
    >,
    /* 65 */
    pub CreateProfilingEvent: Option<
        unsafe extern "system" fn(
            category: c_int,
            process_id: i32,
            thread_id: i32,
            event_name: *const c_char,
            timestamp_us: i64,
            duration_us: i64,
            arg_keys: *const *const c_char,
            arg_values: *const *const c_char,
            num_args: usize,
            out: *mut *mut OrtProfilingEvent,
        ) -> S,
    >,
    /* 66 */ pub ReleaseProfilingEvent: Option<unsafe extern "system" fn(event: *mut OrtProfilingEvent)>,
    /* 67 */
    pub ProfilingEvent_GetCategory:
        Option<unsafe extern "system" fn(e: *const OrtProfilingEvent, out: *mut c_int) -> S>,
    /* 68 */
    pub ProfilingEvent_GetName:
        Option<unsafe extern "system" fn(e: *const OrtProfilingEvent, out: *mut *const c_char) -> S>,
    /* 69 */
    pub ProfilingEvent_GetTimestampUs:
        Option<unsafe extern "system" fn(e: *const OrtProfilingEvent, out: *mut i64) -> S>,
    /* 70 */
    pub ProfilingEvent_GetDurationUs:
        Option<unsafe extern "system" fn(e: *const OrtProfilingEvent, out: *mut i64) -> S>,
    /* 71 */
    pub ProfilingEvent_GetArgValue: Option<
        unsafe extern "system" fn(e: *const OrtProfilingEvent, key: *const c_char, out: *mut *const c_char) -> S,
    >,
    /* 72 */
    pub ProfilingEventsContainer_AddEvents: Option<
        unsafe extern "system" fn(
            container: *mut OrtProfilingEventsContainer,
            events: *const *const OrtProfilingEvent,
            num_events: usize,
        ) -> S,
    >,
    /* 73 */
    pub SessionOptionsGetWeightlessSourceModelBuffer: Option<
        unsafe extern "system" fn(options: *const OrtSessionOptions, data: *mut *const c_void, len: *mut usize) -> S,
    >,
    /* 74 */
    pub SessionOptions_GetEpContextConfig:
        Option<unsafe extern "system" fn(options: *const OrtSessionOptions, out: *mut *mut OrtEpContextConfig) -> S>,
    /* 75 */ pub ReleaseEpContextConfig: Option<unsafe extern "system" fn(config: *mut OrtEpContextConfig)>,
    /* 76 */
    pub EpContextConfig_GetEpContextDataReadFunc: Option<
        unsafe extern "system" fn(
            config: *const OrtEpContextConfig,
            func: *mut *mut c_void,
            state: *mut *mut c_void,
        ) -> S,
    >,
    /* 77 */
    pub EpContextConfig_GetEpContextDataWriteFunc: Option<
        unsafe extern "system" fn(
            config: *const OrtEpContextConfig,
            func: *mut *mut c_void,
            state: *mut *mut c_void,
        ) -> S,
    >,
}

#[cfg(test)]
mod layout_tests {
    //! Pin each table's size and slot offsets: a reordered or missing slot here would make ORT call the wrong
    //! function, so these numbers are checked against the header's field order (slot N at 8·N on 64-bit targets;
    //! the leading `uint32_t` is padded to a pointer).
    use super::*;
    use core::mem::{offset_of, size_of};

    const P: usize = size_of::<usize>();

    #[test]
    fn factory_layout() {
        assert_eq!(size_of::<OrtEpFactory>(), P * 21);
        assert_eq!(offset_of!(OrtEpFactory, GetName), P);
        assert_eq!(offset_of!(OrtEpFactory, GetSupportedDevices), 3 * P);
        assert_eq!(offset_of!(OrtEpFactory, CreateEp), 4 * P);
        assert_eq!(offset_of!(OrtEpFactory, ReleaseEp), 5 * P);
        assert_eq!(offset_of!(OrtEpFactory, GetVersion), 7 * P);
        assert_eq!(offset_of!(OrtEpFactory, CreateDataTransfer), 11 * P);
        assert_eq!(offset_of!(OrtEpFactory, IsStreamAware), 12 * P);
        assert_eq!(offset_of!(OrtEpFactory, GetNumCustomOpDomains), 16 * P);
        assert_eq!(offset_of!(OrtEpFactory, GetCustomOpDomains), 17 * P);
        assert_eq!(offset_of!(OrtEpFactory, SelectBestModelCandidate), 20 * P);
    }

    #[test]
    fn ep_layout() {
        assert_eq!(size_of::<OrtEp>(), P * 26);
        assert_eq!(offset_of!(OrtEp, GetName), P);
        assert_eq!(offset_of!(OrtEp, GetCapability), 2 * P);
        assert_eq!(offset_of!(OrtEp, Compile), 3 * P);
        assert_eq!(offset_of!(OrtEp, ReleaseNodeComputeInfos), 4 * P);
        assert_eq!(offset_of!(OrtEp, GetPreferredDataLayout), 5 * P);
        assert_eq!(offset_of!(OrtEp, SetDynamicOptions), 7 * P);
        assert_eq!(offset_of!(OrtEp, OnRunStart), 8 * P);
        assert_eq!(offset_of!(OrtEp, OnRunEnd), 9 * P);
        assert_eq!(offset_of!(OrtEp, GetKernelRegistry), 13 * P);
        assert_eq!(offset_of!(OrtEp, IsConcurrentRunSupported), 14 * P);
        assert_eq!(offset_of!(OrtEp, Sync), 15 * P);
        assert_eq!(offset_of!(OrtEp, OnSessionInitializationEnd), 22 * P);
        assert_eq!(offset_of!(OrtEp, GetWeightlessSupport), 25 * P);
    }

    #[test]
    fn compute_info_and_fusion_options_layout() {
        assert_eq!(size_of::<OrtNodeComputeInfo>(), P * 4);
        assert_eq!(offset_of!(OrtNodeComputeInfo, CreateState), P);
        assert_eq!(offset_of!(OrtNodeComputeInfo, Compute), 2 * P);
        assert_eq!(offset_of!(OrtNodeComputeInfo, ReleaseState), 3 * P);
        assert_eq!(size_of::<OrtNodeFusionOptions>(), 8);
        assert_eq!(offset_of!(OrtNodeFusionOptions, drop_constant_initializers), 4);
    }

    #[test]
    fn ep_api_layout() {
        assert_eq!(size_of::<OrtEpApi>(), P * 78);
        assert_eq!(offset_of!(OrtEpApi, CreateEpDevice), 0);
        assert_eq!(offset_of!(OrtEpApi, EpGraphSupportInfo_AddNodesToFuse), 2 * P);
        assert_eq!(offset_of!(OrtEpApi, NodeComputeContext_NodeName), 4 * P);
        assert_eq!(offset_of!(OrtEpApi, CreateHardwareDevice), 16 * P);
        assert_eq!(offset_of!(OrtEpApi, GetTensorDataType), 40 * P);
        assert_eq!(offset_of!(OrtEpApi, GetEnvConfigEntries), 49 * P);
        assert_eq!(offset_of!(OrtEpApi, GetOpSchema), 50 * P);
        assert_eq!(offset_of!(OrtEpApi, CreateProfilingEvent), 65 * P);
        assert_eq!(offset_of!(OrtEpApi, SessionOptionsGetWeightlessSourceModelBuffer), 73 * P);
        assert_eq!(offset_of!(OrtEpApi, EpContextConfig_GetEpContextDataWriteFunc), 77 * P);
    }

    #[test]
    fn ort_api_slots_we_use() {
        // OrtApi comes from ort-sys; pin the slots we call, numbered as in ORT_EP_NOTES (0-based).
        use ort_sys::OrtApi;
        assert_eq!(offset_of!(OrtApi, CreateStatus), 0);
        assert_eq!(offset_of!(OrtApi, GetTensorMutableData), 51 * P);
        assert_eq!(offset_of!(OrtApi, KernelContext_GetInput), 90 * P);
        assert_eq!(offset_of!(OrtApi, KernelContext_GetOutput), 91 * P);
        assert_eq!(offset_of!(OrtApi, ReleaseStatus), 93 * P);
        assert_eq!(offset_of!(OrtApi, Logger_LogMessage), 247 * P);
        assert_eq!(offset_of!(OrtApi, ReadOpAttr), 272 * P);
        assert_eq!(offset_of!(OrtApi, GetEpApi), 317 * P);
        assert_eq!(offset_of!(OrtApi, Node_GetAttributeByName), 361 * P);
        assert_eq!(offset_of!(OrtApi, GetSessionOptionsConfigEntries), 379 * P);
        assert_eq!(offset_of!(OrtApi, GetTensorElementTypeAndShapeDataReference), 414 * P);
    }
}
