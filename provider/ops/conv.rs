//! Conv (opset 1, 11, 22), any spatial rank: strides, pads, dilations, groups (depthwise, channel multiplier),
//! auto_pad, optional bias. Lowered per image and group to a GEMM `W_g (M/g × C/g·Πk) · im2col(X_g)`.
//!
//! Output sizes and auto padding follow ONNX Runtime's CPU EP exactly (ComputePadAndOutputShape), including its
//! rules for SAME padding; the few cases where ORT deviates from a plain reading of the spec (dilated SAME padding is
//! rejected; a negative leading pad when kernel < stride − 1) are left to the CPU EP at GetCapability.

use super::input_or;
use std::sync::Arc;

use std::ops::Range;

use crate::kernels::pool::{PoolGeometry, PoolKind, PoolPlan};
use crate::kernels::{
    conv_t_supported, gemm_block, pointwise_in_place, prefer_conv_t, AOperand, BOperand, CacheSizes, ConvGeometry,
    DwNhwc, FusedOp, Im2col, Im2colNhwc, MatMut, MatRef, PackedA, PackedB, Scratch,
};

use super::exec::{DepthwiseJob, DwNhwcJob, Executor, GemmJob, SharedOut};
use super::{
    fmt_shape, numel, AutoPad, Epilogue, Error, GivenOutput, NodeDesc, OutputAlloc, Result, Tensor, TensorView,
};

/// Conv attributes, validated.
#[derive(Clone, Debug)]
struct ConvAttrs {
    auto_pad: AutoPad,
    group: usize,
    kernel_shape: Option<Vec<usize>>,
    strides: Option<Vec<usize>>,
    dilations: Option<Vec<usize>>,
    /// [begin_1..begin_n, end_1..end_n]
    pads: Option<Vec<usize>>,
}

fn positive_list(node: &NodeDesc, name: &str, allow_zero: bool) -> Result<Option<Vec<usize>>> {
    match node.attr_ints(name)? {
        None => Ok(None),
        Some(v) => {
            if v.iter().any(|&x| x < 0 || (!allow_zero && x == 0)) {
                return Err(Error::invalid_argument(format!(
                    "Conv '{}': attribute {name} = {v:?} must be {}",
                    node.name,
                    if allow_zero { "non-negative" } else { "positive" }
                )));
            }
            Ok(Some(v.into_iter().map(|x| x as usize).collect()))
        }
    }
}

impl ConvAttrs {
    fn read(node: &NodeDesc) -> Result<Self> {
        let auto_pad_s = node.attr_string("auto_pad", "NOTSET")?;
        let auto_pad = AutoPad::parse(&auto_pad_s).ok_or_else(|| {
            Error::invalid_argument(format!(
                "Conv '{}': auto_pad '{auto_pad_s}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID",
                node.name
            ))
        })?;
        let group = node.attr_int("group", 1)?;
        if group < 1 {
            return Err(Error::invalid_argument(format!("Conv '{}': group {group} must be ≥ 1", node.name)));
        }
        Ok(ConvAttrs {
            auto_pad,
            group: group as usize,
            kernel_shape: positive_list(node, "kernel_shape", false)?,
            strides: positive_list(node, "strides", false)?,
            dilations: positive_list(node, "dilations", false)?,
            pads: positive_list(node, "pads", true)?,
        })
    }

    /// Spatial rank implied by the attributes, if any of them is given.
    fn spatial_rank(&self) -> Option<usize> {
        self.kernel_shape
            .as_ref()
            .map(|v| v.len())
            .or(self.strides.as_ref().map(|v| v.len()))
            .or(self.dilations.as_ref().map(|v| v.len()))
            .or(self.pads.as_ref().map(|v| v.len() / 2))
    }

    fn check_ranks(&self, nd: usize) -> std::result::Result<(), String> {
        let lens = [
            ("kernel_shape", self.kernel_shape.as_ref().map(|v| v.len()), nd),
            ("strides", self.strides.as_ref().map(|v| v.len()), nd),
            ("dilations", self.dilations.as_ref().map(|v| v.len()), nd),
            ("pads", self.pads.as_ref().map(|v| v.len()), 2 * nd),
        ];
        for (name, len, want) in lens {
            if let Some(len) = len {
                if len != want {
                    return Err(format!("attribute {name} has {len} values, expected {want} for {nd} spatial dims"));
                }
            }
        }
        Ok(())
    }
}

pub(super) fn check(node: &NodeDesc) -> std::result::Result<(), String> {
    if !(2..=3).contains(&node.inputs.len()) || node.input(0).is_none() || node.input(1).is_none() {
        return Err(node.unsupported("expects inputs X, W and optional B"));
    }
    let attrs = ConvAttrs::read(node).map_err(|e| e.message)?;
    let x_rank = node.input(0).and_then(|v| v.shape.as_ref()).map(|s| s.len());
    let w_shape = node.input(1).and_then(|v| v.shape.clone());
    let w_rank = w_shape.as_ref().map(|s| s.len());
    for r in [x_rank, w_rank].into_iter().flatten() {
        if r < 3 {
            return Err(node.unsupported(format!("X and W need rank ≥ 3, got rank {r}")));
        }
    }
    if let (Some(a), Some(b)) = (x_rank, w_rank) {
        if a != b {
            return Err(node.unsupported(format!("X rank {a} differs from W rank {b}")));
        }
    }
    if let Some(nd) = x_rank.or(w_rank).map(|r| r - 2).or(attrs.spatial_rank()) {
        attrs.check_ranks(nd).map_err(|e| node.unsupported(e))?;
    }
    if let Some(b) = node.input(2).and_then(|v| v.shape.as_ref()) {
        if b.len() != 1 {
            return Err(node.unsupported(format!("bias has rank {}, expected 1", b.len())));
        }
    }
    if attrs.auto_pad != AutoPad::NotSet && attrs.pads.is_some() {
        // ORT fails such a session ("has both 'auto_pad' and 'pads' attributes"); leave it to the CPU EP.
        return Err(node.unsupported("auto_pad together with pads is left to the CPU EP (which rejects it)"));
    }
    if matches!(attrs.auto_pad, AutoPad::SameUpper | AutoPad::SameLower) {
        // ORT rejects dilated SAME padding; leave it to the CPU EP so users see its behaviour.
        if attrs.dilations.as_ref().is_some_and(|d| d.iter().any(|&x| x != 1)) {
            return Err(node.unsupported("auto_pad SAME_* with dilations ≠ 1 is left to the CPU EP"));
        }
        // ORT can compute a negative leading pad when kernel < stride − 1; only claim when that cannot happen.
        let kernel: Option<Vec<usize>> = attrs
            .kernel_shape
            .clone()
            .or_else(|| w_shape.as_ref().and_then(|s| s[2..].iter().map(|&d| (d > 0).then_some(d as usize)).collect()));
        let strides = attrs.strides.clone();
        let risky = match (kernel, strides) {
            (_, None) => false,
            (Some(k), Some(s)) => k.iter().zip(&s).any(|(&k, &s)| k + 2 <= s),
            (None, Some(s)) => s.iter().any(|&s| s >= 3),
        };
        if risky {
            return Err(node.unsupported("auto_pad SAME_* with kernel < stride − 1 is left to the CPU EP"));
        }
    }
    Ok(())
}

/// The domain ORT's layout transformer moves the convolutions we claim into when we prefer NHWC: the same Conv with
/// X and Y channels-last (`[N, spatial…, C]`); W and B keep their ONNX layouts.
pub const NHWC_DOMAIN: &str = "com.ms.internal.nhwc";

#[derive(Debug)]
pub(super) struct Conv {
    attrs: ConvAttrs,
    /// X and Y are channels-last (the node is in [`NHWC_DOMAIN`]).
    nhwc: bool,
    /// X when it is a constant (ORT drops the fused node's copy of constant inputs).
    const_x: Option<Arc<Tensor>>,
    /// Constant weights: shape and one packed A panel set per group.
    const_w: Option<ConstW>,
    const_b: Option<Arc<Tensor>>,
}

/// Constant weights, prepared at Compile.
#[derive(Debug)]
struct ConstW {
    shape: Vec<usize>,
    prepared: Prepared,
    /// Some weight is ±inf or NaN.
    nonfinite: bool,
}

#[derive(Debug)]
enum Prepared {
    /// One packed A operand per group (GEMM lowering).
    PerGroup(Vec<PackedA>),
    /// One packed `Wᵀ` per group (channel-vectorized lowering, chosen at Compile for small output maps).
    Transposed(Vec<PackedB>),
    /// Depthwise (one input channel per group): the direct kernel reads the weights as they are.
    Depthwise(Arc<Tensor>),
    /// Channels-last: per group, `B_g = W_gᵀ` with K ordered (tap, channel), packed as B panels.
    Nhwc(Vec<PackedB>),
    /// Channels-last depthwise: the weights tap-major (`wt[tap · C_out + oc]`), and W itself for the GEMM fallback.
    DepthwiseNhwc { wt: Vec<f32>, w: Arc<Tensor> },
}

/// The channels-last GEMM's B for every group, concatenated: group `g`'s `K_g × M_g` row-major block, row
/// `tap · C_g + c`, column `m`, is `W[g·M_g + m, c, tap…]`.
fn nhwc_b_matrices(w: &[f32], shape: &[usize], group: usize) -> Vec<f32> {
    let (m, cg) = (shape[0], shape[1]);
    let taps: usize = shape[2..].iter().product();
    let mg = m / group;
    let kg = cg * taps;
    let mut b = vec![0.0; group * kg * mg];
    for g in 0..group {
        let blk = &mut b[g * kg * mg..(g + 1) * kg * mg];
        for mo in 0..mg {
            let wrow = &w[(g * mg + mo) * kg..(g * mg + mo + 1) * kg];
            for c in 0..cg {
                for t in 0..taps {
                    blk[(t * cg + c) * mg + mo] = wrow[c * taps + t];
                }
            }
        }
    }
    b
}

/// Whether a convolution with weights `w` (`[M, C/g, k…]`) and `group` runs on the depthwise kernel.
fn is_depthwise(w: &[usize], group: usize) -> bool {
    group > 1 && w.get(1) == Some(&1)
}

/// Whether constant weights `w` of a (non-depthwise) convolution should be packed for the channel-vectorized
/// lowering: spatial rank 1–2 and an output map known at Compile (from X's declared shape) for which
/// `kernels::prefer_conv_t` expects it to be faster. Either lowering computes any shape; this only picks one.
/// `ASYMO_CONV_T` (read at each Compile, so A/B sessions can share a process): `0` keeps the pixel-vectorized
/// lowering everywhere, `all` takes the channel-vectorized one wherever the tier supports it.
fn channel_vectorized(attrs: &ConvAttrs, node: &NodeDesc, w: &[usize]) -> bool {
    let forced = std::env::var("ASYMO_CONV_T").ok();
    if !(3..=4).contains(&w.len()) || forced.as_deref() == Some("0") {
        return false;
    }
    let Some(xs) = node.input(0).and_then(|v| v.shape.as_ref()) else { return false };
    if xs.len() != w.len() || xs[2..].iter().any(|&d| d <= 0) {
        return false;
    }
    let mut x: Vec<usize> = xs.iter().map(|&d| d.max(1) as usize).collect();
    x[0] = 1;
    x[1] = w[1] * attrs.group;
    let probe = Conv { attrs: attrs.clone(), nhwc: false, const_x: None, const_w: None, const_b: None };
    match probe.shape(&x, w) {
        Ok(_) if forced.as_deref() == Some("all") => conv_t_supported(w[0] / attrs.group),
        Ok(s) => prefer_conv_t(&s.geometry, w[0] / attrs.group),
        Err(_) => false,
    }
}

/// The checked operands of one Conv run.
struct RunInputs<'a> {
    x: TensorView<'a>,
    w_dyn: Option<TensorView<'a>>,
    w_shape: &'a [usize],
    shape: ConvShape,
    bias: Option<TensorView<'a>>,
}

/// Shapes of one Conv run.
#[derive(Debug, PartialEq, Eq)]
struct ConvShape {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    out_shape: Vec<usize>,
    geometry: ConvGeometry,
}

impl Conv {
    pub(super) fn build(node: &NodeDesc) -> Result<Self> {
        let attrs = ConvAttrs::read(node)?;
        let const_w = match node.constant(1) {
            Some(w) => {
                if w.shape.len() < 3 {
                    return Err(Error::invalid_argument(format!("Conv W {} needs rank ≥ 3", fmt_shape(&w.shape))));
                }
                let m = w.shape[0];
                if !m.is_multiple_of(attrs.group) {
                    return Err(Error::invalid_argument(format!(
                        "Conv W {} has {m} output channels, not divisible by group {}",
                        fmt_shape(&w.shape),
                        attrs.group
                    )));
                }
                let nhwc = node.domain == NHWC_DOMAIN;
                let prepared = if nhwc && is_depthwise(&w.shape, attrs.group) {
                    let taps = numel(&w.shape[2..]);
                    Prepared::DepthwiseNhwc { wt: crate::kernels::transpose_dw_weights(&w.data, m, taps), w: w.clone() }
                } else if nhwc {
                    let mg = m / attrs.group;
                    let kg = numel(&w.shape[1..]);
                    let b = nhwc_b_matrices(&w.data, &w.shape, attrs.group);
                    Prepared::Nhwc(
                        (0..attrs.group)
                            .map(|g| PackedB::pack(MatRef::row_major(&b[g * kg * mg..(g + 1) * kg * mg], kg, mg)))
                            .collect(),
                    )
                } else if is_depthwise(&w.shape, attrs.group) {
                    Prepared::Depthwise(w.clone())
                } else if channel_vectorized(&attrs, node, &w.shape) {
                    let mg = m / attrs.group;
                    let kg = numel(&w.shape[1..]);
                    Prepared::Transposed(
                        (0..attrs.group)
                            .map(|g| {
                                let wg = MatRef::row_major(&w.data[g * mg * kg..(g + 1) * mg * kg], mg, kg);
                                PackedB::pack(wg.t())
                            })
                            .collect(),
                    )
                } else {
                    let mg = m / attrs.group;
                    let kg = numel(&w.shape[1..]);
                    Prepared::PerGroup(
                        (0..attrs.group)
                            .map(|g| PackedA::pack(MatRef::row_major(&w.data[g * mg * kg..(g + 1) * mg * kg], mg, kg)))
                            .collect(),
                    )
                };
                let nonfinite = w.data.iter().any(|v| !v.is_finite());
                Some(ConstW { shape: w.shape.clone(), prepared, nonfinite })
            }
            None => None,
        };
        Ok(Conv {
            attrs,
            nhwc: node.domain == NHWC_DOMAIN,
            const_x: node.constant(0),
            const_w,
            const_b: node.constant(2),
        })
    }

    pub(super) fn describe(&self) -> String {
        let a = &self.attrs;
        format!(
            "Conv group={} auto_pad={:?} strides={:?} dilations={:?} pads={:?}, W {}, bias {}",
            a.group,
            a.auto_pad,
            a.strides,
            a.dilations,
            a.pads,
            self.const_w.as_ref().map_or("dynamic".to_string(), |w| match w.prepared {
                Prepared::PerGroup(_) => format!("constant {:?} packed per group", w.shape),
                Prepared::Transposed(_) =>
                    format!("constant {:?} packed transposed per group (channel-vectorized)", w.shape),
                Prepared::Depthwise(_) => format!("constant {:?}, depthwise kernel", w.shape),
                Prepared::Nhwc(_) => format!("constant {:?} packed per group, channels-last", w.shape),
                Prepared::DepthwiseNhwc { .. } => format!("constant {:?}, channels-last depthwise kernel", w.shape),
            }),
            self.const_b.as_ref().map_or("dynamic or absent".to_string(), |_| "constant".to_string())
        )
    }

    /// The run's shapes; `x` in the node's layout (`out_shape` too), the geometry always per channel plane.
    fn shape(&self, x: &[usize], w: &[usize]) -> Result<ConvShape> {
        if self.nhwc && x.len() >= 3 {
            // Channels-last X: the same convolution over [N, C, spatial…]; Y's channels moved back last.
            let mut xc = vec![x[0], x[x.len() - 1]];
            xc.extend_from_slice(&x[1..x.len() - 1]);
            let mut s = self.shape_nchw(&xc, w).map_err(|e| e.context(format!("channels-last X {}", fmt_shape(x))))?;
            let m = s.out_shape.remove(1);
            s.out_shape.push(m);
            return Ok(s);
        }
        self.shape_nchw(x, w)
    }

    fn shape_nchw(&self, x: &[usize], w: &[usize]) -> Result<ConvShape> {
        let a = &self.attrs;
        let bad = |what: String| Error::invalid_argument(format!("Conv X {} W {}: {what}", fmt_shape(x), fmt_shape(w)));
        if x.len() < 3 || x.len() != w.len() {
            return Err(bad("X and W must have the same rank ≥ 3".into()));
        }
        let nd = x.len() - 2;
        a.check_ranks(nd).map_err(bad)?;
        let (batch, c) = (x[0], x[1]);
        let m = w[0];
        if c != w[1] * a.group {
            return Err(bad(format!("X has {c} channels but W expects {} × group {}", w[1], a.group)));
        }
        if !m.is_multiple_of(a.group) {
            return Err(bad(format!("{m} output channels are not divisible by group {}", a.group)));
        }
        let kernel = w[2..].to_vec();
        if let Some(ks) = &a.kernel_shape {
            if *ks != kernel {
                return Err(bad(format!("kernel_shape {ks:?} differs from W's spatial dims {kernel:?}")));
            }
        }
        let strides = a.strides.clone().unwrap_or_else(|| vec![1; nd]);
        let dilations = a.dilations.clone().unwrap_or_else(|| vec![1; nd]);
        let mut pads_begin = vec![0usize; nd];
        let mut out_spatial = vec![0usize; nd];
        for d in 0..nd {
            let (in_dim, k, s, dil) = (x[2 + d] as i64, kernel[d] as i64, strides[d] as i64, dilations[d] as i64);
            let explicit = a.pads.as_ref().map_or((0, 0), |p| (p[d] as i64, p[d + nd] as i64));
            let (head, tail) = a.auto_pad.pads(explicit, in_dim, k, s);
            if head < 0 {
                return Err(bad(format!("negative leading pad on spatial dim {d}")));
            }
            let dk = dil * (k - 1) + 1;
            let out = ((in_dim + head + tail - dk) as f64 / s as f64 + 1.0) as i64;
            if out <= 0 {
                return Err(bad(format!("output spatial dim {d} would be {out} (input {in_dim}, kernel {k}, stride {s}, dilation {dil}, pads {head}/{tail})")));
            }
            pads_begin[d] = head as usize;
            out_spatial[d] = out as usize;
        }
        let mut out_shape = vec![batch, m];
        out_shape.extend_from_slice(&out_spatial);
        let geometry = ConvGeometry {
            channels: c / a.group,
            in_spatial: x[2..].to_vec(),
            kernel,
            out_spatial,
            strides,
            dilations,
            pads_begin,
        };
        Ok(ConvShape { batch, in_channels: c, out_channels: m, out_shape, geometry })
    }

    /// Whether X and Y are channels-first (the node is in the ONNX domain).
    pub(super) fn channels_first(&self) -> bool {
        !self.nhwc
    }

    /// The output shape this run's inputs give (checked as `run` checks them).
    pub(super) fn output_shape(&self, inputs: &[Option<TensorView<'_>>]) -> Result<Vec<usize>> {
        Ok(self.run_inputs(inputs)?.shape.out_shape)
    }

    /// This run's operands and shapes, checked.
    fn run_inputs<'a>(&'a self, inputs: &[Option<TensorView<'a>>]) -> Result<RunInputs<'a>> {
        let x = input_or(inputs, 0, self.const_x.as_deref())
            .ok_or_else(|| Error::invalid_argument("Conv input X is missing"))?;
        let w_dyn = inputs.get(1).copied().flatten();
        let w_shape: &[usize] = match (&self.const_w, &w_dyn) {
            (Some(w), _) => &w.shape,
            (None, Some(w)) => w.shape,
            _ => return Err(Error::invalid_argument("Conv input W is missing")),
        };
        let shape = self.shape(x.shape, w_shape)?;
        let bias = input_or(inputs, 2, self.const_b.as_deref());
        if let Some(b) = bias {
            if b.shape != [shape.out_channels] {
                return Err(Error::invalid_argument(format!(
                    "Conv bias {} must have shape [{}] (output channels)",
                    fmt_shape(b.shape),
                    shape.out_channels
                )));
            }
        }
        Ok(RunInputs { x, w_dyn, w_shape, shape, bias })
    }

    /// Group `gi`'s weights as the GEMM's A operand (`mg × kg`).
    fn a_operand<'a>(&'a self, w_dyn: Option<TensorView<'a>>, gi: usize, mg: usize, kg: usize) -> AOperand<'a> {
        match (&self.const_w, w_dyn) {
            (Some(ConstW { prepared: Prepared::PerGroup(packed), .. }), _) => AOperand::Packed(&packed[gi]),
            (Some(ConstW { prepared: Prepared::Depthwise(w), .. }), _) => {
                AOperand::View(MatRef::row_major(&w.data[gi * mg * kg..(gi + 1) * mg * kg], mg, kg))
            }
            (Some(ConstW { prepared: Prepared::Transposed(packed), .. }), _) => AOperand::PackedT(&packed[gi]),
            (None, Some(w)) => AOperand::View(MatRef::row_major(&w.data[gi * mg * kg..(gi + 1) * mg * kg], mg, kg)),
            _ => unreachable!("W presence checked by run_inputs; channels-last weights take run_nhwc"),
        }
    }

    pub(super) fn run(
        &self,
        inputs: &[Option<TensorView<'_>>],
        post: &Epilogue,
        out: &mut dyn OutputAlloc,
        exec: &dyn Executor,
    ) -> Result<()> {
        let RunInputs { x, w_dyn, w_shape, shape: s, bias } = self.run_inputs(inputs)?;
        let post = post.bind(inputs, &s.out_shape)?;
        let y = out.output(0, &s.out_shape)?;
        if y.is_empty() {
            return Ok(());
        }
        if self.nhwc {
            return self.run_nhwc(&s, x.data, w_shape, w_dyn, bias, &post, y, exec);
        }
        let g = &s.geometry;
        let group = self.attrs.group;
        let (mg, kg, p) = (s.out_channels / group, g.k(), g.n());
        let in_image = s.in_channels * g.in_spatial.iter().product::<usize>();
        let in_group = g.in_size();
        if self.runs_depthwise(w_shape, w_dyn, g) {
            let weights: &[f32] = match (&self.const_w, &w_dyn) {
                (Some(ConstW { prepared: Prepared::Depthwise(w), .. }), _) => &w.data,
                (None, Some(w)) => w.data,
                _ => unreachable!("constant depthwise weights are kept unpacked"),
            };
            let geometry = ConvGeometry { channels: s.in_channels, ..g.clone() };
            let jobs: Vec<DepthwiseJob<'_>> = y
                .chunks_mut(s.out_channels * p)
                .enumerate()
                .map(|(n, y_img)| DepthwiseJob {
                    input: &x.data[n * in_image..(n + 1) * in_image],
                    weights,
                    bias: bias.map(|b| b.data),
                    geometry: &geometry,
                    multiplier: s.out_channels / group,
                    out: MatMut::row_major(y_img, s.out_channels, p),
                    epilogue: post.ops(n * s.out_channels * p, s.out_channels, p),
                })
                .collect();
            return exec.depthwise(&jobs);
        }
        // A 1×1 kernel with unit strides and no padding reads X directly as the (C/g × spatial) B matrix: packed
        // into panels, or (few output channels) read in place through the direct window.
        let pointwise = g.kernel.iter().all(|&k| k == 1)
            && g.strides.iter().all(|&s| s == 1)
            && g.pads_begin.iter().all(|&p| p == 0)
            && g.out_spatial == g.in_spatial;
        let mut jobs = Vec::with_capacity(s.batch * group);
        for (n, y_img) in y.chunks_mut(s.out_channels * p).enumerate().take(s.batch) {
            for (gi, y_grp) in y_img.chunks_mut(mg * p).enumerate() {
                let x_grp = &x.data[n * in_image + gi * in_group..n * in_image + (gi + 1) * in_group];
                let a = self.a_operand(w_dyn, gi, mg, kg);
                let b = if pointwise && !matches!(a, AOperand::PackedT(_)) && !pointwise_in_place(g, mg) {
                    BOperand::View(MatRef::row_major(x_grp, kg, p))
                } else {
                    BOperand::Im2col(Im2col { input: x_grp, geometry: g })
                };
                let mut epilogue = match bias {
                    Some(bv) => vec![FusedOp::RowBias(&bv.data[gi * mg..(gi + 1) * mg])],
                    None => Vec::new(),
                };
                epilogue.extend(post.ops((n * group + gi) * mg * p, mg, p));
                jobs.push(GemmJob { a, b, c: MatMut::row_major(y_grp, mg, p), k: kg, epilogue });
            }
        }
        exec.run(&jobs)
    }
}

/// Whether every output row's window extent, `(k − 1)·d + 1` rows, overlaps the input rows (so the input rows under
/// any band of output rows are a non-empty run: the band is a convolution of its own; pads of that extent or more
/// make rows of padding alone).
fn rows_read_input(g: &ConvGeometry) -> bool {
    let (hin, hout, k, s, d, p) =
        (g.in_spatial[0], g.out_spatial[0], g.kernel[0], g.strides[0], g.dilations[0], g.pads_begin[0]);
    hin > 0
        && g.in_spatial[1] > 0
        && k > 0
        && p <= (k - 1) * d
        && (hout.max(1) - 1).checked_mul(s).is_some_and(|last| last < hin + p)
}

/// The most a band of convolution output rows may take between the convolution and its pool: half of L2, leaving
/// the rest to the packed weights and the convolution's own working set. Each band pays a GEMM's and a pool's set-up:
/// on SqueezeNet's first layer (one core) half of L2 ran 1.09× faster than a quarter, an eighth 0.71×, all of it
/// 1.02× (two cores: half 1.075× a quarter).
pub(super) fn band_bytes() -> usize {
    CacheSizes::host().l2 / 2
}

impl Conv {
    /// This convolution (with its elementwise `post`) followed by `pool`, a channels-first 2-D MaxPool: tasks take
    /// ranges of pooled rows and compute them band by band — the convolution rows a band's windows read into a
    /// buffer that stays in L2 (rows shared with the next band kept, not recomputed), then the pool from there — so
    /// the convolution's output never travels to memory and back (SqueezeNet's and ResNet-50's first layers write
    /// 3.2 MB that their pools read back). Runs it cannot band (depthwise, channels-last) compute the convolution
    /// whole, then the pool. Bands hold at most `band_bytes` of convolution output ([`band_bytes`] at run time;
    /// tests use tiny ones).
    pub(super) fn run_pooled(
        &self,
        inputs: &[Option<TensorView<'_>>],
        post: &Epilogue,
        pool: &super::pool::Pool,
        out: &mut dyn OutputAlloc,
        exec: &dyn Executor,
        band_bytes: usize,
    ) -> Result<()> {
        let RunInputs { x, w_dyn, w_shape, shape: s, bias } = self.run_inputs(inputs)?;
        let g = &s.geometry;
        let banded = !self.nhwc
            && pool.is_max_2d_nchw()
            && g.kernel.len() == 2
            && rows_read_input(g)
            && post.is_elementwise()
            && !self.runs_depthwise(w_shape, w_dyn, g);
        if !banded {
            let mut conv_out = vec![0.0; numel(&s.out_shape)];
            self.run(inputs, post, &mut GivenOutput::new(&mut conv_out, &s.out_shape), exec)?;
            return pool.run(&[Some(TensorView { shape: &s.out_shape, data: &conv_out })], out, exec);
        }
        let (pg, pool_shape) = pool.geometry(&s.out_shape)?;
        let post = post.bind(inputs, &s.out_shape)?;
        let y = out.output(0, &pool_shape)?;
        if y.is_empty() {
            return Ok(());
        }
        let (m, group, cin) = (s.out_channels, self.attrs.group, s.in_channels);
        let (mg, cg, kg) = (m / group, cin / group, g.k());
        let ([hin, win], [hc, wc]) = ([g.in_spatial[0], g.in_spatial[1]], [g.out_spatial[0], g.out_spatial[1]]);
        let (hp, wp) = (pool_shape[2], pool_shape[3]);
        let (sp, pp) = (pg.strides[0], pg.pads_begin[0]);
        // Convolution rows one pooled row's windows span.
        let reach = (pg.kernel[0] - 1) * pg.dilations[0] + 1;
        // The convolution rows pooled rows `p` read, clipped to the map (empty if all their windows are padding).
        let conv_rows = |p: &Range<usize>| -> Range<usize> {
            let lo = (p.start * sp).saturating_sub(pp).min(hc);
            lo..((p.end - 1) * sp + reach).saturating_sub(pp).min(hc).max(lo)
        };
        // Pooled rows per band, and the convolution rows a band holds at most.
        let band = ((band_bytes / (m * wc * 4).max(1)).saturating_sub(reach) / sp + 1).max(1);
        let cap = (band - 1) * sp + reach;
        let (in_image, out_image) = (cin * hin * win, m * hp * wp);
        let y_ptr = SharedOut::new(y);
        let ks = crate::kernels::selected_isa().kernels();
        let body = |n: usize, rows: Range<usize>, scratch: &mut Scratch| {
            // Each band is a new input (`band_in`, reused at the same address): no window prepared under a job
            // token may be taken for it.
            scratch.set_job(0);
            let x_img = &x.data[n * in_image..(n + 1) * in_image];
            let (mut band_in, mut band_out) =
                (std::mem::take(&mut scratch.band_in), std::mem::take(&mut scratch.band_out));
            // Channel c's convolution rows `held` sit at `conv_buf[c · cap · wc ..]`.
            let conv_buf = band_out.get(m * cap * wc);
            let mut held = 0..0;
            let mut p0 = rows.start;
            while p0 < rows.end {
                let pooled = p0..(p0 + band).min(rows.end);
                let need = conv_rows(&pooled);
                // Rows the previous band computed move to the front; only the rest are convolved.
                let kept = need.start..held.end.clamp(need.start, need.end);
                if !kept.is_empty() && kept.start > held.start {
                    let shift = (kept.start - held.start) * wc;
                    for c in 0..m {
                        let base = c * cap * wc;
                        conv_buf.copy_within(base + shift..base + shift + kept.len() * wc, base);
                    }
                }
                let new = kept.end..need.end;
                if !new.is_empty() {
                    // The input rows under the new rows' windows (the rest is padding), copied out so the band is
                    // a convolution of its own.
                    let (kh, sh, dh) = (g.kernel[0], g.strides[0], g.dilations[0]);
                    let top = (new.start * sh) as isize - g.pads_begin[0] as isize;
                    let bottom = ((new.end - 1) * sh + (kh - 1) * dh + 1) as isize - g.pads_begin[0] as isize;
                    let (i0, i1) = (top.clamp(0, hin as isize) as usize, bottom.clamp(0, hin as isize) as usize);
                    let rows_in = i1 - i0;
                    let x_band = band_in.get(cin * rows_in * win);
                    for c in 0..cin {
                        x_band[c * rows_in * win..(c + 1) * rows_in * win]
                            .copy_from_slice(&x_img[(c * hin + i0) * win..(c * hin + i1) * win]);
                    }
                    let bg = ConvGeometry {
                        channels: cg,
                        in_spatial: vec![rows_in, win],
                        out_spatial: vec![new.len(), wc],
                        kernel: g.kernel.clone(),
                        strides: g.strides.clone(),
                        dilations: g.dilations.clone(),
                        pads_begin: vec![(i0 as isize - top) as usize, g.pads_begin[1]],
                    };
                    let (cols, first) = (new.len() * wc, (new.start - need.start) * wc);
                    for gi in 0..group {
                        let input = &x_band[gi * cg * rows_in * win..(gi + 1) * cg * rows_in * win];
                        let c_view =
                            MatMut::new(&mut conv_buf[gi * mg * cap * wc + first..], mg, cols, (cap * wc) as isize, 1);
                        let mut epilogue = match bias {
                            Some(bv) => vec![FusedOp::RowBias(&bv.data[gi * mg..(gi + 1) * mg])],
                            None => Vec::new(),
                        };
                        epilogue.extend(post.ops(0, mg, cols));
                        let b = BOperand::Im2col(Im2col { input, geometry: &bg });
                        gemm_block(
                            self.a_operand(w_dyn, gi, mg, kg),
                            b,
                            c_view,
                            kg,
                            0..mg,
                            0..cols,
                            &epilogue,
                            scratch,
                        );
                    }
                }
                held = need.clone();
                // The band's pooled rows, one channel at a time (its rows are `cap` rows apart in the buffer).
                let band_pool = (!need.is_empty()).then(|| PoolGeometry {
                    channels: 1,
                    in_spatial: vec![need.len(), wc],
                    out_spatial: vec![pooled.len(), wp],
                    kernel: pg.kernel.clone(),
                    strides: pg.strides.clone(),
                    dilations: pg.dilations.clone(),
                    pads_begin: vec![need.start + pp - pooled.start * sp, pg.pads_begin[1]],
                    pads_end: vec![0, pg.pads_end[1]],
                });
                let plan = band_pool.as_ref().map(|bp| PoolPlan::new(PoolKind::Max, bp));
                for c in 0..m {
                    // SAFETY: split_rows hands out each (image, pooled rows) once, so concurrent calls write
                    // disjoint rows of `y`, which outlives this call.
                    let y_rows = unsafe {
                        std::slice::from_raw_parts_mut(
                            y_ptr.get().add(n * out_image + (c * hp + pooled.start) * wp),
                            pooled.len() * wp,
                        )
                    };
                    match &plan {
                        Some(plan) => plan.run_nchw(
                            ks,
                            &conv_buf[c * cap * wc..][..need.len() * wc],
                            0..pooled.len(),
                            y_rows,
                            scratch.pool_rows(),
                        ),
                        // Windows wholly in the padding: ORT's lowest(), as the pool alone gives.
                        None => y_rows.fill(f32::MIN),
                    }
                }
                p0 = pooled.end;
            }
            (scratch.band_in, scratch.band_out) = (band_in, band_out);
        };
        // A pooled value costs the convolution of the rows and columns its stride steps over.
        exec.split_rows(s.batch, hp, m * wp, kg.saturating_mul(sp).saturating_mul(pg.strides[1]), &body)
    }

    /// Whether this run takes the depthwise kernels. Their general path skips taps that fall in the padding,
    /// while ORT's Conv (and our GEMM lowering) multiplies the zero padding by the weight: they differ only for
    /// ±inf/NaN weights (0·inf = NaN), which then take the GEMM lowering (a dynamic W is scanned only when that
    /// can matter).
    fn runs_depthwise(&self, w_shape: &[usize], w_dyn: Option<TensorView<'_>>, g: &ConvGeometry) -> bool {
        if !is_depthwise(w_shape, self.attrs.group) {
            return false;
        }
        !reaches_padding(g)
            || !match (&self.const_w, w_dyn) {
                (Some(w), _) => w.nonfinite,
                (None, Some(w)) => w.data.iter().any(|v| !v.is_finite()),
                (None, None) => false,
            }
    }

    /// Channels-last: per image and group, `Y[:, group's channels] = im2col_nhwc(X) · B_g` (a plain GEMM with the
    /// pixels as rows, so C's rows are contiguous output pixels); depthwise on its own channels-last kernel.
    #[allow(clippy::too_many_arguments)]
    fn run_nhwc(
        &self,
        s: &ConvShape,
        x: &[f32],
        w_shape: &[usize],
        w_dyn: Option<TensorView<'_>>,
        bias: Option<TensorView<'_>>,
        post: &super::BoundEpilogue<'_>,
        y: &mut [f32],
        exec: &dyn Executor,
    ) -> Result<()> {
        let g = &s.geometry;
        let group = self.attrs.group;
        let (c, m) = (s.in_channels, s.out_channels);
        let (mg, kg, p) = (m / group, g.k(), g.n());
        let in_image = c * g.in_spatial.iter().product::<usize>();
        if self.runs_depthwise(w_shape, w_dyn, g) {
            let dyn_wt;
            let wt: &[f32] = match &self.const_w {
                Some(ConstW { prepared: Prepared::DepthwiseNhwc { wt, .. }, .. }) => wt,
                _ => {
                    let w = w_dyn.expect("dynamic W present");
                    dyn_wt = crate::kernels::transpose_dw_weights(w.data, m, numel(&w.shape[2..]));
                    &dyn_wt
                }
            };
            let geometry = ConvGeometry { channels: c, ..g.clone() };
            let jobs: Vec<DwNhwcJob<'_>> = y
                .chunks_mut(m * p)
                .enumerate()
                .map(|(n, y_img)| DwNhwcJob {
                    dw: DwNhwc {
                        input: &x[n * in_image..(n + 1) * in_image],
                        weights_t: wt,
                        bias: bias.map(|b| b.data),
                        geometry: &geometry,
                        multiplier: m / group,
                    },
                    out: MatMut::row_major(y_img, p, m),
                    epilogue: post.ops(n * m * p, p, m),
                })
                .collect();
            return exec.depthwise_nhwc(&jobs);
        }
        // B per group: the packed constant, else built for this run (dynamic W, or the depthwise fallback).
        let built: Option<Vec<f32>> = match (&self.const_w, &w_dyn) {
            (Some(ConstW { prepared: Prepared::Nhwc(_), .. }), _) => None,
            (Some(ConstW { prepared: Prepared::DepthwiseNhwc { w, .. }, .. }), _) => {
                Some(nhwc_b_matrices(&w.data, &w.shape, group))
            }
            (None, Some(w)) => Some(nhwc_b_matrices(w.data, w.shape, group)),
            _ => return Err(Error::fail("internal: channels-last Conv without channels-last weights")),
        };
        let pointwise = g.kernel.iter().all(|&k| k == 1)
            && g.strides.iter().all(|&s| s == 1)
            && g.pads_begin.iter().all(|&p| p == 0)
            && g.out_spatial == g.in_spatial;
        let mut jobs = Vec::with_capacity(s.batch * group);
        for (n, y_img) in y.chunks_mut(m * p).enumerate().take(s.batch) {
            let x_img = &x[n * in_image..(n + 1) * in_image];
            let c_img = MatMut::row_major(y_img, p, m);
            for gi in 0..group {
                let a = if pointwise {
                    AOperand::View(MatRef::with_offset(x_img, gi * g.channels, p, kg, c as isize, 1))
                } else {
                    AOperand::Im2colNhwc(Im2colNhwc { input: x_img, geometry: g, c_stride: c, c_off: gi * g.channels })
                };
                let b = match (&self.const_w, &built) {
                    (Some(ConstW { prepared: Prepared::Nhwc(packed), .. }), _) => BOperand::Packed(&packed[gi]),
                    (_, Some(bm)) => BOperand::View(MatRef::row_major(&bm[gi * kg * mg..(gi + 1) * kg * mg], kg, mg)),
                    _ => unreachable!("B chosen above"),
                };
                let mut epilogue = match bias {
                    Some(bv) => vec![FusedOp::ColBias(&bv.data[gi * mg..(gi + 1) * mg])],
                    None => Vec::new(),
                };
                epilogue.extend(post.ops_strided(n * m * p + gi * mg, p, mg, m));
                jobs.push(GemmJob { a, b, c: c_img.cols_range(gi * mg, mg), k: kg, epilogue });
            }
        }
        exec.run(&jobs)
    }
}

/// Whether some window of the convolution covers a padded position (leading or trailing).
fn reaches_padding(g: &ConvGeometry) -> bool {
    (0..g.kernel.len()).any(|d| {
        let span = (g.out_spatial[d].max(1) - 1) * g.strides[d] + (g.kernel[d] - 1) * g.dilations[d] + 1;
        g.pads_begin[d] > 0 || span > g.pads_begin[d] + g.in_spatial[d]
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;
    use super::Conv;

    /// One case of the lowering tests: a 2-D Conv whose W is a constant or a graph input, with an optional bias input.
    struct LoweringCase<'a> {
        ws: [usize; 4],
        w: &'a [f32],
        b: &'a [f32],
        group: usize,
        strides: [usize; 2],
        dil: [usize; 2],
        pads: [usize; 4],
        const_w: bool,
        with_bias: bool,
    }

    impl LoweringCase<'_> {
        /// The node in `domain` (ONNX's or the channels-last one) with X declared as `xs`.
        fn node(&self, domain: &str, xs: &[usize]) -> NodeDesc {
            let to_i = |s: &[usize]| s.iter().map(|&d| d as i64).collect::<Vec<_>>();
            let ws = self.ws;
            let mut inputs = vec![
                value("X", &to_i(xs)),
                if self.const_w {
                    constant("W", Tensor { shape: ws.to_vec(), data: self.w.to_vec() })
                } else {
                    value("W", &to_i(&ws))
                },
            ];
            if self.with_bias {
                inputs.push(value("B", &[ws[0] as i64]));
            }
            let node = NodeDesc {
                name: "c".into(),
                op_type: "Conv".into(),
                domain: domain.into(),
                since_version: 11,
                attrs: vec![
                    ("group".into(), AttrValue::Int(self.group as i64)),
                    ("strides".into(), AttrValue::Ints(to_i(&self.strides))),
                    ("dilations".into(), AttrValue::Ints(to_i(&self.dil))),
                    ("pads".into(), AttrValue::Ints(to_i(&self.pads))),
                ],
                inputs,
                outputs: vec![value("Y", &[])],
            };
            check_support(&node).unwrap();
            node
        }

        /// Plan `node` and run it on X (`xs`, `x`); the output's shape and data.
        fn run(&self, node: &NodeDesc, xs: &[usize], x: &[f32]) -> (Vec<usize>, Vec<f32>) {
            let plan = OpPlan::build(node).unwrap();
            let (ws, bshape) = (self.ws, [self.ws[0]]);
            let mut run_inputs = vec![
                Some(TensorView { shape: xs, data: x }),
                if self.const_w { None } else { Some(TensorView { shape: &ws, data: self.w }) },
            ];
            if self.with_bias {
                run_inputs.push(Some(TensorView { shape: &bshape, data: self.b }));
            }
            let mut out = VecOut(vec![]);
            plan.run(&run_inputs, &mut out, &SerialExecutor).unwrap();
            out.0.swap_remove(0)
        }
    }

    /// Direct convolution, 2-D only, for cross-checking the lowering.
    #[allow(clippy::too_many_arguments)]
    fn direct_2d(
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
        b: Option<&[f32]>,
        group: usize,
        strides: [usize; 2],
        dil: [usize; 2],
        pads: [usize; 4],
    ) -> (Vec<usize>, Vec<f32>) {
        let [n, c, h, wd] = xs;
        let [m, cg, kh, kw] = ws;
        let oh = (h + pads[0] + pads[2] - (dil[0] * (kh - 1) + 1)) / strides[0] + 1;
        let ow = (wd + pads[1] + pads[3] - (dil[1] * (kw - 1) + 1)) / strides[1] + 1;
        let mg = m / group;
        let mut y = vec![0.0; n * m * oh * ow];
        for ni in 0..n {
            for mi in 0..m {
                let g = mi / mg;
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut acc = b.map_or(0.0, |b| b[mi]);
                        for ci in 0..cg {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy * strides[0] + ky * dil[0]) as isize - pads[0] as isize;
                                    let ix = (ox * strides[1] + kx * dil[1]) as isize - pads[1] as isize;
                                    if iy < 0 || ix < 0 || iy >= h as isize || ix >= wd as isize {
                                        continue;
                                    }
                                    let xc = g * cg + ci;
                                    acc += x[((ni * c + xc) * h + iy as usize) * wd + ix as usize]
                                        * w[((mi * cg + ci) * kh + ky) * kw + kx];
                                }
                            }
                        }
                        y[((ni * m + mi) * oh + oy) * ow + ox] = acc;
                    }
                }
            }
        }
        (vec![n, m, oh, ow], y)
    }

    /// Runs `split_rows` work on this thread in random row chunks (tasks), each with its own scratch.
    struct ChunkedRows(std::cell::Cell<u64>);

    // SAFETY: the executor runs every task on the calling thread, the only one that touches the Cell.
    unsafe impl Sync for ChunkedRows {}

    impl Executor for ChunkedRows {
        fn run(&self, jobs: &[crate::ops::GemmJob<'_>]) -> Result<()> {
            SerialExecutor.run(jobs)
        }

        fn split_rows(
            &self,
            batch: usize,
            rows: usize,
            _cols: usize,
            _taps: usize,
            body: &(dyn Fn(usize, std::ops::Range<usize>, &mut crate::kernels::Scratch) + Sync),
        ) -> Result<()> {
            for b in 0..batch {
                let mut r0 = 0;
                while r0 < rows {
                    let seed = self.0.get().wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                    self.0.set(seed);
                    let r1 = (r0 + 1 + (seed >> 33) as usize % 4).min(rows);
                    body(b, r0..r1, &mut crate::kernels::Scratch::new());
                    r0 = r1;
                }
            }
            Ok(())
        }
    }

    #[test]
    fn banded_convolution_and_pool_match_the_two_whole() {
        // Random convolutions and max pools, bands of one to a few pooled rows, tasks of one to four rows: the
        // fused path against the convolution computed whole and then pooled.
        let mut rng = Lcg(0xBA4D);
        let mut pick = |n: usize| ((rng.next().abs() * 1e6) as usize) % n;
        let mut banded = 0;
        for case in 0..120 {
            let (c, m, group) = [(3, 8, 1), (4, 8, 2), (2, 5, 1), (6, 12, 3)][pick(4)];
            let (kh, kw) = (1 + pick(4), 1 + pick(3));
            let (sh, sw) = (1 + pick(2), 1 + pick(2));
            let (dh, dw) = (1 + pick(2) * pick(2), 1);
            let pads = [pick(kh), pick(kw), pick(kh), pick(kw)];
            let (h, w) = (kh * dh + 3 + pick(20), kw + 2 + pick(15));
            let conv_attrs = vec![
                ("group".into(), AttrValue::Int(group as i64)),
                ("kernel_shape".into(), AttrValue::Ints(vec![kh as i64, kw as i64])),
                ("strides".into(), AttrValue::Ints(vec![sh as i64, sw as i64])),
                ("dilations".into(), AttrValue::Ints(vec![dh as i64, dw as i64])),
                ("pads".into(), AttrValue::Ints(pads.iter().map(|&p| p as i64).collect())),
            ];
            let ws = [m, c / group, kh, kw];
            let wv = Lcg(case).vec(ws.iter().product());
            let bias = Lcg(case + 7).vec(m);
            let conv_node = NodeDesc {
                name: "conv".into(),
                op_type: "Conv".into(),
                since_version: 11,
                attrs: conv_attrs,
                inputs: vec![
                    value("X", &[-1, c as i64, -1, -1]),
                    constant("W", Tensor { shape: ws.to_vec(), data: wv }),
                    constant("B", Tensor { shape: vec![m], data: bias }),
                ],
                outputs: vec![value("Y", &[])],
                ..Default::default()
            };
            let (pk, ps) = (2 + pick(2), 1 + pick(2));
            let pool_attrs = vec![
                ("kernel_shape".into(), AttrValue::Ints(vec![pk as i64, 2])),
                ("strides".into(), AttrValue::Ints(vec![ps as i64, 2])),
                ("pads".into(), AttrValue::Ints(vec![pick(pk) as i64, 0, pick(pk) as i64, 1])),
                ("ceil_mode".into(), AttrValue::Int(pick(2) as i64)),
                ("dilations".into(), AttrValue::Ints(vec![1 + pick(2) as i64, 1])),
            ];
            let pool_node = NodeDesc {
                name: "pool".into(),
                op_type: "MaxPool".into(),
                since_version: 12,
                attrs: pool_attrs,
                inputs: vec![value("C", &[-1, -1, -1, -1])],
                outputs: vec![value("P", &[])],
                ..Default::default()
            };
            let (conv, pool) = (Conv::build(&conv_node).unwrap(), super::super::pool::Pool::build(&pool_node).unwrap());
            let n = 1 + pick(2);
            let xs = [n, c, h, w];
            let x = Lcg(case + 3).vec(xs.iter().product());
            let inputs = [Some(TensorView { shape: &xs, data: &x })];
            let relu = Epilogue { steps: vec![super::super::epilogue::Step::Relu] };
            // The two whole.
            let mut conv_out = VecOut(vec![]);
            conv.run(&inputs, &relu, &mut conv_out, &SerialExecutor).unwrap();
            let (cs, cy) = conv_out.0.swap_remove(0);
            let Ok((_, want_shape)) = pool.geometry(&cs) else { continue };
            banded += usize::from(super::rows_read_input(&conv.shape(&xs, &ws).unwrap().geometry));
            let mut want = VecOut(vec![]);
            pool.run(&[Some(TensorView { shape: &cs, data: &cy })], &mut want, &SerialExecutor).unwrap();
            let (want_shape2, want) = want.0.swap_remove(0);
            assert_eq!(want_shape, want_shape2);
            for band_bytes in [1, 4 * m * 9, 1 << 20] {
                let mut got = VecOut(vec![]);
                let exec = ChunkedRows(std::cell::Cell::new(case));
                conv.run_pooled(&inputs, &relu, &pool, &mut got, &exec, band_bytes).unwrap();
                let (got_shape, got) = got.0.swap_remove(0);
                assert_eq!(got_shape, want_shape, "case {case}: {conv_node:?} {pool_node:?} X {xs:?}");
                assert_close(&got, &want);
            }
        }
        assert!(banded >= 60, "only {banded} of 120 cases took the banded path");
    }

    #[test]
    fn lowering_matches_direct_convolution() {
        let mut rng = Lcg(3);
        type Case = ([usize; 4], [usize; 4], usize, [usize; 2], [usize; 2], [usize; 4]);
        let cases: &[Case] = &[
            ([1, 3, 7, 7], [4, 3, 3, 3], 1, [1, 1], [1, 1], [1, 1, 1, 1]),
            ([2, 4, 9, 8], [6, 2, 3, 2], 2, [2, 1], [1, 2], [0, 1, 2, 0]),
            ([1, 6, 5, 5], [12, 1, 3, 3], 6, [2, 2], [1, 1], [1, 1, 1, 1]),
            ([1, 5, 4, 6], [7, 5, 1, 1], 1, [1, 1], [1, 1], [0, 0, 0, 0]),
            ([3, 2, 6, 6], [2, 2, 2, 2], 1, [1, 1], [2, 2], [1, 0, 1, 0]),
            // Channel-vectorized where the tier has it (≥ NR output channels per group, `prefer_conv_t`'s maps):
            // groups, batch, strides, dilations, asymmetric pads, pointwise, C_out off the lane grid.
            ([2, 240, 7, 7], [64, 120, 3, 3], 2, [1, 1], [1, 1], [1, 1, 1, 1]),
            ([2, 120, 9, 8], [48, 120, 3, 3], 1, [2, 1], [1, 2], [1, 0, 2, 1]),
            ([3, 1024, 5, 5], [32, 1024, 1, 1], 1, [1, 1], [1, 1], [0, 0, 0, 0]),
            ([2, 512, 6, 5], [48, 512, 1, 1], 1, [1, 1], [1, 1], [0, 0, 0, 0]),
            ([1, 128, 20, 21], [48, 128, 3, 3], 1, [1, 1], [1, 1], [1, 1, 1, 1]),
            ([1, 240, 14, 14], [96, 120, 3, 3], 2, [2, 2], [1, 1], [1, 1, 1, 1]),
            ([1, 64, 10, 9], [64, 64, 3, 3], 1, [1, 1], [1, 1], [1, 1, 1, 1]),
            ([1, 32, 11, 12], [128, 16, 3, 3], 2, [2, 2], [1, 1], [0, 1, 1, 0]),
            ([1, 256, 8, 8], [64, 256, 1, 1], 1, [1, 1], [1, 1], [0, 0, 0, 0]),
            // A ragged last channel tile (72 = 2·32 + 8) on a map small enough to take it.
            ([1, 256, 3, 3], [72, 256, 1, 1], 1, [1, 1], [1, 1], [0, 0, 0, 0]),
        ];
        for &(xs, ws, group, strides, dil, pads) in cases {
            for (const_w, with_bias) in [(true, true), (false, false), (true, false)] {
                let x = rng.vec(xs.iter().product());
                let w = rng.vec(ws.iter().product());
                let b = rng.vec(ws[0]);
                let case = LoweringCase { ws, w: &w, b: &b, group, strides, dil, pads, const_w, with_bias };
                let node = case.node("", &xs);
                check_support(&node).unwrap();
                // The channel-vectorized lowering's rule (`prefer_conv_t`) on the cases that clearly meet it:
                // spatial kernels with ≥ 16 input and ≥ 64 output channels per group, 1×1 ones on ≤ 256 pixels
                // (every 1×1 case here is stride 1, unpadded) with K ≥ 256 whose channel tiles idle fewer lanes
                // than pixel tiles would.
                let per_out = ws[0] / group;
                let spatial = ws[2] * ws[3] > 1 && ws[1] >= 16 && per_out >= 64;
                let (px, nr) = (xs[2] * xs[3], crate::kernels::tile_info().nr);
                let fewer_idle = per_out.next_multiple_of(nr) * px < per_out * px.next_multiple_of(nr);
                let pointwise = ws[2] * ws[3] == 1 && px <= 256 && ws[1] >= 256 && fewer_idle;
                if const_w && per_out >= 32 && (spatial && per_out % 16 == 0 || pointwise) {
                    let conv = Conv::build(&node).unwrap();
                    let t = conv.describe().contains("transposed");
                    let isa = crate::kernels::selected_isa();
                    assert_eq!(t, isa == crate::kernels::Isa::Avx512, "{isa:?}: {}", conv.describe());
                }
                let (got_shape, got) = case.run(&node, &xs, &x);
                let (shape, want) = direct_2d(&x, xs, &w, ws, with_bias.then_some(&b[..]), group, strides, dil, pads);
                assert_eq!(got_shape, shape);
                assert_close(&got, &want);
            }
        }
    }

    /// The channels-last form (domain `NHWC_DOMAIN`): X and Y channels-last, W as in ONNX; GEMM lowering with the
    /// channels-last im2col (groups, strides, dilations, asymmetric pads, 1×1), depthwise with multipliers, dynamic
    /// W, and the depthwise GEMM fallback for non-finite weights reaching the padding.
    #[test]
    fn channels_last_matches_direct_convolution() {
        let mut rng = Lcg(11);
        type Case = ([usize; 4], [usize; 4], usize, [usize; 2], [usize; 2], [usize; 4]);
        let cases: &[Case] = &[
            ([1, 3, 7, 7], [4, 3, 3, 3], 1, [1, 1], [1, 1], [1, 1, 1, 1]),
            ([2, 4, 9, 8], [6, 2, 3, 2], 2, [2, 1], [1, 2], [0, 1, 2, 0]),
            ([1, 6, 5, 5], [12, 1, 3, 3], 6, [2, 2], [1, 1], [1, 1, 1, 1]),
            ([2, 32, 9, 9], [32, 1, 3, 3], 32, [1, 1], [1, 1], [1, 1, 1, 1]),
            ([1, 5, 4, 6], [7, 5, 1, 1], 1, [1, 1], [1, 1], [0, 0, 0, 0]),
            ([1, 64, 6, 6], [40, 32, 1, 1], 2, [1, 1], [1, 1], [0, 0, 0, 0]),
            ([1, 16, 9, 9], [24, 16, 1, 1], 1, [2, 2], [1, 1], [0, 0, 0, 0]),
            ([3, 2, 6, 6], [2, 2, 2, 2], 1, [1, 1], [2, 2], [1, 0, 1, 0]),
            ([1, 3, 23, 21], [32, 3, 3, 3], 1, [2, 2], [1, 1], [0, 1, 1, 0]),
            ([1, 120, 9, 8], [48, 120, 3, 3], 1, [2, 1], [1, 2], [1, 0, 2, 1]),
        ];
        for &(xs, ws, group, strides, dil, pads) in cases {
            for (const_w, with_bias, inf_w) in [(true, true, false), (false, false, false), (true, false, true)] {
                let x = rng.vec(xs.iter().product());
                let mut w = rng.vec(ws.iter().product());
                if inf_w {
                    w[0] = f32::INFINITY;
                }
                let b = rng.vec(ws[0]);
                let xs_last = [xs[0], xs[2], xs[3], xs[1]];
                let case = LoweringCase { ws, w: &w, b: &b, group, strides, dil, pads, const_w, with_bias };
                let node = case.node(super::NHWC_DOMAIN, &xs_last);
                // X channels-last.
                let [n, c, h, wd] = xs;
                let mut x_last = vec![0.0; x.len()];
                for ni in 0..n {
                    for ci in 0..c {
                        for p in 0..h * wd {
                            x_last[(ni * h * wd + p) * c + ci] = x[(ni * c + ci) * h * wd + p];
                        }
                    }
                }
                let (got_shape, got) = case.run(&node, &xs_last, &x_last);
                let (shape, want) = direct_2d(&x, xs, &w, ws, with_bias.then_some(&b[..]), group, strides, dil, pads);
                let [_, m, oh, ow] = [shape[0], shape[1], shape[2], shape[3]];
                assert_eq!(got_shape, vec![n, oh, ow, m]);
                let mut want_last = vec![0.0; want.len()];
                for ni in 0..n {
                    for mi in 0..m {
                        for p in 0..oh * ow {
                            want_last[(ni * oh * ow + p) * m + mi] = want[(ni * m + mi) * oh * ow + p];
                        }
                    }
                }
                if inf_w {
                    // ±inf weights: only NaN/inf placement is compared (ORT multiplies the zero padding too).
                    let got = &got;
                    let finite = |v: &[f32]| v.iter().map(|x| x.is_finite()).collect::<Vec<_>>();
                    if !super::reaches_padding(&plan_geometry(xs, ws, strides, dil, pads)) {
                        assert_eq!(finite(got), finite(&want_last));
                    }
                    continue;
                }
                assert_close(&got, &want_last);
            }
        }
    }

    #[test]
    fn gemm_work_reads_channels_last_shapes() {
        let mut node = conv_node(vec![], &[64, 32, 3, 3]);
        node.outputs = vec![value("Y", &[1, 64, 14, 12])];
        let w = gemm_work(&node).unwrap();
        assert_eq!((w.m, w.n, w.k), (64, 14 * 12, 32 * 9));
        node.domain = super::NHWC_DOMAIN.into();
        node.outputs = vec![value("Y", &[1, 14, 12, 64])];
        let w = gemm_work(&node).unwrap();
        assert_eq!((w.m, w.n, w.k), (64, 14 * 12, 32 * 9));
    }

    fn plan_geometry(
        xs: [usize; 4],
        ws: [usize; 4],
        strides: [usize; 2],
        dil: [usize; 2],
        pads: [usize; 4],
    ) -> crate::kernels::ConvGeometry {
        let oh = (xs[2] + pads[0] + pads[2] - (dil[0] * (ws[2] - 1) + 1)) / strides[0] + 1;
        let ow = (xs[3] + pads[1] + pads[3] - (dil[1] * (ws[3] - 1) + 1)) / strides[1] + 1;
        crate::kernels::ConvGeometry {
            channels: ws[1],
            in_spatial: vec![xs[2], xs[3]],
            kernel: vec![ws[2], ws[3]],
            out_spatial: vec![oh, ow],
            strides: strides.to_vec(),
            dilations: dil.to_vec(),
            pads_begin: vec![pads[0], pads[1]],
        }
    }

    fn conv_node(attrs: Vec<(&str, AttrValue)>, w: &[i64]) -> NodeDesc {
        NodeDesc {
            name: "c".into(),
            op_type: "Conv".into(),
            since_version: 11,
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            inputs: vec![value("X", &[1, w[1], -1, -1]), value("W", w)],
            outputs: vec![value("Y", &[])],
            ..Default::default()
        }
    }

    #[test]
    fn same_padding_follows_ort() {
        let node = conv_node(
            vec![("auto_pad", AttrValue::String("SAME_UPPER".into())), ("strides", AttrValue::Ints(vec![2, 2]))],
            &[1, 1, 3, 3],
        );
        let conv = Conv::build(&node).unwrap();
        let s = conv.shape(&[1, 1, 6, 7], &[1, 1, 3, 3]).unwrap();
        assert_eq!(s.out_shape, vec![1, 1, 3, 4]);
        // H: target 3, needed (3-1)*2+3-6 = 1 → head 0; W: target 4, needed 3*2+3-7 = 2 → head 1.
        assert_eq!(s.geometry.pads_begin, vec![0, 1]);
        let node = conv_node(
            vec![("auto_pad", AttrValue::String("SAME_LOWER".into())), ("strides", AttrValue::Ints(vec![2, 2]))],
            &[1, 1, 3, 3],
        );
        let s = Conv::build(&node).unwrap().shape(&[1, 1, 6, 7], &[1, 1, 3, 3]).unwrap();
        assert_eq!(s.geometry.pads_begin, vec![1, 1]);
    }

    #[test]
    fn unsupported_attribute_combinations_stay_on_cpu() {
        let dilated_same = conv_node(
            vec![("auto_pad", AttrValue::String("SAME_UPPER".into())), ("dilations", AttrValue::Ints(vec![2, 2]))],
            &[1, 1, 3, 3],
        );
        assert!(check_support(&dilated_same).is_err());
        let small_kernel_big_stride = conv_node(
            vec![("auto_pad", AttrValue::String("SAME_UPPER".into())), ("strides", AttrValue::Ints(vec![4, 4]))],
            &[1, 1, 1, 1],
        );
        assert!(check_support(&small_kernel_big_stride).is_err());
        let pads_and_auto_pad = conv_node(
            vec![("auto_pad", AttrValue::String("VALID".into())), ("pads", AttrValue::Ints(vec![0, 0, 0, 0]))],
            &[1, 1, 3, 3],
        );
        assert!(check_support(&pads_and_auto_pad).is_err());
        let bad_pad = conv_node(vec![("auto_pad", AttrValue::String("FOO".into()))], &[1, 1, 1, 1]);
        assert!(check_support(&bad_pad).is_err());
        let wrong_len = conv_node(vec![("strides", AttrValue::Ints(vec![1, 1, 1]))], &[1, 1, 3, 3]);
        assert!(check_support(&wrong_len).is_err());
    }

    #[test]
    fn shape_errors_name_the_problem() {
        let conv = Conv::build(&conv_node(vec![], &[4, 3, 3, 3])).unwrap();
        let e = conv.shape(&[1, 2, 8, 8], &[4, 3, 3, 3]).unwrap_err();
        assert!(e.message.contains("[1, 2, 8, 8]") && e.message.contains("channels"), "{}", e.message);
        let e = conv.shape(&[1, 3, 2, 2], &[4, 3, 3, 3]).unwrap_err();
        assert!(e.message.contains("output spatial dim"), "{}", e.message);
    }
}
