//! Compute kernels (no ORT types): GEMM blocks over strided, packed or im2col operands, with fused epilogues;
//! GEMV with a K split; depthwise convolution.
//!
//! The unit of work is [`gemm_block`]: compute `C[rows, cols] = epilogue(A[rows, :] · B[:, cols])` over the whole K.
//! Partitioners hand disjoint blocks of one C to different workers; each worker owns a [`Scratch`]. Block boundaries
//! should fall on multiples of [`tile_info`]`().mr` / `.nr` (any boundary is correct, aligned ones waste nothing).
//!
//! Layout of the module (BLIS loop names in `gemm.rs`):
//! - `isa.rs`: the [`Isa`] table, chosen once at run time (CPU *and* OS support), overridable by `ASYMO_KERNEL`
//!   or [`force_isa`]; blocking sizes from the cache sizes (`cache.rs`).
//! - `arch/`: the leaves — one micro-kernel per ISA behind one signature, plus thin `#[target_feature]` wrappers
//!   over the portable bodies of the epilogue, GEMV and depthwise loops.
//! - `pack.rs`: panel packing (constant operands once, per-block operands into [`Scratch`], im2col straight into
//!   the B panels). `gemm.rs`: the blocked driver. `gemv.rs`: M = 1 / N = 1 with a deterministic K split.
//!   `epilogue.rs`: fused ops on a just-computed tile. `depthwise.rs`: depthwise convolution.

use std::marker::PhantomData;

mod arch;
mod buf;
mod cache;
mod conv_t;
mod depthwise;
mod dw_nhwc;
mod epilogue;
mod gemm;
mod gemv;
mod isa;
mod pack;
pub(crate) mod pool;
mod prefetch;
#[cfg(test)]
mod tests;
mod window;

pub use cache::CacheSizes;
pub use conv_t::{conv_t_supported, prefer_conv_t};
pub use depthwise::depthwise_conv;
pub use dw_nhwc::{depthwise_nhwc, transpose_dw_weights, DwNhwc};
pub use epilogue::apply_epilogue;
pub use gemm::{gemm_block, microkernel_probe, microkernel_seg_probe};
pub use gemv::{gemv_partial, gemv_reduce, gemv_shape, GemvShape};
pub use isa::{best_isa, force_isa, selected_isa, tile_info, tile_info_for, Isa, TileInfo};
pub use pack::{PackedA, PackedB, Scratch};
pub use window::pointwise_in_place;

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
        Self::with_offset(data, 0, rows, cols, rs, cs)
    }

    /// A view whose element (0, 0) is `data[offset]` (strides may be negative).
    ///
    /// Panics if any element (i < rows, j < cols) would fall outside `data`.
    pub fn with_offset(data: &'a [f32], offset: usize, rows: usize, cols: usize, rs: isize, cs: isize) -> Self {
        if rows > 0 && cols > 0 {
            let hi = offset as isize + max_offset(rows, cols, rs, cs);
            let lo = offset as isize + min_offset(rows, cols, rs, cs);
            assert!(lo >= 0 && (hi as usize) < data.len(), "MatRef out of bounds");
        }
        MatRef { ptr: data.as_ptr().wrapping_add(offset), rows, cols, rs, cs, _life: PhantomData }
    }

    /// Row-major contiguous `rows × cols`.
    pub fn row_major(data: &'a [f32], rows: usize, cols: usize) -> Self {
        Self::new(data, rows, cols, cols as isize, 1)
    }

    /// The transposed view.
    pub fn t(self) -> Self {
        MatRef { ptr: self.ptr, rows: self.cols, cols: self.rows, rs: self.cs, cs: self.rs, _life: PhantomData }
    }

    /// Raw pointer to element (i, j) (no bounds check in release; only dereference it for in-range indices).
    #[inline(always)]
    pub(crate) fn ptr_at(&self, i: usize, j: usize) -> *const f32 {
        self.ptr.wrapping_offset(i as isize * self.rs + j as isize * self.cs)
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

    /// Columns `j0 .. j0 + n` of this view (a group's channels of a channels-last output).
    pub fn cols_range(self, j0: usize, n: usize) -> Self {
        assert!(j0 + n <= self.cols, "MatMut column range outside the view");
        MatMut { ptr: self.ptr.wrapping_offset(j0 as isize * self.cs), cols: n, ..self }
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

    /// The spatial rank, checked: 1 to 8, the same in every per-dimension list, strides and dilations ≥ 1 (the
    /// kernels index these lists unchecked by rank). Panics otherwise, naming `what`.
    pub(crate) fn checked_rank(&self, what: &str) -> usize {
        let nd = self.kernel.len();
        assert!((1..=8).contains(&nd), "{what}: 1 to 8 spatial dimensions, got {nd}");
        assert!(
            [
                self.in_spatial.len(),
                self.out_spatial.len(),
                self.strides.len(),
                self.dilations.len(),
                self.pads_begin.len()
            ]
            .iter()
            .all(|&l| l == nd),
            "{what}: geometry ranks differ (kernel {nd}, in {}, out {}, strides {}, dilations {}, pads {})",
            self.in_spatial.len(),
            self.out_spatial.len(),
            self.strides.len(),
            self.dilations.len(),
            self.pads_begin.len()
        );
        assert!(self.strides.iter().chain(&self.dilations).all(|&v| v >= 1), "{what}: strides and dilations ≥ 1");
        nd
    }
}

/// The B operand of a convolution: one image × group of the input, read through im2col.
#[derive(Clone, Copy, Debug)]
pub struct Im2col<'a> {
    /// `channels × Π in_spatial` values, contiguous (NCHW slice of one image and group).
    pub input: &'a [f32],
    pub geometry: &'a ConvGeometry,
}

/// The A operand of a channels-last (NHWC) convolution: one image × group of the input read through im2col, one
/// row per output pixel. Column `k = tap · channels + c` (taps in row-major kernel order, channels fastest) is
/// channel `c_off + c` of the input pixel under kernel tap `tap`, or 0 in the padding. Input pixel `q` (row-major
/// over `in_spatial`) holds its channels at `input[q · c_stride ..]`.
#[derive(Clone, Copy, Debug)]
pub struct Im2colNhwc<'a> {
    pub input: &'a [f32],
    pub geometry: &'a ConvGeometry,
    pub c_stride: usize,
    pub c_off: usize,
}

/// Left operand (`M × K`).
#[derive(Clone, Copy, Debug)]
pub enum AOperand<'a> {
    View(MatRef<'a>),
    /// Channels-last convolution input (see [`Im2colNhwc`]); B holds the weights as `(tap, channel) × M_out`.
    Im2colNhwc(Im2colNhwc<'a>),
    Packed(&'a PackedA),
    /// `A` given by its transpose (`K × M`) packed as B panels: constant convolution weights for the
    /// channel-vectorized lowering (`B` must then be a 1-D / 2-D `BOperand::Im2col`).
    PackedT(&'a PackedB),
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

impl FusedOp<'_> {
    /// Whether the op reads the element's column `j` (so it must run on C's own layout, not on a buffer with
    /// other column positions).
    pub(crate) fn uses_column(&self) -> bool {
        matches!(self, FusedOp::AddScaled { .. } | FusedOp::ColBias(_) | FusedOp::Add(_))
    }
}

/// `dst[j·ldd + i − rows.start] = src[i·lds + j]` for rows `i ∈ rows` of a source with `cols` columns, through
/// the tier's in-register transposes (the layout moves between channels-first and channels-last; tasks own row
/// ranges, so their destination columns interleave and `dst` is a raw pointer).
///
/// Panics if `src` is too short.
///
/// # Safety
/// `dst + j·ldd + t` is writable for `j < cols`, `t < rows.len()`, and no other thread accesses those elements.
pub unsafe fn transpose_rows(
    src: &[f32],
    lds: usize,
    cols: usize,
    rows: std::ops::Range<usize>,
    dst: *mut f32,
    ldd: usize,
) {
    if rows.is_empty() || cols == 0 {
        return;
    }
    assert!(lds >= cols && src.len() >= (rows.end - 1) * lds + cols, "transpose source too short");
    let ks = selected_isa().kernels();
    // SAFETY: rows × cols of the source (row stride lds) are inside `src` (asserted); the destination elements are
    // the caller's (contract), and they cannot overlap `src` (a shared borrow).
    unsafe { (ks.transpose)(rows.len(), cols, src.as_ptr().add(rows.start * lds), lds, dst, ldd) }
}

/// Name of the kernel implementation in use (reported in the EP device metadata).
pub fn isa_name() -> &'static str {
    selected_isa().name()
}
