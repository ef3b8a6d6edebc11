//! MaxPool (opset 1–22), AveragePool (7–22), GlobalMaxPool, GlobalAveragePool on float32, channels-first or
//! channels-last.
//!
//! With the default layout the nodes keep their ONNX form (X `[N, C, D1..Dk]`). Claiming them matters for speed even
//! though they are cheap: a pooling node left to the CPU EP between our convolutions gets ORT's NCHWc treatment —
//! a ReorderInput into and a ReorderOutput out of its blocked layout around it — which cost ResNet-50, VGG-16 and
//! SqueezeNet 1.6–2.2× the pooling itself (BENCHMARKS.md, seventh round). With `layout=nhwc` ORT rewrites the nodes we claim
//! into domain `com.ms.internal.nhwc`: X is `[N, D1..Dk, C]` and Y `[N, O1..Ok, C]`, attributes keep their ONNX
//! meaning over D1..Dk. GetCapability then sees each node twice — first in ONNX form, then converted — so [`check`]
//! depends only on attributes, ranks and outputs; a node ORT leaves in ONNX form runs channels-first.
//!
//! Output sizes, pads and window rules follow ONNX Runtime 1.31's CPU EP exactly (PoolAttributes, MLAS pooling and
//! the AveragePool-19 loops), checked against ORT 1.31.1 on ~2,400 random attribute combinations and, through the
//! ignored test `matches_ort_vectors`, on 590 ORT outputs:
//! - out = trunc(num / stride) + 1, or with ceil_mode ceil(num / stride) + 1 minus one when that last window would
//!   start in the trailing padding, where num = in + pads − dilation·(kernel − 1) − 1. A negative size is an error; 0
//!   gives an empty output. A window may hang past the input (in < kernel gives one output): it is clipped.
//! - SAME_* pads: needed = (⌈in / stride⌉ − 1)·stride + kernel − in (the undilated kernel, as ORT), head =
//!   needed / 2 (UPPER) or (needed + 1) / 2 (LOWER).
//! - AveragePool with count_include_pad divides by the full kernel size in ORT's MLAS path (opset < 19 without
//!   ceil_mode), else by the taps before `in + pad_end` per dim (see [`PoolKind::AvgIncludePadClipped`]).
//! - A window with no in-bounds tap (only with dilations) yields lowest() for max, 0 for average.
//!
//! Left to the CPU EP at GetCapability: a MaxPool Indices output; SAME_* padding with a kernel smaller than its stride
//! (ORT's pads can go negative: its MaxPool then fails, its AveragePool reads differently); auto_pad together with
//! pads; attributes ORT would reject (pads ≥ kernel, wrong lengths) or that its kernel of that opset ignores
//! (dilations before MaxPool-10 / AveragePool-19, ceil_mode before opset 10); spatial rank > 3.
//!
//! NaN: ORT's MLAS max pooling keeps or drops a NaN depending on where it falls in the window (GlobalMaxPool drops
//! it); here max pooling always propagates it, so every output ORT makes NaN is NaN here, plus possibly others.

use super::input_or;
use crate::kernels::pool::{global_pool_nchw, global_pool_nhwc, PoolGeometry, PoolKind, PoolPlan};
use crate::kernels::selected_isa;

use super::exec::{Executor, SharedOut};
use super::{fmt_shape, numel, AutoPad, Error, NodeDesc, OutputAlloc, Result, TensorView, NHWC_DOMAIN};

/// The op, named after its ONNX op type.
#[allow(clippy::enum_variant_names)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Kind {
    MaxPool,
    AveragePool,
    GlobalMaxPool,
    GlobalAveragePool,
}

impl Kind {
    pub(super) fn parse(op_type: &str) -> Option<Self> {
        match op_type {
            "MaxPool" => Some(Kind::MaxPool),
            "AveragePool" => Some(Kind::AveragePool),
            "GlobalMaxPool" => Some(Kind::GlobalMaxPool),
            "GlobalAveragePool" => Some(Kind::GlobalAveragePool),
            _ => None,
        }
    }

    fn is_global(self) -> bool {
        matches!(self, Kind::GlobalMaxPool | Kind::GlobalAveragePool)
    }
}

/// Attributes of a windowed pool, validated (lengths match the kernel's rank, values in range).
#[derive(Clone, Debug)]
struct Window {
    kernel: Vec<usize>,
    strides: Vec<usize>,
    dilations: Vec<usize>,
    /// [begin_1..begin_k, end_1..end_k]; all zero when absent (ignored under auto_pad).
    pads: Vec<usize>,
    auto_pad: AutoPad,
    ceil_mode: bool,
    /// How an average divides (unused by MaxPool).
    avg: PoolKind,
}

/// Read and validate a windowed pool's attributes. `Err` says why the node is not claimed.
fn read_window(node: &NodeDesc, kind: Kind) -> std::result::Result<Window, String> {
    let ints = |name: &str| node.attr_ints(name).map_err(|e| e.message);
    let int = |name: &str, default: i64| node.attr_int(name, default).map_err(|e| e.message);
    let kernel = ints("kernel_shape")?.ok_or("attribute kernel_shape is required")?;
    let nd = kernel.len();
    if !(1..=3).contains(&nd) {
        return Err(format!("kernel_shape {kernel:?}: only 1–3 spatial dims are claimed"));
    }
    if kernel.iter().any(|&k| k <= 0) {
        return Err(format!("kernel_shape {kernel:?} must be positive"));
    }
    let list = |name: &str, len: usize, default: i64, min: i64| -> std::result::Result<Vec<usize>, String> {
        match ints(name)? {
            None => Ok(vec![default as usize; len]),
            // ORT treats an empty list as absent.
            Some(v) if v.is_empty() => Ok(vec![default as usize; len]),
            Some(v) if v.len() != len => Err(format!("attribute {name} has {} values, expected {len}", v.len())),
            Some(v) if v.iter().any(|&x| x < min) => Err(format!("attribute {name} = {v:?} must be ≥ {min}")),
            Some(v) => Ok(v.into_iter().map(|x| x as usize).collect()),
        }
    };
    let strides = list("strides", nd, 1, 1)?;
    let dilations = list("dilations", nd, 1, 1)?;
    let pads = list("pads", 2 * nd, 0, 0)?;
    let kernel: Vec<usize> = kernel.into_iter().map(|k| k as usize).collect();
    if (0..nd).any(|d| pads[d] >= kernel[d] || pads[d + nd] >= kernel[d]) {
        return Err(format!("pads {pads:?} must be smaller than kernel {kernel:?} (ORT rejects the node)"));
    }
    let auto_pad_s = node.attr_string("auto_pad", "NOTSET").map_err(|e| e.message)?;
    let auto_pad = AutoPad::parse(&auto_pad_s)
        .ok_or_else(|| format!("auto_pad '{auto_pad_s}' is not one of NOTSET, SAME_UPPER, SAME_LOWER, VALID"))?;
    if auto_pad != AutoPad::NotSet && node.attr("pads").is_some() {
        return Err("auto_pad together with pads is left to the CPU EP".into());
    }
    if matches!(auto_pad, AutoPad::SameUpper | AutoPad::SameLower) && kernel.iter().zip(&strides).any(|(k, s)| k < s) {
        return Err(
            "auto_pad SAME_* with a kernel smaller than its stride (negative pads) is left to the CPU EP".into()
        );
    }
    let ceil_mode = match int("ceil_mode", 0)? {
        0 => false,
        1 => true,
        v => return Err(format!("ceil_mode {v} is not 0 or 1")),
    };
    let v = node.since_version;
    if ceil_mode && v < 10 {
        return Err(format!("ceil_mode in opset {v} (introduced in 10) is left to the CPU EP"));
    }
    let dilated = dilations.iter().any(|&d| d != 1);
    let min_dilated = if kind == Kind::MaxPool { 10 } else { 19 };
    if dilated && v < min_dilated {
        return Err(format!("dilations in {:?}-{v} (introduced in {min_dilated}) are left to the CPU EP", kind));
    }
    if kind == Kind::MaxPool {
        let order = int("storage_order", 0)?;
        if !matches!(order, 0 | 1) {
            return Err(format!("storage_order must be 0 or 1, got {order}"));
        }
    }
    let avg = if int("count_include_pad", 0)? == 0 {
        PoolKind::AvgExcludePad
    } else if ceil_mode || v >= 19 || dilated {
        PoolKind::AvgIncludePadClipped
    } else {
        PoolKind::AvgIncludePad
    };
    Ok(Window { kernel, strides, dilations, pads, auto_pad, ceil_mode, avg })
}

/// Decide whether we compute the pooling node exactly (see the module doc). Works on the ONNX (NCHW) form and on the
/// NHWC form alike: it reads only attributes, ranks and outputs.
pub(super) fn check(node: &NodeDesc) -> std::result::Result<(), String> {
    let kind = Kind::parse(&node.op_type).ok_or_else(|| node.unsupported("not a pooling op"))?;
    if !matches!(node.domain.as_str(), "" | "ai.onnx" | NHWC_DOMAIN) {
        return Err(node.unsupported(format!("domain '{}' is not ONNX or NHWC", node.domain)));
    }
    if node.inputs.len() != 1 || node.input(0).is_none() {
        return Err(node.unsupported("expects exactly one input X"));
    }
    if node.input(0).is_some_and(|x| x.is_constant) {
        // Constant inputs are dropped from the fused node (ORT folds such pools anyway).
        return Err(node.unsupported("a constant input is left to the CPU EP"));
    }
    if node.outputs.first().and_then(|o| o.as_ref()).is_none() {
        return Err(node.unsupported("output Y is missing"));
    }
    if node.outputs.iter().skip(1).any(|o| o.is_some()) {
        return Err(node.unsupported("the Indices output of MaxPool is left to the CPU EP"));
    }
    if kind == Kind::AveragePool && node.since_version < 7 {
        // ORT's CPU EP has no AveragePool-1 kernel; do not run what ORT cannot.
        return Err(node.unsupported(format!("AveragePool-{} is not claimed", node.since_version)));
    }
    let rank = node.input(0).and_then(|v| v.shape.as_ref()).map(|s| s.len());
    if kind.is_global() {
        if let Some(r) = rank.filter(|&r| r < 3) {
            return Err(node.unsupported(format!("X needs rank ≥ 3, got rank {r}")));
        }
        return Ok(());
    }
    let w = read_window(node, kind).map_err(|e| node.unsupported(e))?;
    if let Some(r) = rank.filter(|&r| r != w.kernel.len() + 2) {
        return Err(node.unsupported(format!("X has rank {r}, kernel_shape implies {}", w.kernel.len() + 2)));
    }
    Ok(())
}

/// What one channels-first output line costs beyond its taps, in taps of one output (AMD Zen 5, one core, 3 × 3
/// stride-2 max pools, `cargo test --release --lib bench_pool_nchw -- --ignored --nocapture`: lines of 13, 27 and 55
/// outputs take 11, 16 and 26 ns, 3–6 ns more than their taps priced as depthwise work; without it a 13-wide pool
/// was priced at a fraction of its time and left on one core).
const LINE_COST_TAPS: usize = 128;

/// A compiled pooling node.
#[derive(Debug)]
pub(super) struct Pool {
    kind: Kind,
    /// Windowed pools only.
    window: Option<Window>,
    /// X and Y channels-last (a node ORT converted), else channels-first.
    nhwc: bool,
}

impl Pool {
    pub(super) fn build(node: &NodeDesc) -> Result<Pool> {
        check(node).map_err(Error::invalid_argument)?;
        let kind = Kind::parse(&node.op_type).expect("check accepted a pooling op");
        let window =
            if kind.is_global() { None } else { Some(read_window(node, kind).map_err(Error::invalid_argument)?) };
        Ok(Pool { kind, window, nhwc: node.domain == NHWC_DOMAIN })
    }

    pub(super) fn describe(&self) -> String {
        match &self.window {
            None => format!("{:?} ({})", self.kind, self.layout_name()),
            Some(w) => format!(
                "{:?} kernel={:?} strides={:?} dilations={:?} pads={:?} auto_pad={:?} ceil_mode={}{} ({})",
                self.kind,
                w.kernel,
                w.strides,
                w.dilations,
                w.pads,
                w.auto_pad,
                w.ceil_mode as u8,
                if self.kind == Kind::AveragePool { format!(", divisor {:?}", w.avg) } else { String::new() },
                self.layout_name()
            ),
        }
    }

    /// Whether this is a windowed 2-D MaxPool over channels-first tensors (what a convolution can feed band by band,
    /// see `Conv::run_pooled`).
    pub(super) fn is_max_2d_nchw(&self) -> bool {
        self.kind == Kind::MaxPool && !self.nhwc && self.window.as_ref().is_some_and(|w| w.kernel.len() == 2)
    }

    /// `[N, C, ...]` or `[N, ..., C]` for messages.
    fn layout_name(&self) -> &'static str {
        if self.nhwc {
            "channels-last [N, spatial.., C]"
        } else {
            "channels-first [N, C, spatial..]"
        }
    }

    /// The shape `[N, C, spatial..]` or `[N, spatial.., C]` (by the node's layout).
    fn shape_of(&self, n: usize, c: usize, spatial: &[usize]) -> Vec<usize> {
        let mut s = vec![n];
        if !self.nhwc {
            s.push(c);
        }
        s.extend_from_slice(spatial);
        if self.nhwc {
            s.push(c);
        }
        s
    }

    /// The geometry of one image of X and the output shape, in the node's layout.
    pub(super) fn geometry(&self, x: &[usize]) -> Result<(PoolGeometry, Vec<usize>)> {
        let layout = self.layout_name();
        let bad =
            |what: String| Error::invalid_argument(format!("{:?} X {} ({layout}): {what}", self.kind, fmt_shape(x)));
        let rank = x.len();
        let want = self.window.as_ref().map(|w| w.kernel.len() + 2);
        match want {
            Some(r) if rank != r => return Err(bad(format!("expected rank {r} ({}-D kernel_shape)", r - 2))),
            None if rank < 3 => return Err(bad("expected rank ≥ 3".into())),
            _ => {}
        }
        let (n, c, spatial) = if self.nhwc { (x[0], x[rank - 1], &x[1..rank - 1]) } else { (x[0], x[1], &x[2..]) };
        // The tensor axis of spatial dim 0 (for messages).
        let axis0 = if self.nhwc { 1 } else { 2 };
        if n > 0 && numel(&x[1..]) == 0 {
            // As ORT: only N may be zero.
            return Err(bad("only the batch dimension may be zero".into()));
        }
        let Some(w) = &self.window else {
            let g = PoolGeometry {
                channels: c,
                in_spatial: vec![numel(spatial)],
                out_spatial: vec![1],
                kernel: vec![numel(spatial).max(1)],
                strides: vec![1],
                dilations: vec![1],
                pads_begin: vec![0],
                pads_end: vec![0],
            };
            return Ok((g, self.shape_of(n, c, &vec![1; spatial.len()])));
        };
        let nd = spatial.len();
        let (mut pads_begin, mut pads_end, mut out_spatial) = (vec![0; nd], vec![0; nd], vec![0; nd]);
        for d in 0..nd {
            let (size, k, s, dil) = (spatial[d] as i64, w.kernel[d] as i64, w.strides[d] as i64, w.dilations[d] as i64);
            // (needed ≥ 0 for SAME_*: check refuses a kernel smaller than its stride.)
            let (head, tail) = w.auto_pad.pads((w.pads[d] as i64, w.pads[d + nd] as i64), size, k, s);
            if head < 0 || tail < 0 {
                return Err(bad(format!("negative pad on spatial dim {d} (axis {})", d + axis0)));
            }
            let num = size + head + tail - dil * (k - 1) - 1;
            let out = if w.ceil_mode {
                // As ORT: ceil of the float quotient, then drop a last window starting in the trailing padding.
                let mut out = (num as f32 / s as f32).ceil() as i64 + 1;
                if (out - 1) * s >= size + head {
                    out -= 1;
                }
                out
            } else {
                num / s + 1
            };
            if out < 0 {
                return Err(bad(format!(
                    "spatial dim {d} (axis {}) of size {size} is too small for the window (kernel {k}, dilation {dil}, \
                     stride {s}, pads {head}/{tail}): output size would be {out}",
                    d + axis0
                )));
            }
            pads_begin[d] = head as usize;
            pads_end[d] = tail as usize;
            out_spatial[d] = out as usize;
        }
        let out_shape = self.shape_of(n, c, &out_spatial);
        let g = PoolGeometry {
            channels: c,
            in_spatial: spatial.to_vec(),
            out_spatial,
            kernel: w.kernel.clone(),
            strides: w.strides.clone(),
            dilations: w.dilations.clone(),
            pads_begin,
            pads_end,
        };
        Ok((g, out_shape))
    }

    pub(super) fn run(
        &self,
        inputs: &[Option<TensorView<'_>>],
        out: &mut dyn OutputAlloc,
        exec: &dyn Executor,
    ) -> Result<()> {
        let x = input_or(inputs, 0, None)
            .ok_or_else(|| Error::invalid_argument(format!("{:?} input X is missing", self.kind)))?;
        if x.data.len() != numel(x.shape) {
            return Err(Error::invalid_argument(format!(
                "{:?} X {} has {} values, expected {}",
                self.kind,
                fmt_shape(x.shape),
                x.data.len(),
                numel(x.shape)
            )));
        }
        let (g, out_shape) = self.geometry(x.shape)?;
        let y = out.output(0, &out_shape)?;
        if y.is_empty() {
            return Ok(());
        }
        let c = g.channels;
        let (in_image, out_image) = (g.in_pixels() * c, g.out_pixels() * c);
        let batch = x.shape[0];
        let y_ptr = SharedOut::new(y);
        // The windowed pool's tap tables, once per run for all its tasks.
        let plan = match self.kind {
            Kind::MaxPool => Some(PoolPlan::new(PoolKind::Max, &g)),
            Kind::AveragePool => Some(PoolPlan::new(self.window.as_ref().expect("windowed pool").avg, &g)),
            Kind::GlobalMaxPool | Kind::GlobalAveragePool => None,
        };
        // Tasks split rows of the output image, each `cols` values: global pools split channels (one value each);
        // windowed ones output pixels (channels-last) or output lines along the last dim (channels-first).
        let o_last = g.out_spatial.last().copied().unwrap_or(1);
        let (rows, cols, taps) = match (&plan, self.nhwc) {
            (None, _) => (c, 1, g.in_pixels()),
            (Some(_), true) => (g.out_pixels(), c, g.kernel_taps()),
            // A line's fixed cost (table look-ups, loop set-ups, the padded row's store and reload) is worth
            // ~LINE_COST_TAPS taps of depthwise work, spread over its outputs.
            (Some(plan), false) => (plan.nchw_lines(), o_last, g.kernel_taps() + LINE_COST_TAPS / o_last.max(1)),
        };
        let body = |n: usize, r: std::ops::Range<usize>, scratch: &mut crate::kernels::Scratch| {
            let x_img = &x.data[n * in_image..(n + 1) * in_image];
            // SAFETY: every (image, row range) is handed out once by split_rows, so the output slices of concurrent
            // calls are disjoint parts of `y`, which outlives this call.
            let y_part = unsafe {
                std::slice::from_raw_parts_mut(y_ptr.get().add(n * out_image + r.start * cols), r.len() * cols)
            };
            let max = self.kind == Kind::GlobalMaxPool;
            match (&plan, self.nhwc) {
                (Some(plan), true) => plan.run(x_img, r, y_part, scratch.pool_taps()),
                (Some(plan), false) => plan.run_nchw(selected_isa().kernels(), x_img, r, y_part, scratch.pool_rows()),
                (None, true) => global_pool_nhwc(max, x_img, c, r, y_part),
                (None, false) => {
                    let plane = g.in_pixels();
                    global_pool_nchw(max, &x_img[r.start * plane..r.end * plane], plane, y_part)
                }
            }
        };
        exec.split_rows(batch, rows, cols, taps, &body)
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{assert_close, value, Lcg, VecOut};
    use super::super::{AttrValue, SerialExecutor};
    use super::*;

    /// Attributes of a windowed test case (ONNX meaning).
    #[derive(Clone, Debug)]
    struct Case {
        kernel: Vec<usize>,
        strides: Vec<usize>,
        dilations: Vec<usize>,
        pads: Vec<usize>,
        auto_pad: &'static str,
        ceil_mode: bool,
        count_include_pad: bool,
    }

    fn node(op: &str, since: i32, domain: &str, attrs: Vec<(&str, AttrValue)>, x_rank: usize) -> NodeDesc {
        NodeDesc {
            name: "p".into(),
            op_type: op.into(),
            domain: domain.into(),
            since_version: since,
            attrs: attrs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            inputs: vec![value("X", &vec![-1; x_rank])],
            outputs: vec![value("Y", &[])],
        }
    }

    fn ints(v: &[usize]) -> AttrValue {
        AttrValue::Ints(v.iter().map(|&x| x as i64).collect())
    }

    fn case_node(op: &str, since: i32, c: &Case) -> NodeDesc {
        let mut attrs = vec![("kernel_shape", ints(&c.kernel)), ("strides", ints(&c.strides))];
        if c.dilations.iter().any(|&d| d != 1) {
            attrs.push(("dilations", ints(&c.dilations)));
        }
        if c.auto_pad == "NOTSET" {
            attrs.push(("pads", ints(&c.pads)));
        } else {
            attrs.push(("auto_pad", AttrValue::String(c.auto_pad.into())));
        }
        attrs.push(("ceil_mode", AttrValue::Int(c.ceil_mode as i64)));
        if op == "AveragePool" {
            attrs.push(("count_include_pad", AttrValue::Int(c.count_include_pad as i64)));
        }
        node(op, since, NHWC_DOMAIN, attrs, c.kernel.len() + 2)
    }

    /// ORT's output size and pads of one dim, written out as plainly as possible (the rules the module doc states,
    /// checked against ORT 1.31 by /tmp/w/pool_ort_check.py).
    fn ref_dim(c: &Case, d: usize, size: i64) -> Option<(i64, i64, i64)> {
        let nd = c.kernel.len();
        let (k, s, dil) = (c.kernel[d] as i64, c.strides[d] as i64, c.dilations[d] as i64);
        let (head, tail) = match c.auto_pad {
            "VALID" => (0, 0),
            "SAME_UPPER" | "SAME_LOWER" => {
                let target = (size + s - 1) / s;
                let needed = (target - 1) * s + k - size;
                let head = if c.auto_pad == "SAME_LOWER" { (needed + 1) / 2 } else { needed / 2 };
                (head, needed - head)
            }
            _ => (c.pads[d] as i64, c.pads[d + nd] as i64),
        };
        let num = size + head + tail - dil * (k - 1) - 1;
        let out = if c.ceil_mode {
            let q = (num as f64 / s as f64).ceil() as i64 + 1;
            if (q - 1) * s >= size + head {
                q - 1
            } else {
                q
            }
        } else {
            // Truncating division, like C.
            num / s + 1
        };
        (out >= 0).then_some((out, head, tail))
    }

    /// Direct NCHW reference: X `[N, C, D..]` → Y `[N, C, O..]`.
    fn reference(op: &str, since: i32, c: &Case, xs: &[usize], x: &[f32]) -> Option<(Vec<usize>, Vec<f32>)> {
        let nd = c.kernel.len();
        let (n, ch, sp) = (xs[0], xs[1], &xs[2..]);
        let mut outs = vec![];
        let mut heads = vec![];
        let mut tails = vec![];
        for (d, &size) in sp.iter().enumerate() {
            let (o, h, t) = ref_dim(c, d, size as i64)?;
            outs.push(o as usize);
            heads.push(h);
            tails.push(t);
        }
        let clipped = c.ceil_mode || since >= 19 || c.dilations.iter().any(|&d| d != 1);
        let opix: usize = outs.iter().product();
        let ipix: usize = sp.iter().product();
        let mut y = vec![0f32; n * ch * opix];
        for b in 0..n {
            for cc in 0..ch {
                for p in 0..opix {
                    // Unravel the output pixel, then walk every kernel tap.
                    let mut rem = p;
                    let mut o = vec![0usize; nd];
                    for d in (0..nd).rev() {
                        o[d] = rem % outs[d];
                        rem /= outs[d];
                    }
                    let ktaps: usize = c.kernel.iter().product();
                    let (mut max, mut sum, mut count) = (f32::MIN, 0f32, 0usize);
                    let mut saw_nan = false;
                    for t in 0..ktaps {
                        let mut idx = 0usize;
                        let mut inside = true;
                        for d in 0..nd {
                            let j = (t / c.kernel[d + 1..].iter().product::<usize>()) % c.kernel[d];
                            let pos = o[d] as i64 * c.strides[d] as i64 - heads[d] + j as i64 * c.dilations[d] as i64;
                            if pos < 0 || pos >= sp[d] as i64 {
                                inside = false;
                            }
                            idx = idx * sp[d] + pos.max(0) as usize;
                        }
                        if inside {
                            let v = x[(b * ch + cc) * ipix + idx];
                            saw_nan |= v.is_nan();
                            max = max.max(v);
                            sum += v;
                            count += 1;
                        }
                    }
                    let divisor: i64 = if !c.count_include_pad {
                        count as i64
                    } else if clipped {
                        (0..nd)
                            .map(|d| {
                                let (k, dil) = (c.kernel[d] as i64, c.dilations[d] as i64);
                                let start = o[d] as i64 * c.strides[d] as i64 - heads[d];
                                let end = (start + k * dil).min(sp[d] as i64 + tails[d]);
                                1 + (end - start - 1) / dil
                            })
                            .product()
                    } else {
                        c.kernel.iter().product::<usize>() as i64
                    };
                    y[(b * ch + cc) * opix + p] = match op {
                        "MaxPool" if saw_nan => f32::NAN,
                        "MaxPool" => max,
                        _ if count == 0 => 0.0,
                        _ => sum / divisor as f32,
                    };
                }
            }
        }
        let mut ys = vec![n, ch];
        ys.extend(outs);
        Some((ys, y))
    }

    /// NCHW ↔ NHWC.
    fn to_nhwc(x: &[f32], s: &[usize]) -> (Vec<usize>, Vec<f32>) {
        let (n, c, p) = (s[0], s[1], numel(&s[2..]));
        let mut y = vec![0.0; x.len()];
        for b in 0..n {
            for cc in 0..c {
                for q in 0..p {
                    y[(b * p + q) * c + cc] = x[(b * c + cc) * p + q];
                }
            }
        }
        let mut shape = vec![n];
        shape.extend_from_slice(&s[2..]);
        shape.push(c);
        (shape, y)
    }

    fn to_nchw(y: &[f32], s: &[usize]) -> (Vec<usize>, Vec<f32>) {
        let r = s.len();
        let (n, c, p) = (s[0], s[r - 1], numel(&s[1..r - 1]));
        let mut x = vec![0.0; y.len()];
        for b in 0..n {
            for cc in 0..c {
                for q in 0..p {
                    x[(b * c + cc) * p + q] = y[(b * p + q) * c + cc];
                }
            }
        }
        let mut shape = vec![n, c];
        shape.extend_from_slice(&s[1..r - 1]);
        (shape, x)
    }

    /// Run the node on NCHW data in both layouts — channels-first directly, channels-last through conversions —
    /// and check they agree; the channels-first result (or error).
    fn run_nchw(pool: &Pool, xs: &[usize], x: &[f32]) -> Result<(Vec<usize>, Vec<f32>)> {
        let last = Pool { window: pool.window.clone(), nhwc: true, ..*pool };
        let (hs, h) = to_nhwc(x, xs);
        let mut out = VecOut(vec![]);
        let converted = last.run(&[Some(TensorView { shape: &hs, data: &h })], &mut out, &SerialExecutor).map(|()| {
            let (ys, y) = &out.0[0];
            to_nchw(y, ys)
        });
        let first = Pool { window: pool.window.clone(), nhwc: false, ..*pool };
        let mut out = VecOut(vec![]);
        let direct =
            first.run(&[Some(TensorView { shape: xs, data: x })], &mut out, &SerialExecutor).map(|()| out.0[0].clone());
        match (&direct, &converted) {
            (Ok((ds, d)), Ok((cs, c))) => {
                assert_eq!(ds, cs, "channels-first and channels-last shapes");
                assert_same(d, c, "channels-first against channels-last");
            }
            (Err(_), Err(_)) => {}
            _ => panic!("the layouts disagree: channels-first {direct:?}, channels-last {converted:?}"),
        }
        direct
    }

    fn assert_same(got: &[f32], want: &[f32], what: &str) {
        assert_eq!(got.len(), want.len(), "{what}");
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            let ok =
                (g.is_nan() && w.is_nan()) || g == w || (w.is_finite() && (g - w).abs() <= 1e-5 * w.abs().max(1.0));
            assert!(ok, "{what}: element {i}: got {g}, want {w}");
        }
    }

    fn check_case(op: &str, since: i32, c: &Case, xs: &[usize], rng: &mut Lcg) {
        let node = case_node(op, since, c);
        check(&node).unwrap_or_else(|e| panic!("{e}"));
        let pool = Pool::build(&node).unwrap();
        let x = rng.vec(numel(xs));
        let what = format!("{op}-{since} {c:?} X {xs:?}");
        match reference(op, since, c, xs, &x) {
            Some((ws, want)) => {
                let (gs, got) = run_nchw(&pool, xs, &x).unwrap_or_else(|e| panic!("{what}: {}", e.message));
                assert_eq!(gs, ws, "{what}");
                assert_same(&got, &want, &what);
            }
            None => {
                let e = run_nchw(&pool, xs, &x).expect_err(&what);
                assert!(e.message.contains("too small"), "{what}: {}", e.message);
            }
        }
    }

    #[test]
    fn windowed_pools_match_direct_reference() {
        let mut rng = Lcg(7);
        let shapes_2d: &[[usize; 2]] = &[[1, 1], [2, 2], [5, 5], [7, 7], [6, 9], [13, 11], [3, 17]];
        let channels = [1, 3, 17, 64, 67];
        let mut n_cases = 0;
        for (ki, kernel) in [[1, 1], [2, 2], [3, 3], [3, 2], [1, 4]].into_iter().enumerate() {
            for strides in [[1, 1], [2, 2], [3, 1], [2, 3]] {
                for dilations in [[1, 1], [2, 2], [1, 3]] {
                    for auto_pad in ["NOTSET", "VALID", "SAME_UPPER", "SAME_LOWER"] {
                        if auto_pad.starts_with("SAME") && kernel.iter().zip(&strides).any(|(k, s)| k < s) {
                            continue;
                        }
                        for ceil_mode in [false, true] {
                            for cip in [false, true] {
                                let pads = match auto_pad {
                                    "NOTSET" => (0..4).map(|i| (i + ki) % kernel[i % 2]).collect(),
                                    _ => vec![0; 4],
                                };
                                let c = Case {
                                    kernel: kernel.to_vec(),
                                    strides: strides.to_vec(),
                                    dilations: dilations.to_vec(),
                                    pads,
                                    auto_pad,
                                    ceil_mode,
                                    count_include_pad: cip,
                                };
                                let sp = shapes_2d[n_cases % shapes_2d.len()];
                                let ch = channels[n_cases % channels.len()];
                                let xs = [1 + n_cases % 2, ch, sp[0], sp[1]];
                                n_cases += 1;
                                let dilated = dilations.iter().any(|&d| d != 1);
                                check_case("MaxPool", 12, &c, &xs, &mut rng);
                                check_case("AveragePool", 19, &c, &xs, &mut rng);
                                if !dilated {
                                    check_case("AveragePool", 11, &c, &xs, &mut rng);
                                }
                            }
                        }
                    }
                }
            }
        }
        assert!(n_cases > 500, "{n_cases}");
    }

    #[test]
    fn rank_1_and_3_match_direct_reference() {
        let mut rng = Lcg(11);
        let cases = [
            (vec![3], vec![2], vec![1], vec![1, 2], "NOTSET", true),
            (vec![4], vec![3], vec![2], vec![0, 3], "NOTSET", false),
            (vec![2], vec![1], vec![3], vec![1, 1], "NOTSET", false),
            (vec![5], vec![5], vec![1], vec![0, 0], "SAME_LOWER", true),
            (vec![2, 3, 2], vec![2, 2, 3], vec![1, 1, 1], vec![1, 0, 1, 1, 2, 1], "NOTSET", true),
            (vec![2, 3, 2], vec![2, 2, 3], vec![2, 1, 2], vec![1, 0, 1, 1, 2, 1], "NOTSET", true),
            (vec![3, 1, 2], vec![1, 1, 2], vec![1, 1, 1], vec![0; 6], "SAME_UPPER", false),
            (vec![2, 2, 2], vec![1, 1, 1], vec![1, 1, 1], vec![0; 6], "VALID", false),
        ];
        for (kernel, strides, dilations, pads, auto_pad, ceil_mode) in cases {
            for cip in [false, true] {
                let c = Case {
                    kernel: kernel.clone(),
                    strides: strides.clone(),
                    dilations: dilations.clone(),
                    pads: pads.clone(),
                    auto_pad,
                    ceil_mode,
                    count_include_pad: cip,
                };
                for (i, ch) in [1usize, 3, 17, 64].into_iter().enumerate() {
                    let mut xs = vec![1 + i % 2, ch];
                    xs.extend(kernel.iter().enumerate().map(|(d, _)| [9, 5, 7, 1][(d + i) % 4]));
                    check_case("MaxPool", 12, &c, &xs, &mut rng);
                    check_case("AveragePool", 22, &c, &xs, &mut rng);
                    if dilations.iter().all(|&d| d == 1) {
                        check_case("AveragePool", 10, &c, &xs, &mut rng);
                    }
                }
            }
        }
    }

    fn simple(kernel: &[usize], strides: &[usize], pads: &[usize], ceil_mode: bool, cip: bool) -> Case {
        let nd = kernel.len();
        Case {
            kernel: kernel.to_vec(),
            strides: strides.to_vec(),
            dilations: vec![1; nd],
            pads: pads.to_vec(),
            auto_pad: "NOTSET",
            ceil_mode,
            count_include_pad: cip,
        }
    }

    /// Output shapes and values ORT 1.31's CPU EP produced (printed by /tmp/w/pool_ort_check.py and probes).
    #[test]
    fn ort_observed_shapes_and_divisors() {
        let shape = |op: &str, since: i32, c: &Case, sp: &[usize]| -> Vec<usize> {
            let pool = Pool::build(&case_node(op, since, c)).unwrap();
            let mut xs = vec![1];
            xs.extend_from_slice(sp);
            xs.push(2);
            pool.geometry(&xs).map(|(_, s)| s[1..s.len() - 1].to_vec()).unwrap()
        };
        // ceil_mode drops a last window that would start in the trailing padding.
        assert_eq!(shape("MaxPool", 12, &simple(&[2, 2], &[2, 2], &[1, 1, 1, 1], true, false), &[5, 5]), [3, 3]);
        assert_eq!(shape("MaxPool", 12, &simple(&[2, 2], &[3, 3], &[1, 1, 1, 1], true, false), &[4, 4]), [2, 2]);
        assert_eq!(shape("MaxPool", 12, &simple(&[2, 2], &[2, 2], &[1, 1, 1, 1], true, false), &[2, 2]), [2, 2]);
        assert_eq!(shape("AveragePool", 11, &simple(&[3, 2], &[3, 2], &[2, 1, 0, 1], true, true), &[8, 7]), [4, 4]);
        assert_eq!(shape("AveragePool", 11, &simple(&[3], &[2], &[1, 2], true, true), &[9]), [5]);
        assert_eq!(
            shape("MaxPool", 12, &simple(&[2, 3, 2], &[2, 2, 3], &[1, 0, 1, 1, 1, 1], true, false), &[5, 6, 7]),
            [3, 3, 3]
        );
        // The window may hang past the input (trunc(-1 / 2) = 0 → one output); one smaller gives an empty output.
        assert_eq!(shape("MaxPool", 12, &simple(&[4, 2], &[2, 1], &[0; 4], false, false), &[3, 5]), [1, 4]);
        assert_eq!(shape("MaxPool", 12, &simple(&[4, 2], &[1, 1], &[0; 4], false, false), &[3, 5]), [0, 4]);

        // Include-pad divisors on an all-ones input: ORT's MLAS path (AveragePool-11, no ceil_mode) divides by the
        // full 4×2 kernel over a 3-row input (6 taps → 0.75); AveragePool-19 and ceil_mode clip it (→ 1.0).
        let ones = |since: i32, c: &Case, sp: &[usize]| -> Vec<f32> {
            let pool = Pool::build(&case_node("AveragePool", since, c)).unwrap();
            let mut xs = vec![1, 1];
            xs.extend_from_slice(sp);
            let x = vec![1.0; numel(&xs)];
            run_nchw(&pool, &xs, &x).unwrap().1
        };
        let c = simple(&[4, 2], &[2, 1], &[0; 4], false, true);
        assert_eq!(ones(11, &c, &[3, 5]), vec![0.75; 4]);
        assert_eq!(ones(19, &c, &[3, 5]), vec![1.0; 4]);
        assert_eq!(ones(11, &simple(&[4, 2], &[2, 1], &[0; 4], true, true), &[3, 5]), vec![1.0; 4]);
        // 1-D: in 2, kernel 4, stride 4, pads 1/0: taps −1..2, clipped divisor min(3, 2) − (−1) = 3 over 2 values.
        let got = ones(19, &simple(&[4], &[4], &[1, 0], false, true), &[2]);
        assert_close(&got, &[2.0 / 3.0]);
        // 6×6, 3×3 stride 2, pads 1, ceil_mode (out 4×4): the first window holds 2×2 values of 3×3 counted taps;
        // the last starts at 5 and counts taps 5, 6 (6 = the end pad; 7 hangs past it) per dim: 1 value over 2×2.
        let got = ones(11, &simple(&[3, 3], &[2, 2], &[1, 1, 1, 1], true, true), &[6, 6]);
        assert_close(&got[..1], &[4.0 / 9.0]);
        assert_close(&got[15..], &[0.25]);
    }

    /// ORT's own outputs: `ASYMO_POOL_VECTORS=/tmp/w/pool_vectors.json cargo test --release --lib matches_ort_vectors
    /// -- --ignored`, the file written by `pool_ort_check.py vectors` (random NCHW cases run on ORT's CPU EP).
    #[test]
    #[ignore = "needs vectors generated with onnxruntime"]
    fn matches_ort_vectors() {
        let Ok(path) = std::env::var("ASYMO_POOL_VECTORS") else { return };
        let text = std::fs::read_to_string(&path).unwrap();
        let cases: Vec<serde_json::Value> = serde_json::from_str(&text).unwrap();
        let usizes = |v: &serde_json::Value| -> Vec<usize> {
            v.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect()
        };
        let floats = |v: &serde_json::Value| -> Vec<f32> {
            v.as_array().unwrap().iter().map(|x| x.as_f64().map_or(f32::NAN, |f| f as f32)).collect()
        };
        let mut checked = 0;
        for (i, case) in cases.iter().enumerate() {
            let op = case["op"].as_str().unwrap();
            let xs = usizes(&case["x_shape"]);
            let x = floats(&case["x"]);
            let mut attrs = vec![];
            if let Some(a) = case.get("attrs").and_then(|a| a.as_object()) {
                for (k, v) in a {
                    let val = match v {
                        serde_json::Value::String(s) => AttrValue::String(s.clone()),
                        serde_json::Value::Array(_) => AttrValue::Ints(usizes(v).iter().map(|&x| x as i64).collect()),
                        _ => AttrValue::Int(v.as_i64().unwrap()),
                    };
                    attrs.push((k.as_str(), val));
                }
            }
            let n = node(op, case["opset"].as_i64().unwrap() as i32, NHWC_DOMAIN, attrs, xs.len());
            let what = format!("case {i}: {op} {:?} X {xs:?}", case.get("attrs"));
            check(&n).unwrap_or_else(|e| panic!("{what}: refused: {e}"));
            let got = run_nchw(&Pool::build(&n).unwrap(), &xs, &x);
            if case.get("error").is_some() {
                assert!(got.is_err(), "{what}: ORT failed, we did not");
                continue;
            }
            let (gs, gy) = got.unwrap_or_else(|e| panic!("{what}: {}", e.message));
            assert_eq!(gs, usizes(&case["y_shape"]), "{what}");
            assert_same(&gy, &floats(&case["y"]), &what);
            checked += 1;
        }
        assert!(checked > 0);
    }

    #[test]
    fn global_pools() {
        let mut rng = Lcg(3);
        for xs in [vec![2, 5, 3, 4], vec![1, 64, 1, 1], vec![1, 67, 7], vec![2, 3, 2, 3, 4]] {
            let x = rng.vec(numel(&xs));
            for (op, max) in [("GlobalMaxPool", true), ("GlobalAveragePool", false)] {
                let pool = Pool::build(&node(op, 1, NHWC_DOMAIN, vec![], xs.len())).unwrap();
                let (ys, y) = run_nchw(&pool, &xs, &x).unwrap();
                let mut want_shape = xs[..2].to_vec();
                want_shape.extend(std::iter::repeat_n(1, xs.len() - 2));
                assert_eq!(ys, want_shape);
                let p = numel(&xs[2..]);
                let want: Vec<f32> = x
                    .chunks(p)
                    .map(|c| {
                        if max {
                            c.iter().copied().fold(f32::MIN, f32::max)
                        } else {
                            c.iter().sum::<f32>() / p as f32
                        }
                    })
                    .collect();
                assert_close(&y, &want);
            }
        }
    }

    #[test]
    fn nan_propagates() {
        // ORT: AveragePool propagates NaN through sums; MaxPool keeps or drops it by position (we always keep it).
        let xs = [1, 2, 4, 4];
        let mut x: Vec<f32> = (0..32).map(|v| v as f32).collect();
        x[5] = f32::NAN;
        for op in ["MaxPool", "AveragePool"] {
            let pool = Pool::build(&case_node(op, 19, &simple(&[2, 2], &[1, 1], &[0; 4], false, false))).unwrap();
            let (_, y) = run_nchw(&pool, &xs, &x).unwrap();
            // Channel 0, windows containing (1,1): outputs (0,0), (0,1), (1,0), (1,1); channel 1 has no NaN.
            for (i, v) in y.iter().enumerate() {
                assert_eq!(v.is_nan(), [0, 1, 3, 4].contains(&i), "{op} output {i} = {v}");
            }
        }
        for op in ["GlobalMaxPool", "GlobalAveragePool"] {
            let pool = Pool::build(&node(op, 1, NHWC_DOMAIN, vec![], 4)).unwrap();
            let (_, y) = run_nchw(&pool, &xs, &x).unwrap();
            assert!(y[0].is_nan() && y[1] == if op == "GlobalMaxPool" { 31.0 } else { 23.5 }, "{op}: {y:?}");
        }
    }

    #[test]
    fn check_claims_and_refuses() {
        let k = |v: &[usize]| ("kernel_shape", ints(v));
        let ok = |n: &NodeDesc| check(n).unwrap_or_else(|e| panic!("{e}"));
        let refused = |n: &NodeDesc, why: &str| {
            let e = check(n).expect_err(why);
            assert!(e.contains(why), "{e}");
        };
        // Both layouts are claimed (the NCHW pass comes first).
        for domain in ["", NHWC_DOMAIN] {
            ok(&node("MaxPool", 12, domain, vec![k(&[3, 3])], 4));
            ok(&node("GlobalAveragePool", 1, domain, vec![], 5));
        }
        refused(&node("MaxPool", 12, "com.other", vec![k(&[3, 3])], 4), "domain");
        refused(&node("MaxPool", 12, "", vec![], 4), "kernel_shape is required");
        refused(&node("MaxPool", 12, "", vec![k(&[2, 2, 2, 2])], 6), "1–3 spatial dims");
        refused(&node("MaxPool", 12, "", vec![k(&[3, 3])], 5), "rank 5");
        refused(&node("GlobalMaxPool", 1, "", vec![], 2), "rank ≥ 3");
        refused(&node("MaxPool", 12, "", vec![k(&[3, 3]), ("strides", ints(&[1]))], 4), "strides");
        refused(&node("MaxPool", 12, "", vec![k(&[3, 3]), ("pads", ints(&[0, 3, 0, 0]))], 4), "smaller than kernel");
        refused(
            &node(
                "MaxPool",
                12,
                "",
                vec![k(&[3]), ("pads", ints(&[0, 0])), ("auto_pad", AttrValue::String("VALID".into()))],
                3,
            ),
            "auto_pad together with pads",
        );
        refused(
            &node(
                "MaxPool",
                12,
                "",
                vec![k(&[1]), ("strides", ints(&[2])), ("auto_pad", AttrValue::String("SAME_UPPER".into()))],
                3,
            ),
            "smaller than its stride",
        );
        refused(&node("AveragePool", 11, "", vec![k(&[3]), ("dilations", ints(&[2]))], 3), "dilations");
        ok(&node("AveragePool", 19, "", vec![k(&[3]), ("dilations", ints(&[2]))], 3));
        refused(&node("MaxPool", 8, "", vec![k(&[3]), ("ceil_mode", AttrValue::Int(1))], 3), "ceil_mode");
        refused(&node("AveragePool", 1, "", vec![k(&[3])], 3), "AveragePool-1");
        let mut with_indices = node("MaxPool", 12, NHWC_DOMAIN, vec![k(&[2])], 3);
        with_indices.outputs.push(value("I", &[]));
        refused(&with_indices, "Indices");
        let mut constant_x = node("MaxPool", 12, NHWC_DOMAIN, vec![k(&[2])], 3);
        constant_x.inputs[0] =
            super::super::test_util::constant("X", super::super::Tensor { shape: vec![1, 1, 2], data: vec![1.0, 2.0] });
        refused(&constant_x, "constant");
        // An omitted optional Indices output is fine.
        let mut omitted = node("MaxPool", 12, NHWC_DOMAIN, vec![k(&[2])], 3);
        omitted.outputs.push(None);
        ok(&omitted);
        // A node ORT left channels-first runs channels-first.
        let pool = Pool::build(&node("MaxPool", 12, "", vec![k(&[2])], 3)).unwrap();
        let (x, mut out) = ([1.0, 5.0, 2.0, 3.0, 4.0, 0.0], VecOut(vec![]));
        pool.run(&[Some(TensorView { shape: &[1, 2, 3], data: &x })], &mut out, &SerialExecutor).unwrap();
        assert_eq!(out.0[0], (vec![1, 2, 2], vec![5.0, 5.0, 4.0, 4.0]));
    }

    #[test]
    fn shape_errors_name_the_problem() {
        let pool = Pool::build(&node("MaxPool", 12, NHWC_DOMAIN, vec![("kernel_shape", ints(&[3, 3]))], 4)).unwrap();
        let run = |xs: &[usize], len: usize| {
            let x = vec![0.0; len];
            let mut out = VecOut(vec![]);
            pool.run(&[Some(TensorView { shape: xs, data: &x })], &mut out, &SerialExecutor).unwrap_err().message
        };
        assert!(run(&[1, 4, 3], 12).contains("expected rank 4"));
        let e = run(&[1, 1, 4, 3], 12);
        assert!(e.contains("too small") && e.contains("spatial dim 0"), "{e}");
        assert!(run(&[1, 0, 4, 3], 0).contains("only the batch"));
        assert!(run(&[1, 4, 4, 3], 5).contains("has 5 values"));
        let mut out = VecOut(vec![]);
        assert!(pool.run(&[None], &mut out, &SerialExecutor).unwrap_err().message.contains("missing"));
        // A zero batch gives an empty output.
        let mut out = VecOut(vec![]);
        pool.run(&[Some(TensorView { shape: &[0, 4, 4, 3], data: &[] })], &mut out, &SerialExecutor).unwrap();
        assert_eq!(out.0[0].0, vec![0, 2, 2, 3]);
        // Channels-first: the layout is named and the axis counts N and C.
        let pool = Pool::build(&node("MaxPool", 12, "", vec![("kernel_shape", ints(&[3, 3]))], 4)).unwrap();
        let mut out = VecOut(vec![]);
        let x = [0.0; 12];
        let e =
            pool.run(&[Some(TensorView { shape: &[1, 3, 4, 1], data: &x })], &mut out, &SerialExecutor).unwrap_err();
        assert!(e.message.contains("channels-first") && e.message.contains("spatial dim 1 (axis 3)"), "{}", e.message);
        let e = pool.run(&[Some(TensorView { shape: &[1, 12, 1], data: &x })], &mut out, &SerialExecutor).unwrap_err();
        assert!(e.message.contains("expected rank 4 (2-D kernel_shape)"), "{}", e.message);
    }
}
