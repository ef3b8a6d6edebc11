//! Fused epilogues, applied to a tile right after the micro-kernel stored it (the tile is still in L1), one row
//! slice at a time so every op is a short loop the compiler vectorizes with the tier's target features.

use super::FusedOp;

/// Apply the epilogue to one accumulated value: the scalar reference (and the path for odd layouts).
#[inline]
pub fn apply_epilogue(mut y: f32, i: usize, j: usize, ops: &[FusedOp<'_>]) -> f32 {
    for op in ops {
        y = match *op {
            FusedOp::Scale(a) => a * y,
            FusedOp::AddScaled { src, beta } => y + beta * src.at(i, j),
            FusedOp::RowBias(b) => y + b[i],
            FusedOp::ColBias(b) => y + b[j],
            FusedOp::Relu => relu(y),
            FusedOp::Clip { lo, hi } => clip(y, lo, hi),
            FusedOp::LeakyRelu(a) => leaky(y, a),
            FusedOp::Sigmoid => sigmoid_tail(y, 1.0 / (1.0 + (-y).exp())),
            FusedOp::HardSigmoid { alpha, beta } => clip(alpha * y + beta, 0.0, 1.0),
            FusedOp::HardSwish => y * clip(y / 6.0 + 0.5, 0.0, 1.0),
            FusedOp::Add(src) => y + src.at(i, j),
        };
    }
    y
}

/// `max(y, 0)`; NaN stays NaN, as in ONNX Runtime's CPU EP (so a fused Relu changes nothing observable).
///
/// Written as a bit mask, not `if y < 0 { 0 } else { y }`: applied in place, that select has the loaded value
/// as one operand, which LLVM turns into a masked store of zeros; a later load of the same floats then cannot be
/// forwarded from it and stalls (measured: the epilogue cost more than a 7×7 depthwise convolution).
#[inline(always)]
fn relu(y: f32) -> f32 {
    let keep = ((y < 0.0) as u32).wrapping_sub(1); // all ones unless y < 0
    f32::from_bits(y.to_bits() & keep)
}

/// `min(max(y, lo), hi)`; NaN stays NaN, as in ONNX Runtime's CPU EP.
#[inline(always)]
fn clip(y: f32, lo: f32, hi: f32) -> f32 {
    if y < lo {
        lo
    } else if y > hi {
        hi
    } else {
        y
    }
}

/// Below this, ONNX Runtime's CPU EP (MLAS logistic, which clamps its input to ±18) returns exactly 0.
const SIGMOID_ZERO_BELOW: f32 = -18.0;

/// `s` = sigmoid(y), except exactly 0 for y ≤ −18 as in the CPU EP (and so for −inf, where `exp_approx`'s clamp
/// would give ~6e-39, turning a later `· inf` into ±inf instead of NaN). NaN stays NaN.
#[inline(always)]
fn sigmoid_tail(y: f32, s: f32) -> f32 {
    if y <= SIGMOID_ZERO_BELOW {
        0.0
    } else {
        s
    }
}

/// `y < 0 ? a·y : y`, as a product so the in-place select does not become a masked store (see [`relu`]).
#[inline(always)]
fn leaky(y: f32, a: f32) -> f32 {
    y * if y < 0.0 { a } else { 1.0 }
}

/// Apply `ops` to a full `m × N` tile (N = the tier's NR): fixed-width rows, so each op is a few whole-register
/// instructions per row, and each op is dispatched once per tile.
///
/// # Safety
/// As [`tile_body`] with `n = N`.
#[inline(always)]
pub(crate) unsafe fn tile_body_fixed<const N: usize>(
    c: *mut f32,
    rsc: isize,
    m: usize,
    i0: usize,
    j0: usize,
    ops: &[FusedOp<'_>],
) {
    // SAFETY (all row accesses below): row r of the tile is N contiguous floats owned by the caller.
    let row = |r: usize| unsafe { &mut *(c.offset(r as isize * rsc) as *mut [f32; N]) };
    for op in ops {
        match *op {
            FusedOp::Scale(a) => (0..m).for_each(|r| row(r).iter_mut().for_each(|v| *v *= a)),
            FusedOp::RowBias(b) => (0..m).for_each(|r| {
                let b = b[i0 + r];
                row(r).iter_mut().for_each(|v| *v += b)
            }),
            FusedOp::ColBias(b) => {
                let b: &[f32; N] = b[j0..j0 + N].try_into().unwrap();
                (0..m).for_each(|r| row(r).iter_mut().zip(b).for_each(|(v, b)| *v += b))
            }
            FusedOp::Relu => (0..m).for_each(|r| row(r).iter_mut().for_each(|v| *v = relu(*v))),
            FusedOp::Clip { lo, hi } => (0..m).for_each(|r| row(r).iter_mut().for_each(|v| *v = clip(*v, lo, hi))),
            _ => (0..m).for_each(|r| row_body(row(r), i0 + r, j0, std::slice::from_ref(op))),
        }
    }
}

/// Apply `ops` to the `m × n` tile at `c` (row stride `rsc`, columns contiguous), tile (0, 0) = C (i0, j0).
///
/// # Safety
/// Every element of the tile must be readable and writable and not accessed by another thread; the operand views
/// inside `ops` must cover rows `i0..i0+m` and columns `j0..j0+n` (checked by the caller against C's shape).
#[inline(always)]
pub(crate) unsafe fn tile_body(c: *mut f32, rsc: isize, m: usize, n: usize, i0: usize, j0: usize, ops: &[FusedOp<'_>]) {
    for r in 0..m {
        // SAFETY: row r of the tile is n contiguous floats owned by the caller.
        let row = unsafe { std::slice::from_raw_parts_mut(c.offset(r as isize * rsc), n) };
        row_body(row, i0 + r, j0, ops);
    }
}

/// Apply `ops` to `y = C[i, j0 .. j0 + y.len()]`.
#[inline(always)]
pub(crate) fn row_body(y: &mut [f32], i: usize, j0: usize, ops: &[FusedOp<'_>]) {
    let n = y.len();
    for op in ops {
        match *op {
            FusedOp::Scale(a) => y.iter_mut().for_each(|v| *v *= a),
            FusedOp::AddScaled { src, beta } => add_src(y, src, beta, i, j0),
            FusedOp::Add(src) => add_src(y, src, 1.0, i, j0),
            FusedOp::RowBias(b) => {
                let b = b[i];
                y.iter_mut().for_each(|v| *v += b);
            }
            FusedOp::ColBias(b) => y.iter_mut().zip(&b[j0..j0 + n]).for_each(|(v, b)| *v += b),
            FusedOp::Relu => y.iter_mut().for_each(|v| *v = relu(*v)),
            FusedOp::Clip { lo, hi } => y.iter_mut().for_each(|v| *v = clip(*v, lo, hi)),
            FusedOp::LeakyRelu(a) => y.iter_mut().for_each(|v| *v = leaky(*v, a)),
            FusedOp::Sigmoid => y.iter_mut().for_each(|v| *v = sigmoid_tail(*v, 1.0 / (1.0 + exp_approx(-*v)))),
            FusedOp::HardSigmoid { alpha, beta } => y.iter_mut().for_each(|v| *v = clip(alpha * *v + beta, 0.0, 1.0)),
            FusedOp::HardSwish => y.iter_mut().for_each(|v| *v *= clip(*v / 6.0 + 0.5, 0.0, 1.0)),
        }
    }
}

#[inline(always)]
fn add_src(y: &mut [f32], src: super::MatRef<'_>, beta: f32, i: usize, j0: usize) {
    let n = y.len();
    if src.cs == 1 {
        let p = src.ptr_at(i, j0);
        // SAFETY: the caller checked that `src` covers C's shape; (i, j0..j0+n) is in range and contiguous.
        let s = unsafe { std::slice::from_raw_parts(p, n) };
        y.iter_mut().zip(s).for_each(|(v, s)| *v += beta * s);
    } else if src.cs == 0 {
        let s = beta * src.at(i, j0);
        y.iter_mut().for_each(|v| *v += s);
    } else {
        y.iter_mut().enumerate().for_each(|(t, v)| *v += beta * src.at(i, j0 + t));
    }
}

/// `e^x` to about 2 ulp on [-87, 88] (clamped outside), branch-free so it vectorizes: `x = n·ln2 + r`,
/// `e^r` by a degree-6 polynomial on |r| ≤ ln2/2, `2^n` assembled in the exponent bits.
#[inline(always)]
pub(crate) fn exp_approx(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    const ROUND: f32 = 12_582_912.0; // 1.5 · 2^23: adding it rounds to an integer
    let x = x.clamp(-87.0, 88.0);
    let n = (x * LOG2E + ROUND) - ROUND;
    let r = (x - n * LN2_HI) - n * LN2_LO;
    let p = 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    let scale = f32::from_bits(((n as i32 + 127) as u32) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_approx_is_close() {
        let mut worst = 0f32;
        let mut x = -87.0f32;
        while x < 88.0 {
            let (want, got) = (x.exp(), exp_approx(x));
            worst = worst.max(((got - want) / want).abs());
            x += 0.0137;
        }
        assert!(worst < 1e-6, "worst relative error {worst}");
        assert_eq!(exp_approx(-1000.0), exp_approx(-87.0));
        let ops = [FusedOp::Sigmoid];
        for x in [f32::NEG_INFINITY, -1000.0, -18.0] {
            assert_eq!(apply_epilogue(x, 0, 0, &ops), 0.0);
            let mut row = [x; 9];
            row_body(&mut row, 0, 0, &ops);
            assert!(row.iter().all(|&v| v == 0.0), "{row:?}");
        }
        assert!(apply_epilogue(f32::NAN, 0, 0, &ops).is_nan());
        assert!(exp_approx(1000.0).is_finite());
    }
}
