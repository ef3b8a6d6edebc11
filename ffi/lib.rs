//! ONNX Runtime's plugin-EP C ABI as AsyMo EP declares it, plus small safe helpers over it.
//!
//! * [`tables`]: the EP-side tables (`OrtEpFactory`, `OrtEp`, `OrtNodeComputeInfo`, `OrtNodeFusionOptions`,
//!   `OrtEpApi`), written here from ORT's header and pinned by layout tests.
//! * `OrtApi` and the opaque handle types come from the `ort-sys` crate with linking disabled: the plugin receives the
//!   API table from ORT in `CreateEpFactories` and never links or loads `libonnxruntime` itself.
//! * [`Api`] wraps both tables for the rest of the crate: status conversion, strings, graph/node/value-info reads and
//!   kernel-context access. Every function here that takes a raw ORT pointer is `unsafe` and documents what the caller
//!   must guarantee; everything above this crate deals in owned Rust values.

// The call macros expand caller-supplied pointer arguments inside `unsafe`: every caller is itself an unsafe fn
// upholding the ORT function's contract for those arguments.
#![allow(clippy::macro_metavars_in_unsafe)]

pub mod tables;

use core::ffi::{c_char, c_void, CStr};
use std::ffi::CString;
use std::fmt;
use std::sync::OnceLock;

pub use ort_sys as sys;
use sys::{
    ONNXTensorElementDataType, OrtApi, OrtApiBase, OrtErrorCode, OrtGraph, OrtKernelContext, OrtKeyValuePairs,
    OrtLogger, OrtLoggingLevel, OrtNode, OrtOpAttr, OrtOpAttrType, OrtSessionOptions, OrtStatus, OrtValue,
    OrtValueInfo,
};
pub use tables::*;

/// The OrtApi version we request: the one whose slots our `ort-sys` binding declares (feature `api-24`).
pub const ORT_API_VERSION_REQUESTED: u32 = 24;

/// ONNX element type codes we care about (`ONNXTensorElementDataType`), read as plain integers.
pub const ELEM_FLOAT: i32 = 1;

/// An error to be reported to ORT as an `OrtStatus`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error {
    pub code: ErrorCode,
    pub message: String,
}

/// The subset of `OrtErrorCode` we produce.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    Fail,
    InvalidArgument,
    NotImplemented,
}

impl Error {
    pub fn fail(message: impl Into<String>) -> Self {
        Error { code: ErrorCode::Fail, message: message.into() }
    }
    pub fn invalid_argument(message: impl Into<String>) -> Self {
        Error { code: ErrorCode::InvalidArgument, message: message.into() }
    }
    pub fn not_implemented(message: impl Into<String>) -> Self {
        Error { code: ErrorCode::NotImplemented, message: message.into() }
    }
    /// Prefix the message with where it happened.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T> = std::result::Result<T, Error>;

/// The two API tables ORT gave us. Lives for the rest of the process once set (ORT's tables are static).
pub struct Api {
    pub ort: &'static OrtApi,
    pub ep: &'static OrtEpApi,
}

static API: OnceLock<Api> = OnceLock::new();

/// Call an `OrtApi` function that returns `OrtStatus*` and turn the status into a `Result`.
#[macro_export]
macro_rules! ort_call {
    ($api:expr, $func:ident ( $($arg:expr),* $(,)? )) => {{
        let api: &$crate::Api = $api;
        // SAFETY: the caller of the macro upholds the function's documented contract for the arguments.
        let status = unsafe { (api.ort.$func)($($arg),*) };
        // SAFETY: the status was just returned by ORT and is released exactly once by check.
        unsafe { api.check(status.0) }.map_err(|e| e.context(stringify!($func)))
    }};
}

/// Call an `OrtEpApi` function (an `Option<fn>` slot) that returns `OrtStatus*`.
#[macro_export]
macro_rules! ep_call {
    ($api:expr, $func:ident ( $($arg:expr),* $(,)? )) => {{
        let api: &$crate::Api = $api;
        match api.ep.$func {
            // SAFETY: as for ort_call!: the caller upholds the slot's contract; the slot is non-null here.
            // SAFETY: the status is ORT's, released once by check.
            Some(f) => unsafe { api.check(f($($arg),*)) }.map_err(|e| e.context(stringify!($func))),
            None => Err($crate::Error::not_implemented(concat!("OrtEpApi::", stringify!($func), " is missing"))),
        }
    }};
}

impl Api {
    /// Take the APIs from the `OrtApiBase` ORT passed to `CreateEpFactories` (first call wins; later calls return
    /// the same tables).
    ///
    /// # Safety
    /// `base` must be null or the valid, static `OrtApiBase` of a loaded ONNX Runtime.
    pub unsafe fn init(base: *const OrtApiBase) -> Result<&'static Api> {
        if let Some(api) = API.get() {
            return Ok(api);
        }
        if base.is_null() {
            return Err(Error::invalid_argument("CreateEpFactories: OrtApiBase is null"));
        }
        // SAFETY: `base` is ORT's static OrtApiBase (caller contract).
        let ort = unsafe { ((*base).GetApi)(ORT_API_VERSION_REQUESTED) };
        if ort.is_null() {
            return Err(Error::not_implemented(format!(
                "this ONNX Runtime does not provide OrtApi version {ORT_API_VERSION_REQUESTED} (ONNX Runtime 1.24 or newer is required)"
            )));
        }
        // SAFETY: non-null OrtApi tables returned by GetApi are static for the life of the process.
        let ort: &'static OrtApi = unsafe { &*ort };
        // SAFETY: GetEpApi takes no arguments and returns ORT's static OrtEpApi table (or null).
        let ep = unsafe { (ort.GetEpApi)() } as *const OrtEpApi;
        if ep.is_null() {
            return Err(Error::not_implemented(
                "this ONNX Runtime has no plugin EP API (OrtApi::GetEpApi returned null)",
            ));
        }
        // SAFETY: as above, ORT's EP API table is static; our `OrtEpApi` declares its layout.
        let ep: &'static OrtEpApi = unsafe { &*ep };
        Ok(API.get_or_init(|| Api { ort, ep }))
    }

    /// Report an error when `init` failed (e.g. an ONNX Runtime older than 1.24): `CreateStatus` is slot 0 of every
    /// OrtApi version, so version 1 of the table can still build the status. Returns null if even that is impossible.
    ///
    /// # Safety
    /// `base` must be null or the valid `OrtApiBase` of a loaded ONNX Runtime.
    pub unsafe fn status_without_api(base: *const OrtApiBase, err: &Error) -> StatusPtr {
        if base.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: caller contract; GetApi(1) is supported by every ONNX Runtime release.
        let v1 = unsafe { ((*base).GetApi)(1) };
        if v1.is_null() {
            return std::ptr::null_mut();
        }
        let msg = to_cstring(&format!("AsyMo EP: {}", err.message));
        // SAFETY: slot 0 (CreateStatus) has the same signature in every version; it copies the message.
        unsafe { ((*v1).CreateStatus)(OrtErrorCode::ORT_FAIL, msg.as_ptr()).0 }
    }

    /// The API tables, once `init` succeeded.
    pub fn get() -> Result<&'static Api> {
        API.get().ok_or_else(|| Error::fail("AsyMo EP used before CreateEpFactories"))
    }

    /// Convert a status returned by ORT into a `Result`, releasing it.
    ///
    /// # Safety
    /// `status` must be null or a status ORT returned to us and that nothing else releases.
    pub unsafe fn check(&self, status: *mut OrtStatus) -> Result<()> {
        if status.is_null() {
            return Ok(());
        }
        // SAFETY: `status` is a non-null status ORT just returned to us; we own it and release it exactly once.
        unsafe {
            let msg = cstr_lossy((self.ort.GetErrorMessage)(status));
            let code = (self.ort.GetErrorCode)(status);
            (self.ort.ReleaseStatus)(status);
            let code = match code {
                OrtErrorCode::ORT_INVALID_ARGUMENT => ErrorCode::InvalidArgument,
                OrtErrorCode::ORT_NOT_IMPLEMENTED => ErrorCode::NotImplemented,
                _ => ErrorCode::Fail,
            };
            Err(Error { code, message: msg })
        }
    }

    /// Build an `OrtStatus` for ORT to own. Interior NULs in the message are replaced.
    pub fn status(&self, err: &Error) -> StatusPtr {
        let code = match err.code {
            ErrorCode::Fail => OrtErrorCode::ORT_FAIL,
            ErrorCode::InvalidArgument => OrtErrorCode::ORT_INVALID_ARGUMENT,
            ErrorCode::NotImplemented => OrtErrorCode::ORT_NOT_IMPLEMENTED,
        };
        let msg = to_cstring(&err.message);
        // SAFETY: CreateStatus copies the NUL-terminated message.
        unsafe { (self.ort.CreateStatus)(code, msg.as_ptr()).0 }
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Logging

    /// Log through an ORT logger (session or default). Failures to log are ignored.
    ///
    /// # Safety
    /// `logger` must be null or a logger ORT gave us that is still alive.
    pub unsafe fn log(&self, logger: *const OrtLogger, level: LogLevel, msg: &str) {
        if logger.is_null() {
            return;
        }
        let sev = match level {
            LogLevel::Verbose => OrtLoggingLevel::ORT_LOGGING_LEVEL_VERBOSE,
            LogLevel::Info => OrtLoggingLevel::ORT_LOGGING_LEVEL_INFO,
            LogLevel::Warning => OrtLoggingLevel::ORT_LOGGING_LEVEL_WARNING,
            LogLevel::Error => OrtLoggingLevel::ORT_LOGGING_LEVEL_ERROR,
        };
        let msg = to_cstring(msg);
        // SAFETY: logger is live (caller contract); all strings are NUL-terminated and outlive the call.
        let status = unsafe {
            (self.ort.Logger_LogMessage)(logger, sev, msg.as_ptr(), c"asymo_ep".as_ptr(), 0, c"asymo".as_ptr())
        };
        // SAFETY: a status ORT just returned; released once.
        let _ = unsafe { self.check(status.0) };
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Key-value pairs and session options

    /// All session config entries (`key → value`), in ORT's order.
    ///
    /// # Safety
    /// `options` must be the live `OrtSessionOptions` passed to `CreateEp`.
    pub unsafe fn session_config_entries(&self, options: *const OrtSessionOptions) -> Result<Vec<(String, String)>> {
        let mut kvps: *mut OrtKeyValuePairs = std::ptr::null_mut();
        ort_call!(self, GetSessionOptionsConfigEntries(options, &mut kvps))?;
        // SAFETY: ORT returned an owned key-value set; we read it and release it once.
        let entries = unsafe { self.key_value_pairs(kvps) };
        // SAFETY: kvps is owned by us (created by the call above).
        unsafe { (self.ort.ReleaseKeyValuePairs)(kvps) };
        Ok(entries)
    }

    /// Read a key-value set into owned pairs.
    ///
    /// # Safety
    /// `kvps` must be null or a live `OrtKeyValuePairs`.
    pub unsafe fn key_value_pairs(&self, kvps: *const OrtKeyValuePairs) -> Vec<(String, String)> {
        if kvps.is_null() {
            return Vec::new();
        }
        let mut keys: *const *const c_char = std::ptr::null();
        let mut values: *const *const c_char = std::ptr::null();
        let mut n = 0usize;
        // SAFETY: kvps is live; ORT fills borrowed arrays of `n` strings each.
        unsafe { (self.ort.GetKeyValuePairs)(kvps, &mut keys, &mut values, &mut n) };
        if keys.is_null() || values.is_null() {
            return Vec::new();
        }
        (0..n)
            // SAFETY: i < n, both arrays hold n valid NUL-terminated strings while kvps lives.
            .map(|i| unsafe { (cstr_lossy(*keys.add(i)), cstr_lossy(*values.add(i))) })
            .collect()
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Graph, node and value-info reads (valid during GetCapability / Compile only)

    /// The nodes of a graph, in ORT's (topological) order.
    ///
    /// # Safety
    /// `graph` must be a live `OrtGraph` handed to us in the current callback.
    pub unsafe fn graph_nodes(&self, graph: *const OrtGraph) -> Result<Vec<*const OrtNode>> {
        let mut n = 0usize;
        ort_call!(self, Graph_GetNumNodes(graph, &mut n))?;
        let mut nodes = vec![std::ptr::null::<OrtNode>(); n];
        if n > 0 {
            ort_call!(self, Graph_GetNodes(graph, nodes.as_mut_ptr(), n))?;
        }
        Ok(nodes)
    }

    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_name(&self, node: *const OrtNode) -> Result<String> {
        let mut p: *const c_char = std::ptr::null();
        ort_call!(self, Node_GetName(node, &mut p))?;
        // SAFETY: ORT returns a NUL-terminated string owned by the node (or null).
        Ok(unsafe { cstr_lossy(p) })
    }

    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_op_type(&self, node: *const OrtNode) -> Result<String> {
        let mut p: *const c_char = std::ptr::null();
        ort_call!(self, Node_GetOperatorType(node, &mut p))?;
        // SAFETY: as in node_name.
        Ok(unsafe { cstr_lossy(p) })
    }

    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_domain(&self, node: *const OrtNode) -> Result<String> {
        let mut p: *const c_char = std::ptr::null();
        ort_call!(self, Node_GetDomain(node, &mut p))?;
        // SAFETY: as in node_name.
        Ok(unsafe { cstr_lossy(p) })
    }

    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_since_version(&self, node: *const OrtNode) -> Result<i32> {
        let mut v = 0i32;
        ort_call!(self, Node_GetSinceVersion(node, &mut v))?;
        Ok(v)
    }

    /// Inputs of a node; an omitted optional input is `None`.
    ///
    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_inputs(&self, node: *const OrtNode) -> Result<Vec<Option<*const OrtValueInfo>>> {
        let mut n = 0usize;
        ort_call!(self, Node_GetNumInputs(node, &mut n))?;
        let mut v = vec![std::ptr::null::<OrtValueInfo>(); n];
        if n > 0 {
            ort_call!(self, Node_GetInputs(node, v.as_mut_ptr(), n))?;
        }
        Ok(v.into_iter().map(|p| (!p.is_null()).then_some(p)).collect())
    }

    /// Outputs of a node; an omitted optional output is `None`.
    ///
    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_outputs(&self, node: *const OrtNode) -> Result<Vec<Option<*const OrtValueInfo>>> {
        let mut n = 0usize;
        ort_call!(self, Node_GetNumOutputs(node, &mut n))?;
        let mut v = vec![std::ptr::null::<OrtValueInfo>(); n];
        if n > 0 {
            ort_call!(self, Node_GetOutputs(node, v.as_mut_ptr(), n))?;
        }
        Ok(v.into_iter().map(|p| (!p.is_null()).then_some(p)).collect())
    }

    /// Every attribute of a node (including the schema defaults ORT fills in), by name.
    ///
    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_attributes(&self, node: *const OrtNode) -> Result<Vec<(String, AttrValue)>> {
        let mut n = 0usize;
        ort_call!(self, Node_GetNumAttributes(node, &mut n))?;
        let mut attrs = vec![std::ptr::null::<OrtOpAttr>(); n];
        if n > 0 {
            ort_call!(self, Node_GetAttributes(node, attrs.as_mut_ptr(), n))?;
        }
        let mut out = Vec::with_capacity(n);
        for attr in attrs.into_iter().filter(|a| !a.is_null()) {
            let mut p: *const c_char = std::ptr::null();
            ort_call!(self, OpAttr_GetName(attr, &mut p))?;
            // SAFETY: ORT returns the attribute's NUL-terminated name, valid while the node lives.
            let name = unsafe { cstr_lossy(p) };
            // SAFETY: attr is a live attribute of a live node.
            let value = unsafe { self.read_attr(attr) }.map_err(|e| e.context(format!("attribute '{name}'")))?;
            out.push((name, value));
        }
        Ok(out)
    }

    /// A node attribute, or `None` when the node does not carry it.
    ///
    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_attribute(&self, node: *const OrtNode, name: &str) -> Result<Option<AttrValue>> {
        let cname = to_cstring(name);
        let mut attr: *const OrtOpAttr = std::ptr::null();
        // SAFETY: node is live, cname is NUL-terminated. ORT reports a missing attribute as an error status, which we
        // release and treat as "absent".
        let status = unsafe { (self.ort.Node_GetAttributeByName)(node, cname.as_ptr(), &mut attr) };
        // SAFETY: a status ORT just returned; released once.
        if unsafe { self.check(status.0) }.is_err() || attr.is_null() {
            return Ok(None);
        }
        // SAFETY: attr is a live attribute of a live node.
        unsafe { self.read_attr(attr) }.map(Some).map_err(|e| e.context(format!("attribute '{name}'")))
    }

    /// # Safety
    /// `attr` must be a live `OrtOpAttr`.
    unsafe fn read_attr(&self, attr: *const OrtOpAttr) -> Result<AttrValue> {
        let mut ty: i32 = 0;
        // The out-parameter is an `OrtOpAttrType` C enum; we read it as its underlying int so an unknown value is
        // not a Rust enum with an invalid discriminant.
        ort_call!(self, OpAttr_GetType(attr, &mut ty as *mut i32 as *mut OrtOpAttrType))?;
        match ty {
            1 => {
                let mut v = 0i64;
                // SAFETY: INT attributes are read into one i64.
                unsafe {
                    self.read_attr_bytes(attr, OrtOpAttrType::ORT_OP_ATTR_INT, &mut v as *mut i64 as *mut c_void, 8)
                }?;
                Ok(AttrValue::Int(v))
            }
            2 => {
                let bytes = self.attr_size(attr, OrtOpAttrType::ORT_OP_ATTR_INTS)?;
                let mut v = vec![0i64; bytes / 8];
                // SAFETY: the buffer holds `bytes` bytes as ORT reported.
                unsafe {
                    self.read_attr_bytes(
                        attr,
                        OrtOpAttrType::ORT_OP_ATTR_INTS,
                        v.as_mut_ptr() as *mut c_void,
                        v.len() * 8,
                    )
                }?;
                Ok(AttrValue::Ints(v))
            }
            3 => {
                let mut v = 0f32;
                // SAFETY: FLOAT attributes are read into one f32.
                unsafe {
                    self.read_attr_bytes(attr, OrtOpAttrType::ORT_OP_ATTR_FLOAT, &mut v as *mut f32 as *mut c_void, 4)
                }?;
                Ok(AttrValue::Float(v))
            }
            4 => {
                let bytes = self.attr_size(attr, OrtOpAttrType::ORT_OP_ATTR_FLOATS)?;
                let mut v = vec![0f32; bytes / 4];
                // SAFETY: the buffer holds `bytes` bytes as ORT reported.
                unsafe {
                    self.read_attr_bytes(
                        attr,
                        OrtOpAttrType::ORT_OP_ATTR_FLOATS,
                        v.as_mut_ptr() as *mut c_void,
                        v.len() * 4,
                    )
                }?;
                Ok(AttrValue::Floats(v))
            }
            5 => {
                let bytes = self.attr_size(attr, OrtOpAttrType::ORT_OP_ATTR_STRING)?;
                let mut v = vec![0u8; bytes];
                // SAFETY: the buffer holds `bytes` bytes as ORT reported.
                unsafe {
                    self.read_attr_bytes(
                        attr,
                        OrtOpAttrType::ORT_OP_ATTR_STRING,
                        v.as_mut_ptr() as *mut c_void,
                        v.len(),
                    )
                }?;
                while v.last() == Some(&0) {
                    v.pop();
                }
                Ok(AttrValue::String(String::from_utf8_lossy(&v).into_owned()))
            }
            other => Ok(AttrValue::Other(other)),
        }
    }

    /// Size in bytes ORT needs to read an attribute of variable length.
    fn attr_size(&self, attr: *const OrtOpAttr, ty: OrtOpAttrType) -> Result<usize> {
        let mut bytes = 0usize;
        // SAFETY: a null buffer with length 0 asks ORT for the required size; ORT reports it through `bytes` and
        // returns an error status for "buffer too small", which we release.
        let status = unsafe { (self.ort.ReadOpAttr)(attr, ty, std::ptr::null_mut(), 0, &mut bytes) };
        // SAFETY: a status ORT just returned; released once.
        let _ = unsafe { self.check(status.0) };
        Ok(bytes)
    }

    /// # Safety
    /// `attr` must be live and `buf` valid for `len` bytes of writes.
    unsafe fn read_attr_bytes(
        &self,
        attr: *const OrtOpAttr,
        ty: OrtOpAttrType,
        buf: *mut c_void,
        len: usize,
    ) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        let mut written = 0usize;
        ort_call!(self, ReadOpAttr(attr, ty, buf, len, &mut written))
    }

    /// Name of a value.
    ///
    /// # Safety
    /// `vi` must be a live `OrtValueInfo`.
    pub unsafe fn value_name(&self, vi: *const OrtValueInfo) -> Result<String> {
        let mut p: *const c_char = std::ptr::null();
        ort_call!(self, GetValueInfoName(vi, &mut p))?;
        // SAFETY: ORT returns a NUL-terminated name owned by the value info.
        Ok(unsafe { cstr_lossy(p) })
    }

    /// Element type and (possibly partial) shape of a tensor value. `None` shape means rank unknown; a dimension of
    /// -1 is symbolic or unknown. A non-tensor value reports element type 0.
    ///
    /// # Safety
    /// `vi` must be a live `OrtValueInfo`.
    pub unsafe fn value_type(&self, vi: *const OrtValueInfo) -> Result<ValueType> {
        let mut ti: *const sys::OrtTypeInfo = std::ptr::null();
        ort_call!(self, GetValueInfoTypeInfo(vi, &mut ti))?;
        if ti.is_null() {
            return Ok(ValueType { elem_type: 0, shape: None, symbols: Vec::new() });
        }
        let mut tsi: *const sys::OrtTensorTypeAndShapeInfo = std::ptr::null();
        if ort_call!(self, CastTypeInfoToTensorInfo(ti, &mut tsi)).is_err() || tsi.is_null() {
            return Ok(ValueType { elem_type: 0, shape: None, symbols: Vec::new() });
        }
        let mut elem: i32 = 0;
        // Read the C enum as its integer (see read_attr).
        ort_call!(self, GetTensorElementType(tsi, &mut elem as *mut i32 as *mut ONNXTensorElementDataType))?;
        // SAFETY: tsi is a live tensor info borrowed from the type info.
        let has_shape = unsafe { (self.ort.TensorTypeAndShape_HasShape)(tsi) };
        let mut symbols = Vec::new();
        let shape = if has_shape {
            let mut rank = 0usize;
            ort_call!(self, GetDimensionsCount(tsi, &mut rank))?;
            let mut dims = vec![0i64; rank];
            let mut names = vec![std::ptr::null::<c_char>(); rank];
            if rank > 0 {
                ort_call!(self, GetDimensions(tsi, dims.as_mut_ptr(), rank))?;
                ort_call!(self, GetSymbolicDimensions(tsi, names.as_mut_ptr(), rank))?;
            }
            // SAFETY: ORT fills `rank` borrowed NUL-terminated names (empty for concrete dims), valid while the
            // value info lives; we copy them.
            symbols = names.into_iter().map(|p| unsafe { cstr_lossy(p) }).collect();
            Some(dims.into_iter().map(|d| if d < 0 { -1 } else { d }).collect())
        } else {
            None
        };
        Ok(ValueType { elem_type: elem, shape, symbols })
    }

    /// The nodes consuming a value, with the input index at which each consumes it (a node consuming it twice is
    /// listed twice; an implicit input of a subgraph-holding node counts as a consumer).
    ///
    /// # Safety
    /// `vi` must be a live `OrtValueInfo`.
    pub unsafe fn value_consumers(&self, vi: *const OrtValueInfo) -> Result<Vec<(*const OrtNode, i64)>> {
        let mut n = 0usize;
        ort_call!(self, ValueInfo_GetValueNumConsumers(vi, &mut n))?;
        let mut nodes = vec![std::ptr::null::<OrtNode>(); n];
        let mut indices = vec![0i64; n];
        if n > 0 {
            ort_call!(self, ValueInfo_GetValueConsumers(vi, nodes.as_mut_ptr(), indices.as_mut_ptr(), n))?;
        }
        Ok(nodes.into_iter().zip(indices).collect())
    }

    /// The node producing a value (`None` for a graph input or an initializer).
    ///
    /// # Safety
    /// `vi` must be a live `OrtValueInfo`.
    pub unsafe fn value_producer(&self, vi: *const OrtValueInfo) -> Result<Option<*const OrtNode>> {
        let mut node = std::ptr::null::<OrtNode>();
        ort_call!(self, ValueInfo_GetValueProducer(vi, &mut node, std::ptr::null_mut()))?;
        Ok((!node.is_null()).then_some(node))
    }

    /// Whether the value is an output of the graph it belongs to.
    ///
    /// # Safety
    /// `vi` must be a live `OrtValueInfo`.
    pub unsafe fn value_is_graph_output(&self, vi: *const OrtValueInfo) -> Result<bool> {
        let mut b = false;
        ort_call!(self, ValueInfo_IsGraphOutput(vi, &mut b))?;
        Ok(b)
    }

    /// ORT's id of a node (unique within its graph).
    ///
    /// # Safety
    /// `node` must be a live `OrtNode`.
    pub unsafe fn node_id(&self, node: *const OrtNode) -> Result<usize> {
        let mut id = 0usize;
        ort_call!(self, Node_GetId(node, &mut id))?;
        Ok(id)
    }

    /// Whether the value is a constant initializer of the graph it belongs to.
    ///
    /// # Safety
    /// `vi` must be a live `OrtValueInfo`.
    pub unsafe fn value_is_constant(&self, vi: *const OrtValueInfo) -> Result<bool> {
        let mut b = false;
        ort_call!(self, ValueInfo_IsConstantInitializer(vi, &mut b))?;
        Ok(b)
    }

    /// The data of a constant float initializer, copied out (shape, values).
    ///
    /// # Safety
    /// `vi` must be a live `OrtValueInfo` of a constant initializer.
    pub unsafe fn constant_f32(&self, vi: *const OrtValueInfo) -> Result<(Vec<i64>, Vec<f32>)> {
        let mut value: *const OrtValue = std::ptr::null();
        ort_call!(self, ValueInfo_GetInitializerValue(vi, &mut value))?;
        if value.is_null() {
            return Err(Error::fail("constant initializer has no value"));
        }
        // SAFETY: value is live for the duration of the callback.
        let t = unsafe { self.tensor(value) }?;
        if t.elem_type != ELEM_FLOAT {
            return Err(Error::invalid_argument(format!(
                "initializer has element type {}, expected float",
                t.elem_type
            )));
        }
        // SAFETY: a float tensor of `numel` elements; the data pointer is valid while the value lives.
        let data = unsafe { t.as_f32() }.to_vec();
        Ok((t.shape, data))
    }

    // ---------------------------------------------------------------------------------------------------------------
    // Tensors and kernel context (valid during Compute only)

    /// Element type, shape and data pointer of a tensor value.
    ///
    /// # Safety
    /// `value` must be a live tensor `OrtValue`; the returned view borrows its data.
    pub unsafe fn tensor(&self, value: *const OrtValue) -> Result<TensorRef> {
        let mut elem: i32 = 0;
        let mut shape_ptr: *const i64 = std::ptr::null();
        let mut rank = 0usize;
        ort_call!(
            self,
            GetTensorElementTypeAndShapeDataReference(
                value,
                &mut elem as *mut i32 as *mut ONNXTensorElementDataType,
                &mut shape_ptr,
                &mut rank
            )
        )?;
        let shape = if rank == 0 || shape_ptr.is_null() {
            Vec::new()
        } else {
            // SAFETY: ORT returned `rank` dims at shape_ptr, valid while the value lives.
            unsafe { std::slice::from_raw_parts(shape_ptr, rank) }.to_vec()
        };
        let mut data: *const c_void = std::ptr::null();
        ort_call!(self, GetTensorData(value, &mut data))?;
        Ok(TensorRef { elem_type: elem, shape, data })
    }

    /// Number of inputs of the fused node at run time.
    ///
    /// # Safety
    /// `ctx` must be the live kernel context of the current Compute call.
    pub unsafe fn kernel_input_count(&self, ctx: *const OrtKernelContext) -> Result<usize> {
        let mut n = 0usize;
        ort_call!(self, KernelContext_GetInputCount(ctx, &mut n))?;
        Ok(n)
    }

    /// Input `index` of the fused node, or `None` when absent.
    ///
    /// # Safety
    /// `ctx` must be the live kernel context of the current Compute call.
    pub unsafe fn kernel_input(&self, ctx: *const OrtKernelContext, index: usize) -> Result<Option<TensorRef>> {
        let mut v: *const OrtValue = std::ptr::null();
        ort_call!(self, KernelContext_GetInput(ctx, index, &mut v))?;
        if v.is_null() {
            return Ok(None);
        }
        // SAFETY: v is a live input value of this Compute call.
        unsafe { self.tensor(v) }.map(Some)
    }

    /// Allocate output `index` with `shape` and return its data pointer (float).
    ///
    /// # Safety
    /// `ctx` must be the live kernel context of the current Compute call.
    pub unsafe fn kernel_output_f32(
        &self,
        ctx: *mut OrtKernelContext,
        index: usize,
        shape: &[i64],
    ) -> Result<*mut f32> {
        let mut v: *mut OrtValue = std::ptr::null_mut();
        ort_call!(self, KernelContext_GetOutput(ctx, index, shape.as_ptr(), shape.len(), &mut v))?;
        if v.is_null() {
            return Err(Error::fail(format!("ORT returned no buffer for output {index}")));
        }
        let mut data: *mut c_void = std::ptr::null_mut();
        ort_call!(self, GetTensorMutableData(v, &mut data))?;
        let numel: i64 = shape.iter().product();
        if data.is_null() && numel > 0 {
            return Err(Error::fail(format!("ORT returned a null buffer for output {index}")));
        }
        Ok(data as *mut f32)
    }
}

/// Log severities.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogLevel {
    Verbose,
    Info,
    Warning,
    Error,
}

/// An attribute value read from a node.
#[derive(Clone, Debug, PartialEq)]
pub enum AttrValue {
    Int(i64),
    Ints(Vec<i64>),
    Float(f32),
    Floats(Vec<f32>),
    String(String),
    /// A kind we do not read (graph, tensor, strings); the raw `OrtOpAttrType` code.
    Other(i32),
}

/// Element type and shape of a value as the graph declares it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueType {
    pub elem_type: i32,
    pub shape: Option<Vec<i64>>,
    /// Symbolic name of each dimension ("" for concrete or anonymous dims); empty when the rank is unknown.
    pub symbols: Vec<String>,
}

/// A borrowed view of a tensor's type, shape and data.
#[derive(Debug)]
pub struct TensorRef {
    pub elem_type: i32,
    pub shape: Vec<i64>,
    pub data: *const c_void,
}

impl TensorRef {
    /// Number of elements (0 if any dimension is 0 or negative).
    pub fn numel(&self) -> usize {
        self.shape.iter().map(|&d| d.max(0) as usize).product()
    }

    /// The data as floats.
    ///
    /// # Safety
    /// The tensor must be float, and its value alive for the returned lifetime.
    pub unsafe fn as_f32<'a>(&self) -> &'a [f32] {
        let n = self.numel();
        if n == 0 || self.data.is_null() {
            return &[];
        }
        // SAFETY: caller guarantees a live float tensor of `n` elements at `data` (ORT allocations are aligned).
        unsafe { std::slice::from_raw_parts(self.data as *const f32, n) }
    }
}

/// Copy a C string into an owned `String` (null → empty; invalid UTF-8 replaced).
///
/// # Safety
/// `p` must be null or point to a NUL-terminated string.
pub unsafe fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-null, NUL-terminated (caller contract).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A `CString` from any text; interior NULs become spaces.
pub fn to_cstring(s: &str) -> CString {
    CString::new(s.replace('\0', " ")).unwrap_or_default()
}
