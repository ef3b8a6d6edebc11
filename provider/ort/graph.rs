//! Reading ORT graph nodes into the ops layer's [`NodeDesc`].

use std::sync::Arc;

use asymo_ep_ffi::sys::{OrtNode, OrtValueInfo};
use asymo_ep_ffi::{Api, Result};

use crate::ops::{NodeDesc, Tensor, ValueDesc};

/// Describe `node`. With `read_constants`, constant float initializers are copied out (Compile only).
///
/// # Safety
/// `node` must be a live node of the graph ORT handed to the current callback.
pub(crate) unsafe fn describe_node(api: &Api, node: *const OrtNode, read_constants: bool) -> Result<NodeDesc> {
    // SAFETY (all calls below): `node` and the value infos it yields are live for this callback.
    unsafe {
        let name = api.node_name(node)?;
        let inputs = api
            .node_inputs(node)?
            .into_iter()
            .map(|vi| vi.map(|vi| describe_value(api, vi, read_constants)).transpose())
            .collect::<Result<Vec<_>>>()?;
        let outputs = api
            .node_outputs(node)?
            .into_iter()
            .map(|vi| vi.map(|vi| describe_value(api, vi, false)).transpose())
            .collect::<Result<Vec<_>>>()?;
        Ok(NodeDesc {
            op_type: api.node_op_type(node)?,
            domain: api.node_domain(node)?,
            since_version: api.node_since_version(node)?,
            attrs: api.node_attributes(node)?,
            inputs,
            outputs,
            name,
        })
        .map_err(|e: asymo_ep_ffi::Error| e)
    }
}

/// # Safety
/// `vi` must be a live value info.
unsafe fn describe_value(api: &Api, vi: *const OrtValueInfo, read_constants: bool) -> Result<ValueDesc> {
    // SAFETY: vi is live (caller contract).
    unsafe {
        let name = api.value_name(vi)?;
        let ty = api.value_type(vi)?;
        let is_constant = api.value_is_constant(vi)?;
        let constant = if is_constant && read_constants && ty.elem_type == crate::ops::FLOAT {
            let (shape, data) = api.constant_f32(vi).map_err(|e| e.context(format!("reading constant '{name}'")))?;
            if shape.iter().any(|&d| d < 0) {
                return Err(asymo_ep_ffi::Error::invalid_argument(format!("constant '{name}' has shape {shape:?}")));
            }
            Some(Arc::new(Tensor { shape: shape.into_iter().map(|d| d as usize).collect(), data }))
        } else {
            None
        };
        Ok(ValueDesc { name, elem_type: ty.elem_type, shape: ty.shape, symbols: ty.symbols, is_constant, constant })
    }
}

/// A value's name, type and shape, without reading constant data.
///
/// # Safety
/// `vi` must be a live value info.
pub(crate) unsafe fn describe_value_shape(api: &Api, vi: *const OrtValueInfo) -> Result<ValueDesc> {
    // SAFETY: caller contract.
    unsafe { describe_value(api, vi, false) }
}
