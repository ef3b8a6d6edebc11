//! `OrtNodeComputeInfo`: one per fused node; Compute reads the Run's tensors and executes the node's plan.

use core::ffi::c_void;
use std::sync::Arc;

use asymo_ep_ffi::sys::OrtKernelContext;
use asymo_ep_ffi::{
    Api, Error, OrtNodeComputeContext, OrtNodeComputeInfo, Result, StatusPtr, ELEM_FLOAT, ORT_VERSION_SUPPORTED,
};

use super::{status_of, value_of, write_out};
use crate::asym::Runtime as AsymRuntime;
use crate::ops::{OpPlan, OutputAlloc, TensorView};

/// `table` must stay the first field: ORT hands us `*mut OrtNodeComputeInfo`, which we cast back.
#[repr(C)]
pub(crate) struct ComputeInfo {
    table: OrtNodeComputeInfo,
    api: &'static Api,
    plan: OpPlan,
    fused_name: String,
    /// For each input of the original node: its index among the fused node's inputs, or `None` (constant in the
    /// plan, or an omitted optional input).
    input_map: Vec<Option<usize>>,
    /// For each output of the original node: its index among the fused node's outputs.
    output_map: Vec<Option<usize>>,
    runtime: Arc<AsymRuntime>,
}

impl ComputeInfo {
    pub(crate) fn new(
        api: &'static Api,
        plan: OpPlan,
        fused_name: String,
        input_map: Vec<Option<usize>>,
        output_map: Vec<Option<usize>>,
        runtime: Arc<AsymRuntime>,
    ) -> Box<Self> {
        Box::new(ComputeInfo {
            table: OrtNodeComputeInfo {
                ort_version_supported: ORT_VERSION_SUPPORTED,
                CreateState: Some(create_state),
                Compute: Some(compute),
                ReleaseState: Some(release_state),
            },
            api,
            plan,
            fused_name,
            input_map,
            output_map,
            runtime,
        })
    }

    /// # Safety
    /// `ctx` is the live kernel context of this Compute call.
    unsafe fn compute(&self, ctx: *mut OrtKernelContext) -> Result<()> {
        // SAFETY: ctx is live for this call.
        let available = unsafe { self.api.kernel_input_count(ctx) }?;
        let mut shapes: Vec<Vec<usize>> = Vec::with_capacity(self.input_map.len());
        let mut datas: Vec<Option<&[f32]>> = Vec::with_capacity(self.input_map.len());
        for (slot, fused_index) in self.input_map.iter().enumerate() {
            let tensor = match *fused_index {
                // SAFETY: ctx is live; index < input count.
                Some(i) if i < available => unsafe { self.api.kernel_input(ctx, i) }?,
                _ => None,
            };
            match tensor {
                Some(t) => {
                    if t.elem_type != ELEM_FLOAT {
                        return Err(Error::invalid_argument(format!(
                            "input {slot} has element type {}, expected float",
                            t.elem_type
                        )));
                    }
                    if t.shape.iter().any(|&d| d < 0) {
                        return Err(Error::invalid_argument(format!("input {slot} has invalid shape {:?}", t.shape)));
                    }
                    shapes.push(t.shape.iter().map(|&d| d as usize).collect());
                    // SAFETY: a float tensor owned by ORT for the duration of this Compute call.
                    datas.push(Some(unsafe { t.as_f32() }));
                }
                None => {
                    shapes.push(Vec::new());
                    datas.push(None);
                }
            }
        }
        let inputs: Vec<Option<TensorView<'_>>> =
            shapes.iter().zip(&datas).map(|(shape, data)| data.map(|data| TensorView { shape, data })).collect();
        let mut outputs = KernelOutputs { api: self.api, ctx, map: &self.output_map };
        self.plan.run(&inputs, &mut outputs, &*self.runtime)
    }
}

/// Allocates outputs through the kernel context.
struct KernelOutputs<'a> {
    api: &'static Api,
    ctx: *mut OrtKernelContext,
    map: &'a [Option<usize>],
}

impl OutputAlloc for KernelOutputs<'_> {
    fn output(&mut self, index: usize, shape: &[usize]) -> Result<&mut [f32]> {
        let fused_index = self
            .map
            .get(index)
            .copied()
            .flatten()
            .ok_or_else(|| Error::fail(format!("output {index} is not an output of the fused node")))?;
        let dims: Vec<i64> = shape.iter().map(|&d| d as i64).collect();
        // SAFETY: ctx is the live kernel context of the current Compute call.
        let ptr = unsafe { self.api.kernel_output_f32(self.ctx, fused_index, &dims) }?;
        let len: usize = shape.iter().product();
        if len == 0 {
            return Ok(&mut []);
        }
        // SAFETY: ORT allocated a float tensor of exactly `len` elements for this output; it stays valid for the
        // rest of the Compute call and nothing else writes it meanwhile.
        Ok(unsafe { std::slice::from_raw_parts_mut(ptr, len) })
    }
}

unsafe extern "system" fn create_state(
    _this: *mut OrtNodeComputeInfo,
    _ctx: *mut OrtNodeComputeContext,
    state: *mut *mut c_void,
) -> StatusPtr {
    // The plan is immutable and shared by concurrent runs; there is no per-state data.
    status_of("CreateState", || {
        // SAFETY: ORT's out-pointer.
        unsafe { write_out(state, std::ptr::null_mut(), "CreateState") }
    })
}

unsafe extern "system" fn compute(
    this: *mut OrtNodeComputeInfo,
    _state: *mut c_void,
    ctx: *mut OrtKernelContext,
) -> StatusPtr {
    status_of("Compute", || {
        if this.is_null() || ctx.is_null() {
            return Err(Error::invalid_argument("Compute: null compute info or kernel context"));
        }
        // SAFETY: `this` is a ComputeInfo we created (repr(C), table first) and ORT keeps it alive until
        // ReleaseNodeComputeInfos; Compute only reads it, so concurrent calls are fine.
        let info = unsafe { &*(this as *const ComputeInfo) };
        // SAFETY: ctx is live for the call.
        unsafe { info.compute(ctx) }.map_err(|e| e.context(format!("AsyMo EP node '{}'", info.fused_name)))
    })
}

unsafe extern "system" fn release_state(_this: *mut OrtNodeComputeInfo, _state: *mut c_void) {
    value_of((), || ())
}
