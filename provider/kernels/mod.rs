//! Compute kernels (no ORT types): GEMM blocks over strided, packed or im2col operands, with fused epilogues.
//!
//! The unit of work is [`gemm_block`]: compute `C[rows, cols] = epilogue(A[rows, :] · B[:, cols])` over the whole K.
//! Partitioners hand disjoint blocks of one C to different workers; each worker owns a [`Scratch`].

use std::marker::PhantomData;
use std::ops::Range;

/// A read-only strided matrix view: element (i, j) is at `ptr + i·rs + j·cs`. Strides may be 0 (broadcast).
#[derive(Clone, Copy, Debug)]
pub struct MatRef<'a> {
    ptr: *const f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
    _life: PhantomData<&'a [f32]>,
}

// SAFETY: a MatRef is a shared view of f32 data; sharing it across threads is as safe as sharing `&[f32]`.
unsafe impl Send for MatRef<'_> {}
// SAFETY: as above.
unsafe impl Sync for MatRef<'_> {}

impl<'a> MatRef<'a> {
    /// A view of `data` with the given shape and strides.
    ///
    /// Panics if any element (i < rows, j < cols) would fall outside `data`.
    pub fn new(data: &'a [f32], rows: usize, cols: usize, rs: isize, cs: isize) -> Self {
        if rows > 0 && cols > 0 {
            let hi = max_offset(rows, cols, rs, cs);
            let lo = min_offset(rows, cols, rs, cs);
            assert!(lo >= 0 && (hi as usize) < data.len(), "MatRef out of bounds");
        }
        MatRef { ptr: data.as_ptr(), rows, cols, rs, cs, _life: PhantomData }
    }

    /// Row-major contiguous `rows × cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols as isize, 1)
    }

    /// The transposed view.
    pub fn t(self) -> Self {
        MatRef { ptr: self.ptr, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, _life: PhantomData }
    }

    #[inline(always)]
    pub fn at(&self, i: usize, j: usize) -> f32 {
        debug_assert!(i < self.rows && j < self.cols);
        // SAFETY: the constructor checked every in-range (i, j) lies inside the borrowed slice.
        unsafe { *self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

/// A mutable strided view of the output C, shared by workers that write disjoint blocks of it.
#[derive(Clone, Copy, Debug)]
pub struct MatMut<'a> {
    ptr: *mut f32,
    pub rows: usize,
    pub cols: usize,
    pub rs: isize,
    pub cs: isize,
    _life: PhantomData<&'a mut [f32]>,
}

// SAFETY: workers only write disjoint (row, col) blocks of one MatMut (the partitioner's contract, see gemm_block);
// no two threads touch the same element.
unsafe impl Send for MatMut<'_> {}
// SAFETY: as above.
unsafe impl Sync for MatMut<'_> {}

impl<'a> MatMut<'a> {
    /// Panics if the view does not fit in `data` or if two elements would alias (strides must not overlap).
    pub fn new(data: &'a mut [f32], rows: usize, cols: usize, rs: isize, cs: isize) -> Self {
        if rows > 0 && cols > 0 {
            let hi = max_offset(rows, cols, rs, cs);
            let lo = min_offset(rows, cols, rs, cs);
            assert!(lo >= 0 && (hi as usize) < data.len(), "MatMut out of bounds");
            assert!((rows == 1 || rs != 0) && (cols == 1 || cs != 0), "MatMut strides alias");
        }
        MatMut { ptr: data.as_mut_ptr(), rows, cols, rs, cs, _life: PhantomData }
    }

    pub fn row_major(data: &'a mut [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols as isize, 1)
    }

    /// Raw element pointer.
    ///
    /// # Safety
    /// `i < rows`, `j < cols`, and no other thread accesses element (i, j) concurrently.
    #[inline(always)]
    pub unsafe fn ptr_at(&self, i: usize, j: usize) -> *mut f32 {
        debug_assert!(i < self.rows && j < self.cols);
        // SAFETY: in range by the caller's contract; the constructor checked in-range offsets are in bounds.
        unsafe { self.ptr.offset(i as isize * self.rs + j as isize * self.cs) }
    }
}

fn max_offset(rows: usize, cols: usize, rs: isize, cs: isize) -> isize {
    let r = (rows as isize - 1) * rs;
    let c = (cols as isize - 1) * cs;
    r.max(0) + c.max(0)
}

fn min_offset(rows: usize, cols: usize, rs: isize, cs: isize) -> isize {
    let r = (rows as isize - 1) * rs;
    let c = (cols as isize - 1) * cs;
    r.min(0) + c.min(0)
}

/// A constant A operand (`M × K`, e.g. convolution weights) packed once at Compile.
#[derive(Clone, Debug)]
pub struct PackedA {
    rows: usize,
    k: usize,
    data: Vec<f32>, // row-major M × K
}

impl PackedA {
    pub fn pack(a: MatRef<'_>) -> Self {
        let mut data = Vec::with_capacity(a.rows * a.cols);
        for i in 0..a.rows {
            for p in 0..a.cols {
                data.push(a.at(i, p));
            }
        }
        PackedA { rows: a.rows, k: a.cols, data }
    }
    pub fn rows(&self) -> usize {
        self.rows
    }
    pub fn k(&self) -> usize {
        self.k
    }
}

/// A constant B operand (`K × N`, e.g. MatMul/Gemm weights) packed once at Compile.
#[derive(Clone, Debug)]
pub struct PackedB {
    k: usize,
    cols: usize,
    data: Vec<f32>, // row-major K × N
}

impl PackedB {
    pub fn pack(b: MatRef<'_>) -> Self {
        let mut data = Vec::with_capacity(b.rows * b.cols);
        for p in 0..b.rows {
            for j in 0..b.cols {
                data.push(b.at(p, j));
            }
        }
        PackedB { k: b.rows, cols: b.cols, data }
    }
    pub fn k(&self) -> usize {
        self.k
    }
    pub fn cols(&self) -> usize {
        self.cols
    }
}

/// Geometry of one image × one group of an N-D convolution, seen as the virtual `K × N` matrix of im2col:
/// `K = channels · Π kernel`, `N = Π out_spatial`; element (k, n) is the input pixel under kernel tap k at output
/// position n, or 0 in the padding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub channels: usize,
    pub in_spatial: Vec<usize>,
    pub kernel: Vec<usize>,
    pub out_spatial: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pads_begin: Vec<usize>,
}

impl ConvGeometry {
    pub fn k(&self) -> usize {
        self.channels * self.kernel.iter().product::<usize>()
    }
    pub fn n(&self) -> usize {
        self.out_spatial.iter().product()
    }
    pub fn in_size(&self) -> usize {
        self.channels * self.in_spatial.iter().product::<usize>()
    }
}

/// The B operand of a convolution: one image × group of the input, read through im2col.
#[derive(Clone, Copy, Debug)]
pub struct Im2col<'a> {
    /// `channels × Π in_spatial` values, contiguous (NCHW slice of one image and group).
    pub input: &'a [f32],
    pub geometry: &'a ConvGeometry,
}

/// Left operand (`M × K`).
#[derive(Clone, Copy, Debug)]
pub enum AOperand<'a> {
    View(MatRef<'a>),
    Packed(&'a PackedA),
}

/// Right operand (`K × N`).
#[derive(Clone, Copy, Debug)]
pub enum BOperand<'a> {
    View(MatRef<'a>),
    Packed(&'a PackedB),
    Im2col(Im2col<'a>),
}

/// One step of a fused epilogue, applied in order to each output element `(i, j)` before it is stored.
#[derive(Clone, Copy, Debug)]
pub enum FusedOp<'a> {
    /// `y = alpha · y`
    Scale(f32),
    /// `y += beta · src[i, j]` (src may broadcast through zero strides; Gemm's C).
    AddScaled {
        src: MatRef<'a>,
        beta: f32,
    },
    /// `y += bias[i]` (per output row: convolution bias).
    RowBias(&'a [f32]),
    /// `y += bias[j]` (per output column).
    ColBias(&'a [f32]),
    Relu,
    /// `y = min(max(y, lo), hi)`
    Clip {
        lo: f32,
        hi: f32,
    },
    /// `y = y < 0 ? alpha·y : y`
    LeakyRelu(f32),
    Sigmoid,
    /// `y = max(0, min(1, alpha·y + beta))`
    HardSigmoid {
        alpha: f32,
        beta: f32,
    },
    /// `y = y · max(0, min(1, y/6 + 1/2))`
    HardSwish,
    /// `y += src[i, j]` (residual Add).
    Add(MatRef<'a>),
}

/// Per-worker scratch buffers, reused across tasks.
#[derive(Default, Debug)]
pub struct Scratch {
    acc: Vec<f32>,
    col: Vec<f32>,
}

impl Scratch {
    pub fn new() -> Self {
        Self::default()
    }
}

/// Compute `C[rows, cols] = epilogue(A[rows, :] · B[:, cols])` over the full `k`.
///
/// Every element of the block is written exactly once; nothing outside it is touched, so several workers may call
/// this concurrently on disjoint blocks of the same `c`.
///
/// Panics if the operand shapes disagree with `c`, `k` or the ranges.
pub fn gemm_block(
    a: AOperand<'_>,
    b: BOperand<'_>,
    c: MatMut<'_>,
    k: usize,
    rows: Range<usize>,
    cols: Range<usize>,
    epilogue: &[FusedOp<'_>],
    scratch: &mut Scratch,
) {
    assert!(rows.end <= c.rows && cols.end <= c.cols, "block outside C");
    check_operands(&a, &b, c.rows, c.cols, k);
    let width = cols.len();
    if rows.is_empty() || width == 0 {
        return;
    }
    let Scratch { acc, col } = scratch;
    acc.clear();
    acc.resize(width, 0.0);
    // For im2col, materialize the K × width slice of the virtual matrix once per block.
    let b_block: Option<&[f32]> = match b {
        BOperand::Im2col(im) => {
            im2col_block(im, cols.clone(), col);
            Some(col.as_slice())
        }
        _ => None,
    };
    for i in rows {
        acc.fill(0.0);
        for p in 0..k {
            let aip = match a {
                AOperand::View(v) => v.at(i, p),
                AOperand::Packed(pa) => pa.data[i * pa.k + p],
            };
            if aip == 0.0 {
                continue;
            }
            match (b, b_block) {
                (_, Some(blk)) => axpy(acc, aip, &blk[p * width..(p + 1) * width]),
                (BOperand::Packed(pb), None) => {
                    let row = &pb.data[p * pb.cols + cols.start..p * pb.cols + cols.end];
                    axpy(acc, aip, row);
                }
                (BOperand::View(v), None) => {
                    for (jj, a_j) in acc.iter_mut().enumerate() {
                        *a_j += aip * v.at(p, cols.start + jj);
                    }
                }
                (BOperand::Im2col(_), None) => unreachable!("im2col block materialized above"),
            }
        }
        for (jj, &v) in acc.iter().enumerate() {
            let j = cols.start + jj;
            let y = apply_epilogue(v, i, j, epilogue);
            // SAFETY: (i, j) lies in the block this call owns, inside C (asserted above).
            unsafe { *c.ptr_at(i, j) = y };
        }
    }
}

#[inline]
fn axpy(acc: &mut [f32], a: f32, x: &[f32]) {
    for (y, &x) in acc.iter_mut().zip(x) {
        *y += a * x;
    }
}

fn check_operands(a: &AOperand<'_>, b: &BOperand<'_>, m: usize, n: usize, k: usize) {
    match a {
        AOperand::View(v) => assert!(v.rows == m && v.cols == k, "A shape"),
        AOperand::Packed(p) => assert!(p.rows == m && p.k == k, "packed A shape"),
    }
    match b {
        BOperand::View(v) => assert!(v.rows == k && v.cols == n, "B shape"),
        BOperand::Packed(p) => assert!(p.k == k && p.cols == n, "packed B shape"),
        BOperand::Im2col(im) => {
            assert!(im.geometry.k() == k && im.geometry.n() == n, "im2col shape");
            assert!(im.input.len() >= im.geometry.in_size(), "im2col input too short");
        }
    }
}

/// Apply the epilogue to one accumulated value.
#[inline]
pub fn apply_epilogue(mut y: f32, i: usize, j: usize, ops: &[FusedOp<'_>]) -> f32 {
    for op in ops {
        y = match *op {
            FusedOp::Scale(a) => a * y,
            FusedOp::AddScaled { src, beta } => y + beta * src.at(i, j),
            FusedOp::RowBias(b) => y + b[i],
            FusedOp::ColBias(b) => y + b[j],
            // Comparisons, not f32::max/min: NaN must propagate as in ORT's CPU EP.
            FusedOp::Relu => {
                if y < 0.0 {
                    0.0
                } else {
                    y
                }
            }
            FusedOp::Clip { lo, hi } => {
                if y < lo {
                    lo
                } else if y > hi {
                    hi
                } else {
                    y
                }
            }
            FusedOp::LeakyRelu(a) => {
                if y < 0.0 {
                    a * y
                } else {
                    y
                }
            }
            FusedOp::Sigmoid => 1.0 / (1.0 + (-y).exp()),
            FusedOp::HardSigmoid { alpha, beta } => (alpha * y + beta).clamp(0.0, 1.0),
            FusedOp::HardSwish => y * (y / 6.0 + 0.5).clamp(0.0, 1.0),
            FusedOp::Add(src) => y + src.at(i, j),
        };
    }
    y
}

/// Fill `out` with the `K × cols.len()` slice of the im2col matrix (row-major).
fn im2col_block(im: Im2col<'_>, cols: Range<usize>, out: &mut Vec<f32>) {
    let g = im.geometry;
    let nd = g.kernel.len();
    let width = cols.len();
    out.clear();
    out.resize(g.k() * width, 0.0);
    let taps: usize = g.kernel.iter().product();
    let in_plane: usize = g.in_spatial.iter().product();
    let mut kidx = vec![0usize; nd];
    let mut oidx = vec![0usize; nd];
    for c in 0..g.channels {
        for t in 0..taps {
            unravel(t, &g.kernel, &mut kidx);
            let row = &mut out[(c * taps + t) * width..(c * taps + t + 1) * width];
            for (jj, slot) in row.iter_mut().enumerate() {
                unravel(cols.start + jj, &g.out_spatial, &mut oidx);
                let mut offset = 0usize;
                let mut inside = true;
                for d in 0..nd {
                    let pos = (oidx[d] * g.strides[d] + kidx[d] * g.dilations[d]) as isize - g.pads_begin[d] as isize;
                    if pos < 0 || pos as usize >= g.in_spatial[d] {
                        inside = false;
                        break;
                    }
                    offset = offset * g.in_spatial[d] + pos as usize;
                }
                *slot = if inside { im.input[c * in_plane + offset] } else { 0.0 };
            }
        }
    }
}

/// Row-major multi-index of `flat` within `dims`.
fn unravel(mut flat: usize, dims: &[usize], out: &mut [usize]) {
    for d in (0..dims.len()).rev() {
        out[d] = flat % dims[d];
        flat /= dims[d];
    }
}

/// Register-tile and cache-block sizes of the selected micro-kernel; partitioners align block edges to `mr`/`nr`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TileInfo {
    pub mr: usize,
    pub nr: usize,
    pub kc: usize,
    pub mc: usize,
    pub nc: usize,
}

/// Tile geometry of the kernel in use.
pub fn tile_info() -> TileInfo {
    TileInfo { mr: 4, nr: 16, kc: 256, mc: 64, nc: 1024 }
}

/// Name of the kernel implementation in use (reported in the EP device metadata).
pub fn isa_name() -> &'static str {
    "portable"
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, n: usize, k: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|p| a[i * k + p] * b[p * n + j]).sum();
            }
        }
        c
    }

    #[test]
    fn blocks_cover_and_match_naive() {
        let (m, n, k) = (7, 13, 5);
        let a: Vec<f32> = (0..m * k).map(|x| (x % 7) as f32 - 3.0).collect();
        let b: Vec<f32> = (0..k * n).map(|x| (x % 5) as f32 * 0.5).collect();
        let want = naive(&a, &b, m, n, k);
        let pb = PackedB::pack(MatRef::row_major(&b, k, n));
        let mut c = vec![f32::NAN; m * n];
        let mut s = Scratch::new();
        let cm = MatMut::row_major(&mut c, m, n);
        for (r, cc) in [(0..3, 0..8), (0..3, 8..13), (3..7, 0..13)] {
            gemm_block(AOperand::View(MatRef::row_major(&a, m, k)), BOperand::Packed(&pb), cm, k, r, cc, &[], &mut s);
        }
        assert_eq!(c, want);
    }

    #[test]
    fn im2col_matches_direct_conv_1d() {
        // 1 channel, input 5, kernel 3, stride 2, dilation 1, pad 1 → out 3.
        let g = ConvGeometry {
            channels: 1,
            in_spatial: vec![5],
            kernel: vec![3],
            out_spatial: vec![3],
            strides: vec![2],
            dilations: vec![1],
            pads_begin: vec![1],
        };
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let w = [1.0, 10.0, 100.0];
        let mut y = vec![0.0; 3];
        gemm_block(
            AOperand::View(MatRef::row_major(&w, 1, 3)),
            BOperand::Im2col(Im2col { input: &x, geometry: &g }),
            MatMut::row_major(&mut y, 1, 3),
            3,
            0..1,
            0..3,
            &[],
            &mut Scratch::new(),
        );
        assert_eq!(y, vec![0.0 + 10.0 + 200.0, 2.0 + 30.0 + 400.0, 4.0 + 50.0]);
    }
}
