//! Depthwise convolution (group = C_in, channel multiplier allowed), any rank ≥ 1, any pads/strides/dilations.
//!
//! Three paths, all vectorized through the tier's target features, the epilogue applied to each finished channel
//! row (bias is the accumulators' initial value):
//! - **plane** (1-D / 2-D, the default): each input plane is copied once into a zero-padded buffer split into its
//!   column-stride phases (`x[q·s + r]` → phase `r`, position `q`), so every tap of every output reads in bounds and
//!   with unit stride — 3×3 stride 1 and stride 2 alike. Unit-stride (or narrow) planes run as one "wide" row per
//!   channel; otherwise one row call per output row. The row kernel keeps 32 (then 8, 1) outputs in registers across
//!   all taps.
//! - **interleaved** (1-D / 2-D, output planes ≤ 64 pixels): 8 channels transposed into one pixel-major buffer, one
//!   8-wide vector per pixel, so tiny planes do not pay per-row overheads.
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
    base: *const f32,
    off: isize,
    len: usize,
    w: f32,
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
    /// Interleaved for small 1-D/2-D output planes, padded plane otherwise, general for rank ≥ 3.
    Auto,
    General,
    /// Padded phase-split plane (1-D / 2-D); falls back to General when not applicable.
    #[cfg_attr(not(test), allow(dead_code))]
    Plane,
    /// Channel-interleaved (1-D / 2-D); falls back to General when not applicable.
    Interleaved,
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
    let nd = g.kernel.len();
    assert!((1..=8).contains(&nd), "depthwise supports 1 to 8 spatial dimensions");
    assert!(
        [g.in_spatial.len(), g.out_spatial.len(), g.strides.len(), g.dilations.len(), g.pads_begin.len()]
            .iter()
            .all(|&l| l == nd),
        "depthwise geometry ranks"
    );
    assert!(g.strides.iter().all(|&s| s >= 1) && g.dilations.iter().all(|&d| d >= 1), "strides and dilations ≥ 1");
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
        let wp = (p.wo - 1) * p.sw + (p.kw - 1) * p.dw + 1;
        let il_fits = p.hp * wp * IL <= 1 << 22;
        let plane_fits = p.hp * p.sw * p.wq <= 1 << 22 && p.sw <= MAX_PLANE_STRIDE;
        let prefer_il = p.ho * p.wo <= IL_MAX_PIXELS && interleave_allowed();
        let use_il = match path {
            DwPath::Interleaved => il_fits,
            DwPath::Plane => false,
            _ => il_fits && (prefer_il || !plane_fits),
        };
        if use_il {
            return interleaved_2d(ks, &p, input, weights, bias, multiplier, out, channels, epilogue, scratch);
        }
        if plane_fits && path != DwPath::Interleaved {
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

/// Channels per interleaved group (one 8-float vector per pixel).
const IL: usize = 8;

/// Output planes up to this many pixels take the channel-interleaved path. Measured (AVX2, MobileNetV1 layers):
/// interleaved wins on 7×7 outputs of a stride-2 layer (per-channel overheads of the plane path dominate there),
/// the plane path wins from 14×14 outputs up (the transposes cost more than they save).
const IL_MAX_PIXELS: usize = 64;

/// `ASYMO_DW_INTERLEAVE=0` turns the interleaved path off (for comparisons); tests reach both paths directly.
fn interleave_allowed() -> bool {
    static ON: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ON.get_or_init(|| std::env::var("ASYMO_DW_INTERLEAVE").map_or(true, |v| v != "0"))
}

/// Geometry of the interleaved kernel: output `ho × wo`, strides, the padded input width, tap offsets (in pixels).
#[derive(Debug)]
pub(crate) struct IlGeo<'a> {
    ho: usize,
    wo: usize,
    sh: usize,
    sw: usize,
    wp: usize,
    /// Offset of each tap from the output pixel's window origin, in padded-input pixels.
    offs: &'a [usize],
}

/// Channel-interleaved path, for small output planes: 8 output channels at a time, their
/// input planes transposed into one zero-padded pixel-major buffer (`x[(ih·Wp + iw)·8 + lane]`), so every pixel
/// is one vector and every FMA is useful whatever the stride or plane size; the result is transposed back to the
/// channel rows, where the epilogue runs.
#[allow(clippy::too_many_arguments)]
fn interleaved_2d(
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
    let wp = (p.wo - 1) * p.sw + (p.kw - 1) * p.dw + 1;
    let Scratch { v0: fin, v1: xt, out: ot, dw_offs, dw_w: w, .. } = scratch;
    dw_offs.clear();
    dw_offs.extend((0..taps).map(|t| (t / p.kw) * p.dh * wp + (t % p.kw) * p.dw));
    let geo = IlGeo { ho: p.ho, wo: p.wo, sh: p.sh, sw: p.sw, wp, offs: dw_offs };
    w.clear();
    w.resize(taps, [0.0; IL]);
    let xt = xt.get(p.hp * wp * IL);
    xt.fill(0.0); // padding pixels stay zero: each group only rewrites the interior
    let ot = ot.get(out_plane * IL);
    let fin = fin.get(if out.cs == 1 { 0 } else { out_plane });
    let mut oc0 = channels.start;
    while oc0 < channels.end {
        let lanes = IL.min(channels.end - oc0);
        let mut init = [0f32; IL];
        for l in 0..lanes {
            let oc = oc0 + l;
            let x = &input[(oc / multiplier) * in_plane..][..in_plane];
            for ih in 0..p.h.min(p.hp.saturating_sub(p.ph)) {
                let row = &x[ih * p.w..(ih + 1) * p.w];
                let base = ((ih + p.ph) * wp + p.pw) * IL + l;
                let n = p.w.min(wp.saturating_sub(p.pw));
                for (iw, &v) in row[..n].iter().enumerate() {
                    xt[base + iw * IL] = v;
                }
            }
            for (t, wt) in w.iter_mut().enumerate() {
                wt[l] = weights[oc * taps + t];
            }
            init[l] = bias.map_or(0.0, |b| b[oc]);
        }
        // SAFETY: xt holds hp·wp pixels of IL floats and every tap of every output pixel reads inside it; ot holds
        // out_plane pixels.
        unsafe { (ks.dw_interleaved)(&geo, w, init, xt.as_ptr(), ot.as_mut_ptr()) };
        for l in 0..lanes {
            let oc = oc0 + l;
            let dst: *mut f32 = if out.cs == 1 {
                // SAFETY: row oc of `out` (out_plane contiguous floats) is owned by this call.
                unsafe { out.ptr_at(oc, 0) }
            } else {
                fin.as_mut_ptr()
            };
            // SAFETY: dst holds out_plane floats.
            let d = unsafe { std::slice::from_raw_parts_mut(dst, out_plane) };
            for (px, v) in d.iter_mut().enumerate() {
                *v = ot[px * IL + l];
            }
            if !epilogue.is_empty() {
                // SAFETY: one contiguous row of out_plane floats.
                unsafe { (ks.epilogue)(dst, 0, 1, out_plane, oc, 0, epilogue) };
            }
            if out.cs != 1 {
                for (j, &v) in fin[..out_plane].iter().enumerate() {
                    // SAFETY: (oc, j) is inside `out` and owned by this call.
                    unsafe { *out.ptr_at(oc, j) = v };
                }
            }
        }
        oc0 += lanes;
    }
}

/// `out[px] = init + Σ_t w[t] ⊙ x[origin(px) + offs[t]]` over 8-lane pixels, four output pixels at a time.
///
/// # Safety
/// `x` holds the padded interleaved plane (every read in bounds by construction of `geo`), `out` holds
/// `ho·wo` pixels.
#[inline(always)]
pub(crate) unsafe fn interleaved_body<const F: bool>(
    geo: &IlGeo<'_>,
    w: &[[f32; 8]],
    init: [f32; 8],
    x: *const f32,
    out: *mut f32,
) {
    let px = |base: usize, t: usize| {
        // SAFETY: the caller guarantees every (pixel, tap) read is inside the plane.
        unsafe { &*(x.add((base + geo.offs[t]) * IL) as *const [f32; IL]) }
    };
    for oh in 0..geo.ho {
        let row0 = oh * geo.sh * geo.wp;
        let mut ow = 0;
        while ow + 4 <= geo.wo {
            let mut acc = [init; 4];
            for (t, wt) in w.iter().enumerate() {
                for (u, a) in acc.iter_mut().enumerate() {
                    let v = px(row0 + (ow + u) * geo.sw, t);
                    for l in 0..IL {
                        a[l] = fma::<F>(wt[l], v[l], a[l]);
                    }
                }
            }
            for (u, a) in acc.iter().enumerate() {
                // SAFETY: pixel oh·wo + ow + u < ho·wo.
                unsafe { std::ptr::copy_nonoverlapping(a.as_ptr(), out.add((oh * geo.wo + ow + u) * IL), IL) };
            }
            ow += 4;
        }
        while ow < geo.wo {
            let mut a = init;
            for (t, wt) in w.iter().enumerate() {
                let v = px(row0 + ow * geo.sw, t);
                for l in 0..IL {
                    a[l] = fma::<F>(wt[l], v[l], a[l]);
                }
            }
            // SAFETY: as above.
            unsafe { std::ptr::copy_nonoverlapping(a.as_ptr(), out.add((oh * geo.wo + ow) * IL), IL) };
            ow += 1;
        }
    }
}

/// Largest column stride of the plane path (the general path takes larger ones).
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
    /// Rows of the padded plane (exactly those the outputs read).
    hp: usize,
    /// Width of one column phase of the padded plane (`ceil(Wp / sw)`).
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
        Plane2d { h, w, ho, wo, kh, kw, sh, sw, dh, dw, ph, pw, hp, wq: wp.div_ceil(sw) }
    }
}

/// The 1-D / 2-D path: per input channel, build the zero-padded plane once, split into its `sw` column phases
/// (`Q_r[ih][q] = P[ih][q·sw + r]`), so every tap of every output reads in bounds and with unit stride. Wide mode
/// (unit strides, or narrow outputs) treats the whole output plane as one row at pitch `sh·wq`
/// (`t = oh·pitch + ow`, tap offset `kh·dh·wq + (kw·dw div sw)`): one vector-kernel call per channel however small
/// the plane. Otherwise one call per output row.
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
    const SLACK: usize = 16; // zeros after the padded plane: vector chunks may run past a row's end
    let (taps, in_plane, out_plane) = (p.kh * p.kw, p.h * p.w, p.ho * p.wo);
    let qplane = p.hp * p.wq; // floats per phase
                              // Wide mode: output rows at pitch sh·wq in phase space (exact for unit strides, otherwise computing sh× the
                              // outputs — still vectorized, which beats short rows). Row mode: one call per output row, rows at pitch
                              // round_up(wo, 8). Either way every call covers whole 8-wide chunks (the extra outputs land in obuf's slack).
    let wide = (p.sh == 1 && p.sw == 1) || p.wo < 24;
    let (pitch, span) = if wide {
        (p.sh * p.wq, ((p.ho - 1) * p.sh * p.wq + p.wo).next_multiple_of(8))
    } else {
        (p.wo.next_multiple_of(8), p.wo.next_multiple_of(8))
    };
    let Scratch { v0: fin, v1: padded, out: obuf, taps: tap_list, .. } = scratch;
    let padded = padded.get(p.sw * qplane + SLACK);
    // The padding positions are never written below, so zeroing once per call is enough.
    padded.fill(0.0);
    let obuf = obuf.get((p.ho - 1) * pitch + span);
    let fin = fin.get(if out.cs == 1 { 0 } else { out_plane });
    // Per column phase: first input column, first position, count (the same for every row).
    let mut phase_plan = [(0usize, 0usize, 0usize); MAX_PLANE_STRIDE];
    for (phase, plan) in phase_plan[..p.sw].iter_mut().enumerate() {
        let iw0 = (phase + p.sw - p.pw % p.sw) % p.sw;
        let q0 = (iw0 + p.pw) / p.sw;
        if iw0 < p.w && q0 < p.wq {
            *plan = (iw0, q0, (p.wq - q0).min((p.w - iw0).div_ceil(p.sw)));
        }
    }
    let mut loaded = usize::MAX;
    for oc in channels {
        let ic = oc / multiplier;
        if ic != loaded {
            // Interior of the padded plane of input channel ic, phase-split by columns.
            let x = &input[ic * in_plane..(ic + 1) * in_plane];
            for ih in 0..p.h.min(p.hp.saturating_sub(p.ph)) {
                let r = ih + p.ph;
                let xrow = &x[ih * p.w..(ih + 1) * p.w];
                // Column c = iw + pw goes to phase c mod sw, position c div sw: per phase, a strided copy.
                for (phase, &(iw0, q0, n)) in phase_plan[..p.sw].iter().enumerate() {
                    if n == 0 {
                        continue;
                    }
                    let dst = &mut padded[phase * qplane + r * p.wq + q0..][..n];
                    match p.sw {
                        1 => dst.copy_from_slice(&xrow[..n]),
                        2 => {
                            let src = &xrow[iw0..];
                            assert!(2 * n - 1 <= src.len());
                            // SAFETY: src holds 2n − 1 floats (checked), dst n.
                            unsafe { (ks.stride2)(n, src.as_ptr(), dst.as_mut_ptr()) }
                        }
                        _ => dst.iter_mut().zip(xrow[iw0..].iter().step_by(p.sw)).for_each(|(d, &v)| *d = v),
                    }
                }
            }
            loaded = ic;
        }
        let wk = &weights[oc * taps..(oc + 1) * taps];
        let init = bias.map_or(0.0, |b| b[oc]);
        let tap = |kh: usize, kw: usize, row: usize| {
            let c = kw * p.dw;
            let (phase, q) = (c % p.sw, c / p.sw);
            let base = padded[phase * qplane + (row + kh * p.dh) * p.wq + q..].as_ptr();
            Tap { base, off: 0, len: usize::MAX, w: wk[kh * p.kw + kw] }
        };
        // The taps of output row 0; row oh reads the same taps shifted by oh·sh phase rows, i.e. outputs
        // shift .. shift+span of a call whose output pointer is moved back by the same shift.
        tap_list.clear();
        for kh in 0..p.kh {
            for kw in 0..p.kw {
                tap_list.push(tap(kh, kw, 0));
            }
        }
        let rows = if wide { 1 } else { p.ho };
        for oh in 0..rows {
            let shift = oh * p.sh * p.wq;
            // SAFETY: output t of this call (shift ≤ t < shift + span) reads its phase row at q + t (wide: one call,
            // rows at pitch sh·wq); overrunning the last useful output by < 8 stays inside the padded plane plus
            // its SLACK; the writes land at obuf[oh·pitch + (t − shift)], inside obuf's (ho−1)·pitch + span floats
            // (the kernel only forms in-bounds addresses from the moved-back pointer).
            unsafe {
                let o = obuf.as_mut_ptr().add(oh * pitch).wrapping_sub(shift);
                (ks.dw_row)(shift, shift + span, tap_list, init, o)
            };
        }
        // Gather the rows into the output (or a contiguous buffer), apply the epilogue there.
        let dst: *mut f32 = if out.cs == 1 {
            // SAFETY: row oc of `out` (out_plane contiguous floats) is owned by this call.
            unsafe { out.ptr_at(oc, 0) }
        } else {
            fin.as_mut_ptr()
        };
        for oh in 0..p.ho {
            // SAFETY: obuf row oh holds wo computed floats; dst holds out_plane floats.
            unsafe { std::ptr::copy_nonoverlapping(obuf.as_ptr().add(oh * pitch), dst.add(oh * p.wo), p.wo) };
        }
        if !epilogue.is_empty() {
            // SAFETY: dst holds the channel's out_plane contiguous floats.
            unsafe { (ks.epilogue)(dst, 0, 1, out_plane, oc, 0, epilogue) };
        }
        if out.cs != 1 {
            for (j, &v) in fin[..out_plane].iter().enumerate() {
                // SAFETY: (oc, j) is inside `out` and owned by this call.
                unsafe { *out.ptr_at(oc, j) = v };
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
