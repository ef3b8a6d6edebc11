//! x86_64 tiers: AVX2 + FMA (6×16: 12 ymm accumulators, 2 B loads and 6 broadcasts per step) and AVX-512F
//! (12×32: 24 zmm accumulators, 2 B loads, broadcasts folded into the FMAs). Selected only when the CPU and the OS
//! both support them (see `isa.rs`).

use super::{make_kernel_set, Ahead, KernelSet, Seg, TileEpi};
use crate::kernels::isa::Isa;
use std::arch::x86_64::*;

pub(crate) static AVX2: KernelSet = KernelSet {
    stride2: avx2_stride2,
    transpose: avx2_transpose,
    ..make_kernel_set!(Isa::Avx2, 6, 16, "avx2_mmm_f32_6x16", avx2_mmm_f32_6x16, avx2w)
};
pub(crate) static AVX512: KernelSet = KernelSet {
    stride2: avx2_stride2,
    transpose: avx2_transpose,
    dw_fill: avx512_dw_fill,
    dw_row: avx512_dw_row,
    dw3x3: Some(avx512_dw3x3),
    gemm_seg: Some(avx512_mmm_f32_12x32_seg),
    gemm_seg_arows: Some(avx512_mmm_f32_12x32_seg_arows),
    pool_max_lines: Some(avx512_pool_max_lines),
    ..make_kernel_set!(Isa::Avx512, 12, 32, "avx512_mmm_f32_12x32", avx512_mmm_f32_12x32, avx512w)
};

mod avx2w {
    crate::kernels::arch::portable_wrappers!(16, true, "avx2,fma");
}

mod avx512w {
    crate::kernels::arch::portable_wrappers!(32, true, "avx512f,avx2,fma");
}

/// [`super::PoolMaxLinesFn`]: 16 outputs per step. The maximum over the rows is taken on 16 input columns at a
/// time (masked loads: columns outside the row read −∞, so padding and windows hanging past the end need no copy);
/// along the row, stride 2 splits two such vectors into even and odd lanes with two-source permutes (the third
/// tap is the even lanes shifted by one, the next vector's first lane coming in), stride 1 shifts them with
/// `valignd`. Where the next step's first column is one this step reduced (stride 1; stride 2 with 3 taps), that
/// vector is carried over, not reloaded.
///
/// # Safety
/// [`super::PoolMaxLinesFn`]'s contract; AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_pool_max_lines(lines: &crate::kernels::pool::MaxLines<'_>, out: &mut [f32]) -> bool {
    let (k, s) = (lines.k, lines.s);
    assert!(matches!((k, s), (2 | 3, 1 | 2)), "fused max pool: {k} taps at stride {s}");
    // SAFETY: forwarded contract.
    unsafe {
        match (k, s) {
            (2, 1) => pool_max_lines_ks::<2, 1>(lines, out),
            (3, 1) => pool_max_lines_ks::<3, 1>(lines, out),
            (2, _) => pool_max_lines_ks::<2, 2>(lines, out),
            _ => pool_max_lines_ks::<3, 2>(lines, out),
        }
    }
}

/// [`avx512_pool_max_lines`] for `K` taps at stride `S`: each line by its row count.
///
/// # Safety
/// As [`avx512_pool_max_lines`].
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn pool_max_lines_ks<const K: usize, const S: usize>(
    lines: &crate::kernels::pool::MaxLines<'_>,
    out: &mut [f32],
) -> bool {
    let count = lines.positions.len();
    assert!(count > 0 && !out.is_empty() && out.len().is_multiple_of(count), "fused max pool: output length");
    let n = out.len() / count;
    let (image, w) = (lines.image, lines.w);
    let mut nan = false;
    for (p, out_line) in lines.positions.clone().zip(out.chunks_exact_mut(n)) {
        let rows = &lines.rows[lines.starts[p]..lines.starts[p + 1]];
        assert!(rows.iter().all(|&r| r + w <= image.len()), "fused max pool: row outside the plane");
        // SAFETY: every row is inside the plane (asserted), `out_line` holds n ≥ 1 floats; the features are on.
        nan |= unsafe {
            let (x, o) = (image.as_ptr(), out_line.as_mut_ptr());
            match rows.len() {
                0 => false,
                2 => pool_max_line_rows::<2, K, S>(x, rows, w, lines.pb, o, n),
                3 => pool_max_line_rows::<3, K, S>(x, rows, w, lines.pb, o, n),
                _ => pool_max_line_rows::<0, K, S>(x, rows, w, lines.pb, o, n),
            }
        };
    }
    nan
}

/// One line of [`avx512_pool_max_lines`] over `R` rows (`rows.len()` when 0, non-empty), `K` taps at stride `S`:
/// `out[j]` for `j < n` (see [`crate::kernels::pool::MaxLines`]); returns whether a NaN was read.
///
/// (A window with no column in `0..w` would yield −∞; the caller's geometry has none.)
///
/// # Safety
/// `rows` non-empty, `image + r` readable for `w` floats for every `r` in it, `out` writable for `n ≥ 1` floats;
/// AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
#[inline]
unsafe fn pool_max_line_rows<const R: usize, const K: usize, const S: usize>(
    image: *const f32,
    rows: &[usize],
    w: usize,
    pb: usize,
    out: *mut f32,
    n: usize,
) -> bool {
    let (k, s) = (K, S);
    let rows = if R == 0 { rows } else { &rows[..R] };
    let ninf = _mm512_set1_ps(f32::NEG_INFINITY);
    // NaN detection: each step adds up the values it read (any NaN, or ±∞ — a false positive that only costs the
    // exact fallback, as ∞ − ∞ or an overflow can), and one FMA per step folds `sum · 0` into `probe`, which stays 0
    // until a NaN or an infinity shows up, then NaN for good. Per-load unordered compares or-ed into one mask cost
    // a fifth of the kernel's time (a chain of mask ORs); a running sum of every load, a 3-cycle add per load.
    let zero = _mm512_setzero_ps();
    let mut probe = zero;
    // The maximum over the rows of input columns `c .. c + 16` and their sum, −∞ outside `0..w` (masked loads
    // there: only lanes inside the row are read; addresses formed with wrapping arithmetic).
    let column_max = |c: isize| -> (__m512, __m512) {
        // SAFETY: unmasked loads only when the 16 columns lie inside the row; masked ones touch only `mask`'s
        // lanes, which do.
        unsafe {
            let full = c >= 0 && c + 16 <= w as isize;
            let mask = if full {
                u16::MAX
            } else {
                let lo = (-c).clamp(0, 16) as u32;
                let hi = (w as isize - c).clamp(0, 16) as u32;
                if hi > lo {
                    (((1u32 << hi) - 1) & !((1u32 << lo) - 1)) as u16
                } else {
                    0
                }
            };
            let load = |r: usize| {
                if full {
                    _mm512_loadu_ps(image.add(r).offset(c))
                } else {
                    _mm512_mask_loadu_ps(ninf, mask, image.wrapping_add(r).wrapping_offset(c))
                }
            };
            // The sum over the lanes read only (the −∞ of masked-off lanes would make every edge a false positive).
            let mut acc = load(rows[0]);
            let mut sum = _mm512_maskz_mov_ps(mask, acc);
            for &r in &rows[1..] {
                let v = load(r);
                acc = _mm512_max_ps(acc, v);
                sum = _mm512_maskz_add_ps(mask, sum, v);
            }
            (acc, sum)
        }
    };
    // SAFETY: the caller's contract: out writable for n floats; AVX-512F is enabled.
    unsafe {
        let shift = |hi: __m512, lo: __m512, by: u32| -> __m512 {
            let (h, l) = (_mm512_castps_si512(hi), _mm512_castps_si512(lo));
            _mm512_castsi512_ps(if by == 1 { _mm512_alignr_epi32::<1>(h, l) } else { _mm512_alignr_epi32::<2>(h, l) })
        };
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let odd = _mm512_set_epi32(31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
        let mut carried: Option<(isize, __m512)> = None;
        let mut j = 0;
        loop {
            // The last step overlaps the one before (its outputs are recomputed, not accumulated).
            let j0 = j.min(n.saturating_sub(16));
            let c0 = (j0 * s) as isize - pb as isize;
            let (va, mut sums) = match carried {
                Some((c, v)) if c == c0 => (v, zero),
                _ => column_max(c0),
            };
            let (vb, sb) = column_max(c0 + 16);
            sums = _mm512_add_ps(sums, sb);
            let r = if s == 2 {
                let e = _mm512_permutex2var_ps(va, even, vb);
                let mut r = _mm512_max_ps(e, _mm512_permutex2var_ps(va, odd, vb));
                if k == 3 {
                    let (vc, sc) = column_max(c0 + 32);
                    sums = _mm512_add_ps(sums, sc);
                    r = _mm512_max_ps(r, shift(vc, e, 1));
                    carried = Some((c0 + 32, vc));
                }
                r
            } else {
                let mut r = _mm512_max_ps(va, shift(vb, va, 1));
                if k == 3 {
                    r = _mm512_max_ps(r, shift(vb, va, 2));
                }
                carried = Some((c0 + 16, vb));
                r
            };
            if n >= 16 {
                _mm512_storeu_ps(out.add(j0), r);
            } else {
                _mm512_mask_storeu_ps(out, ((1u32 << n) - 1) as u16, r);
            }
            probe = _mm512_fmadd_ps(sums, zero, probe);
            if j0 + 16 >= n {
                return _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(probe, probe) != 0;
            }
            j += 16;
        }
    }
}

/// [`super::Dw3x3Fn`]: 16 outputs per step, every input row read in place through lane masks (a lane whose input
/// position lies outside the plane loads zero, so padding needs no copy); stride 2 splits two 16-float loads into
/// their even and odd lanes with two-source permutes (on planes of ≤ 7 outputs per row, two output rows per
/// vector). One accumulator per kernel row (three short FMA chains).
///
/// # Safety
/// [`super::Dw3x3Fn`]'s contract; AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_dw3x3(
    g: &super::Dw3x3,
    x: *const f32,
    k: &[f32; 9],
    init: f32,
    clamp: Option<(f32, f32)>,
    y: *mut f32,
) {
    // SAFETY: every load is masked to positions inside its input row (masked-off lanes are not accessed, so the
    // addresses may lie outside the plane: formed with wrapping arithmetic); every store is masked to the outputs
    // of its row (on narrow stride-2 planes, of the one of the two rows its lanes hold); AVX-512F is enabled here.
    unsafe {
        // (Not `array::from_fn`: a closure calling intrinsics would not inherit this function's target features.)
        let mut kv = [_mm512_setzero_ps(); 9];
        for (v, &w) in kv.iter_mut().zip(k) {
            *v = _mm512_set1_ps(w);
        }
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        // Even lanes shifted by one, lane 15 from the second source's lane 0.
        let next = _mm512_setr_epi32(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16);
        let (lo, hi) = clamp.map_or((_mm512_set1_ps(f32::NEG_INFINITY), _mm512_set1_ps(f32::INFINITY)), |(l, h)| {
            (_mm512_set1_ps(l), _mm512_set1_ps(h))
        });
        let init = _mm512_set1_ps(init);
        let zero = _mm512_setzero_ps();
        // The three kernel rows' partial sums, added and clamped (max/min return their second operand when either
        // is NaN: with the sum second, NaN propagates).
        macro_rules! finish {
            ($a0:expr, $a1:expr, $a2:expr) => {
                _mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_add_ps(_mm512_add_ps($a0, $a1), $a2)))
            };
        }
        if let Some(masks) = &g.flat {
            // A small "same" plane as one flat row: every tap is one offset from the output's flat index, the masks
            // drop the lanes whose tap falls outside the plane or across a row end.
            let n = g.ho * g.wo;
            let w = g.w as isize;
            for c in 0..n.div_ceil(16) {
                let mut a = [init, zero, zero];
                for ky in 0..3 {
                    for kx in 0..3 {
                        let off = (16 * c) as isize + (ky as isize - 1) * w + kx as isize - 1;
                        let v = _mm512_maskz_loadu_ps(masks[c * 9 + ky * 3 + kx], x.wrapping_offset(off));
                        a[ky] = _mm512_fmadd_ps(v, kv[ky * 3 + kx], a[ky]);
                    }
                }
                let v = finish!(a[0], a[1], a[2]);
                let lanes = (n - 16 * c).min(16);
                _mm512_mask_storeu_ps(y.add(16 * c), ((1u32 << lanes) - 1) as u16, v);
            }
            return;
        }
        let (s, pl, w) = (g.s as isize, g.pl as isize, g.w as isize);
        // The three (stride 1) or two-plus-one (stride 2) input vectors of kernel row `$r` for the 16 outputs
        // whose first input column is `$q`, loaded through masks `$m` (unmasked with `None`), multiplied into `$acc`.
        macro_rules! load {
            ($m:expr, $p:expr) => {
                match $m {
                    Some(m) => _mm512_maskz_loadu_ps(m, $p),
                    None => _mm512_loadu_ps($p),
                }
            };
        }
        macro_rules! row_taps {
            ($acc:expr, $r:expr, $q:expr, $ky:expr, $m:expr) => {
                if s == 1 {
                    for kx in 0..3 {
                        let v = load!($m.map(|m: [u16; 3]| m[kx]), $r.wrapping_offset($q + kx as isize));
                        $acc = _mm512_fmadd_ps(v, kv[$ky * 3 + kx], $acc);
                    }
                } else {
                    let va = load!($m.map(|m: [u16; 3]| m[0]), $r.wrapping_offset($q));
                    let vb = load!($m.map(|m: [u16; 3]| m[1]), $r.wrapping_offset($q + 16));
                    // Only lane 0 of the third vector is used (the last output's right tap).
                    let vc = _mm512_maskz_loadu_ps($m.map_or(1, |m: [u16; 3]| m[2]), $r.wrapping_offset($q + 32));
                    let e = _mm512_permutex2var_ps(va, even, vb);
                    let o = _mm512_permutex2var_ps(va, odd, vb);
                    let e2 = _mm512_permutex2var_ps(e, next, vc);
                    $acc = _mm512_fmadd_ps(e, kv[$ky * 3], $acc);
                    $acc = _mm512_fmadd_ps(o, kv[$ky * 3 + 1], $acc);
                    $acc = _mm512_fmadd_ps(e2, kv[$ky * 3 + 2], $acc);
                }
            };
        }
        // The last input column a 16-output step reads, relative to its first: 15 + 2 (stride 1), 32 (stride 2).
        let reach = if s == 1 { 17 } else { 32 };
        // Lane masks of the steps that need them, the same on every output row: the first two and the last two
        // steps of a row, precomputed per layer (`g.edge`); the others only on rows that lack an input row.
        let steps = g.wo.div_ceil(16);
        let mask_of = |i: usize| -> [u16; 3] {
            if i < 2 {
                g.edge[i]
            } else if i + 2 >= steps {
                g.edge[i + 4 - steps]
            } else {
                g.step_masks(i)
            }
        };
        // Rows of a single 16-lane step (MobileNet's 14×14 and 7×7 outputs): every row has the same masks, and
        // two interior rows (all three input rows inside the plane) run together for independent FMA chains.
        let one_step = steps == 1;
        let m0 = g.edge[0];
        let interior = |oy: usize| {
            let iy0 = (oy * g.s) as isize - g.pt as isize;
            iy0 >= 0 && iy0 + 2 < g.h as isize
        };
        // Stride 2: while output rows `oy0 .. oy1` are computed, the same share of the input plane after this one
        // is fetched into L2 (the next channel's with multiplier 1; with a channel multiplier the caller repeats a
        // plane first, and past a task's last channel the fetch is wasted: hints only). The hardware prefetchers
        // kept up with stride-1 planes, not with these: inside MobileNetV1 (one core) its 112² → 56² layer took
        // 166–191 µs without, 90–91 with (the same layer alone, its input fresh from a single pointwise layer:
        // 74 µs).
        let next_plane = x.wrapping_add(g.h * g.w);
        let prefetch_next = |oy0: usize, oy1: usize| {
            if s == 2 {
                let (r0, r1) = (oy0 * g.h / g.ho, (oy1 * g.h / g.ho).min(g.h));
                let end = next_plane.wrapping_add(r1 * g.w);
                let mut p = next_plane.wrapping_add(r0 * g.w);
                while p < end {
                    _mm_prefetch::<_MM_HINT_T1>(p as *const i8);
                    p = p.wrapping_add(16);
                }
            }
        };
        if s == 2 && g.wo <= 7 {
            // Narrow stride-2 planes (MobileNetV1's 14² → 7²): every tap of an output row lies in one 16-float load
            // of its input row (output j, tap kx: lane 2j + kx ≤ 14), so two output rows share each vector, row oy
            // in lanes 0..8 and oy + 1 in lanes 8..16: per kernel row two loads, three two-source permutes and three
            // FMAs for both rows (the general step: three loads, three permutes, three FMAs per row).
            let even2 = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
            let odd2 = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
            // Lanes 7 and 15 (the eighth output of each row, never stored) take whatever index 16 / 32 selects.
            let next2 = _mm512_setr_epi32(2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 0);
            let m = g.inside(-pl);
            let nm = ((1u32 << g.wo) - 1) as u16;
            // Input row `iy` (possibly outside the plane: zeros) from column −pl, 16 lanes. (A macro, not a
            // closure: the loads must be compiled with this function's target features.)
            macro_rules! row {
                ($iy:expr) => {{
                    let iy: isize = $iy;
                    if (0..g.h as isize).contains(&iy) {
                        _mm512_maskz_loadu_ps(m, x.offset(iy * w).wrapping_offset(-pl))
                    } else {
                        zero
                    }
                }};
            }
            let mut oy = 0;
            while oy < g.ho {
                prefetch_next(oy, (oy + 2).min(g.ho));
                let second = oy + 1 < g.ho;
                let iy0 = (2 * oy) as isize - g.pt as isize;
                let mut a = [init, zero, zero];
                for (ky, acc) in a.iter_mut().enumerate() {
                    let va = row!(iy0 + ky as isize);
                    let vb = if second { row!(iy0 + 2 + ky as isize) } else { zero };
                    *acc = _mm512_fmadd_ps(_mm512_permutex2var_ps(va, even2, vb), kv[ky * 3], *acc);
                    *acc = _mm512_fmadd_ps(_mm512_permutex2var_ps(va, odd2, vb), kv[ky * 3 + 1], *acc);
                    *acc = _mm512_fmadd_ps(_mm512_permutex2var_ps(va, next2, vb), kv[ky * 3 + 2], *acc);
                }
                let v = finish!(a[0], a[1], a[2]);
                _mm512_mask_storeu_ps(y.add(oy * g.wo), nm, v);
                if second {
                    // Lanes 8 .. 8 + wo go to row oy + 1: the store's base sits 8 floats before that row.
                    _mm512_mask_storeu_ps(y.add((oy + 1) * g.wo).wrapping_sub(8), nm << 8, v);
                }
                oy += 2;
            }
            return;
        }
        let mut oy = 0;
        while oy < g.ho {
            if one_step && s == 1 && oy + 3 < g.ho && interior(oy) && interior(oy + 3) {
                // Four interior rows of a narrow stride-1 plane: the three column masks held in mask registers,
                // 12 independent accumulators, each input row loaded once per kernel column for the rows it feeds.
                // (Inline here, not through `avx512_dw_four_rows` as the wider planes below: through it 14 × 14
                // planes ran 0.88×.)
                // Input rows oy − pt … oy − pt + 5 feed output rows oy … oy + 3.
                let base = x.add((oy - g.pt) * g.w).wrapping_offset(-pl);
                let a = dw_four_rows_acc(base, g.w, [m0[0], m0[1], m0[2]], &kv, init, zero);
                let nm = ((1u32 << g.wo) - 1) as u16;
                for (j, acc) in a.iter().enumerate() {
                    _mm512_mask_storeu_ps(y.add((oy + j) * g.wo), nm, finish!(acc[0], acc[1], acc[2]));
                }
                oy += 4;
                continue;
            }
            if s == 1 && (2..=4).contains(&steps) && oy + 3 < g.ho && interior(oy) && interior(oy + 3) {
                // The same four rows on planes of 2 … 4 steps (17 … 64 outputs wide), a step at a time. Row by row,
                // such planes spent most of their time choosing masks and paths per step (28 × 28: 1.75×, 56 × 56:
                // 1.44× faster this way in MobileNetV1); wider ones stream rows better row by row (112 × 112: 0.86×
                // this way). Out of line, as inlined it slowed the one-step block above by 10 % (its presence still
                // costs that block ~5 % on 14 × 14 planes in `kernel_bench`, unexplained; MobileNetV1 1.3 % faster).
                let base = x.add((oy - g.pt) * g.w).wrapping_offset(-pl);
                let out = y.add(oy * g.wo);
                for st in 0..steps {
                    let (q, nm) = (16 * st, ((1u32 << (g.wo - 16 * st).min(16)) - 1) as u16);
                    avx512_dw_four_rows(
                        base.wrapping_add(q),
                        g.w,
                        mask_of(st),
                        &kv,
                        [init, zero, lo, hi],
                        out.add(q),
                        g.wo,
                        nm,
                    );
                }
                oy += 4;
                continue;
            }
            if one_step && oy + 1 < g.ho && interior(oy) && interior(oy + 1) {
                prefetch_next(oy, oy + 2);
                let r0 = x.add((oy * g.s - g.pt) * g.w);
                let r1 = x.add(((oy + 1) * g.s - g.pt) * g.w);
                let mut a = [init, zero, zero, init, zero, zero];
                for ky in 0..3 {
                    row_taps!(a[ky], r0.add(ky * g.w), -pl, ky, Some(m0));
                    row_taps!(a[3 + ky], r1.add(ky * g.w), -pl, ky, Some(m0));
                }
                let (v0, v1) = (finish!(a[0], a[1], a[2]), finish!(a[3], a[4], a[5]));
                let nm = ((1u32 << g.wo) - 1) as u16;
                _mm512_mask_storeu_ps(y.add(oy * g.wo), nm, v0);
                _mm512_mask_storeu_ps(y.add((oy + 1) * g.wo), nm, v1);
                oy += 2;
                continue;
            }
            let iy0 = (oy * g.s) as isize - g.pt as isize;
            prefetch_next(oy, oy + 1);
            let mut rows = [x; 3];
            let mut present = [false; 3];
            for ky in 0..3 {
                let iy = iy0 + ky as isize;
                if (0..g.h as isize).contains(&iy) {
                    rows[ky] = x.add(iy as usize * g.w);
                    present[ky] = true;
                }
            }
            let all_rows = present == [true; 3];
            let yrow = y.add(oy * g.wo);
            let mut ox0 = 0;
            while ox0 < g.wo {
                let q = s * ox0 as isize - pl;
                // Interior steps (every row present, every lane inside the input and the output): unmasked, two
                // steps at a time for independent FMA chains.
                if all_rows && q >= 0 && q + s * 16 + reach < w && ox0 + 32 <= g.wo {
                    let mut a = [init, zero, zero, init, zero, zero];
                    let q2 = q + s * 16;
                    for ky in 0..3 {
                        row_taps!(a[ky], rows[ky], q, ky, None::<[u16; 3]>);
                        row_taps!(a[3 + ky], rows[ky], q2, ky, None::<[u16; 3]>);
                    }
                    let (v0, v1) = (finish!(a[0], a[1], a[2]), finish!(a[3], a[4], a[5]));
                    _mm512_storeu_ps(yrow.add(ox0), v0);
                    _mm512_storeu_ps(yrow.add(ox0 + 16), v1);
                    ox0 += 32;
                    continue;
                }
                let n = (g.wo - ox0).min(16);
                let m = mask_of(ox0 / 16);
                let mut a = [init, zero, zero];
                for ky in 0..3 {
                    if present[ky] {
                        row_taps!(a[ky], rows[ky], q, ky, Some(m));
                    }
                }
                _mm512_mask_storeu_ps(yrow.add(ox0), ((1u32 << n) - 1) as u16, finish!(a[0], a[1], a[2]));
                ox0 += 16;
            }
            oy += 1;
        }
    }
}

/// Four output rows of one 16-output step of a 3×3 stride-1 depthwise plane whose input rows all lie inside it:
/// `base` is the step's first tap in the first input row (rows `w` apart), `masks` its three column-tap load masks
/// (held in mask registers); 12 independent accumulators, each of the 6 input rows loaded once per kernel column
/// for the output rows it feeds; `[init, zero, lo, hi]` as in [`avx512_dw3x3`]; `nm` selects the lanes stored at
/// `out + j·wo`.
///
/// # Safety
/// As [`avx512_dw3x3`] for these rows: the masked loads touch only positions inside the input rows, the stores
/// only outputs of the plane; AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_dw_four_rows(
    base: *const f32,
    w: usize,
    masks: [u16; 3],
    kv: &[__m512; 9],
    [init, zero, lo, hi]: [__m512; 4],
    out: *mut f32,
    wo: usize,
    nm: u16,
) {
    // SAFETY: the caller's contract; AVX-512F is enabled here.
    unsafe {
        let a = dw_four_rows_acc(base, w, masks, kv, init, zero);
        for (j, acc) in a.iter().enumerate() {
            // max/min return their second operand when either is NaN: with the sum second, NaN propagates.
            let v = _mm512_min_ps(hi, _mm512_max_ps(lo, _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), acc[2])));
            _mm512_mask_storeu_ps(out.add(j * wo), nm, v);
        }
    }
}

/// The accumulators of four output rows of one 16-output step (see [`avx512_dw_four_rows`]): input rows 0 … 5
/// from `base` (`w` apart) feed output rows 0 … 3, row `r` through kernel row `r − j`, each input row loaded once
/// per kernel column; `a[j][ky]` holds output row `j`'s sum over kernel row `ky` (three independent chains per row).
///
/// # Safety
/// As [`avx512_dw_four_rows`]: the masked loads touch only positions inside the input rows; the caller has AVX-512F.
#[inline(always)]
unsafe fn dw_four_rows_acc(
    base: *const f32,
    w: usize,
    [k0, k1, k2]: [u16; 3],
    kv: &[__m512; 9],
    init: __m512,
    zero: __m512,
) -> [[__m512; 3]; 4] {
    // SAFETY: the caller's contract (loads inside the input rows, AVX-512F present).
    unsafe {
        let mut a = [[init, zero, zero]; 4];
        for r in 0..6 {
            let rp = base.wrapping_add(r * w);
            let v = [
                _mm512_maskz_loadu_ps(k0, rp),
                _mm512_maskz_loadu_ps(k1, rp.wrapping_add(1)),
                _mm512_maskz_loadu_ps(k2, rp.wrapping_add(2)),
            ];
            for (j, acc) in a.iter_mut().enumerate() {
                if r >= j && r - j < 3 {
                    let ky = r - j;
                    for (kx, &vk) in v.iter().enumerate() {
                        acc[ky] = _mm512_fmadd_ps(vk, kv[ky * 3 + kx], acc[ky]);
                    }
                }
            }
        }
        a
    }
}

/// [`super::TransposeFn`]: whole 8 × 8 blocks through registers (8 row loads, 24 shuffles, 8 row stores), the
/// ragged edges through the portable body.
///
/// # Safety
/// [`super::TransposeFn`]'s contract; AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_transpose(rows: usize, cols: usize, src: *const f32, lds: usize, dst: *mut f32, ldd: usize) {
    let (r8, c8) = (rows / 8 * 8, cols / 8 * 8);
    // SAFETY: every block below lies inside rows × cols (the contract's ranges); AVX2 is enabled here.
    unsafe {
        for i0 in (0..r8).step_by(8) {
            for j0 in (0..c8).step_by(8) {
                let s = src.add(i0 * lds + j0);
                let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * lds)));
                let u = transpose4x4_halves(r[0], r[1], r[2], r[3]);
                let v = transpose4x4_halves(r[4], r[5], r[6], r[7]);
                let out = [
                    _mm256_permute2f128_ps::<0x20>(u[0], v[0]),
                    _mm256_permute2f128_ps::<0x20>(u[1], v[1]),
                    _mm256_permute2f128_ps::<0x20>(u[2], v[2]),
                    _mm256_permute2f128_ps::<0x20>(u[3], v[3]),
                    _mm256_permute2f128_ps::<0x31>(u[0], v[0]),
                    _mm256_permute2f128_ps::<0x31>(u[1], v[1]),
                    _mm256_permute2f128_ps::<0x31>(u[2], v[2]),
                    _mm256_permute2f128_ps::<0x31>(u[3], v[3]),
                ];
                let d = dst.add(j0 * ldd + i0);
                for (j, v) in out.iter().enumerate() {
                    _mm256_storeu_ps(d.add(j * ldd), *v);
                }
            }
        }
        // A group of 4 rows below them (the 12-row A panels of a GEMM: 8 + 4), 4 × 8 blocks: two 4 × 4
        // transposes per block, one per 128-bit half.
        let r4 = if rows - r8 >= 4 { r8 + 4 } else { r8 };
        if r4 > r8 {
            for j0 in (0..c8).step_by(8) {
                let s = src.add(r8 * lds + j0);
                let r: [__m256; 4] = std::array::from_fn(|i| _mm256_loadu_ps(s.add(i * lds)));
                let u = transpose4x4_halves(r[0], r[1], r[2], r[3]);
                let d = dst.add(j0 * ldd + r8);
                for (j, v) in u.iter().enumerate() {
                    _mm_storeu_ps(d.add(j * ldd), _mm256_castps256_ps128(*v));
                    _mm_storeu_ps(d.add((j + 4) * ldd), _mm256_extractf128_ps::<1>(*v));
                }
            }
        }
        // Right edge (columns c8..) of the rows done above, then the bottom rows r4.. over every column.
        super::transpose_body(r4, cols - c8, src.add(c8), lds, dst.add(c8 * ldd), ldd);
        super::transpose_body(rows - r4, cols, src.add(r4 * lds), lds, dst.add(r4), ldd);
    }
}

/// Four 8-float rows `a, b, c, d` as two 4 × 4 transposes, one per 128-bit half: vector `j` holds column `j`
/// (low half, from columns 0–3) and column `j + 4` (high half) of the four rows. Register-only; callable (and
/// inlined) where AVX2 is enabled.
#[target_feature(enable = "avx2,fma")]
#[inline]
fn transpose4x4_halves(a: __m256, b: __m256, c: __m256, d: __m256) -> [__m256; 4] {
    let t0 = _mm256_unpacklo_ps(a, b);
    let t1 = _mm256_unpackhi_ps(a, b);
    let t2 = _mm256_unpacklo_ps(c, d);
    let t3 = _mm256_unpackhi_ps(c, d);
    [
        _mm256_shuffle_ps::<0x44>(t0, t2),
        _mm256_shuffle_ps::<0xEE>(t0, t2),
        _mm256_shuffle_ps::<0x44>(t1, t3),
        _mm256_shuffle_ps::<0xEE>(t1, t3),
    ]
}

/// `dst[t] = src[2t]` ([`super::Stride2Fn`]), 8 outputs per shuffle + lane permute.
///
/// # Safety
/// [`super::Stride2Fn`]'s contract; AVX2 must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_stride2(n: usize, src: *const f32, dst: *mut f32) {
    let mut t = 0;
    // SAFETY: each block reads src[2t .. 2t+16] with 2t + 15 ≤ 2n − 2 (t + 9 ≤ n) and writes dst[t .. t+8].
    unsafe {
        while t + 9 <= n {
            let a = _mm256_loadu_ps(src.add(2 * t));
            let b = _mm256_loadu_ps(src.add(2 * t + 8));
            // Per 128-bit lane: [a0 a2 b0 b2 | a4 a6 b4 b6]; then 64-bit lanes (0, 2, 1, 3).
            let e = _mm256_shuffle_ps::<0b10_00_10_00>(a, b);
            let r = _mm256_castpd_ps(_mm256_permute4x64_pd::<0b11_01_10_00>(_mm256_castps_pd(e)));
            _mm256_storeu_ps(dst.add(t), r);
            t += 8;
        }
        while t < n {
            *dst.add(t) = *src.add(2 * t);
            t += 1;
        }
    }
}

/// [`super::DwRowFn`] with four independent 16-lane accumulators per 64 outputs (the FMA latency is hidden; the
/// portable body's array accumulators keep only two chains on this tier), then 16-lane chunks and one masked tail.
///
/// # Safety
/// [`super::DwRowFn`]'s contract; AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_dw_row(lo: usize, hi: usize, taps: &[crate::kernels::depthwise::Tap], init: f32, out: *mut f32) {
    let v0 = _mm512_set1_ps(init);
    let mut o = lo;
    // SAFETY: every load reads tap.base[o + off + i] for an output o + i in lo..hi (in bounds by the contract, or
    // masked off), every store writes out[o + i] for o + i in lo..hi.
    unsafe {
        while o + 64 <= hi {
            let (mut a0, mut a1, mut a2, mut a3) = (v0, v0, v0, v0);
            for t in taps {
                let p = t.base.offset(o as isize + t.off);
                let w = _mm512_set1_ps(t.w);
                a0 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p), a0);
                a1 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(16)), a1);
                a2 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(32)), a2);
                a3 = _mm512_fmadd_ps(w, _mm512_loadu_ps(p.add(48)), a3);
            }
            let d = out.wrapping_add(o);
            _mm512_storeu_ps(d, a0);
            _mm512_storeu_ps(d.add(16), a1);
            _mm512_storeu_ps(d.add(32), a2);
            _mm512_storeu_ps(d.add(48), a3);
            o += 64;
        }
        while o < hi {
            let m: __mmask16 = if hi - o >= 16 { 0xffff } else { ((1u32 << (hi - o)) - 1) as u16 };
            let mut a = v0;
            for t in taps {
                let p = t.base.wrapping_offset(o as isize + t.off);
                a = _mm512_fmadd_ps(_mm512_set1_ps(t.w), _mm512_maskz_loadu_ps(m, p), a);
            }
            _mm512_mask_storeu_ps(out.wrapping_add(o), m, a);
            o += 16;
        }
    }
}

/// [`super::DwFillFn`] for stride 2 on short rows (≤ 16 outputs per phase, MobileNet's 14 → 7 and 28 → 14
/// layers): the even floats of two masked loads picked with one two-source permute, one masked store — no scalar
/// tail per row.
///
/// # Safety
/// [`super::DwFillFn`]'s contract; AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_dw_fill(copies: &[usize], sw: usize, x: *const f32, padded: *mut f32, stride2: super::Stride2Fn) {
    // Rows longer than one 16-float chunk (judged by the first copy; the loop below is exact for any length) go
    // through the portable body (the AVX2 shuffle kernel): measured faster there on MobileNet's 56 → 28 layer
    // (0.94–1.03× the CPU EP against 0.62–0.67× with the masked moves).
    if sw != 2 || copies.get(2).is_some_and(|&n| n > 16) {
        // SAFETY: forwarded contract.
        return unsafe { crate::kernels::depthwise::fill_body(copies, sw, x, padded, stride2) };
    }
    let lanes = |k: usize| -> __mmask16 {
        if k >= 16 {
            0xffff
        } else {
            ((1u32 << k) - 1) as u16
        }
    };
    let evens = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for c in copies.chunks_exact(3) {
        let (src, dst, n) = (c[0], c[1], c[2]);
        // SAFETY: masked lanes are neither read nor written (AVX-512 masked moves suppress faults); every unmasked
        // lane reads x[src + i] with i ≤ (n − 1)·sw and writes padded[dst + t] with t < n (the contract).
        unsafe {
            let (s, d) = (x.add(src), padded.add(dst));
            let mut t = 0;
            while t < n {
                let out = lanes(n - t);
                // 16 outputs read floats 2t .. 2t + 30; only 2(n − 1) + 1 − 2t of them exist.
                let avail = 2 * (n - t) - 1;
                let lo = _mm512_maskz_loadu_ps(lanes(avail), s.add(2 * t));
                let hi = _mm512_maskz_loadu_ps(lanes(avail.saturating_sub(16)), s.wrapping_add(2 * t + 16));
                _mm512_mask_storeu_ps(d.add(t), out, _mm512_permutex2var_ps(lo, evens, hi));
                t += 16;
            }
        }
    }
}

/// # Safety
/// [`super::GemmUkr`]'s contract; AVX2 and FMA must be available.
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_mmm_f32_6x16(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    accumulate: bool,
    epi: *const TileEpi,
) {
    const MR: usize = 6;
    const NR: usize = 16;
    // SAFETY: the panels hold k·MR and k·NR floats (read below in order); the tile rows are NR writable floats at
    // c + i·rsc, and a non-null `epi` residual holds NR readable floats at res + i·res_rs (the caller's contract,
    // see `TileEpi`); AVX2/FMA are enabled on this function and supported by the caller's check.
    unsafe {
        // Warm the C tile (read back when accumulating, written at the end) and the residual's rows (see
        // `avx512_body`) while the product runs.
        let res = epi.as_ref().filter(|e| !e.res.is_null()).map(|e| (e.res, e.res_rs));
        for i in 0..MR {
            let cp = c.offset(i as isize * rsc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(cp);
            _mm_prefetch::<_MM_HINT_T0>(cp.add(63));
            if let Some((r, rs)) = res {
                let rp = r.wrapping_offset(i as isize * rs) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(rp);
                _mm_prefetch::<_MM_HINT_T0>(rp.wrapping_add(63));
            }
        }
        let mut acc = [[_mm256_setzero_ps(); 2]; MR];
        let mut ap = a;
        let mut bp = b;
        macro_rules! step {
            () => {
                let b0 = _mm256_loadu_ps(bp);
                let b1 = _mm256_loadu_ps(bp.add(8));
                for (i, row) in acc.iter_mut().enumerate() {
                    let av = _mm256_broadcast_ss(&*ap.add(i));
                    row[0] = _mm256_fmadd_ps(av, b0, row[0]);
                    row[1] = _mm256_fmadd_ps(av, b1, row[1]);
                }
                ap = ap.add(MR);
                bp = bp.add(NR);
            };
        }
        let mut p = k;
        while p >= 4 {
            step!();
            step!();
            step!();
            step!();
            p -= 4;
        }
        while p > 0 {
            step!();
            p -= 1;
        }
        // Epilogue fields read once into registers (C stores below could alias them as far as the compiler knows).
        let e = epi.as_ref().copied();
        let rb = e.map_or(std::ptr::null(), |e| e.row_bias);
        let cb = e.map(|e| e.col_bias).filter(|p| !p.is_null());
        let (cb0, cb1) = match cb {
            Some(p) => (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8))),
            None => (_mm256_setzero_ps(), _mm256_setzero_ps()),
        };
        let (res, res_rs) = e.map_or((std::ptr::null(), 0), |e| (e.res, e.res_rs));
        let clamp = e.filter(|e| e.clamp).map(|e| (_mm256_set1_ps(e.lo), _mm256_set1_ps(e.hi)));
        // Rows by constant index, so the accumulators stay in registers (see the AVX-512 kernel).
        macro_rules! store_row {
            ($i:expr) => {{
                let i: usize = $i;
                let cp = c.offset(i as isize * rsc);
                let (mut v0, mut v1) = (acc[i][0], acc[i][1]);
                if accumulate {
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(cp));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(cp.add(8)));
                }
                if !rb.is_null() {
                    let b = _mm256_broadcast_ss(&*rb.add(i));
                    v0 = _mm256_add_ps(v0, b);
                    v1 = _mm256_add_ps(v1, b);
                }
                if cb.is_some() {
                    v0 = _mm256_add_ps(v0, cb0);
                    v1 = _mm256_add_ps(v1, cb1);
                }
                if !res.is_null() {
                    let rp = res.offset(i as isize * res_rs);
                    v0 = _mm256_add_ps(v0, _mm256_loadu_ps(rp));
                    v1 = _mm256_add_ps(v1, _mm256_loadu_ps(rp.add(8)));
                }
                if let Some((lo, hi)) = clamp {
                    // max/min return their second operand if either is NaN: with v second, NaN propagates (ORT's Clip).
                    v0 = _mm256_min_ps(hi, _mm256_max_ps(lo, v0));
                    v1 = _mm256_min_ps(hi, _mm256_max_ps(lo, v1));
                }
                _mm256_storeu_ps(cp, v0);
                _mm256_storeu_ps(cp.add(8), v1);
            }};
        }
        super::each_row!(store_row: 0 1 2 3 4 5);
    }
}

/// # Safety
/// [`super::GemmUkr`]'s contract; AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
unsafe fn avx512_mmm_f32_12x32(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    accumulate: bool,
    epi: *const TileEpi,
) {
    const WHOLE: [Seg; 1] = [Seg { delta: 0, mask: u32::MAX }];
    let (boff, ahead) = (std::ptr::null(), Ahead::NONE);
    // SAFETY: the caller's GemmUkr contract covers a whole 12 × 32 tile at c (one segment, every lane).
    unsafe { avx512_body::<12, false, false, false, false>(k, a, 1, b, boff, c, rsc, &WHOLE, accumulate, epi, ahead) }
}

/// Rows `0..m` of a 12 × 32 tile, stored through lane masks ([`super::GemmSegUkr`]); B packed (`boff` null) or
/// read in place, row `p` at `b + boff[p]`.
///
/// # Safety
/// [`super::GemmSegUkr`]'s contract; AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_mmm_f32_12x32_seg(
    k: usize,
    m: usize,
    a: *const f32,
    b: *const f32,
    boff: *const usize,
    c: *mut f32,
    rsc: isize,
    segs: &[Seg],
    accumulate: bool,
    epi: *const TileEpi,
) {
    // A tile whose stored lanes are all in the panel's first half (a ragged last panel of ≤ 16 columns: N = 65,
    // 196 or 1000) runs with one vector of B per step: half the FMAs of a whole tile.
    let half = stores_half(segs);
    let none = Ahead::NONE;
    // SAFETY: forwarded contract (a half tile reads only the first 16 floats of each B row or panel step).
    unsafe {
        match (boff.is_null(), half) {
            (true, false) => {
                avx512_seg_m::<false, false, false, false>(k, m, a, 1, b, boff, c, rsc, segs, accumulate, epi, none)
            }
            (true, true) => {
                avx512_seg_m::<false, false, false, true>(k, m, a, 1, b, boff, c, rsc, segs, accumulate, epi, none)
            }
            (false, false) => {
                avx512_seg_m::<true, false, false, false>(k, m, a, 1, b, boff, c, rsc, segs, accumulate, epi, none)
            }
            (false, true) => {
                avx512_seg_m::<true, false, false, true>(k, m, a, 1, b, boff, c, rsc, segs, accumulate, epi, none)
            }
        }
    }
}

/// Rows `0..m` of a 12 × 32 tile with A read in place ([`super::GemmSegAUkr`]): step `p` broadcasts the `m`
/// floats at `a + aoff[p] + i·ars`; B is a packed panel; stored through lane masks.
///
/// # Safety
/// [`super::GemmSegAUkr`]'s contract; AVX-512F must be available.
#[target_feature(enable = "avx512f,avx2,fma")]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_mmm_f32_12x32_seg_arows(
    k: usize,
    m: usize,
    a: *const f32,
    aoff: *const usize,
    ars: usize,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    segs: &[Seg],
    accumulate: bool,
    epi: *const TileEpi,
    ahead: Ahead,
) {
    // As in `avx512_mmm_f32_12x32_seg`: a ragged last panel of ≤ 16 channels (SqueezeNet's 1000 = 31·32 + 8)
    // runs with one vector of B per step.
    let half = stores_half(segs);
    // SAFETY: forwarded contract (the body reads A step p at a + aoff[p] + i·ars, rows 0..m; a half tile only the
    // first 16 floats of each B panel step).
    unsafe {
        match (ars == 1, half) {
            (true, false) => {
                avx512_seg_m::<false, true, false, false>(k, m, a, 1, b, aoff, c, rsc, segs, accumulate, epi, ahead)
            }
            (true, true) => {
                avx512_seg_m::<false, true, false, true>(k, m, a, 1, b, aoff, c, rsc, segs, accumulate, epi, ahead)
            }
            (false, false) => {
                avx512_seg_m::<false, true, true, false>(k, m, a, ars, b, aoff, c, rsc, segs, accumulate, epi, ahead)
            }
            (false, true) => {
                avx512_seg_m::<false, true, true, true>(k, m, a, ars, b, aoff, c, rsc, segs, accumulate, epi, ahead)
            }
        }
    }
}

/// Whether every segment stores only lanes 0..16 (the `HALF` instantiations).
fn stores_half(segs: &[Seg]) -> bool {
    segs.iter().all(|s| s.mask >> 16 == 0)
}

/// Dispatch on the row count.
///
/// # Safety
/// As [`avx512_mmm_f32_12x32_seg`].
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_seg_m<const ROWS: bool, const AROWS: bool, const STRIDED: bool, const HALF: bool>(
    k: usize,
    m: usize,
    a: *const f32,
    ars: usize,
    b: *const f32,
    boff: *const usize,
    c: *mut f32,
    rsc: isize,
    segs: &[Seg],
    accumulate: bool,
    epi: *const TileEpi,
    ahead: Ahead,
) {
    use avx512_body as body;
    // SAFETY: forwarded contract; each instantiation reads m ≤ 12 rows of the 12-row A panel.
    unsafe {
        match m {
            1 => body::<1, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            2 => body::<2, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            3 => body::<3, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            4 => body::<4, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            5 => body::<5, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            6 => body::<6, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            7 => body::<7, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            8 => body::<8, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            9 => body::<9, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            10 => body::<10, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            11 => body::<11, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
            _ => body::<12, ROWS, AROWS, STRIDED, HALF>(k, a, ars, b, boff, c, rsc, segs, accumulate, epi, ahead),
        }
    }
}

/// A 32-lane row gathered through the segments' lane masks (`whole`: two plain loads at `base`); lanes outside
/// every mask read zero. A function, not a closure in [`avx512_body`]: with the half-tile instantiations LLVM
/// stopped inlining the closure (and the loads inside it), a call per gathered row (8 % on SqueezeNet's classifier
/// layer).
///
/// # Safety
/// Every lane a segment selects (`base + seg.delta + t`) is readable (`whole`: 32 floats at `base`); AVX-512F is
/// enabled in the caller.
#[inline(always)]
unsafe fn gather_segs(whole: bool, segs: &[Seg], base: *const f32) -> (__m512, __m512) {
    // SAFETY: the caller's contract; masked loads touch only the selected lanes.
    unsafe {
        if whole {
            return (_mm512_loadu_ps(base), _mm512_loadu_ps(base.add(16)));
        }
        let (mut v0, mut v1) = (_mm512_setzero_ps(), _mm512_setzero_ps());
        for seg in segs {
            let q = base.wrapping_offset(seg.delta);
            v0 = _mm512_mask_loadu_ps(v0, seg.mask as u16, q);
            v1 = _mm512_mask_loadu_ps(v1, (seg.mask >> 16) as u16, q.wrapping_add(16));
        }
        (v0, v1)
    }
}

/// The AVX-512 micro-kernel on the first `M` rows of a 12-row A panel: 2·M zmm accumulators, 2 B loads and M
/// broadcasts per step (`HALF`: M accumulators and 1 B load). B is a packed NR panel, or (`ROWS`) read in place:
/// step `p` loads 32 floats at `b + boff[p]`. Lane `t` of row `i` goes to `c + i·rsc + seg.delta + t` for the segment whose mask has bit
/// `t` (masked loads/stores: lanes outside every mask are never touched). The column bias and the residual, when
/// present, are read through the same masks (`col_bias + seg.delta + t`, `res + i·res_rs + seg.delta + t`). With
/// `AROWS`, the `ahead` lines are fetched into L2 along the way ([`Ahead`]; the other instantiations ignore it).
/// With `HALF` only the first 16 floats of each B step are read and only the first accumulator of each row is
/// computed: every segment's mask must lie within lanes 0..16 (else lanes 16..32 would be stored as if their
/// products were zero; checked in debug builds).
///
/// # Safety
/// As [`super::GemmSegUkr`] with `m = M`; AVX-512F must be enabled in the caller.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn avx512_body<const M: usize, const ROWS: bool, const AROWS: bool, const STRIDED: bool, const HALF: bool>(
    k: usize,
    a: *const f32,
    ars: usize,
    b: *const f32,
    boff: *const usize,
    c: *mut f32,
    rsc: isize,
    segs: &[Seg],
    accumulate: bool,
    epi: *const TileEpi,
    ahead: Ahead,
) {
    const MR: usize = 12;
    const NR: usize = 32;
    // SAFETY: the panels hold k·MR and k·NR floats (or, with ROWS, boff holds k offsets and each B row b + boff[p]
    // is readable for NR floats), read below in order; every lane a segment selects is a
    // writable (and, when accumulating, readable) C element owned by the caller, and readable in a non-null `epi`
    // residual at res + i·res_rs + seg.delta + t (`TileEpi`'s contract); masked-off lanes are not accessed
    // (AVX-512 masked loads and stores suppress faults), so their addresses may lie outside C (formed with
    // wrapping arithmetic). AVX-512F is enabled by the caller.
    unsafe {
        // The residual's rows are read only at the store, from a tensor written several layers before (often out of
        // the caches): fetch them with the C tile, so the K loop hides the misses (a chain of ResNet-50 bottlenecks
        // 1.03× faster, one core).
        let res = epi.as_ref().filter(|e| !e.res.is_null()).map(|e| (e.res, e.res_rs));
        debug_assert!(!HALF || stores_half(segs), "half tile with lanes 16..32 to store");
        // (Masks are non-zero: `GemmSegUkr`'s contract; a zero one would make the last lane 31 − 32.)
        debug_assert!(segs.iter().all(|s| s.mask != 0), "segment without lanes");
        for seg in segs {
            for i in 0..M {
                let cp = c.offset(i as isize * rsc).wrapping_offset(seg.delta) as *const i8;
                _mm_prefetch::<_MM_HINT_T0>(cp.wrapping_add(4 * seg.mask.trailing_zeros() as usize));
                _mm_prefetch::<_MM_HINT_T0>(cp.wrapping_add(4 * (31 - seg.mask.leading_zeros() as usize)));
                if let Some((r, rs)) = res {
                    let rp = r.wrapping_offset(i as isize * rs + seg.delta) as *const i8;
                    _mm_prefetch::<_MM_HINT_T0>(rp.wrapping_add(4 * seg.mask.trailing_zeros() as usize));
                    _mm_prefetch::<_MM_HINT_T0>(rp.wrapping_add(4 * (31 - seg.mask.leading_zeros() as usize)));
                }
            }
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; M];
        let mut ap = a;
        let mut bp = b;
        let mut op = boff;
        // The `ahead` stream, two lines every other step, branch-free: the pointer stops at the stream's last two
        // lines (re-fetching them is a cache hit); with no stream it stays on B's panel (a hit).
        let (mut ahead_p, ahead_last) = if ahead.lines == 0 {
            (b, b)
        } else {
            (ahead.start, ahead.start.wrapping_add(16 * ahead.lines.saturating_sub(2)))
        };
        // `$pf`: prefetch 8 steps ahead — one line of A (it streams from L2) and, for packed B, the two lines of
        // the B micro-panel (from L2 on the first row tile).
        macro_rules! step {
            ($pf:expr) => {
                let bq = if ROWS { b.add(*op) } else { bp };
                // With AROWS, `boff` holds the A offsets: step p's rows are the floats at a + boff[p].
                let aq = if AROWS { a.add(*op) } else { ap };
                if $pf {
                    if AROWS {
                        _mm_prefetch::<_MM_HINT_T1>(ahead_p as *const i8);
                        _mm_prefetch::<_MM_HINT_T1>(ahead_p.wrapping_add(16) as *const i8);
                        let next = ahead_p.wrapping_add(32);
                        ahead_p = if next < ahead_last { next } else { ahead_last };
                    }
                    if !AROWS {
                        _mm_prefetch::<_MM_HINT_T0>(ap.wrapping_add(8 * MR) as *const i8);
                    }
                    // B rows read in place are not prefetched (measured slower: the extra offset loads and
                    // prefetches cost more than the misses they hide; the rows stay in L1/L2 after the first
                    // row tile).
                    if !ROWS {
                        _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(8 * NR) as *const i8);
                        if !HALF {
                            _mm_prefetch::<_MM_HINT_T0>(bp.wrapping_add(8 * NR + 16) as *const i8);
                        }
                    }
                }
                let b0 = _mm512_loadu_ps(bq);
                let b1 = if HALF { b0 } else { _mm512_loadu_ps(bq.add(16)) };
                for (i, row) in acc.iter_mut().enumerate() {
                    // (A row stride only in the STRIDED instantiation: a runtime multiply per broadcast measured
                    // 14–21 % slower on the channel-vectorized convolutions, whose rows are consecutive.)
                    let av = _mm512_set1_ps(*aq.add(if STRIDED { i * ars } else { i }));
                    row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                    if !HALF {
                        row[1] = _mm512_fmadd_ps(av, b1, row[1]);
                    }
                }
                if AROWS {
                    op = op.add(1);
                    bp = bp.add(NR);
                } else {
                    ap = ap.add(MR);
                    if ROWS {
                        op = op.add(1);
                    } else {
                        bp = bp.add(NR);
                    }
                }
            };
        }
        let mut p = k;
        while p >= 4 {
            step!(true);
            step!(false);
            step!(true);
            step!(false);
            p -= 4;
        }
        while p > 0 {
            step!(false);
            p -= 1;
        }
        // Lines the steps did not reach (a stream longer than the pass: a block of one pixel panel).
        // (Lines the steps reached again are cache hits.)
        let ahead_end = ahead_last.wrapping_add(32);
        while AROWS && ahead_p < ahead_end {
            _mm_prefetch::<_MM_HINT_T1>(ahead_p as *const i8);
            ahead_p = ahead_p.wrapping_add(16);
        }
        // Epilogue fields read once into registers (C stores below could alias them as far as the compiler knows).
        let e = epi.as_ref().copied();
        let rb = e.map_or(std::ptr::null(), |e| e.row_bias);
        let cb = e.map(|e| e.col_bias).filter(|p| !p.is_null());
        let whole = segs.len() == 1 && segs[0].mask == u32::MAX && segs[0].delta == 0;
        // SAFETY (each call): `base` is a C, bias or residual row the contract above makes readable under the masks.
        let gather = |base: *const f32| gather_segs(whole, segs, base);
        let (cb0, cb1) = match cb {
            Some(p) => gather(p),
            None => (_mm512_setzero_ps(), _mm512_setzero_ps()),
        };
        let (res, res_rs) = e.map_or((std::ptr::null(), 0), |e| (e.res, e.res_rs));
        let clamp = e.filter(|e| e.clamp).map(|e| (_mm512_set1_ps(e.lo), _mm512_set1_ps(e.hi)));
        // Rows by constant index (`rows!`): with a loop over `acc` here LLVM kept the accumulators in a stack array
        // (zeroed by a memset call, spilled after the main loop, the last k mod 4 steps run on memory): a K = 27
        // first layer took longer than K = 28.
        macro_rules! store_row {
            ($i:expr) => {{
                let i: usize = $i;
                let cp = c.offset(i as isize * rsc);
                let (mut v0, mut v1) = (acc[i][0], acc[i][1]);
                if accumulate {
                    let (c0, c1) = gather(cp);
                    v0 = _mm512_add_ps(v0, c0);
                    v1 = _mm512_add_ps(v1, c1);
                }
                if !rb.is_null() {
                    let b = _mm512_set1_ps(*rb.add(i));
                    v0 = _mm512_add_ps(v0, b);
                    v1 = _mm512_add_ps(v1, b);
                }
                if cb.is_some() {
                    v0 = _mm512_add_ps(v0, cb0);
                    v1 = _mm512_add_ps(v1, cb1);
                }
                if !res.is_null() {
                    let (r0, r1) = gather(res.wrapping_offset(i as isize * res_rs));
                    v0 = _mm512_add_ps(v0, r0);
                    v1 = _mm512_add_ps(v1, r1);
                }
                if let Some((lo, hi)) = clamp {
                    // max/min return their second operand if either is NaN: with v second, NaN propagates (ORT's Clip).
                    v0 = _mm512_min_ps(hi, _mm512_max_ps(lo, v0));
                    v1 = _mm512_min_ps(hi, _mm512_max_ps(lo, v1));
                }
                if whole {
                    _mm512_storeu_ps(cp, v0);
                    _mm512_storeu_ps(cp.add(16), v1);
                } else {
                    for seg in segs {
                        let q = cp.wrapping_offset(seg.delta);
                        _mm512_mask_storeu_ps(q, seg.mask as u16, v0);
                        _mm512_mask_storeu_ps(q.wrapping_add(16), (seg.mask >> 16) as u16, v1);
                    }
                }
            }};
        }
        macro_rules! store_row_of_m {
            ($i:literal) => {
                if $i < M {
                    store_row!($i);
                }
            };
        }
        super::each_row!(store_row_of_m: 0 1 2 3 4 5 6 7 8 9 10 11);
    }
}
