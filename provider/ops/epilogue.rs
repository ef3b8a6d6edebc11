//! Elementwise ops fused into a MatMul/Gemm/Conv's store: Relu, Clip, LeakyRelu, Sigmoid, HardSigmoid, HardSwish
//! (also the `x · HardSigmoid(x)` pattern) and a residual `Add` of a tensor of the output's shape.
//!
//! GetCapability grows a chain from a claimed node through single-consumer elementwise nodes ([`fusable`]); Compile
//! turns the chain into [`Epilogue`] steps; each Run binds the residual inputs ([`Epilogue::bind`]) and every GEMM
//! job gets the [`FusedOp`]s of its block of the output ([`BoundEpilogue::ops`]).

use crate::kernels::{FusedOp, MatRef};

use super::{fmt_shape, numel, Error, NodeDesc, Result, TensorView, ValueDesc, FLOAT};

/// Op types that may follow a claimed node in a fused chain.
pub const FUSABLE_OPS: &[&str] = &["Relu", "Clip", "LeakyRelu", "Sigmoid", "HardSigmoid", "HardSwish", "Add", "Mul"];

/// One step of a compiled epilogue.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Step {
    Relu,
    Clip {
        lo: f32,
        hi: f32,
    },
    LeakyRelu(f32),
    Sigmoid,
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    HardSwish,
    /// `y += input[slot]`, a run-time tensor of the output's shape.
    AddInput(usize),
}

/// The compiled epilogue of a fused node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Epilogue {
    pub steps: Vec<Step>,
}

/// HardSigmoid parameters of HardSwish (`x · max(0, min(1, x/6 + 1/2))`).
const HARDSWISH_ALPHA: f32 = 1.0 / 6.0;

fn is_hardswish_sigmoid(node: &NodeDesc) -> bool {
    let alpha = node.attr_float("alpha", 0.2).unwrap_or(0.0);
    let beta = node.attr_float("beta", 0.5).unwrap_or(0.0);
    (alpha - HARDSWISH_ALPHA).abs() <= 1e-6 && beta == 0.5
}

/// Whether two declared shapes are provably equal: same rank, and each dim either the same number or the same
/// named symbol.
pub fn same_shape(a: &ValueDesc, b: &ValueDesc) -> bool {
    let (Some(sa), Some(sb)) = (&a.shape, &b.shape) else { return false };
    if sa.len() != sb.len() {
        return false;
    }
    sa.iter().zip(sb).enumerate().all(|(i, (&da, &db))| {
        if da >= 0 || db >= 0 {
            return da == db;
        }
        let name = |v: &ValueDesc| v.symbols.get(i).cloned().unwrap_or_default();
        let (na, nb) = (name(a), name(b));
        !na.is_empty() && na == nb
    })
}

/// Can `node`, consuming the chain's current value `value` (its only consumer), join the chain? `partner` is the
/// other input for binary patterns. Checked at GetCapability from declared types and shapes only.
pub fn fusable(node: &NodeDesc, value: &ValueDesc) -> bool {
    if !node.domain.is_empty() && node.domain != "ai.onnx" {
        return false;
    }
    let float_io = node.inputs.iter().flatten().all(|v| v.elem_type == FLOAT)
        && node.outputs.len() == 1
        && node.outputs[0].as_ref().is_some_and(|o| o.elem_type == FLOAT);
    if !float_io {
        return false;
    }
    let consumes_first = node.input(0).is_some_and(|v| v.name == value.name);
    match node.op_type.as_str() {
        "Relu" | "Sigmoid" | "HardSwish" => consumes_first && node.inputs.len() == 1 && node.attrs.is_empty(),
        "LeakyRelu" => consumes_first && node.inputs.len() == 1 && node.attrs.iter().all(|(k, _)| k == "alpha"),
        "HardSigmoid" => {
            consumes_first && node.inputs.len() == 1 && node.attrs.iter().all(|(k, _)| k == "alpha" || k == "beta")
        }
        // Clip-6 carries min/max as attributes; Clip-11+ as optional constant inputs.
        "Clip" => {
            consumes_first
                && node.attrs.iter().all(|(k, _)| k == "min" || k == "max")
                && node
                    .inputs
                    .iter()
                    .skip(1)
                    .flatten()
                    .all(|v| v.is_constant && v.shape.as_ref().is_some_and(|s| s.is_empty() || s == &[1]))
        }
        // A residual Add: the other operand has provably the output's shape (no broadcasting).
        "Add" => {
            node.inputs.len() == 2
                && node.attrs.is_empty()
                && node.inputs.iter().flatten().filter(|v| v.name == value.name).count() == 1
                && node
                    .inputs
                    .iter()
                    .flatten()
                    .find(|v| v.name != value.name)
                    .is_some_and(|other| !other.is_constant && same_shape(other, value))
        }
        _ => false,
    }
}

/// The `x · HardSigmoid(x)` pattern: `value` feeds exactly `hard_sigmoid` (with HardSwish's parameters) and `mul`,
/// and `mul` multiplies `value` by the HardSigmoid's output.
pub fn hardswish_pattern(value: &ValueDesc, hard_sigmoid: &NodeDesc, mul: &NodeDesc) -> bool {
    let hs_out = hard_sigmoid.outputs.first().and_then(|o| o.as_ref()).map(|o| o.name.as_str());
    hard_sigmoid.op_type == "HardSigmoid"
        && fusable(hard_sigmoid, value)
        && is_hardswish_sigmoid(hard_sigmoid)
        && mul.op_type == "Mul"
        && mul.attrs.is_empty()
        && mul.inputs.len() == 2
        && mul.outputs.len() == 1
        && mul.outputs[0].as_ref().is_some_and(|o| o.elem_type == FLOAT)
        && {
            let names: Vec<&str> = mul.inputs.iter().flatten().map(|v| v.name.as_str()).collect();
            names.len() == 2 && names.contains(&value.name.as_str()) && hs_out.is_some_and(|h| names.contains(&h))
        }
}

impl Epilogue {
    /// Whether every step maps one value to one value (no residual input).
    pub fn is_elementwise(&self) -> bool {
        !self.steps.iter().any(|s| matches!(s, Step::AddInput(_)))
    }

    /// Compile the chain `nodes` (in order) that follows the main node's output `main_out`. Residual inputs are
    /// appended to `inputs` (the fused node's run-time input slots) and referenced by index.
    pub fn build(main_out: &str, nodes: &[NodeDesc], inputs: &mut Vec<Option<ValueDesc>>) -> Result<Epilogue> {
        let mut steps = Vec::new();
        let mut value = main_out.to_string();
        let mut i = 0;
        while i < nodes.len() {
            let node = &nodes[i];
            let step = match node.op_type.as_str() {
                "Relu" => Step::Relu,
                "Sigmoid" => Step::Sigmoid,
                "HardSwish" => Step::HardSwish,
                "LeakyRelu" => Step::LeakyRelu(node.attr_float("alpha", 0.01)?),
                "HardSigmoid" => {
                    // Followed by Mul(value, hs): the HardSwish pattern.
                    if let Some(mul) = nodes.get(i + 1).filter(|m| m.op_type == "Mul") {
                        if !is_hardswish_sigmoid(node) {
                            return Err(Error::invalid_argument(format!(
                                "'{}' is not HardSwish's HardSigmoid",
                                node.name
                            )));
                        }
                        value = output_name(mul)?;
                        steps.push(Step::HardSwish);
                        i += 2;
                        continue;
                    }
                    Step::HardSigmoid { alpha: node.attr_float("alpha", 0.2)?, beta: node.attr_float("beta", 0.5)? }
                }
                "Clip" => clip_bounds(node)?,
                "Add" => {
                    let other = node.inputs.iter().flatten().find(|v| v.name != value).ok_or_else(|| {
                        Error::invalid_argument(format!("Add '{}' has no residual operand", node.name))
                    })?;
                    inputs.push(Some(other.clone()));
                    Step::AddInput(inputs.len() - 1)
                }
                other => return Err(Error::invalid_argument(format!("'{}': {other} cannot be fused", node.name))),
            };
            steps.push(step);
            value = output_name(node)?;
            i += 1;
        }
        Ok(Epilogue { steps })
    }

    /// Resolve the residual inputs of one run; each must have exactly the output's shape.
    pub fn bind<'a>(&self, inputs: &[Option<TensorView<'a>>], out_shape: &[usize]) -> Result<BoundEpilogue<'a>> {
        let steps = self
            .steps
            .iter()
            .map(|&s| match s {
                Step::AddInput(slot) => {
                    let t = inputs.get(slot).copied().flatten().ok_or_else(|| {
                        Error::invalid_argument(format!("fused Add: residual input {slot} is missing"))
                    })?;
                    if t.shape != out_shape || t.data.len() != numel(out_shape) {
                        return Err(Error::invalid_argument(format!(
                            "fused Add: residual {} differs from the output {}",
                            fmt_shape(t.shape),
                            fmt_shape(out_shape)
                        )));
                    }
                    Ok(Bound::Residual(t.data))
                }
                other => Ok(Bound::Step(other)),
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(BoundEpilogue { steps })
    }
}

fn output_name(node: &NodeDesc) -> Result<String> {
    node.outputs
        .first()
        .and_then(|o| o.as_ref())
        .map(|o| o.name.clone())
        .ok_or_else(|| Error::invalid_argument(format!("'{}' has no output", node.name)))
}

/// Clip's bounds: attributes (Clip-6) or constant scalar inputs (Clip-11+); absent = unbounded.
fn clip_bounds(node: &NodeDesc) -> Result<Step> {
    let scalar = |i: usize, default: f32| -> Result<f32> {
        match node.input(i) {
            None => Ok(default),
            Some(v) => match &v.constant {
                Some(t) if t.data.len() == 1 => Ok(t.data[0]),
                _ => Err(Error::invalid_argument(format!(
                    "Clip '{}': bound '{}' is not a constant scalar",
                    node.name, v.name
                ))),
            },
        }
    };
    // An absent bound is the type's lowest / max finite value in every Clip version, as in ORT's CPU EP (so ±inf
    // is clipped to ±f32::MAX even with only the other bound given).
    let (lo, hi) = if node.since_version < 11 {
        (node.attr_float("min", f32::MIN)?, node.attr_float("max", f32::MAX)?)
    } else {
        (scalar(1, f32::MIN)?, scalar(2, f32::MAX)?)
    };
    // ORT computes min(max(x, lo), hi): with lo > hi every non-NaN value becomes hi.
    let lo = if lo > hi { hi } else { lo };
    Ok(Step::Clip { lo, hi })
}

#[derive(Clone, Copy, Debug)]
enum Bound<'a> {
    Step(Step),
    Residual(&'a [f32]),
}

/// An epilogue with its residual tensors for one run.
#[derive(Clone, Debug, Default)]
pub struct BoundEpilogue<'a> {
    steps: Vec<Bound<'a>>,
}

impl<'a> BoundEpilogue<'a> {
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The fused ops of the GEMM job whose C is the `rows × cols` row-major block starting at element `offset` of
    /// the (contiguous) node output. Residuals have the output's layout, so they are viewed at the same offset.
    pub fn ops(&self, offset: usize, rows: usize, cols: usize) -> Vec<FusedOp<'a>> {
        self.ops_strided(offset, rows, cols, cols)
    }

    /// [`Self::ops`] for a block whose rows lie `row_stride` elements apart in the output (a group's channels of a
    /// channels-last convolution).
    pub fn ops_strided(&self, offset: usize, rows: usize, cols: usize, row_stride: usize) -> Vec<FusedOp<'a>> {
        self.steps
            .iter()
            .map(|s| match *s {
                Bound::Step(Step::Relu) => FusedOp::Relu,
                Bound::Step(Step::Clip { lo, hi }) => FusedOp::Clip { lo, hi },
                Bound::Step(Step::LeakyRelu(a)) => FusedOp::LeakyRelu(a),
                Bound::Step(Step::Sigmoid) => FusedOp::Sigmoid,
                Bound::Step(Step::HardSigmoid { alpha, beta }) => FusedOp::HardSigmoid { alpha, beta },
                Bound::Step(Step::HardSwish) => FusedOp::HardSwish,
                Bound::Step(Step::AddInput(_)) => unreachable!("bound to a residual"),
                Bound::Residual(r) => FusedOp::Add(MatRef::with_offset(r, offset, rows, cols, row_stride as isize, 1)),
            })
            .collect()
    }
}
