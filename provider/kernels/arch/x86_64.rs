//! x86_64 tiers: AVX2 + FMA (6×16: 12 ymm accumulators, 2 B loads and 6 broadcasts per step) and AVX-512F
//! (12×32: 24 zmm accumulators, 2 B loads, broadcasts folded into the FMAs). Selected only when the CPU and the OS
//! both support them (see `isa.rs`).

use super::{make_kernel_set, KernelSet, TileEpi};
use crate::kernels::isa::Isa;
use std::arch::x86_64::*;

pub(crate) static AVX2: KernelSet = KernelSet {
    stride2: avx2_stride2,
    ..make_kernel_set!(Isa::Avx2, 6, 16, "avx2_mmm_f32_6x16", avx2_mmm_f32_6x16, avx2w)
};
pub(crate) static AVX512: KernelSet = KernelSet {
    stride2: avx2_stride2,
    ..make_kernel_set!(Isa::Avx512, 12, 32, "avx512_mmm_f32_12x32", avx512_mmm_f32_12x32, avx512w)
};

mod avx2w {
    crate::kernels::arch::portable_wrappers!(16, true, "avx2,fma");
}

mod avx512w {
    crate::kernels::arch::portable_wrappers!(32, true, "avx512f,avx2,fma");
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
    // c + i·rsc (the caller's contract); AVX2/FMA are enabled on this function and supported by the caller's check.
    unsafe {
        // Warm the C tile while the product runs (it is read back when accumulating and written at the end).
        for i in 0..MR {
            let cp = c.offset(i as isize * rsc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(cp);
            _mm_prefetch::<_MM_HINT_T0>(cp.add(63));
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
        let clamp = e.filter(|e| e.clamp).map(|e| (_mm256_set1_ps(e.lo), _mm256_set1_ps(e.hi)));
        for (i, row) in acc.iter().enumerate() {
            let cp = c.offset(i as isize * rsc);
            let (mut v0, mut v1) = (row[0], row[1]);
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
            if let Some((lo, hi)) = clamp {
                // max/min return their second operand when either is NaN: with v second, NaN propagates (ORT's Clip).
                v0 = _mm256_min_ps(hi, _mm256_max_ps(lo, v0));
                v1 = _mm256_min_ps(hi, _mm256_max_ps(lo, v1));
            }
            _mm256_storeu_ps(cp, v0);
            _mm256_storeu_ps(cp.add(8), v1);
        }
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
    const MR: usize = 12;
    const NR: usize = 32;
    // SAFETY: as in the AVX2 kernel, with AVX-512F enabled here and checked by the caller.
    unsafe {
        for i in 0..MR {
            let cp = c.offset(i as isize * rsc) as *const i8;
            _mm_prefetch::<_MM_HINT_T0>(cp);
            _mm_prefetch::<_MM_HINT_T0>(cp.add(127));
        }
        let mut acc = [[_mm512_setzero_ps(); 2]; MR];
        let mut ap = a;
        let mut bp = b;
        macro_rules! step {
            () => {
                let b0 = _mm512_loadu_ps(bp);
                let b1 = _mm512_loadu_ps(bp.add(16));
                for (i, row) in acc.iter_mut().enumerate() {
                    let av = _mm512_set1_ps(*ap.add(i));
                    row[0] = _mm512_fmadd_ps(av, b0, row[0]);
                    row[1] = _mm512_fmadd_ps(av, b1, row[1]);
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
            Some(p) => (_mm512_loadu_ps(p), _mm512_loadu_ps(p.add(16))),
            None => (_mm512_setzero_ps(), _mm512_setzero_ps()),
        };
        let clamp = e.filter(|e| e.clamp).map(|e| (_mm512_set1_ps(e.lo), _mm512_set1_ps(e.hi)));
        for (i, row) in acc.iter().enumerate() {
            let cp = c.offset(i as isize * rsc);
            let (mut v0, mut v1) = (row[0], row[1]);
            if accumulate {
                v0 = _mm512_add_ps(v0, _mm512_loadu_ps(cp));
                v1 = _mm512_add_ps(v1, _mm512_loadu_ps(cp.add(16)));
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
            if let Some((lo, hi)) = clamp {
                // max/min return their second operand when either is NaN: with v second, NaN propagates (ORT's Clip).
                v0 = _mm512_min_ps(hi, _mm512_max_ps(lo, v0));
                v1 = _mm512_min_ps(hi, _mm512_max_ps(lo, v1));
            }
            _mm512_storeu_ps(cp, v0);
            _mm512_storeu_ps(cp.add(16), v1);
        }
    }
}
