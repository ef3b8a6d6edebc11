//! Depthwise convolution (group = C_in, channel multiplier allowed), any rank ≥ 1, any pads/strides/dilations.
//!
//! Three paths, all vectorized through the tier's target features, the epilogue applied to each finished channel
//! row (bias is the accumulators' initial value):
//! - **direct 3×3** (AVX-512; 2-D 3×3, stride 1 or 2, dilation 1 — MobileNet's layers): each output row computed
//!   straight from the input rows through lane masks (padding is masked-off lanes), no copy of the plane;
//! - **plane** (1-D / 2-D, the default): each input plane is copied once into a zero-padded buffer split into its
//!   row- and column-stride phases, so every tap of every output is one constant offset from the output's
//!   position in a virtual row of pitch `wq` — any stride, dilation and padding — and the whole plane is one
//!   row-kernel call per channel. The row kernel keeps 32 (then 8, 1) outputs in registers across all taps
//!   (AVX-512: 64, four accumulators, and a masked tail).
//! - **general** (rank ≥ 3, or planes too large for the padded copy): per output row, the taps are listed once
//!   (those whose outer position falls in the padding dropped), strides handled by phase-splitting the input rows;
//!   the interior runs through the row kernel, the few border outputs are scalar.

use super::arch::fma;
use super::gemm::check_epilogue;
use super::isa::{selected_isa, Isa};
use super::pack::unravel;
use super::{ConvGeometry, FusedOp, MatMut, Scratch};
use std::ops::Range;

/// One tap of an output row: `w · base[o + off]`, valid for `0 ≤ o + off < len`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Tap {
    pub(crate) base: *const f32,
    pub(crate) off: isize,
    pub(crate) len: usize,
    pub(crate) w: f32,
}

// SAFETY: a Tap is a plain description (pointer + numbers) only dereferenced by the thread that built it, while the
// buffer it points to is borrowed; it is Send so `Scratch` (which caches the Vec's allocation) stays Send.
unsafe impl Send for Tap {}

/// Depthwise convolution of one image over the output channels `channels`.
///
/// - `input`: `C_in × Π in_spatial` (`geometry.channels = C_in`), contiguous;
/// - `weights`: `C_out × Π kernel` with `C_out = C_in · multiplier`; output channel `oc` reads input channel
///   `oc / multiplier`;
/// - `bias`: `C_out` values or `None`;
/// - `out`: `C_out × Π out_spatial` (a row per output channel; workers own disjoint channel ranges);
/// - `epilogue`: applied after the bias, element (i, j) = (output channel, flat output position).
///
/// Panics on inconsistent shapes.
#[allow(clippy::too_many_arguments)]
pub fn depthwise_conv(
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    geometry: &ConvGeometry,
    multiplier: usize,
    out: MatMut<'_>,
    channels: Range<usize>,
    epilogue: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    depthwise_on(
        selected_isa(),
        DwPath::Auto,
        input,
        weights,
        bias,
        geometry,
        multiplier,
        out,
        channels,
        epilogue,
        scratch,
    )
}

/// Which depthwise algorithm runs (tests force each one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DwPath {
    /// The tier's direct 3×3 kernel where it applies, else the padded phase-split plane for 1-D/2-D (when it
    /// fits), else general.
    Auto,
    /// As `Auto` without the direct 3×3 kernel.
    #[cfg_attr(not(test), allow(dead_code))]
    Plane,
    #[cfg_attr(not(test), allow(dead_code))]
    General,
}

/// [`depthwise_conv`] on a given tier and path.
#[allow(clippy::too_many_arguments)]
pub(crate) fn depthwise_on(
    isa: Isa,
    path: DwPath,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    geometry: &ConvGeometry,
    multiplier: usize,
    out: MatMut<'_>,
    channels: Range<usize>,
    epilogue: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    let g = geometry;
    let nd = g.checked_rank("depthwise");
    assert!(multiplier >= 1, "multiplier ≥ 1");
    let c_out = g.channels * multiplier;
    let taps: usize = g.kernel.iter().product();
    let in_plane: usize = g.in_spatial.iter().product();
    let out_plane = g.n();
    assert!(input.len() >= g.in_size(), "depthwise input too short");
    assert!(weights.len() >= c_out * taps, "depthwise weights too short");
    assert!(bias.is_none_or(|b| b.len() >= c_out), "depthwise bias too short");
    assert!(out.rows == c_out && out.cols == out_plane, "depthwise output shape");
    assert!(channels.start <= channels.end && channels.end <= c_out, "channels outside C_out");
    check_epilogue(epilogue, out.rows, out.cols);
    if out_plane == 0 {
        return;
    }
    let ks = isa.kernels();
    if nd <= 2 && path != DwPath::General {
        let p = Plane2d::new(g);
        if let (Some(f), Some(d), DwPath::Auto, 1) = (ks.dw3x3, direct_3x3(&p), path, out.cs) {
            return planes_3x3(ks, f, &d, input, weights, bias, multiplier, out, channels, epilogue);
        }
        if p.phases_len() <= 1 << 22 && p.sw <= MAX_PLANE_STRIDE && p.sh <= MAX_PLANE_STRIDE {
            return plane_2d(ks, &p, input, weights, bias, multiplier, out, channels, epilogue, scratch);
        }
    }
    let last = nd - 1;
    let (w_out, w_in) = (g.out_spatial[last], g.in_spatial[last]);
    let (s, dil, pad) = (g.strides[last], g.dilations[last] as isize, g.pads_begin[last] as isize);
    let outer_taps = taps / g.kernel[last];
    let phase_len = w_in.div_ceil(s);
    let Scratch { v1: phases, out: rowbuf, taps: tap_list, .. } = scratch;
    let phases = phases.get(if s > 1 { outer_taps * s * phase_len } else { 0 });
    let rowbuf = rowbuf.get(w_out);
    // Outer kernel offsets of each outer tap u, flattened [u][d] (computed once per call).
    let mut koff = [0isize; 8 * 64];
    let mut kidx = [0usize; 8];
    let outer_list = outer_taps <= 64;
    if outer_list {
        for u in 0..outer_taps {
            unravel(u * g.kernel[last], &g.kernel, &mut kidx[..nd]);
            for d in 0..last {
                koff[u * 8 + d] = (kidx[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize;
            }
        }
    }
    let mut oidx = [0usize; 8];
    for oc in channels {
        let plane = &input[(oc / multiplier) * in_plane..][..in_plane];
        let wk = &weights[oc * taps..(oc + 1) * taps];
        let init = bias.map_or(0.0, |b| b[oc]);
        oidx.fill(0);
        for orow in 0..out_plane / w_out {
            if orow > 0 {
                // Next output row: carry through the outer dimensions.
                let mut d = last;
                while d > 0 {
                    d -= 1;
                    oidx[d] += 1;
                    if oidx[d] < g.out_spatial[d] {
                        break;
                    }
                    oidx[d] = 0;
                }
            }
            tap_list.clear();
            for u in 0..outer_taps {
                // Outer kernel index u → input row (or padding).
                if !outer_list {
                    unravel(u * g.kernel[last], &g.kernel, &mut kidx[..nd]);
                    for d in 0..last {
                        koff[d] = (kidx[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize;
                    }
                }
                let ko = if outer_list { &koff[u * 8..u * 8 + 8] } else { &koff[..8] };
                let mut row = Some(0usize);
                for d in 0..last {
                    let pos = (oidx[d] * g.strides[d]) as isize + ko[d];
                    if pos < 0 || pos as usize >= g.in_spatial[d] {
                        row = None;
                        break;
                    }
                    row = row.map(|r| r * g.in_spatial[d] + pos as usize);
                }
                let Some(row) = row else { continue };
                let xrow = &plane[row * w_in..(row + 1) * w_in];
                if s > 1 {
                    let ph = &mut phases[u * s * phase_len..(u + 1) * s * phase_len];
                    for r in 0..s.min(w_in) {
                        let dst = &mut ph[r * phase_len..(r + 1) * phase_len];
                        for (d, &v) in dst.iter_mut().zip(xrow[r..].iter().step_by(s)) {
                            *d = v;
                        }
                    }
                }
                for kl in 0..g.kernel[last] {
                    let d = kl as isize * dil - pad;
                    let w = wk[u * g.kernel[last] + kl];
                    let tap = if s == 1 {
                        Tap { base: xrow.as_ptr(), off: d, len: w_in, w }
                    } else {
                        let r = d.rem_euclid(s as isize) as usize;
                        let len = if r < w_in { (w_in - r).div_ceil(s) } else { 0 };
                        let base = phases[(u * s + r) * phase_len..].as_ptr();
                        Tap { base, off: d.div_euclid(s as isize), len, w }
                    };
                    tap_list.push(tap);
                }
            }
            // Interior: outputs where every tap is in bounds.
            let (mut lo, mut hi) = (0isize, w_out as isize);
            for t in tap_list.iter() {
                lo = lo.max(-t.off);
                hi = hi.min(t.len as isize - t.off);
            }
            let (lo, hi) = if lo < hi { (lo as usize, hi as usize) } else { (0, 0) };
            let j0 = orow * w_out;
            let direct = out.cs == 1;
            let dst: *mut f32 = if direct {
                // SAFETY: row oc, columns j0 .. j0+w_out are inside `out` and owned by this call's channel range.
                unsafe { out.ptr_at(oc, j0) }
            } else {
                rowbuf.as_mut_ptr()
            };
            // SAFETY: dst holds w_out floats; every tap read in lo..hi is in bounds by construction.
            unsafe { (ks.dw_row)(lo, hi, tap_list, init, dst) };
            for o in (0..lo).chain(hi..w_out) {
                let mut y = init;
                for t in tap_list.iter() {
                    let q = o as isize + t.off;
                    if q >= 0 && (q as usize) < t.len {
                        // SAFETY: q is inside the tap's row (or phase) of len floats.
                        y += t.w * unsafe { *t.base.offset(q) };
                    }
                }
                // SAFETY: o < w_out.
                unsafe { *dst.add(o) = y };
            }
            if !epilogue.is_empty() {
                // SAFETY: one contiguous row of w_out floats at (oc, j0).
                unsafe { (ks.epilogue)(dst, 0, 1, w_out, oc, j0, epilogue) };
            }
            if !direct {
                for (t, &v) in rowbuf.iter().enumerate() {
                    // SAFETY: (oc, j0 + t) is inside `out` and owned by this call.
                    unsafe { *out.ptr_at(oc, j0 + t) = v };
                }
            }
        }
    }
}

/// The direct 3×3 kernel's view of the plane `p`: 2-D, 3×3, dilation 1, the same stride 1 or 2 on both axes,
/// leading pads ≤ 2 (trailing pads are implied by the output size; positions past the input read as zero).
/// Stride-1 rows shorter than 12 outputs stay on the padded plane, which runs the whole plane as one row (measured
/// on MobileNetV1's 7×7 layer: 0.056 ms there against 0.065 ms direct row by row) — unless the plane is a small
/// "same" plane, which the direct kernel also runs as one flat row (masks from `Dw3x3::flat_masks`).
fn direct_3x3(p: &Plane2d) -> Option<super::arch::Dw3x3> {
    let fits = (p.kh, p.kw, p.dh, p.dw) == (3, 3, 1, 1) && p.sh == p.sw && p.sh <= 2 && p.ph <= 2 && p.pw <= 2;
    if !fits {
        return None;
    }
    let d = super::arch::Dw3x3::new(p.h, p.w, p.ho, p.wo, p.sh, p.ph, p.pw);
    (d.s == 2 || d.wo >= 12 || d.flat.is_some()).then_some(d)
}

/// Every channel of `channels` through the tier's direct 3×3 kernel, straight from the input plane into C's row:
/// the bias is the accumulators' start and a leading Relu / Clip of the epilogue is applied in registers; the
/// rest of the epilogue runs on each channel's row one channel later (read right behind the kernel's masked
/// stores, its loads could not be forwarded and would stall).
#[allow(clippy::too_many_arguments)]
fn planes_3x3(
    ks: &super::arch::KernelSet,
    f: super::arch::Dw3x3Fn,
    d: &super::arch::Dw3x3,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    multiplier: usize,
    out: MatMut<'_>,
    channels: Range<usize>,
    epilogue: &[FusedOp<'_>],
) {
    let (in_plane, out_plane) = (d.h * d.w, d.ho * d.wo);
    let (clamp, rest) = match epilogue.first() {
        Some(FusedOp::Relu) => (Some((0.0, f32::INFINITY)), &epilogue[1..]),
        Some(&FusedOp::Clip { lo, hi }) => (Some((lo, hi)), &epilogue[1..]),
        _ => (None, epilogue),
    };
    let finish = |oc: usize| {
        if !rest.is_empty() {
            // SAFETY: row oc of `out` (out_plane contiguous floats, cs = 1) is owned by this call.
            unsafe { (ks.epilogue)(out.ptr_at(oc, 0), 0, 1, out_plane, oc, 0, rest) };
        }
    };
    for oc in channels.clone() {
        let ic = oc / multiplier;
        let k: &[f32; 9] = weights[oc * 9..oc * 9 + 9].try_into().expect("3×3 weights");
        let x = &input[ic * in_plane..(ic + 1) * in_plane];
        // SAFETY: x holds the h × w input plane; row oc of `out` holds ho × wo contiguous floats (cs = 1) owned
        // by this call; the stride is 1 or 2 (`direct_3x3`).
        unsafe { f(d, x.as_ptr(), k, bias.map_or(0.0, |b| b[oc]), clamp, out.ptr_at(oc, 0)) };
        if oc > channels.start {
            finish(oc - 1);
        }
    }
    if let Some(last) = channels.clone().last() {
        finish(last);
    }
}

/// Largest stride (either axis) of the plane path (the general path takes larger ones).
const MAX_PLANE_STRIDE: usize = 16;

/// A 1-D or 2-D depthwise geometry seen as 2-D (1-D: one row), with the zero-padded input plane it reads.
struct Plane2d {
    h: usize,
    w: usize,
    ho: usize,
    wo: usize,
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    ph: usize,
    pw: usize,
    /// Rows of one row phase of the padded plane (`ceil(Hp / sh)`, `Hp` = the padded rows the outputs read).
    hq: usize,
    /// Columns of one column phase of the padded plane (`ceil(Wp / sw)`).
    wq: usize,
}

impl Plane2d {
    fn new(g: &ConvGeometry) -> Self {
        let two = g.kernel.len() == 2;
        let at = |v: &Vec<usize>, one: usize| if two { v[0] } else { one };
        let last = g.kernel.len() - 1;
        let (h, ho, kh, sh, dh, ph) = (
            at(&g.in_spatial, 1),
            at(&g.out_spatial, 1),
            at(&g.kernel, 1),
            at(&g.strides, 1),
            at(&g.dilations, 1),
            at(&g.pads_begin, 0),
        );
        let (w, wo, kw, sw, dw, pw) = (
            g.in_spatial[last],
            g.out_spatial[last],
            g.kernel[last],
            g.strides[last],
            g.dilations[last],
            g.pads_begin[last],
        );
        let hp = (ho - 1) * sh + (kh - 1) * dh + 1;
        let wp = (wo - 1) * sw + (kw - 1) * dw + 1;
        Plane2d { h, w, ho, wo, kh, kw, sh, sw, dh, dw, ph, pw, hq: hp.div_ceil(sh), wq: wp.div_ceil(sw) }
    }

    /// Rows of the padded plane the outputs read.
    fn hp(&self) -> usize {
        (self.ho - 1) * self.sh + (self.kh - 1) * self.dh + 1
    }

    /// Floats of the phase-split padded plane (`sh · sw` phases of `hq × wq`).
    fn phases_len(&self) -> usize {
        self.sh * self.sw * self.hq * self.wq
    }

    /// Outputs computed per channel: the whole output plane as one row at pitch `wq`, rounded up to whole
    /// 16-float chunks (the `wq − wo` extra columns per row and the tail are computed, never stored).
    fn span(&self) -> usize {
        ((self.ho - 1) * self.wq + self.wo).next_multiple_of(16)
    }
}

/// Copy `n` floats with fixed-size moves (overlapping tails), never a `memcpy` call: these rows are 7 to a few
/// hundred floats, where a library call per row costs more than the copy.
///
/// # Safety
/// `src` is readable and `dst` writable for `n` floats; the ranges do not overlap.
#[inline(always)]
unsafe fn copy_short(src: *const f32, dst: *mut f32, n: usize) {
    #[inline(always)]
    unsafe fn mv<const W: usize>(src: *const f32, dst: *mut f32) {
        // SAFETY: the caller checked that W floats are in bounds at both ends.
        unsafe { (dst as *mut [f32; W]).write_unaligned((src as *const [f32; W]).read_unaligned()) }
    }
    // SAFETY (all arms): every move covers floats inside 0..n.
    unsafe {
        if n >= 16 {
            let mut i = 0;
            while i + 16 <= n {
                mv::<16>(src.add(i), dst.add(i));
                i += 16;
            }
            if i < n {
                mv::<16>(src.add(n - 16), dst.add(n - 16));
            }
        } else if n >= 8 {
            mv::<8>(src, dst);
            mv::<8>(src.add(n - 8), dst.add(n - 8));
        } else if n >= 4 {
            mv::<4>(src, dst);
            mv::<4>(src.add(n - 4), dst.add(n - 4));
        } else {
            for i in 0..n {
                *dst.add(i) = *src.add(i);
            }
        }
    }
}

/// The 1-D / 2-D path. Per input channel, the zero-padded plane is built once, split into its `sh × sw` stride
/// phases (`Q[rp][cp][r][q] = P[r·sh + rp][q·sw + cp]`), so that output `(oh, ow)` and tap `(kh, kw)` read
/// phase `((kh·dh) mod sh, (kw·dw) mod sw)` at row `oh + kh·dh div sh`, column `ow + kw·dw div sw`: at virtual
/// position `t = oh·wq + ow`, every tap is one constant offset, whatever the strides, dilations and pads. One
/// vector-kernel call per channel computes the whole plane as one row; the valid columns are copied out and the
/// epilogue runs on the channel's row of C. The per-call work (phase row table, tap offsets, zeroed padding) is
/// done once for all channels of the call.
#[allow(clippy::too_many_arguments)]
fn plane_2d(
    ks: &super::arch::KernelSet,
    p: &Plane2d,
    input: &[f32],
    weights: &[f32],
    bias: Option<&[f32]>,
    multiplier: usize,
    out: MatMut<'_>,
    channels: Range<usize>,
    epilogue: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    let (taps, in_plane, out_plane) = (p.kh * p.kw, p.h * p.w, p.ho * p.wo);
    let qplane = p.hq * p.wq; // floats per phase
    let span = p.span();
    let Scratch { v0: fin, v1: padded, out: obuf, taps: tap_list, dw_offs, .. } = scratch;
    // Tap offsets from the virtual position, then (after `taps` entries) the copy plan of the input rows:
    // (source offset in the channel plane, destination offset in the phases, count) triples, one per input row
    // and column phase.
    dw_offs.clear();
    for kh in 0..p.kh {
        for kw in 0..p.kw {
            let (r, c) = (kh * p.dh, kw * p.dw);
            dw_offs.push(((r % p.sh) * p.sw + c % p.sw) * qplane + (r / p.sh) * p.wq + c / p.sw);
        }
    }
    let max_off = dw_offs.iter().copied().max().unwrap_or(0);
    // Rows of the padded plane that hold input: padded row ih + ph for input rows ih with ih + ph < Hp.
    let rows_used = p.h.min(p.hp().saturating_sub(p.ph));
    // Per column phase: first input column, first position, count (the same for every row).
    let mut phase_plan = [(0usize, 0usize, 0usize); MAX_PLANE_STRIDE];
    for (phase, plan) in phase_plan[..p.sw].iter_mut().enumerate() {
        let iw0 = (phase + p.sw - p.pw % p.sw) % p.sw;
        let q0 = (iw0 + p.pw) / p.sw;
        if iw0 < p.w && q0 < p.wq {
            *plan = (iw0, q0, (p.wq - q0).min((p.w - iw0).div_ceil(p.sw)));
        }
    }
    for ih in 0..rows_used {
        let r = ih + p.ph;
        let row_base = (r % p.sh) * p.sw * qplane + (r / p.sh) * p.wq;
        for (phase, &(iw0, q0, n)) in phase_plan[..p.sw].iter().enumerate() {
            if n > 0 {
                dw_offs.extend([ih * p.w + iw0, row_base + phase * qplane + q0, n]);
            }
        }
    }
    let (tap_offs, copies) = dw_offs.split_at(taps);
    // Two padded planes and two output buffers, used alternately: a plane is filled one channel before it is
    // read, and a channel's outputs are copied out one channel after they were computed. Read right behind the
    // narrow (masked, overlapping) stores that wrote them, those loads cannot be forwarded from the store buffer
    // and stall; one channel of work in between hides that (measured: on 7×7 planes the stalls cost more than the
    // convolution). Vector chunks read up to `span − 1 + max_off`; the padding positions are never written, so
    // zeroing once per call is enough.
    let plen = (p.phases_len().max(span + max_off) + 16).next_multiple_of(16);
    let padded = padded.get(2 * plen);
    padded.fill(0.0);
    let obuf = obuf.get(2 * span);
    // Ops that do not read the column run on the kernel's buffer (the row copies then move finished values).
    let epilogue_in_buffer = !epilogue.is_empty() && !epilogue.iter().any(FusedOp::uses_column);
    let fin = fin.get(if out.cs == 1 { 0 } else { out_plane });
    // Input channel held by each padded plane (plane ic % 2 holds channel ic).
    let mut held = [usize::MAX; 2];
    let mut fill = |ic: usize, padded: &mut [f32]| {
        let slot = ic % 2;
        if held[slot] != ic {
            let x = &input[ic * in_plane..(ic + 1) * in_plane];
            let plane = &mut padded[slot * plen..(slot + 1) * plen];
            // SAFETY: each triple was built above from this geometry: source row ih from column iw0, n ≤
            // ceil((w − iw0) / sw) elements at stride sw (inside the row), destination n floats inside one phase
            // row of the plane.
            unsafe { (ks.dw_fill)(copies, p.sw, x.as_ptr(), plane.as_mut_ptr(), ks.stride2) };
            held[slot] = ic;
        }
    };
    // Copy channel oc's outputs (buffer `buf`) into C, then its epilogue if that must run there.
    let store = |oc: usize, buf: &[f32], fin: &mut [f32]| {
        let dst: *mut f32 = if out.cs == 1 {
            // SAFETY: row oc of `out` (out_plane contiguous floats) is owned by this call.
            unsafe { out.ptr_at(oc, 0) }
        } else {
            fin.as_mut_ptr()
        };
        for oh in 0..p.ho {
            // SAFETY: buf row oh holds wo computed floats at oh·wq; dst holds out_plane floats.
            unsafe { copy_short(buf[oh * p.wq..].as_ptr(), dst.add(oh * p.wo), p.wo) };
        }
        if !epilogue.is_empty() && !epilogue_in_buffer {
            // SAFETY: dst holds the channel's out_plane contiguous floats.
            unsafe { (ks.epilogue)(dst, 0, 1, out_plane, oc, 0, epilogue) };
        }
        if out.cs != 1 {
            for (j, &v) in fin[..out_plane].iter().enumerate() {
                // SAFETY: (oc, j) is inside `out` and owned by this call.
                unsafe { *out.ptr_at(oc, j) = v };
            }
        }
    };
    if let Some(first) = channels.clone().next() {
        fill(first / multiplier, padded);
    }
    for oc in channels.clone() {
        let ic = oc / multiplier;
        fill(ic, padded); // a no-op unless the plane was not prepared ahead
        if oc + 1 < channels.end && (oc + 1) / multiplier != ic {
            fill((oc + 1) / multiplier, padded);
        }
        let base = padded[(ic % 2) * plen..].as_ptr();
        let wk = &weights[oc * taps..(oc + 1) * taps];
        tap_list.clear();
        // SAFETY (pointer arithmetic): offsets < max_off < plen stay inside this plane.
        tap_list.extend(tap_offs.iter().zip(wk).map(|(&o, &w)| Tap {
            base: unsafe { base.add(o) },
            off: 0,
            len: usize::MAX,
            w,
        }));
        let buf = &mut obuf[(oc % 2) * span..][..span];
        // SAFETY: output t < span of tap i reads plane[offs[i] + t] < max_off + span < plen; buf holds span floats.
        unsafe { (ks.dw_row)(0, span, tap_list, bias.map_or(0.0, |b| b[oc]), buf.as_mut_ptr()) };
        if epilogue_in_buffer {
            // SAFETY: buf holds span floats; the ops read only the row index (oc), never the column.
            unsafe { (ks.epilogue)(buf.as_mut_ptr(), 0, 1, span, oc, 0, epilogue) };
        }
        if oc > channels.start {
            store(oc - 1, &obuf[((oc - 1) % 2) * span..][..span], fin);
        }
    }
    if let Some(last) = channels.clone().last() {
        store(last, &obuf[(last % 2) * span..][..span], fin);
    }
}

/// [`super::arch::DwFillFn`] (portable body).
///
/// # Safety
/// Every `(src, dst, n)` triple reads `x[src + t·sw]` and writes `padded[dst + t]` in bounds for `t < n`.
#[inline(always)]
pub(crate) unsafe fn fill_body(
    copies: &[usize],
    sw: usize,
    x: *const f32,
    padded: *mut f32,
    stride2: super::arch::Stride2Fn,
) {
    for c in copies.chunks_exact(3) {
        let (src, dst, n) = (c[0], c[1], c[2]);
        // SAFETY: the caller's contract, per triple.
        unsafe {
            let (s, d) = (x.add(src), padded.add(dst));
            match sw {
                1 => copy_short(s, d, n),
                2 => stride2(n, s, d),
                _ => (0..n).for_each(|t| *d.add(t) = *s.add(t * sw)),
            }
        }
    }
}

/// # Safety
/// [`super::arch::DwRowFn`]'s contract.
#[inline(always)]
pub(crate) unsafe fn row_body<const F: bool>(lo: usize, hi: usize, taps: &[Tap], init: f32, out: *mut f32) {
    let mut o = lo;
    while o + 32 <= hi {
        // SAFETY: forwarded contract, o .. o+32 inside lo..hi.
        unsafe { chunk::<32, F>(o, taps, init, out) };
        o += 32;
    }
    while o + 8 <= hi {
        // SAFETY: as above.
        unsafe { chunk::<8, F>(o, taps, init, out) };
        o += 8;
    }
    while o < hi {
        // SAFETY: as above.
        unsafe { chunk::<1, F>(o, taps, init, out) };
        o += 1;
    }
}

/// `out[o .. o+W]` with the accumulators in registers across all taps.
///
/// # Safety
/// `o .. o+W` is inside the interior range of [`super::arch::DwRowFn`]'s contract.
#[inline(always)]
unsafe fn chunk<const W: usize, const F: bool>(o: usize, taps: &[Tap], init: f32, out: *mut f32) {
    let mut acc = [init; W];
    for t in taps {
        // SAFETY: inside the interior, o + off .. o + off + W stays in the tap's bounds.
        let src = unsafe { &*(t.base.offset(o as isize + t.off) as *const [f32; W]) };
        for l in 0..W {
            acc[l] = fma::<F>(t.w, src[l], acc[l]);
        }
    }
    // SAFETY: out holds the whole row.
    unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), out.wrapping_add(o), W) };
}
