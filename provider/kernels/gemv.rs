//! GEMV: one row of C (M = 1: `y = x · B`, FC layers and RNN steps at batch 1) or one column (N = 1: `y = A · x`).
//! Bandwidth-bound, so the kernels stream each operand once in the layout it already has:
//! - a [`PackedB`] panel (`K × NR`, contiguous) is the streaming layout for M = 1;
//! - a row-major B streams 64-column strips; a column-major B (or a row-major A for N = 1) is dot products;
//! - a [`PackedA`] panel (`K × MR`) is read as one contiguous run against `x` expanded ×MR, folded by row.
//!
//! A scheduler may split K: [`gemv_partial`] computes the partial sums of one K range, [`gemv_reduce`] adds the
//! partials in the order given (fixed order ⇒ deterministic) and applies the epilogue.

use super::arch::{fma, KernelSet};
use super::gemm::{check_epilogue, check_operands};
use super::isa::selected_isa;
use super::pack::{pack_b, pack_b_im2col};
use super::{apply_epilogue, AOperand, BOperand, FusedOp, MatMut, MatRef, Scratch};
use std::ops::Range;

/// Packed panels one GEMV call streams at once: four concurrent streams of weights ran 1×1024×4096 and
/// 1×4096×4096 1.05–1.07× faster than one (L3-resident weights; six or eight: no further change). Groups may be
/// smaller at a task's last columns; a column's result never depends on its group (see `panel_body`).
pub(crate) const GEMV_PANELS: usize = 4;

/// Which side of a GEMV is the vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GemvShape {
    /// M = 1: outputs are the columns of C.
    Row,
    /// N = 1 (and M > 1): outputs are the rows of C.
    Col,
}

/// The GEMV shape of an `m × n` product, if it is one.
pub fn gemv_shape(m: usize, n: usize) -> Option<GemvShape> {
    if m == 1 {
        Some(GemvShape::Row)
    } else if n == 1 {
        Some(GemvShape::Col)
    } else {
        None
    }
}

/// Partial sums over `k_range` for the outputs `outputs` (columns of C for [`GemvShape::Row`], rows for
/// [`GemvShape::Col`]): `partial[o - outputs.start] = Σ_{p ∈ k_range} A[i, p]·B[p, j]`.
///
/// Panics unless `gemv_shape(M, N)` is `Some`, or if the ranges or `partial` do not fit.
#[allow(clippy::too_many_arguments)]
pub fn gemv_partial(
    a: AOperand<'_>,
    b: BOperand<'_>,
    k: usize,
    outputs: Range<usize>,
    k_range: Range<usize>,
    partial: &mut [f32],
    scratch: &mut Scratch,
) {
    let (m, n) = (a_rows(&a), b_cols(&b));
    check_operands(&a, &b, m, n, k);
    assert!(k_range.start <= k_range.end && k_range.end <= k, "k_range outside K");
    let out = &mut partial[..outputs.len()];
    match gemv_shape(m, n).expect("gemv_partial needs M = 1 or N = 1") {
        GemvShape::Row => {
            assert!(outputs.end <= n, "outputs outside N");
            row_partial(selected_isa().kernels(), a, 0, b, k_range, outputs, out, scratch)
        }
        GemvShape::Col => {
            assert!(outputs.end <= m, "outputs outside M");
            col_partial(selected_isa().kernels(), a, outputs, b, 0, k_range, out, scratch)
        }
    }
}

/// `C[outputs] = epilogue(Σ_t partials[t])`, adding the partials in the order given. C is `1 × N` (outputs are
/// columns) or `M × 1` (outputs are rows); each partial holds `outputs.len()` values.
pub fn gemv_reduce(partials: &[&[f32]], c: MatMut<'_>, outputs: Range<usize>, epilogue: &[FusedOp<'_>]) {
    check_epilogue(epilogue, c.rows, c.cols);
    let row = match gemv_shape(c.rows, c.cols) {
        Some(GemvShape::Row) => true,
        Some(GemvShape::Col) => false,
        None => panic!("gemv_reduce needs a 1 × N or M × 1 output"),
    };
    assert!(outputs.end <= if row { c.cols } else { c.rows }, "outputs outside C");
    for (t, o) in outputs.clone().enumerate() {
        let mut y = 0.0;
        for p in partials {
            y += p[t];
        }
        let (i, j) = if row { (0, o) } else { (o, 0) };
        // SAFETY: (i, j) is inside C; the caller owns the outputs range.
        unsafe { *c.ptr_at(i, j) = apply_epilogue(y, i, j, epilogue) };
    }
}

/// The block path of `gemm_block` when the block has one row or one column (shapes already checked).
#[allow(clippy::too_many_arguments)]
pub(crate) fn gemv_block(
    ks: &KernelSet,
    a: AOperand<'_>,
    b: BOperand<'_>,
    c: MatMut<'_>,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    ops: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    let mut out = std::mem::take(&mut scratch.out);
    if rows.len() == 1 {
        let i = rows.start;
        let y = out.get(cols.len());
        row_partial(ks, a, i, b, 0..k, cols.clone(), y, scratch);
        if !ops.is_empty() {
            // SAFETY: `y` is one contiguous row of cols.len() floats.
            unsafe { (ks.epilogue)(y.as_mut_ptr(), 0, 1, y.len(), i, cols.start, ops) };
        }
        for (t, &v) in y.iter().enumerate() {
            // SAFETY: (i, cols.start + t) is in the caller's block.
            unsafe { *c.ptr_at(i, cols.start + t) = v };
        }
    } else {
        let j = cols.start;
        let y = out.get(rows.len());
        col_partial(ks, a, rows.clone(), b, j, 0..k, y, scratch);
        if !ops.is_empty() {
            // SAFETY: `y` viewed as rows.len() rows of one element (row stride 1).
            unsafe { (ks.epilogue)(y.as_mut_ptr(), 1, y.len(), 1, rows.start, j, ops) };
        }
        for (t, &v) in y.iter().enumerate() {
            // SAFETY: (rows.start + t, j) is in the caller's block.
            unsafe { *c.ptr_at(rows.start + t, j) = v };
        }
    }
    scratch.out = out;
}

fn a_rows(a: &AOperand<'_>) -> usize {
    match a {
        AOperand::View(v) => v.rows,
        AOperand::Packed(p) => p.rows(),
        AOperand::PackedT(p) => p.cols(),
        AOperand::Im2colNhwc(im) => im.rows(),
    }
}

fn b_cols(b: &BOperand<'_>) -> usize {
    match b {
        BOperand::View(v) => v.cols,
        BOperand::Packed(p) => p.cols(),
        BOperand::Im2col(im) => im.geometry.n(),
    }
}

/// `out[j - cols.start] = Σ_{p ∈ kr} A[i, p]·B[p, j]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn row_partial(
    ks: &KernelSet,
    a: AOperand<'_>,
    i: usize,
    b: BOperand<'_>,
    kr: Range<usize>,
    cols: Range<usize>,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let kl = kr.len();
    if kl == 0 {
        out.fill(0.0);
        return;
    }
    // x = A[i, kr], contiguous.
    let x = scratch.v0.get(kl);
    match a {
        AOperand::View(v) => x.iter_mut().enumerate().for_each(|(t, x)| *x = v.at(i, kr.start + t)),
        AOperand::Packed(pa) => x.iter_mut().enumerate().for_each(|(t, x)| *x = pa.at(i, kr.start + t)),
        AOperand::PackedT(pt) => x.iter_mut().enumerate().for_each(|(t, x)| *x = pt.at(kr.start + t, i)),
        AOperand::Im2colNhwc(im) => im.row_into(i, kr.clone(), x, &[]),
    }
    let x = x.as_ptr();
    match b {
        BOperand::Packed(pb) => {
            let ks = pb.isa().kernels();
            let nr = ks.nr;
            let mut tmp = [0f32; GEMV_PANELS * 64];
            let (q0, q1) = (cols.start / nr, cols.end.div_ceil(nr));
            let stride = nr * pb.k();
            let mut q = q0;
            while q < q1 {
                let count = GEMV_PANELS.min(q1 - q);
                let panel = pb.data()[q * stride + kr.start * nr..].as_ptr();
                // SAFETY: panels q .. q + count hold K·NR floats each, `stride` apart; rows kr of them are in
                // range; tmp holds ≥ count·NR floats.
                unsafe { (ks.gemv_panel)(kl, x, panel, stride, count, tmp.as_mut_ptr()) };
                let (lo, hi) = ((q * nr).max(cols.start), ((q + count) * nr).min(cols.end));
                out[lo - cols.start..hi - cols.start].copy_from_slice(&tmp[lo - q * nr..hi - q * nr]);
                q += count;
            }
        }
        BOperand::View(v) if v.cs == 1 => {
            for j in cols.clone().step_by(64) {
                let w = 64.min(cols.end - j);
                // SAFETY: B(kr, j .. j+w) is in range, rows contiguous with stride v.rs; out has w floats there.
                unsafe { (ks.gemv_rows)(kl, x, v.ptr_at(kr.start, j), v.rs, w, out[j - cols.start..].as_mut_ptr()) };
            }
        }
        BOperand::View(v) if v.rs == 1 => {
            for j in cols.clone() {
                // SAFETY: B(kr, j) is in range and contiguous.
                out[j - cols.start] = unsafe { (ks.dot)(kl, x, v.ptr_at(kr.start, j)) };
            }
        }
        _ => {
            // Any other layout (strided view, im2col): pack strips of columns into panels, then stream them.
            let nr = ks.nr;
            let strip = 8 * nr;
            let mut tmp = [0f32; GEMV_PANELS * 64];
            for j in cols.clone().step_by(strip) {
                let w = strip.min(cols.end - j);
                let dst = scratch.b.get(w.div_ceil(nr) * nr * kl);
                match b {
                    BOperand::View(v) => pack_b(v, kr.start, kl, j, w, nr, dst),
                    BOperand::Im2col(im) => pack_b_im2col(im, kr.start, kl, j, w, nr, dst, &mut scratch.im2col),
                    BOperand::Packed(_) => unreachable!(),
                }
                let panels = w.div_ceil(nr);
                for q in (0..panels).step_by(GEMV_PANELS) {
                    let count = GEMV_PANELS.min(panels - q);
                    // SAFETY: packed panels q .. q + count hold kl·NR floats each, kl·NR apart; tmp holds ≥
                    // count·NR floats.
                    unsafe { (ks.gemv_panel)(kl, x, dst[q * nr * kl..].as_ptr(), nr * kl, count, tmp.as_mut_ptr()) };
                    let n = (count * nr).min(w - q * nr);
                    let o = j - cols.start + q * nr;
                    out[o..o + n].copy_from_slice(&tmp[..n]);
                }
            }
        }
    }
}

/// `out[i - rows.start] = Σ_{p ∈ kr} A[i, p]·B[p, j]`.
#[allow(clippy::too_many_arguments)]
pub(crate) fn col_partial(
    ks: &KernelSet,
    a: AOperand<'_>,
    rows: Range<usize>,
    b: BOperand<'_>,
    j: usize,
    kr: Range<usize>,
    out: &mut [f32],
    scratch: &mut Scratch,
) {
    let kl = kr.len();
    if kl == 0 {
        out.fill(0.0);
        return;
    }
    // x = B[kr, j], contiguous.
    let x = scratch.v0.get(kl);
    match b {
        BOperand::View(v) => x.iter_mut().enumerate().for_each(|(t, x)| *x = v.at(kr.start + t, j)),
        BOperand::Packed(pb) => x.iter_mut().enumerate().for_each(|(t, x)| *x = pb.at(kr.start + t, j)),
        BOperand::Im2col(im) => pack_b_im2col(im, kr.start, kl, j, 1, 1, x, &mut scratch.im2col),
    }
    match a {
        AOperand::Packed(pa) => {
            let ks = pa.isa().kernels();
            let mr = ks.mr;
            // xe[p·MR + r] = x[p]: the panel (K × MR, contiguous) and xe are then two aligned streams.
            let xe = scratch.v1.get(kl * mr);
            for (p, &xv) in x.iter().enumerate() {
                xe[p * mr..(p + 1) * mr].fill(xv);
            }
            let mut tmp = [0f32; 16];
            for q in rows.start / mr..rows.end.div_ceil(mr) {
                let panel = pa.data()[q * mr * pa.k() + kr.start * mr..].as_ptr();
                // SAFETY: panel q's rows kr span kl·MR floats, as does xe; tmp holds ≥ MR floats.
                unsafe { (ks.fold_dot)(kl * mr, xe.as_ptr(), panel, mr, tmp.as_mut_ptr()) };
                let (lo, hi) = ((q * mr).max(rows.start), ((q + 1) * mr).min(rows.end));
                out[lo - rows.start..hi - rows.start].copy_from_slice(&tmp[lo - q * mr..hi - q * mr]);
            }
        }
        AOperand::View(v) if v.cs == 1 => {
            for i in rows.clone() {
                // SAFETY: A(i, kr) is in range and contiguous.
                out[i - rows.start] = unsafe { (ks.dot)(kl, v.ptr_at(i, kr.start), x.as_ptr()) };
            }
        }
        AOperand::View(v) if v.rs == 1 => {
            out.fill(0.0);
            for (t, &xv) in x.iter().enumerate() {
                // SAFETY: A(rows, kr.start + t) is in range and contiguous; out holds rows.len() floats.
                unsafe { (ks.axpy)(rows.len(), xv, v.ptr_at(rows.start, kr.start + t), out.as_mut_ptr()) };
            }
        }
        AOperand::View(v) => strided_col(v, rows, kr, x, out),
        AOperand::PackedT(pt) => {
            for i in rows.clone() {
                out[i - rows.start] = x.iter().enumerate().map(|(t, &xv)| pt.at(kr.start + t, i) * xv).sum();
            }
        }
        AOperand::Im2colNhwc(im) => {
            let row = scratch.v1.get(kl);
            for i in rows.clone() {
                im.row_into(i, kr.clone(), row, &[]);
                out[i - rows.start] = row.iter().zip(x.iter()).map(|(a, b)| a * b).sum();
            }
        }
    }
}

fn strided_col(v: MatRef<'_>, rows: Range<usize>, kr: Range<usize>, x: &[f32], out: &mut [f32]) {
    for i in rows.clone() {
        out[i - rows.start] = x.iter().enumerate().map(|(t, &xv)| v.at(i, kr.start + t) * xv).sum();
    }
}

// ---- portable bodies, instantiated per tier by `arch::portable_wrappers!` ----

/// # Safety
/// [`super::arch::GemvPanelFn`]'s contract with NR = `N`.
#[inline(always)]
pub(crate) unsafe fn panel_body<const N: usize, const P: usize, const F: bool>(
    k: usize,
    x: *const f32,
    panel: *const f32,
    stride: usize,
    out: *mut f32,
) {
    // One accumulator per lane, steps added in order: a column's sum does not depend on how many panels share the
    // loop (that depends on the task's column range, which the scheduler may move between runs), so results are
    // the same whatever the schedule. Four panels give 4·NR independent FMA chains (eight zmm on AVX-512), enough to
    // cover the FMA latency.
    let mut acc = [[0f32; N]; P];
    // SAFETY (whole body): x holds k floats, each of the P panels k·N floats, out P·N floats.
    for p in 0..k {
        let xp = unsafe { *x.add(p) };
        for (q, acc) in acc.iter_mut().enumerate() {
            let row = unsafe { &*(panel.add(q * stride + p * N) as *const [f32; N]) };
            for l in 0..N {
                acc[l] = fma::<F>(xp, row[l], acc[l]);
            }
        }
    }
    for (q, acc) in acc.iter().enumerate() {
        for (l, &v) in acc.iter().enumerate() {
            unsafe { *out.add(q * N + l) = v };
        }
    }
}

/// # Safety
/// [`super::arch::GemvRowsFn`]'s contract.
#[inline(always)]
pub(crate) unsafe fn rows_body<const F: bool>(
    k: usize,
    x: *const f32,
    b: *const f32,
    ldb: isize,
    n: usize,
    out: *mut f32,
) {
    const W: usize = 64;
    debug_assert!(n <= W);
    let mut acc = [0f32; W];
    if n == W {
        for p in 0..k {
            // SAFETY: x holds k floats; row p of B holds W contiguous floats.
            let (xp, row) = unsafe { (*x.add(p), &*(b.offset(p as isize * ldb) as *const [f32; W])) };
            for l in 0..W {
                acc[l] = fma::<F>(xp, row[l], acc[l]);
            }
        }
    } else {
        for p in 0..k {
            // SAFETY: as above with n floats.
            let (xp, row) = unsafe { (*x.add(p), std::slice::from_raw_parts(b.offset(p as isize * ldb), n)) };
            for (a, r) in acc[..n].iter_mut().zip(row) {
                *a = fma::<F>(xp, *r, *a);
            }
        }
    }
    // SAFETY: out holds n floats.
    unsafe { std::ptr::copy_nonoverlapping(acc.as_ptr(), out, n) };
}

/// # Safety
/// [`super::arch::DotFn`]'s contract.
#[inline(always)]
pub(crate) unsafe fn dot_body<const F: bool>(n: usize, x: *const f32, y: *const f32) -> f32 {
    const W: usize = 32;
    // SAFETY: x and y hold n floats each.
    let (x, y) = unsafe { (std::slice::from_raw_parts(x, n), std::slice::from_raw_parts(y, n)) };
    let mut acc = [0f32; W];
    let (xc, yc) = (x.chunks_exact(W), y.chunks_exact(W));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for l in 0..W {
            acc[l] = fma::<F>(a[l], b[l], acc[l]);
        }
    }
    for (l, (a, b)) in xr.iter().zip(yr).enumerate() {
        acc[l] = fma::<F>(*a, *b, acc[l]);
    }
    let mut w = W;
    while w > 1 {
        w /= 2;
        for l in 0..w {
            acc[l] += acc[l + w];
        }
    }
    acc[0]
}

/// # Safety
/// [`super::arch::AxpyFn`]'s contract.
#[inline(always)]
pub(crate) unsafe fn axpy_body<const F: bool>(n: usize, a: f32, x: *const f32, y: *mut f32) {
    // SAFETY: x and y hold n floats each and do not overlap (x is an input operand, y a scratch buffer).
    let (x, y) = unsafe { (std::slice::from_raw_parts(x, n), std::slice::from_raw_parts_mut(y, n)) };
    for (y, x) in y.iter_mut().zip(x) {
        *y = fma::<F>(a, *x, *y);
    }
}

/// # Safety
/// [`super::arch::FoldDotFn`]'s contract; `mr` divides 48.
#[inline(always)]
pub(crate) unsafe fn fold_dot_body<const F: bool>(
    len: usize,
    xe: *const f32,
    panel: *const f32,
    mr: usize,
    out: *mut f32,
) {
    const W: usize = 48;
    assert!(mr > 0 && W.is_multiple_of(mr));
    // SAFETY: both streams hold len floats.
    let (x, p) = unsafe { (std::slice::from_raw_parts(xe, len), std::slice::from_raw_parts(panel, len)) };
    let mut acc = [0f32; W];
    let (xc, pc) = (x.chunks_exact(W), p.chunks_exact(W));
    let (xr, pr) = (xc.remainder(), pc.remainder());
    for (a, b) in xc.zip(pc) {
        for l in 0..W {
            acc[l] = fma::<F>(a[l], b[l], acc[l]);
        }
    }
    // Chunk starts are multiples of 48, hence of mr: lane l belongs to row l mod mr, in the tail too.
    for (l, (a, b)) in xr.iter().zip(pr).enumerate() {
        acc[l] = fma::<F>(*a, *b, acc[l]);
    }
    for r in 0..mr {
        let mut s = 0.0;
        let mut l = r;
        while l < W {
            s += acc[l];
            l += mr;
        }
        // SAFETY: out holds mr floats.
        unsafe { *out.add(r) = s };
    }
}
