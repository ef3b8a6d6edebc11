//! Portable tier: plain Rust the compiler vectorizes with the target's baseline SIMD. The reference speed floor and
//! the fallback on every target.

use super::{make_kernel_set, portable_wrappers, KernelSet};
use crate::kernels::isa::Isa;

pub(crate) const MR: usize = 4;
pub(crate) const NR: usize = 8;

pub(crate) static GENERIC: KernelSet =
    make_kernel_set!(Isa::Generic, MR, NR, "generic_mmm_f32_4x8", generic_mmm_f32_4x8, wrappers);

mod wrappers {
    super::portable_wrappers!(8, cfg!(target_arch = "aarch64"));
}

/// Portable micro-kernel body for any `MR × NR` (see [`super::GemmUkr`]).
///
/// # Safety
/// [`super::GemmUkr`]'s contract.
#[inline(always)]
pub(crate) unsafe fn mmm_body<const M: usize, const N: usize>(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    accumulate: bool,
    epi: *const super::TileEpi,
) {
    let mut acc = [[0f32; N]; M];
    for p in 0..k {
        // SAFETY: the panels hold k groups of M and N floats.
        let (ap, bp) = unsafe { (&*(a.add(p * M) as *const [f32; M]), &*(b.add(p * N) as *const [f32; N])) };
        for i in 0..M {
            for j in 0..N {
                acc[i][j] += ap[i] * bp[j];
            }
        }
    }
    // SAFETY: a non-null epi is valid (the caller's contract).
    let epi = unsafe { epi.as_ref() };
    for (i, row) in acc.iter_mut().enumerate() {
        // SAFETY: row i of the tile is N contiguous writable floats, owned by the caller.
        let cr = unsafe { std::slice::from_raw_parts_mut(c.offset(i as isize * rsc), N) };
        if accumulate {
            for (v, y) in row.iter_mut().zip(cr.iter()) {
                *v += y;
            }
        }
        if let Some(e) = epi {
            if !e.row_bias.is_null() {
                // SAFETY: row_bias holds M floats.
                let b = unsafe { *e.row_bias.add(i) };
                row.iter_mut().for_each(|v| *v += b);
            }
            if !e.col_bias.is_null() {
                // SAFETY: col_bias holds N floats.
                let b = unsafe { std::slice::from_raw_parts(e.col_bias, N) };
                row.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
            if !e.res.is_null() {
                // SAFETY: row i of the residual holds N floats at res + i·res_rs (TileEpi's contract).
                let r = unsafe { std::slice::from_raw_parts(e.res.offset(i as isize * e.res_rs), N) };
                row.iter_mut().zip(r).for_each(|(v, r)| *v += r);
            }
            if e.clamp {
                row.iter_mut().for_each(|v| {
                    // Comparisons that keep NaN (ORT's Clip/Relu semantics).
                    *v = if *v < e.lo {
                        e.lo
                    } else if *v > e.hi {
                        e.hi
                    } else {
                        *v
                    };
                });
            }
        }
        cr.copy_from_slice(row);
    }
}

/// # Safety
/// [`super::GemmUkr`]'s contract.
unsafe fn generic_mmm_f32_4x8(
    k: usize,
    a: *const f32,
    b: *const f32,
    c: *mut f32,
    rsc: isize,
    accumulate: bool,
    epi: *const super::TileEpi,
) {
    // SAFETY: forwarded contract.
    unsafe { mmm_body::<MR, NR>(k, a, b, c, rsc, accumulate, epi) }
}
