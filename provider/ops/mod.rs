//! ONNX semantics of the ops we claim — MatMul, Gemm, Conv, the pools (and channels-last layout Transposes) —
//! independent of ORT's ABI.
//!
//! The ORT glue describes a node as a [`NodeDesc`] (op type, attributes, declared input/output types, and at Compile
//! the constant inputs' data). [`check_support`] decides at GetCapability time whether we compute the node exactly;
//! anything we cannot is left to the CPU EP there, never discovered later. [`OpPlan::build`] turns a node into a plan
//! at Compile (weights packed once), and [`OpPlan::run`] executes it on each Run's tensors, validating shapes.

mod concat;
mod conv;
pub use concat::{joins_channels, split_concat_subgraph, ConvChain};
pub use conv::NHWC_DOMAIN;
pub mod epilogue;
pub mod exec;
mod gemm;
mod matmul;
mod pool;
mod transpose;
mod weights;

use std::sync::Arc;

pub use asymo_ep_ffi::{AttrValue, Error, Result};
pub use epilogue::{BoundEpilogue, Epilogue};
pub use exec::{Executor, GemmJob, SerialExecutor};
pub use weights::SharedWeights;

/// ONNX element type code of float32.
pub const FLOAT: i32 = 1;

/// A value (input or output) of a node as the graph declares it.
#[derive(Clone, Debug, Default)]
pub struct ValueDesc {
    pub name: String,
    /// ONNX element type (1 = float). 0 when not a tensor or unknown.
    pub elem_type: i32,
    /// Declared shape; `None` when the rank is unknown, -1 for an unknown dimension.
    pub shape: Option<Vec<i64>>,
    /// Symbolic name of each dimension ("" when concrete or anonymous).
    pub symbols: Vec<String>,
    /// Whether the value is a constant initializer.
    pub is_constant: bool,
    /// Its data, read at Compile for constants (never at GetCapability).
    pub constant: Option<Arc<Tensor>>,
}

/// A node as the ops layer sees it.
#[derive(Clone, Debug, Default)]
pub struct NodeDesc {
    pub name: String,
    pub op_type: String,
    pub domain: String,
    /// Opset "since" version of the schema ORT matched.
    pub since_version: i32,
    pub attrs: Vec<(String, AttrValue)>,
    /// Inputs in schema order; `None` for an omitted optional input.
    pub inputs: Vec<Option<ValueDesc>>,
    pub outputs: Vec<Option<ValueDesc>>,
}

impl NodeDesc {
    pub fn attr(&self, name: &str) -> Option<&AttrValue> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }

    pub fn attr_int(&self, name: &str, default: i64) -> Result<i64> {
        match self.attr(name) {
            None => Ok(default),
            Some(AttrValue::Int(v)) => Ok(*v),
            Some(other) => Err(self.bad_attr(name, other, "an int")),
        }
    }

    pub fn attr_float(&self, name: &str, default: f32) -> Result<f32> {
        match self.attr(name) {
            None => Ok(default),
            Some(AttrValue::Float(v)) => Ok(*v),
            Some(other) => Err(self.bad_attr(name, other, "a float")),
        }
    }

    pub fn attr_ints(&self, name: &str) -> Result<Option<Vec<i64>>> {
        match self.attr(name) {
            None => Ok(None),
            Some(AttrValue::Ints(v)) => Ok(Some(v.clone())),
            Some(other) => Err(self.bad_attr(name, other, "a list of ints")),
        }
    }

    pub fn attr_string(&self, name: &str, default: &str) -> Result<String> {
        match self.attr(name) {
            None => Ok(default.to_string()),
            Some(AttrValue::String(v)) => Ok(v.clone()),
            Some(other) => Err(self.bad_attr(name, other, "a string")),
        }
    }

    fn bad_attr(&self, name: &str, got: &AttrValue, want: &str) -> Error {
        Error::invalid_argument(format!(
            "{} '{}': attribute '{name}' is {got:?}, expected {want}",
            self.op_type, self.name
        ))
    }

    /// Input `i` if present.
    pub fn input(&self, i: usize) -> Option<&ValueDesc> {
        self.inputs.get(i).and_then(|v| v.as_ref())
    }

    /// The constant data of input `i`, if it is a constant read at Compile.
    pub fn constant(&self, i: usize) -> Option<Arc<Tensor>> {
        self.input(i).and_then(|v| v.constant.clone())
    }

    fn unsupported(&self, why: impl std::fmt::Display) -> String {
        format!("{} '{}': {why}", self.op_type, self.name)
    }
}

/// An owned float tensor (constants read at Compile).
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A borrowed float tensor of one Run.
#[derive(Clone, Copy, Debug)]
pub struct TensorView<'a> {
    pub shape: &'a [usize],
    pub data: &'a [f32],
}

impl Tensor {
    pub fn view(&self) -> TensorView<'_> {
        TensorView { shape: &self.shape, data: &self.data }
    }
}

/// Input `i` of one Run, or `constant` (its data kept at Compile: ORT drops the fused node's copy of constant
/// inputs, so their run-time slot is empty).
pub(super) fn input_or<'a>(
    inputs: &[Option<TensorView<'a>>],
    i: usize,
    constant: Option<&'a Tensor>,
) -> Option<TensorView<'a>> {
    inputs.get(i).copied().flatten().or(constant.map(Tensor::view))
}

/// Where a plan writes its output: the ORT glue allocates through the kernel context.
pub trait OutputAlloc {
    /// Allocate output `index` with `shape` and return its (uninitialized-content) buffer.
    fn output(&mut self, index: usize, shape: &[usize]) -> Result<&mut [f32]>;
}

/// An output given in advance (a part of a larger buffer, or a temporary): `buf`, handed out once for `shape`.
pub(super) struct GivenOutput<'a, 'b> {
    buf: Option<&'a mut [f32]>,
    shape: &'b [usize],
}

impl<'a, 'b> GivenOutput<'a, 'b> {
    pub(super) fn new(buf: &'a mut [f32], shape: &'b [usize]) -> Self {
        GivenOutput { buf: Some(buf), shape }
    }
}

impl OutputAlloc for GivenOutput<'_, '_> {
    fn output(&mut self, index: usize, shape: &[usize]) -> Result<&mut [f32]> {
        if index != 0 || shape != self.shape {
            return Err(Error::fail(format!(
                "internal: output {index} of shape {} asked for, {} planned",
                fmt_shape(shape),
                fmt_shape(self.shape)
            )));
        }
        self.buf.take().ok_or_else(|| Error::fail("internal: an output asked for twice"))
    }
}

/// Decide at GetCapability time whether we compute `node` exactly. `Err` carries the reason it stays on the CPU EP.
pub fn check_support(node: &NodeDesc) -> std::result::Result<(), String> {
    let nhwc_op = node.domain == conv::NHWC_DOMAIN && (node.op_type == "Conv" || is_pool(&node.op_type));
    if !node.domain.is_empty() && node.domain != "ai.onnx" && !nhwc_op {
        return Err(node.unsupported(format!("domain '{}' is not ONNX", node.domain)));
    }
    for (i, v) in node.inputs.iter().enumerate() {
        if let Some(v) = v {
            if v.elem_type != FLOAT {
                return Err(node.unsupported(format!(
                    "input {i} '{}' has element type {}, only float32 is claimed",
                    v.name, v.elem_type
                )));
            }
        }
    }
    for v in node.outputs.iter().flatten() {
        if v.elem_type != FLOAT {
            return Err(node.unsupported(format!(
                "output '{}' has element type {}, only float32 is claimed",
                v.name, v.elem_type
            )));
        }
    }
    match node.op_type.as_str() {
        "MatMul" => matmul::check(node),
        "Gemm" => gemm::check(node),
        "Conv" => conv::check(node),
        op if is_pool(op) => pool::check(node),
        "Transpose" => transpose::check(node),
        other => Err(node.unsupported(format!("op type {other} is not claimed"))),
    }
}

/// A compiled node: everything Compute needs, weights packed. Immutable and shared by concurrent Runs.
#[derive(Debug)]
pub struct OpPlan {
    pub node_name: String,
    op: Op,
    /// Elementwise nodes fused into the store (empty for a single node).
    epilogue: Epilogue,
    /// Names of the fused epilogue nodes, for messages.
    fused: Vec<String>,
}

#[derive(Debug)]
enum Op {
    MatMul(matmul::MatMul),
    Gemm(gemm::Gemm),
    Conv(conv::Conv),
    /// A Conv, its elementwise epilogue, then a MaxPool (`Conv::run_pooled`).
    ConvPool(conv::Conv, pool::Pool),
    Pool(pool::Pool),
    Transpose(transpose::Transpose),
    Concat(concat::ConcatConvs),
}

/// The `auto_pad` attribute of Conv and the pools.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AutoPad {
    NotSet,
    Valid,
    SameUpper,
    SameLower,
}

impl AutoPad {
    fn parse(s: &str) -> Option<Self> {
        match s {
            "" | "NOTSET" => Some(AutoPad::NotSet),
            "VALID" => Some(AutoPad::Valid),
            "SAME_UPPER" => Some(AutoPad::SameUpper),
            "SAME_LOWER" => Some(AutoPad::SameLower),
            _ => None,
        }
    }

    /// (leading, trailing) pad of one spatial dim as ORT computes them; `explicit` is the `pads` attribute's pair.
    /// SAME_*: target ⌈size / stride⌉ with the undilated kernel; the needed pad may be negative; C integer division
    /// truncates.
    fn pads(self, explicit: (i64, i64), size: i64, kernel: i64, stride: i64) -> (i64, i64) {
        match self {
            AutoPad::NotSet => explicit,
            AutoPad::Valid => (0, 0),
            AutoPad::SameUpper | AutoPad::SameLower => {
                let target = (size + stride - 1) / stride;
                let needed = (target - 1) * stride + kernel - size;
                let head = if self == AutoPad::SameLower { (needed + 1) / 2 } else { needed / 2 };
                (head, needed - head)
            }
        }
    }
}

/// Whether `pool` can follow `conv`'s chain in one fused node (GetCapability's rule; `Conv::run_pooled` falls back
/// to the two whole for runs it cannot band): a claimed 2-D channels-first MaxPool without the Indices output,
/// after a 2-D Conv whose input, per output pixel, is at most a quarter of its output — a band's input is copied
/// out, which must stay small next to the output kept in L2 (first layers: 3 channels at stride 2 for 64 out).
/// VGG-16's 64 → 64 layers ran 1.7 % slower banded.
pub fn pooled_by(conv: &NodeDesc, pool: &NodeDesc) -> bool {
    let small_input = || -> Option<bool> {
        let w = conv.input(1)?.shape.as_ref()?;
        let strides = conv.attr_ints("strides").ok()?.unwrap_or_else(|| vec![1, 1]);
        let group = conv.attr_int("group", 1).ok()?;
        let (&[m, cg, _, _], &[sh, sw]) = (&w[..], &strides[..]) else { return None };
        let read = [group, sh, sw, 4].into_iter().try_fold(cg, |a, b| a.checked_mul(b))?;
        Some(m > 0 && cg > 0 && read <= m)
    };
    conv.op_type == "Conv"
        && conv.domain.is_empty()
        && small_input() == Some(true)
        && pool.op_type == "MaxPool"
        && pool.domain.is_empty()
        && pool.outputs.iter().skip(1).all(Option::is_none)
        && pool.attr_ints("kernel_shape").ok().flatten().is_some_and(|k| k.len() == 2)
        && check_support(pool).is_ok()
}

/// Ops claimed alone (no fused epilogue): pooling and the layout-moving Transposes of channels-last models.
pub fn is_standalone(op_type: &str) -> bool {
    is_pool(op_type) || op_type == "Transpose"
}

/// The pooling ops we claim (see `pool.rs`).
pub fn is_pool(op_type: &str) -> bool {
    pool::Kind::parse(op_type).is_some()
}

impl OpPlan {
    /// Build the plan of a supported node whose constant inputs carry their data.
    pub fn build(node: &NodeDesc) -> Result<OpPlan> {
        Self::build_fused(node, &[], &mut SharedWeights::default()).map(|(plan, _)| plan)
    }

    /// Build the plan of a supported node followed by a chain of fused elementwise nodes (see [`epilogue`]).
    /// Returns the plan and the run-time input slots: the node's inputs, then the epilogue's residual inputs.
    /// Constant B operands are packed through `weights` (one packed copy per distinct tensor in a Compile).
    pub fn build_fused(
        node: &NodeDesc,
        chain: &[NodeDesc],
        weights: &mut SharedWeights,
    ) -> Result<(OpPlan, Vec<Option<ValueDesc>>)> {
        check_support(node).map_err(Error::invalid_argument)?;
        let fused = chain.iter().map(|n| format!("{} '{}'", n.op_type, n.name)).collect();
        // A chain ending in a MaxPool: the pool reads the convolution band by band (see `pooled_by`).
        let (chain, pool) = match chain.split_last() {
            Some((last, rest)) if last.op_type == "MaxPool" => {
                if !pooled_by(node, last) {
                    return Err(Error::invalid_argument(format!(
                        "'{}' cannot be fused into {} '{}'",
                        last.name, node.op_type, node.name
                    )));
                }
                (rest, Some(pool::Pool::build(last)?))
            }
            _ => (chain, None),
        };
        let op = match node.op_type.as_str() {
            "MatMul" => Op::MatMul(matmul::MatMul::build(node, weights)?),
            "Gemm" => Op::Gemm(gemm::Gemm::build(node, weights)?),
            "Conv" => match pool {
                Some(pool) => Op::ConvPool(conv::Conv::build(node)?, pool),
                None => Op::Conv(conv::Conv::build(node)?),
            },
            op if is_pool(op) => {
                if !chain.is_empty() {
                    return Err(Error::invalid_argument(format!(
                        "{op} '{}': pooling takes no fused epilogue",
                        node.name
                    )));
                }
                Op::Pool(pool::Pool::build(node)?)
            }
            "Transpose" => {
                if !chain.is_empty() {
                    return Err(Error::invalid_argument(format!("Transpose '{}' takes no fused epilogue", node.name)));
                }
                Op::Transpose(transpose::Transpose::build(node)?)
            }
            _ => unreachable!("check_support accepted only claimed ops"),
        };
        // Residual inputs of the epilogue are appended after the op's full input list, so an omitted trailing
        // optional input (Gemm's C, Conv's bias) is never confused with a residual.
        let arity = match &op {
            Op::MatMul(_) => 2,
            Op::Gemm(_) | Op::Conv(_) | Op::ConvPool(..) => 3,
            Op::Pool(_) | Op::Transpose(_) => 1,
            Op::Concat(_) => unreachable!("built by build_concat"),
        };
        let mut slots = node.inputs.clone();
        slots.resize(arity.max(slots.len()), None);
        let main_out = node
            .outputs
            .first()
            .and_then(|o| o.as_ref())
            .map(|o| o.name.clone())
            .ok_or_else(|| Error::invalid_argument(format!("'{}' has no output", node.name)))?;
        let epilogue = Epilogue::build(&main_out, chain, &mut slots)?;
        if matches!(op, Op::ConvPool(..)) && !epilogue.is_elementwise() {
            return Err(Error::invalid_argument(format!(
                "Conv '{}': a residual Add cannot come before a fused MaxPool",
                node.name
            )));
        }
        Ok((OpPlan { node_name: node.name.clone(), op, epilogue, fused }, slots))
    }

    /// Build the plan of a channel Concat (see [`joins_channels`]) whose every input is the output of a Conv and
    /// its fused chain: `parts` in the Concat's input order. Returns the plan and its run-time input slots, each
    /// part's in turn (as [`OpPlan::build_fused`] returns them).
    pub fn build_concat(
        parts: &[ConvChain],
        concat: &NodeDesc,
        weights: &mut SharedWeights,
    ) -> Result<(OpPlan, Vec<Option<ValueDesc>>)> {
        if !joins_channels(concat) {
            return Err(Error::invalid_argument(format!("Concat '{}' does not join channels", concat.name)));
        }
        let mut slots = Vec::new();
        let mut plans = Vec::with_capacity(parts.len());
        for (node, chain) in parts {
            if node.op_type != "Conv" {
                return Err(Error::invalid_argument(format!(
                    "Concat '{}': part '{}' is a {}, not a Conv",
                    concat.name, node.name, node.op_type
                )));
            }
            let (plan, part_slots) = Self::build_fused(node, chain, weights)?;
            plans.push((plan, slots.len()..slots.len() + part_slots.len()));
            slots.extend(part_slots);
        }
        let fused = parts
            .iter()
            .flat_map(|(n, chain)| std::iter::once(n).chain(chain))
            .map(|n| format!("{} '{}'", n.op_type, n.name))
            .collect();
        let op = Op::Concat(concat::ConcatConvs::new(plans)?);
        Ok((OpPlan { node_name: concat.name.clone(), op, epilogue: Epilogue::default(), fused }, slots))
    }

    fn is_channels_first_conv(&self) -> bool {
        matches!(&self.op, Op::Conv(c) if c.channels_first())
    }

    /// The output shape of a Conv plan on this run's inputs.
    fn conv_output_shape(&self, inputs: &[Option<TensorView<'_>>]) -> Result<Vec<usize>> {
        match &self.op {
            Op::Conv(c) => c.output_shape(inputs).map_err(|e| e.context(format!("node '{}'", self.node_name))),
            _ => Err(Error::fail(format!("internal: '{}' is not a Conv", self.node_name))),
        }
    }

    /// Run on one Run's inputs (in the order of the slots `build_fused` returned; `None` for absent or constant
    /// inputs).
    pub fn run(&self, inputs: &[Option<TensorView<'_>>], out: &mut dyn OutputAlloc, exec: &dyn Executor) -> Result<()> {
        let post = &self.epilogue;
        let r = match &self.op {
            Op::MatMul(op) => op.run(inputs, post, out, exec),
            Op::Gemm(op) => op.run(inputs, post, out, exec),
            Op::Conv(op) => op.run(inputs, post, out, exec),
            Op::ConvPool(conv, pool) => conv.run_pooled(inputs, post, pool, out, exec, conv::band_bytes()),
            Op::Pool(op) => op.run(inputs, out, exec),
            Op::Transpose(op) => op.run(inputs, out, exec),
            Op::Concat(op) => op.run(inputs, out, exec),
        };
        r.map_err(|e| e.context(format!("node '{}'", self.node_name)))
    }

    /// A one-line description of the lowering, for `log_plan`.
    pub fn describe(&self) -> String {
        let what = match &self.op {
            Op::MatMul(op) => op.describe(),
            Op::Gemm(op) => op.describe(),
            Op::Conv(op) => op.describe(),
            Op::ConvPool(conv, pool) => format!("{}, then band by band {}", conv.describe(), pool.describe()),
            Op::Pool(op) => op.describe(),
            Op::Transpose(op) => op.describe(),
            Op::Concat(op) => op.describe(),
        };
        if self.fused.is_empty() {
            format!("{}: {what}", self.node_name)
        } else {
            format!("{}: {what}; fused epilogue {}", self.node_name, self.fused.join(" → "))
        }
    }
}

/// The GEMM work of a node from its declared shapes (unknown dims count as 1), for the model's data-reuse profile.
pub fn gemm_work(node: &NodeDesc) -> Option<crate::asym::reuse::GemmWork> {
    let dims = |i: usize| -> Option<Vec<usize>> {
        node.input(i)?.shape.as_ref().map(|s| s.iter().map(|&d| if d > 0 { d as usize } else { 1 }).collect())
    };
    let out_dims = || -> Option<Vec<usize>> {
        node.outputs
            .first()?
            .as_ref()?
            .shape
            .as_ref()
            .map(|s| s.iter().map(|&d| if d > 0 { d as usize } else { 1 }).collect())
    };
    use crate::asym::reuse::GemmWork;
    match node.op_type.as_str() {
        "MatMul" => {
            let (a, b) = (dims(0)?, dims(1)?);
            let s = matmul::matmul_shape(&a, &b).ok()?;
            Some(GemmWork { m: s.m, n: s.n, k: s.k, count: numel(&s.out_batch).max(1) })
        }
        "Gemm" => {
            let (a, b) = (dims(0)?, dims(1)?);
            let ta = node.attr_int("transA", 0).ok()? != 0;
            let tb = node.attr_int("transB", 0).ok()? != 0;
            let (m, k) = if ta { (*a.get(1)?, *a.first()?) } else { (*a.first()?, *a.get(1)?) };
            let n = if tb { *b.first()? } else { *b.get(1)? };
            Some(GemmWork::gemm(m, n, k))
        }
        "Conv" => {
            let w = dims(1)?;
            let group = node.attr_int("group", 1).ok()?.max(1) as usize;
            let x = dims(0).unwrap_or_default();
            let batch = x.first().copied().unwrap_or(1);
            // Channels-last (ORT's NHWC domain): the spatial dims sit between N and C.
            let spatial =
                |s: &[usize]| if node.domain == NHWC_DOMAIN { numel(&s[1..s.len() - 1]) } else { numel(&s[2..]) };
            let out_size = match out_dims() {
                Some(y) if y.len() > 2 => spatial(&y),
                _ => x.get(2..).map(|_| spatial(&x)).unwrap_or(1),
            };
            let (m, k) = (w.first()? / group, numel(&w[1..]));
            Some(GemmWork { m, n: out_size, k, count: batch * group })
        }
        _ => None,
    }
}

/// Product of dims.
fn numel(shape: &[usize]) -> usize {
    shape.iter().product()
}

fn fmt_shape(shape: &[usize]) -> String {
    format!("{shape:?}")
}

#[cfg(test)]
pub(crate) mod test_util {
    use super::*;

    /// A tiny deterministic PRNG for tests.
    pub(crate) struct Lcg(pub u64);
    impl Lcg {
        pub(crate) fn next(&mut self) -> f32 {
            self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((self.0 >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0
        }
        pub(crate) fn vec(&mut self, n: usize) -> Vec<f32> {
            (0..n).map(|_| self.next()).collect()
        }
    }

    pub(crate) struct VecOut(pub Vec<(Vec<usize>, Vec<f32>)>);
    impl OutputAlloc for VecOut {
        fn output(&mut self, index: usize, shape: &[usize]) -> Result<&mut [f32]> {
            while self.0.len() <= index {
                self.0.push((vec![], vec![]));
            }
            self.0[index] = (shape.to_vec(), vec![f32::NAN; numel(shape)]);
            Ok(&mut self.0[index].1)
        }
    }

    pub(crate) fn value(name: &str, shape: &[i64]) -> Option<ValueDesc> {
        Some(ValueDesc { name: name.into(), elem_type: FLOAT, shape: Some(shape.to_vec()), ..Default::default() })
    }

    pub(crate) fn constant(name: &str, t: Tensor) -> Option<ValueDesc> {
        Some(ValueDesc {
            name: name.into(),
            elem_type: FLOAT,
            shape: Some(t.shape.iter().map(|&d| d as i64).collect()),
            is_constant: true,
            constant: Some(Arc::new(t)),
            ..Default::default()
        })
    }

    pub(crate) fn assert_close(got: &[f32], want: &[f32]) {
        assert_eq!(got.len(), want.len());
        let scale = want.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-4 * scale, "element {i}: got {g}, want {w}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_util::value;
    use super::*;

    fn node(op: &str, attrs: Vec<(&str, AttrValue)>, inputs: Vec<Option<ValueDesc>>) -> NodeDesc {
        NodeDesc {
            name: op.to_lowercase(),
            op_type: op.into(),
            since_version: 12,
            attrs: attrs.into_iter().map(|(k, v)| (k.into(), v)).collect(),
            inputs,
            outputs: vec![value("y", &[-1, -1, -1, -1])],
            ..Default::default()
        }
    }

    #[test]
    fn pools_fuse_after_convolutions_with_small_inputs() {
        let conv = |w: &[i64], strides: &[i64], group: i64| {
            let attrs = vec![("strides", AttrValue::Ints(strides.to_vec())), ("group", AttrValue::Int(group))];
            node("Conv", attrs, vec![value("x", &[1, -1, -1, -1]), value("w", w)])
        };
        let pool = |kernel: &[i64]| {
            node(
                "MaxPool",
                vec![("kernel_shape", AttrValue::Ints(kernel.to_vec()))],
                vec![value("c", &[-1, -1, -1, -1])],
            )
        };
        // SqueezeNet's / ResNet-50's first layers: 3 channels at stride 2 for 64 out.
        assert!(pooled_by(&conv(&[64, 3, 3, 3], &[2, 2], 1), &pool(&[3, 3])));
        assert!(pooled_by(&conv(&[64, 3, 7, 7], &[2, 2], 1), &pool(&[3, 3])));
        // Strides whose product overflows are not small.
        assert!(!pooled_by(&conv(&[64, 3, 3, 3], &[1 << 40, 1 << 40], 1), &pool(&[3, 3])));
        // VGG-16's 64 → 64 reads as much as it writes; 1-D is not banded; AveragePool is not a MaxPool.
        assert!(!pooled_by(&conv(&[64, 64, 3, 3], &[1, 1], 1), &pool(&[2, 2])));
        assert!(!pooled_by(&conv(&[64, 3, 3], &[2], 1), &pool(&[3])));
        assert!(!pooled_by(
            &conv(&[64, 3, 3, 3], &[2, 2], 1),
            &NodeDesc { op_type: "AveragePool".into(), ..pool(&[3, 3]) }
        ));
        // Groups count every input channel.
        assert!(pooled_by(&conv(&[32, 4, 3, 3], &[1, 1], 2), &pool(&[2, 2])));
        assert!(!pooled_by(&conv(&[16, 4, 3, 3], &[1, 1], 2), &pool(&[2, 2])));
        // The Indices output is not computed.
        let mut with_indices = pool(&[3, 3]);
        with_indices.outputs.push(value("i", &[-1, -1, -1, -1]));
        assert!(!pooled_by(&conv(&[64, 3, 3, 3], &[2, 2], 1), &with_indices));
    }
}
