//! Channels-last (NHWC) depthwise convolution: every output pixel is one pass over its kernel taps, each tap a
//! contiguous run of channels multiplied lane-wise by that tap's weights (stored tap-major, `wt[tap · C + c]`). The
//! channels are the vector lanes, so no plane is too small and padding is a skipped tap — no masks, no copies.
//!
//! Tap offsets are computed once per output pixel; the tier's row kernel ([`super::arch::DwNhwcFn`]) then runs
//! 16 channels at a time with the bias as the accumulators' initial value and an optional clamp (Relu / Relu6)
//! applied before the store; any other epilogue runs after each block of pixels.

use super::arch::fma;
use super::gemm::check_epilogue;
use super::isa::{selected_isa, Isa};
use super::pack::unravel;
use super::{ConvGeometry, FusedOp, MatMut, Scratch};
use std::ops::Range;

/// Marks a tap that falls in the padding (skipped: the padding is zero).
pub(crate) const SKIP: usize = usize::MAX;

/// One image of a channels-last depthwise convolution.
#[derive(Clone, Copy, Debug)]
pub struct DwNhwc<'a> {
    /// `Π in_spatial × C_in` values (`geometry.channels = C_in`).
    pub input: &'a [f32],
    /// `Π kernel × C_out`, tap-major.
    pub weights_t: &'a [f32],
    pub bias: Option<&'a [f32]>,
    pub geometry: &'a ConvGeometry,
    /// Output channel `oc` reads input channel `oc / multiplier`.
    pub multiplier: usize,
}

/// Compute output pixels `pixels` × output channels `channels` of `out` (`Π out_spatial × C_out`, one row per
/// pixel; element (pixel, channel) for the epilogue). Panics on inconsistent shapes.
pub fn depthwise_nhwc(
    job: &DwNhwc<'_>,
    out: MatMut<'_>,
    pixels: Range<usize>,
    channels: Range<usize>,
    epilogue: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    depthwise_nhwc_on(selected_isa(), job, out, pixels, channels, epilogue, scratch)
}

/// [`depthwise_nhwc`] on a given tier (tests run each one).
pub(crate) fn depthwise_nhwc_on(
    isa: Isa,
    job: &DwNhwc<'_>,
    out: MatMut<'_>,
    pixels: Range<usize>,
    channels: Range<usize>,
    epilogue: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    let g = job.geometry;
    let nd = g.checked_rank("channels-last depthwise");
    let c_in = g.channels;
    let c_out = c_in * job.multiplier;
    let taps: usize = g.kernel.iter().product();
    assert!(job.multiplier >= 1, "multiplier ≥ 1");
    assert!(job.input.len() >= g.in_size(), "depthwise input: {} values, needs {}", job.input.len(), g.in_size());
    assert!(
        job.weights_t.len() >= taps * c_out,
        "depthwise weights: {} values, needs {}",
        job.weights_t.len(),
        taps * c_out
    );
    assert!(job.bias.is_none_or(|b| b.len() >= c_out), "depthwise bias too short");
    assert!(
        out.rows == g.n() && out.cols == c_out && out.cs == 1 && out.rs >= c_out as isize,
        "depthwise output {}×{} (strides {}, {}): expected {}×{c_out}, unit column stride",
        out.rows,
        out.cols,
        out.rs,
        out.cs,
        g.n()
    );
    assert!(pixels.end <= out.rows && channels.end <= c_out, "block outside the output");
    check_epilogue(epilogue, out.rows, out.cols);
    if pixels.is_empty() || channels.is_empty() {
        return;
    }
    let ks = isa.kernels();
    let (clamp, rest) = match epilogue.first() {
        Some(FusedOp::Relu) => (Some((0.0, f32::INFINITY)), &epilogue[1..]),
        Some(&FusedOp::Clip { lo, hi }) => (Some((lo, hi)), &epilogue[1..]),
        _ => (None, epilogue),
    };
    let Scratch { dw_offs: offs, dw_taps: tap_pos, .. } = scratch;
    offs.resize(taps, SKIP);
    // Per tap and dimension, the input position relative to the output's window origin (once per call).
    tap_pos.clear();
    let mut kidx = [0usize; 8];
    for t in 0..taps {
        unravel(t, &g.kernel, &mut kidx[..nd]);
        tap_pos.extend((0..nd).map(|d| (kidx[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize));
    }
    let mut oidx = [0usize; 8];
    let nch = channels.len();
    let last = nd - 1;
    let (s_last, w_in, w_out) = (g.strides[last], g.in_spatial[last], g.out_spatial[last]);
    // Last-dimension reach of the window: pixels whose window lies inside the row along it form one run whose
    // taps are each one stride apart from pixel to pixel (one kernel call for the run).
    let (lo_tap, hi_tap) =
        tap_pos.chunks_exact(nd).fold((isize::MAX, isize::MIN), |(lo, hi), tp| (lo.min(tp[last]), hi.max(tp[last])));
    let inside = |ox: usize| {
        let o = (ox * s_last) as isize;
        o + lo_tap >= 0 && o + hi_tap < w_in as isize
    };
    let mut o = pixels.start;
    while o < pixels.end {
        let ox = o % w_out;
        let row_end = (o - ox + w_out).min(pixels.end);
        // This call's pixels: the interior run starting here, or this one edge pixel.
        let mut px = 1;
        if inside(ox) {
            while o + px < row_end && inside(ox + px) {
                px += 1;
            }
        }
        unravel(o, &g.out_spatial, &mut oidx[..nd]);
        for (off, tp) in offs.iter_mut().zip(tap_pos.chunks_exact(nd)) {
            let mut q = 0usize;
            *off = 0;
            for d in 0..nd {
                let pos = (oidx[d] * g.strides[d]) as isize + tp[d];
                if pos < 0 || pos as usize >= g.in_spatial[d] {
                    *off = SKIP;
                    break;
                }
                q = q * g.in_spatial[d] + pos as usize;
            }
            if *off != SKIP {
                *off = q * c_in;
            }
        }
        // SAFETY: pixels o .. o+px × `channels` are inside `out` (asserted) and owned by this call; every
        // non-skipped offset, advanced by up to px − 1 strides along the row, is a pixel inside the input (the run
        // is interior along the last dimension), whose channels `0 .. C_in` are readable; the weights hold
        // `taps × C_out` floats and the bias (when present) C_out.
        unsafe {
            let y = out.ptr_at(o, channels.start);
            let bias = job.bias.map_or(std::ptr::null(), |b| b.as_ptr().add(channels.start));
            let wt = job.weights_t.as_ptr().add(channels.start);
            if job.multiplier == 1 {
                let x = job.input.as_ptr().add(channels.start);
                (ks.dw_nhwc)(offs, x, wt, c_out, bias, nch, px, s_last * c_in, out.rs as usize, clamp, y);
            } else {
                for t in 0..px {
                    multiplier_pixel(job, offs, t * s_last * c_in, channels.clone(), clamp, y.add(t * out.rs as usize));
                }
            }
            if !rest.is_empty() {
                (ks.epilogue)(y, out.rs, px, nch, o, channels.start, rest);
            }
        }
        o += px;
    }
}

/// One pixel with a channel multiplier > 1 (scalar: rare outside tests).
///
/// # Safety
/// As [`super::arch::DwNhwcFn`] for the pixel's output channels `channels` at `y`.
unsafe fn multiplier_pixel(
    job: &DwNhwc<'_>,
    offs: &[usize],
    shift: usize,
    channels: Range<usize>,
    clamp: Option<(f32, f32)>,
    y: *mut f32,
) {
    let c_out = job.geometry.channels * job.multiplier;
    for (j, oc) in channels.enumerate() {
        let mut acc = job.bias.map_or(0.0, |b| b[oc]);
        for (t, &q) in offs.iter().enumerate() {
            if q != SKIP {
                acc += job.input[q + shift + oc / job.multiplier] * job.weights_t[t * c_out + oc];
            }
        }
        // SAFETY: y + j is output channel oc of this pixel (caller's contract).
        unsafe { *y.add(j) = clamp_nan(acc, clamp) };
    }
}

/// `min(max(v, lo), hi)` keeping NaN (as ORT's Relu / Clip).
#[inline(always)]
fn clamp_nan(v: f32, clamp: Option<(f32, f32)>) -> f32 {
    match clamp {
        Some((lo, hi)) => {
            if v < lo {
                lo
            } else if v > hi {
                hi
            } else {
                v
            }
        }
        None => v,
    }
}

/// # Safety
/// [`super::arch::DwNhwcFn`]'s contract.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn run_body<const F: bool>(
    offs: &[usize],
    x: *const f32,
    wt: *const f32,
    ldw: usize,
    bias: *const f32,
    n: usize,
    px: usize,
    px_step: usize,
    ldy: usize,
    clamp: Option<(f32, f32)>,
    y: *mut f32,
) {
    let r = Run { offs, x, wt, ldw, bias, n, px_step, ldy, clamp, y };
    // Four pixels × 16 channels at a time: independent FMA chains (one chain would wait on each FMA's latency),
    // each tap's weights loaded once for the four.
    let mut p = 0;
    while p + 4 <= px {
        // SAFETY: pixels p .. p+4 are inside the run (forwarded contract).
        unsafe { pixels::<4, F>(&r, p) };
        p += 4;
    }
    while p < px {
        // SAFETY: as above for pixel p.
        unsafe { pixels::<1, F>(&r, p) };
        p += 1;
    }
}

/// The arguments of one [`run_body`] call.
struct Run<'a> {
    offs: &'a [usize],
    x: *const f32,
    wt: *const f32,
    ldw: usize,
    bias: *const f32,
    n: usize,
    px_step: usize,
    ldy: usize,
    clamp: Option<(f32, f32)>,
    y: *mut f32,
}

/// All channels of pixels `p0 .. p0+P`: 64 (a single pixel) or 16 at a time, then one by one.
///
/// # Safety
/// As [`run_body`], with `p0 + P ≤ px`.
#[inline(always)]
unsafe fn pixels<const P: usize, const F: bool>(r: &Run<'_>, p0: usize) {
    let mut c = 0;
    // SAFETY (each call): channels c .. c+W lie inside the run's n (the loop bounds), pixels as the caller's.
    unsafe {
        if P == 1 {
            while c + 64 <= r.n {
                block::<1, 64, F>(r, c, p0);
                c += 64;
            }
        }
        while c + 16 <= r.n {
            block::<P, 16, F>(r, c, p0);
            c += 16;
        }
        while c < r.n {
            block::<P, 1, F>(r, c, p0);
            c += 1;
        }
    }
}

/// Pixels `p0 .. p0+P`, channels `c .. c+W` of a run, accumulated in registers over all taps.
///
/// # Safety
/// As [`run_body`], with `p0 + P ≤ px` and `c + W ≤ n`.
#[inline(always)]
unsafe fn block<const P: usize, const W: usize, const F: bool>(r: &Run<'_>, c: usize, p0: usize) {
    let Run { offs, x, wt, ldw, bias, px_step, ldy, clamp, y, .. } = *r;
    // SAFETY (whole body): the caller guarantees channels c .. c+W of every non-skipped tap's pixel (shifted by
    // up to px − 1 steps), of every tap's weight row and of the bias (when non-null) are readable, and of the run's
    // output pixels writable.
    unsafe {
        let init = if bias.is_null() { [0.0; W] } else { *(bias.add(c) as *const [f32; W]) };
        let mut acc = [init; P];
        for (t, &q) in offs.iter().enumerate() {
            if q == SKIP {
                continue;
            }
            let wv = &*(wt.add(t * ldw + c) as *const [f32; W]);
            for (i, a) in acc.iter_mut().enumerate() {
                let xv = &*(x.add(q + (p0 + i) * px_step + c) as *const [f32; W]);
                for l in 0..W {
                    a[l] = fma::<F>(xv[l], wv[l], a[l]);
                }
            }
        }
        for (i, a) in acc.iter_mut().enumerate() {
            if let Some((lo, hi)) = clamp {
                for v in a.iter_mut() {
                    *v = clamp_nan(*v, Some((lo, hi)));
                }
            }
            std::ptr::copy_nonoverlapping(a.as_ptr(), y.add((p0 + i) * ldy + c), W);
        }
    }
}

/// Tap-major weights `wt[tap · C_out + oc] = w[oc · taps + tap]` from ONNX's `C_out × 1 × kernel…` layout.
pub fn transpose_dw_weights(w: &[f32], c_out: usize, taps: usize) -> Vec<f32> {
    let mut wt = vec![0.0; c_out * taps];
    for oc in 0..c_out {
        for t in 0..taps {
            wt[t * c_out + oc] = w[oc * taps + t];
        }
    }
    wt
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::tests::Rng;
    use crate::kernels::MatRef;

    /// Direct N-D reference in channels-last indexing.
    fn reference(job: &DwNhwc<'_>, taps: usize) -> Vec<f32> {
        let g = job.geometry;
        let nd = g.kernel.len();
        let c_out = g.channels * job.multiplier;
        let mut y = vec![0.0; g.n() * c_out];
        let (mut oidx, mut kidx) = ([0usize; 8], [0usize; 8]);
        for o in 0..g.n() {
            unravel(o, &g.out_spatial, &mut oidx[..nd]);
            for oc in 0..c_out {
                let mut acc = job.bias.map_or(0.0, |b| b[oc]);
                for t in 0..taps {
                    unravel(t, &g.kernel, &mut kidx[..nd]);
                    let mut q = Some(0usize);
                    for d in 0..nd {
                        let pos =
                            (oidx[d] * g.strides[d] + kidx[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize;
                        q = q
                            .filter(|_| pos >= 0 && (pos as usize) < g.in_spatial[d])
                            .map(|q| q * g.in_spatial[d] + pos as usize);
                    }
                    if let Some(q) = q {
                        acc += job.input[q * g.channels + oc / job.multiplier] * job.weights_t[t * c_out + oc];
                    }
                }
                y[o * c_out + oc] = acc;
            }
        }
        y
    }

    #[test]
    fn every_tier_matches_the_reference() {
        let mut rng = Rng::new(7);
        // (channels, multiplier, in, kernel, strides, dilations, pads_begin): 1-D to 3-D, edges, odd channels.
        type Case = (usize, usize, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>, Vec<usize>);
        let cases: Vec<Case> = vec![
            (512, 1, vec![14, 14], vec![3, 3], vec![1, 1], vec![1, 1], vec![1, 1]),
            (32, 1, vec![9, 12], vec![3, 3], vec![2, 2], vec![1, 1], vec![1, 1]),
            (17, 1, vec![7, 5], vec![3, 3], vec![1, 2], vec![2, 1], vec![2, 0]),
            (80, 1, vec![6, 6], vec![5, 5], vec![1, 1], vec![1, 1], vec![2, 2]),
            (1, 1, vec![5, 5], vec![3, 3], vec![1, 1], vec![1, 1], vec![1, 1]),
            (3, 2, vec![6, 7], vec![3, 3], vec![1, 1], vec![1, 1], vec![1, 1]),
            (64, 1, vec![13], vec![3], vec![1], vec![1], vec![1]),
            (20, 1, vec![4, 5, 6], vec![3, 3, 3], vec![1, 2, 1], vec![1, 1, 1], vec![1, 1, 0]),
            (48, 1, vec![1, 1], vec![1, 1], vec![1, 1], vec![1, 1], vec![0, 0]),
        ];
        for (c, mult, inp, kernel, strides, dilations, pads_begin) in cases {
            let nd = kernel.len();
            let out_spatial: Vec<usize> = (0..nd)
                .map(|d| (inp[d] + 2 * pads_begin[d] - (dilations[d] * (kernel[d] - 1) + 1)) / strides[d] + 1)
                .collect();
            let g = ConvGeometry { channels: c, in_spatial: inp, kernel, out_spatial, strides, dilations, pads_begin };
            let taps: usize = g.kernel.iter().product();
            let c_out = c * mult;
            let (x, w, b) = (rng.vec(g.in_size()), rng.vec(taps * c_out), rng.vec(c_out));
            for bias in [Some(&b[..]), None] {
                let job = DwNhwc { input: &x, weights_t: &w, bias, geometry: &g, multiplier: mult };
                let want = reference(&job, taps);
                let relu6: Vec<f32> = want.iter().map(|&v| v.clamp(0.0, 6.0)).collect();
                let res = rng.vec(want.len());
                for isa in Isa::ALL.into_iter().filter(|i| i.is_supported()) {
                    let mut s = Scratch::new();
                    // Pixel ranges split unevenly (as tasks do), output pre-filled with NaN.
                    let n = g.n();
                    let cuts = [0, n / 3, n / 3 + 1, n].map(|v| v.min(n));
                    let mut y = vec![f32::NAN; n * c_out];
                    let mut y2 = vec![f32::NAN; n * c_out];
                    for win in cuts.windows(2) {
                        let om = MatMut::row_major(&mut y, n, c_out);
                        depthwise_nhwc_on(
                            isa,
                            &job,
                            om,
                            win[0]..win[1],
                            0..c_out,
                            &[FusedOp::Clip { lo: 0.0, hi: 6.0 }],
                            &mut s,
                        );
                        let add = [FusedOp::Add(MatRef::row_major(&res, n, c_out))];
                        let om2 = MatMut::row_major(&mut y2, n, c_out);
                        depthwise_nhwc_on(isa, &job, om2, win[0]..win[1], 0..c_out, &add, &mut s);
                    }
                    for (i, (&a, &e)) in y.iter().zip(&relu6).enumerate() {
                        assert!((a - e).abs() <= 1e-4 * (1.0 + e.abs()), "{isa:?} {g:?} elem {i}: {a} vs {e}");
                    }
                    for (i, (&a, e)) in y2.iter().zip(want.iter().zip(&res).map(|(w, r)| w + r)).enumerate() {
                        assert!((a - e).abs() <= 1e-4 * (1.0 + e.abs()), "{isa:?} {g:?} add elem {i}: {a} vs {e}");
                    }
                }
            }
        }
    }
}
