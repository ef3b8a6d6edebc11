//! Depthwise convolution (group = C_in, channel multiplier allowed), any rank ≥ 1, any pads/strides/dilations.
//!
//! Each output row (the last spatial dimension) is `init + Σ_taps w·x[...]`. The taps of one row are listed once
//! (taps whose outer position falls in the padding are dropped); for stride `s > 1` every input row the taps read is
//! first split into its `s` phases (`x[q·s + r]` → phase `r`, position `q`), so every tap reads a contiguous run.
//! The interior (all taps in bounds) runs through the tier's vectorized row kernel, 32 outputs per step with the
//! accumulators in registers across all taps (3×3 stride 1 and stride 2 both land here with unit-stride loads); the
//! few border outputs take the scalar path. The fused epilogue is applied to the just-written row.

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
    depthwise_on(selected_isa(), input, weights, bias, geometry, multiplier, out, channels, epilogue, scratch)
}

/// [`depthwise_conv`] on a given tier.
#[allow(clippy::too_many_arguments)]
pub(crate) fn depthwise_on(
    isa: Isa,
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
    let last = nd - 1;
    let (w_out, w_in) = (g.out_spatial[last], g.in_spatial[last]);
    let (s, dil, pad) = (g.strides[last], g.dilations[last] as isize, g.pads_begin[last] as isize);
    let outer_taps = taps / g.kernel[last];
    let phase_len = w_in.div_ceil(s);
    let Scratch { v1: phases, out: rowbuf, taps: tap_list, .. } = scratch;
    let phases = phases.get(if s > 1 { outer_taps * s * phase_len } else { 0 });
    let rowbuf = rowbuf.get(w_out);
    let mut kidx = [0usize; 8];
    let mut oidx = [0usize; 8];
    for oc in channels {
        let plane = &input[(oc / multiplier) * in_plane..][..in_plane];
        let wk = &weights[oc * taps..(oc + 1) * taps];
        let init = bias.map_or(0.0, |b| b[oc]);
        for orow in 0..out_plane / w_out {
            unravel(orow * w_out, &g.out_spatial, &mut oidx[..nd]);
            tap_list.clear();
            for u in 0..outer_taps {
                // Outer kernel index u → input row (or padding).
                unravel(u * g.kernel[last], &g.kernel, &mut kidx[..nd]);
                let mut row = Some(0usize);
                for d in 0..last {
                    let pos = (oidx[d] * g.strides[d] + kidx[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize;
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
                    for (q, &v) in xrow.iter().enumerate() {
                        ph[(q % s) * phase_len + q / s] = v;
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

/// # Safety
/// [`super::arch::DwRowFn`]'s contract.
#[inline(always)]
pub(crate) unsafe fn row_body(lo: usize, hi: usize, taps: &[Tap], init: f32, out: *mut f32) {
    const W: usize = 32;
    let mut o = lo;
    while o + W <= hi {
        let mut acc = [init; W];
        for t in taps {
            // SAFETY: o .. o+W is inside the interior, where o + off stays in the tap's bounds.
            let src = unsafe { &*(t.base.offset(o as isize + t.off) as *const [f32; W]) };
            for l in 0..W {
                acc[l] += t.w * src[l];
            }
        }
        // SAFETY: out holds the whole row.
        unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), out.add(o), W) };
        o += W;
    }
    if o < hi {
        let n = hi - o;
        let mut acc = [init; W];
        for t in taps {
            // SAFETY: as above, n < W floats.
            let src = unsafe { std::slice::from_raw_parts(t.base.offset(o as isize + t.off), n) };
            for (a, s) in acc[..n].iter_mut().zip(src) {
                *a += t.w * s;
            }
        }
        // SAFETY: as above.
        unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), out.add(o), n) };
    }
}
