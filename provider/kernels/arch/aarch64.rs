//! aarch64 tier: Advanced SIMD (NEON), 8×12 tiles: 24 q-register accumulators, A in 2 registers and B in 3 per
//! step, 24 lane-indexed FMAs (`vfmaq_laneq_f32`) per step — 29 of the 32 vector registers.

use super::{make_kernel_set, KernelSet, TileEpi};
use crate::kernels::isa::Isa;
use std::arch::aarch64::*;

pub(crate) static NEON: KernelSet = make_kernel_set!(Isa::Neon, 8, 12, "neon_mmm_f32_8x12", neon_mmm_f32_8x12, neonw);

mod neonw {
    crate::kernels::arch::portable_wrappers!(12, true, "neon");
}

/// # Safety
/// [`super::GemmUkr`]'s contract; NEON must be available.
#[target_feature(enable = "neon")]
unsafe fn neon_mmm_f32_8x12(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    accumulate: bool,
    epi: *const TileEpi,
) {
    const MR: usize = 8;
    const NR: usize = 12;
    // SAFETY: the panels hold k·MR and k·NR floats (read in order); the tile rows are NR writable floats at
    // c + i·rsc, and a non-null `epi` residual holds NR readable floats at res + i·res_rs (the caller's contract,
    // see `TileEpi`); NEON is enabled here and checked by the caller.
    unsafe {
        let mut acc = [[vdupq_n_f32(0.0); 3]; MR];
        let mut ap = a;
        let mut bp = b;
        macro_rules! step {
            () => {
                let a0 = vld1q_f32(ap);
                let a1 = vld1q_f32(ap.add(4));
                let b = [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8))];
                for j in 0..3 {
                    acc[0][j] = vfmaq_laneq_f32::<0>(acc[0][j], b[j], a0);
                    acc[1][j] = vfmaq_laneq_f32::<1>(acc[1][j], b[j], a0);
                    acc[2][j] = vfmaq_laneq_f32::<2>(acc[2][j], b[j], a0);
                    acc[3][j] = vfmaq_laneq_f32::<3>(acc[3][j], b[j], a0);
                    acc[4][j] = vfmaq_laneq_f32::<0>(acc[4][j], b[j], a1);
                    acc[5][j] = vfmaq_laneq_f32::<1>(acc[5][j], b[j], a1);
                    acc[6][j] = vfmaq_laneq_f32::<2>(acc[6][j], b[j], a1);
                    acc[7][j] = vfmaq_laneq_f32::<3>(acc[7][j], b[j], a1);
                }
                ap = ap.add(MR);
                bp = bp.add(NR);
            };
        }
        let mut p = k;
        while p >= 2 {
            step!();
            step!();
            p -= 2;
        }
        while p > 0 {
            step!();
            p -= 1;
        }
        // Epilogue fields read once (C stores below could alias them as far as the compiler knows).
        let e = epi.as_ref().copied();
        let rb = e.map_or(std::ptr::null(), |e| e.row_bias);
        let cb = e.map_or(std::ptr::null(), |e| e.col_bias);
        let (res, res_rs) = e.map_or((std::ptr::null(), 0), |e| (e.res, e.res_rs));
        let clamp = e.filter(|e| e.clamp).map(|e| (vdupq_n_f32(e.lo), vdupq_n_f32(e.hi)));
        // Rows by constant index (`store_row!`): with a loop over `acc` here LLVM kept the accumulators in a stack
        // array (zeroed, loaded before and stored after the main loop on every call; the AVX-512 kernel measured
        // 1.25× faster at K = 27 once fixed the same way).
        macro_rules! store_row {
            ($i:expr) => {{
                let i: usize = $i;
                let cp = c.offset(i as isize * rsc);
                for (j, &v) in acc[i].iter().enumerate() {
                    let mut v = if accumulate { vaddq_f32(v, vld1q_f32(cp.add(4 * j))) } else { v };
                    if !rb.is_null() {
                        v = vaddq_f32(v, vdupq_n_f32(*rb.add(i)));
                    }
                    if !cb.is_null() {
                        v = vaddq_f32(v, vld1q_f32(cb.add(4 * j)));
                    }
                    if !res.is_null() {
                        v = vaddq_f32(v, vld1q_f32(res.offset(i as isize * res_rs).add(4 * j)));
                    }
                    if let Some((lo, hi)) = clamp {
                        // FMAX/FMIN propagate NaN — the FusedOp::Clip semantics (as ORT's Clip).
                        v = vminq_f32(vmaxq_f32(v, lo), hi);
                    }
                    vst1q_f32(cp.add(4 * j), v);
                }
            }};
        }
        super::each_row!(store_row: 0 1 2 3 4 5 6 7);
    }
}
